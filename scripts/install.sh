#!/usr/bin/env bash
# install.sh installs a ussync node on a Debian (or any systemd) machine:
#
#   /usr/local/bin/ussync                   the binary
#   ussync system user and group            no login, home /var/lib/ussync
#   /etc/ussync/                            0750 root:ussync
#   /etc/ussync/cluster.yaml                0640 root:ussync, the commented example
#                                           configuration with this machine's values
#   /etc/ussync/secret                      0600 root, a new cluster secret (or
#                                           --secret-file's): the same on every node;
#                                           the unit hands it to the node (LoadCredential)
#   /etc/ussync/api-token                   0600 root, a new API token for this
#                                           site's backend; handed over the same way
#   /var/lib/ussync/                        0700 ussync:ussync, the store
#   /etc/systemd/system/ussync.service      the hardened unit (examples/systemd)
#   /usr/local/share/doc/ussync/            README, CHANGELOG, docs, examples
#
#   install.sh [--root DIR] [--binary FILE] [--name NAME] [--site-url URL]
#              [--join HOST:PORT]... [--secret-file FILE] [--no-systemctl]
#
#   --root DIR         install under DIR instead of / (DESTDIR-style: for
#                      packaging and tests; the user is added to DIR/etc/passwd
#                      with useradd --prefix, and systemctl is not run)
#   --binary FILE      the ussync binary (default: ./ussync beside this script,
#                      as in a release archive, else the one in PATH)
#   --name NAME        node.name (default: this machine's short host name)
#   --site-url URL     site.url, e.g. https://site-a.example/ (default: left as
#                      the example's; edit cluster.yaml before starting)
#   --join HOST:PORT   gossip.join, repeatable (default: none: a first node)
#   --secret-file F    copy the cluster secret from F (the first node's
#                      /etc/ussync/secret) instead of making a new one
#   --no-systemctl     do not run systemctl daemon-reload
#
# Idempotent: run again (e.g. to upgrade the binary), it replaces the
# binary, the unit and the docs, and keeps cluster.yaml, the secret, the token
# and the store as they are (their modes and owners are set again).
# The node is not started: edit /etc/ussync/cluster.yaml, then
#   systemctl enable --now ussync
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# In a release archive the files sit beside this script; in the repository
# they sit one level up.
if [ -f "$here/cluster.yaml" ]; then src=$here; else src=$(cd "$here/.." && pwd); fi

die() {
  echo "install.sh: $*" >&2
  exit 2
}
say() { echo "install.sh: $*"; }

root=""
binary=""
name=""
site_url=""
joins=()
secret_from=""
systemctl=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a value"; root=${2%/}; shift 2 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a value"; binary=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift 2 ;;
    --site-url) [ $# -ge 2 ] || die "--site-url needs a value"; site_url=$2; shift 2 ;;
    --join) [ $# -ge 2 ] || die "--join needs a value"; joins+=("$2"); shift 2 ;;
    --secret-file) [ $# -ge 2 ] || die "--secret-file needs a value"; secret_from=$2; shift 2 ;;
    --no-systemctl) systemctl=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root (files are owned by root and the ussync group, even under --root)"
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  systemctl=0
fi

if [ -z "$binary" ]; then
  if [ -x "$here/ussync" ]; then binary=$here/ussync
  elif command -v ussync >/dev/null && [ "$(command -v ussync)" != "$root/usr/local/bin/ussync" ]; then binary=$(command -v ussync)
  else die "no ussync binary: pass --binary FILE"
  fi
