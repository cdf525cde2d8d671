#!/usr/bin/env bash
# release.sh builds ussync's release archives: one static binary (CGO off)
# per platform, stamped with its version, commit and build date, packed with
# the README, CHANGELOG, example configuration, examples/ and install.sh,
# and a SHA256SUMS file over the archives.
#
#   scripts/release.sh [--version V] [--arch amd64,arm64] [--out DIR] [--allow-dirty]
#
#   --version V     the version to stamp (default: the latest v* tag on HEAD,
#                   without its "v"; else main.go's default, e.g. 0.1.0-dev)
#   --arch LIST     comma-separated GOARCH values, all for GOOS=linux
#                   (default: amd64,arm64)
#   --out DIR       where the archives and SHA256SUMS go (default: dist/)
#   --allow-dirty   build from a work tree with uncommitted changes (the
#                   commit stamp then names HEAD, which the binary is not)
#
# Output, for each arch: DIR/ussync_<version>_linux_<arch>.tar.gz holding
# ussync_<version>_linux_<arch>/{ussync,README.md,CHANGELOG.md,cluster.yaml,docs/,
# install.sh,examples/}. `ussync version` of the binary prints the stamps.
#
# Reproducible: -trimpath, no VCS or host paths in the binary, and the build
# date and archive times come from SOURCE_DATE_EPOCH when it is set (else the
# date is now, and archive times the commit's).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$PATH:/usr/local/go/bin"

die() {
  echo "release.sh: $*" >&2
  exit 2
}

version=""
arches="amd64,arm64"
out="dist"
allow_dirty=0
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
    --arch) [ $# -ge 2 ] || die "--arch needs a value"; arches=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

command -v git >/dev/null || die "git is needed to stamp the commit"
commit=$(git rev-parse HEAD 2>/dev/null) || die "not a git checkout: cannot stamp the commit"
if [ -n "$(git status --porcelain --untracked-files=no)" ] && [ "$allow_dirty" != 1 ]; then
  die "the work tree has uncommitted changes; commit them or pass --allow-dirty"
fi
if [ -z "$version" ]; then
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null); then
    version=${tag#v}
  else
    version=$(sed -n 's/^var version = "\(.*\)"$/\1/p' main.go)
  fi
fi
[ -n "$version" ] || die "no version: pass --version"
case "$version" in
  *[!0-9A-Za-z.+-]*) die "version $version: only letters, digits, '.', '+', '-'" ;;
esac

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  epoch=$SOURCE_DATE_EPOCH
  date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
else
  epoch=$(git show -s --format=%ct HEAD)
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ldflags="-s -w -X main.version=$version -X main.commit=$commit -X main.buildDate=$date"
archives=()
IFS=',' read -r -a list <<<"$arches"
for arch in "${list[@]}"; do
  name="ussync_${version}_linux_${arch}"
  dir="$work/$name"
  mkdir -p "$dir"
  echo "== build $name (commit ${commit:0:12}, built $date)"
  CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
    go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dir/ussync" .
  cp README.md CHANGELOG.md cluster.yaml "$dir/"
  cp scripts/install.sh "$dir/install.sh"
  git ls-files -z examples docs | xargs -0 -I{} cp --parents {} "$dir/"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$work" -czf "$out/$name.tar.gz" "$name"
  archives+=("$name.tar.gz")
done

(cd "$out" && sha256sum "${archives[@]}" > SHA256SUMS)
echo "== $out"
(cd "$out" && cat SHA256SUMS)
