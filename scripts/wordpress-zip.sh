#!/usr/bin/env bash
# Builds the WordPress plugin's zip, installable from Plugins -> Add New ->
# Upload Plugin: ussync-<version>.zip holding the folder ussync/.
#
#   scripts/wordpress-zip.sh [OUT_DIR]     (default: dist/)
#
# Every PHP file is checked with `php -l` first when PHP is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=integrations/wordpress/ussync
out=${1:-dist}
version=$(sed -n 's/^ \* Version: *//p' "$src/ussync.php" | head -n1 | tr -d '[:space:]')
if [ -z "$version" ]; then
  echo "wordpress-zip: no Version in $src/ussync.php" >&2; exit 2
fi
if command -v php >/dev/null; then
  while IFS= read -r f; do
    php -l "$f" >/dev/null || { echo "wordpress-zip: $f does not parse" >&2; exit 1; }
  done < <(find "$src" -name '*.php')
fi
mkdir -p "$out"
zipfile=$(cd "$out" && pwd)/ussync-$version.zip
rm -f "$zipfile"
cd integrations/wordpress
if command -v zip >/dev/null; then
  zip -q -r -X "$zipfile" ussync
elif command -v python3 >/dev/null; then
  python3 -m zipfile -c "$zipfile" ussync
else
  echo "wordpress-zip: needs zip (apt-get install zip) or python3" >&2; exit 2
fi
echo "$zipfile"