fi
[ -x "$binary" ] || die "$binary is not an executable file"
version=$("$binary" version 2>/dev/null | sed -n '1s/^ussync //p') || true
[ -n "$version" ] || die "$binary version: no answer; is it a ussync binary for this machine?"
[ -z "$name" ] && name=$(hostname -s 2>/dev/null || hostname)
[[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "node name $name: letters, digits, '.', '_', '-' (at most 64)"
if [ -n "$site_url" ]; then
  [[ "$site_url" =~ ^https?://[^[:space:]\"]+$ ]] || die "site URL $site_url: an absolute http(s) URL"
  case "$site_url" in */) ;; *) site_url="$site_url/" ;; esac
fi
for j in ${joins[@]+"${joins[@]}"}; do
  [[ "$j" =~ ^[^[:space:]|\\]+:[0-9]+$ ]] || die "join address $j: HOST:PORT"
done
if [ -n "$secret_from" ]; then
  [ -r "$secret_from" ] || die "cannot read $secret_from"
fi

# The user and group.
if [ -n "$root" ]; then
  mkdir -p "$root/etc"
  for f in passwd group shadow gshadow; do [ -e "$root/etc/$f" ] || touch "$root/etc/$f"; done
  lookup() { awk -F: -v n="$2" '$1 == n { print $3 }' "$root/etc/$1"; }
  useradd_root=(--prefix "$root")
else
  lookup() { getent "$1" "$2" | cut -d: -f3; }
  useradd_root=()
fi
if [ -z "$(lookup passwd ussync)" ]; then
  useradd ${useradd_root[@]+"${useradd_root[@]}"} --system --user-group --home-dir /var/lib/ussync \
    --no-create-home --shell /usr/sbin/nologin --comment "ussync node" ussync
  say "added system user ussync"
fi
uid=$(lookup passwd ussync)
gid=$(lookup group ussync)
[ -n "$uid" ] && [ -n "$gid" ] || die "user or group ussync missing after useradd"

# put MODE OWNER SRC DEST: install a file, replacing it.
put() { install -D -m "$1" -o "${2%:*}" -g "${2#*:}" "$3" "$4"; }
# keep MODE OWNER DEST: a file kept if present, its mode and owner set again.
keep() { chmod "$1" "$3" && chown "$2" "$3"; }

put 0755 0:0 "$binary" "$root/usr/local/bin/ussync"
say "installed $root/usr/local/bin/ussync ($version)"

install -d -m 0750 -o 0 -g "$gid" "$root/etc/ussync"
install -d -m 0700 -o "$uid" -g "$gid" "$root/var/lib/ussync"
chmod 0700 "$root/var/lib/ussync"
chown "$uid:$gid" "$root/var/lib/ussync"

umask 077
secret=$root/etc/ussync/secret
if [ ! -s "$secret" ]; then
  if [ -n "$secret_from" ]; then
    cp "$secret_from" "$secret"
    say "copied the cluster secret from $secret_from"
  else
    "$binary" keygen > "$secret"
    say "made a new cluster secret in $secret: copy it to every other node (install.sh --secret-file)"
  fi
fi
keep 0600 0:0 "$secret"

token=$root/etc/ussync/api-token
if [ ! -s "$token" ]; then
  "$binary" keygen | tr '+/' '-_' | tr -d '=' > "$token"
  say "made a new API token in $token: give it to this site's backend"
fi
keep 0600 0:0 "$token"

# cluster.yaml: the repository's commented example, with this machine's
# values in, and the example's placeholders for other machines out. Each
# edit must match a line of the example: if one does not, the example has
# changed and this script must follow.
conf=$root/etc/ussync/cluster.yaml
if [ ! -e "$conf" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  cp "$src/cluster.yaml" "$tmp"
  edit() { # edit LINE-REGEX REPLACEMENT
    grep -qE "^$1\$" "$tmp" || die "cluster.yaml has no line matching '$1': install.sh needs updating"
    local repl=$2
    repl=${repl//\\/\\\\}; repl=${repl//&/\\&}; repl=${repl//|/\\|}
    sed -i -E "s|^$1\$|$repl|" "$tmp"
  }
  edit '  name: site-a' "  name: $name"
  edit '  data_dir: .*' '  data_dir: /var/lib/ussync'
  [ -n "$site_url" ] && edit '  url: https://site-a.example/' "  url: $site_url"
  edit '  advertise: 203\.0\.113\.10:7946' '  advertise: ""'
  edit '    - site-b\.example:7946' '__JOIN__'
  edit '    - site-c\.example:7946' ''
  edit '  secret_file: .*' '  secret_file: /etc/ussync/secret'
  edit '  token_file: .*' '  token_file: /etc/ussync/api-token'
  edit '  host: smtp\.site-a\.example' '  host: ""'
  edit '  username: ussync@site-a\.example' '  username: ""'
  edit '  password_file: /etc/ussync/smtp-password' '  password_file: ""'
  edit '  from: "Site A <no-reply@site-a\.example>"' '  from: ""'
  if [ ${#joins[@]} -gt 0 ]; then
    list=""
    for j in "${joins[@]}"; do list+="    - $j\n"; done
    sed -i "s|^__JOIN__\$|${list%\\n}|" "$tmp"
  else
    sed -i -e '/^__JOIN__$/d' -e 's/^  join:$/  join: []/' "$tmp"
  fi
  sed -i '/^$/N;/^\n$/D' "$tmp" # the removed join line left two blank lines
  put 0640 "0:$gid" "$tmp" "$conf"
  rm -f "$tmp"
  say "wrote $conf: check site.url, gossip.join and gossip.advertise before starting"
fi
keep 0640 "0:$gid" "$conf"

put 0644 0:0 "$src/examples/systemd/ussync.service" "$root/etc/systemd/system/ussync.service"
doc=$root/usr/local/share/doc/ussync
for f in README.md CHANGELOG.md cluster.yaml; do
  [ -f "$src/$f" ] && put 0644 0:0 "$src/$f" "$doc/$f"
done
if [ -d "$src/docs" ]; then
  for f in "$src"/docs/*.md; do put 0644 0:0 "$f" "$doc/$(basename "$f")"; done
fi
for d in nginx caddy traefik prometheus systemd; do
  [ -d "$src/examples/$d" ] || continue
  for f in "$src/examples/$d"/*; do put 0644 0:0 "$f" "$doc/examples/$d/$(basename "$f")"; done
done

if [ "$systemctl" = 1 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
say "done. Next: edit $conf, then: systemctl enable --now ussync"
