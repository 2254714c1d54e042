#!/usr/bin/env bash
# The image's root filesystem: `bash deploy/image/rootfs.sh BINARY DIR` writes into DIR (new or
# empty) the guard's BINARY and, from the Debian packages named in `packages` (bookworm with its
# updates and security suites), only the programs the guard runs, the libraries they and the
# guard load, and the files they read. No shell, no package manager: nothing in the image runs
# but the guard and the commands it starts (iptables, conntrack, tc).
#
# For scanners, each package that gave files is recorded in /var/lib/dpkg/status.d/ (name,
# source, version, architecture; the layout minimal Debian-based images use) with its copyright
# file in /usr/share/doc/, and /etc/os-release names the release.
#
# Used by build.sh here and by the Dockerfile's `rootfs` stage, so both make the same image.
# Needs root (the packages' own dynamic loader is run under chroot to list each program's
# libraries) and mmdebstrap.
set -euo pipefail

if (($# != 2)); then
  echo "usage: bash deploy/image/rootfs.sh BINARY DIR" >&2
  exit 2
fi
binary=$1
root=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v mmdebstrap >/dev/null || { echo "rootfs.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
[[ -x $binary ]] || { echo "rootfs.sh: $binary is not an executable" >&2; exit 1; }
mkdir -p "$root"
[[ -z $(ls -A "$root") ]] || { echo "rootfs.sh: $root is not empty" >&2; exit 1; }

mapfile -t packages < <(sed 's/#.*//' "$here/packages" | tr -s ' \t' '\n' | sed '/^$/d')
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
# The packages and their dependencies, extracted (no maintainer script runs), the .deb files kept
# to read their control fields and file lists below.
mmdebstrap --quiet --variant=extract --mode=chrootless --skip=cleanup/apt/cache \
  --include="$(IFS=,; echo "${packages[*]}")" bookworm "$staging" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb $security bookworm-security main"
install -D -m 0755 "$binary" "$staging/usr/local/bin/imds-guard"

# What the guard runs. The iptables commands are names of two multi-call programs, one per backend
# (both kept: the guard writes with the backend the node uses); the extensions are loaded by both
# when they parse or print a rule, any rule of the node's tables included.
programs=(usr/local/bin/imds-guard usr/sbin/xtables-legacy-multi usr/sbin/xtables-nft-multi)
for backend in legacy nft; do
  for family in iptables ip6tables; do
    for tool in "" -save -restore; do programs+=("usr/sbin/$family-$backend$tool"); done
  done
done
programs+=(usr/sbin/conntrack sbin/tc)
mapfile -t extensions < <(cd "$staging" && find usr/lib -path '*/xtables/*.so' | sort)
# What they read: protocol names (iptables `-p tcp`), and which release the packages are.
data=(etc/protocols etc/os-release usr/lib/os-release etc/debian_version)

# A path of the staging tree, with its symlinks followed inside the tree (never into the host's).
resolve() {
  local path=$1 target hops=0
  while [[ -L $staging/$path ]]; do
    ((++hops < 40)) || { echo "rootfs.sh: symlink loop at $path" >&2; exit 1; }
    target=$(readlink "$staging/$path")
    if [[ $target == /* ]]; then path=${target#/}; else path=$(dirname "$path")/$target; fi
    path=$(realpath --canonicalize-missing --no-symlinks --relative-to=/ "/$path")
  done
  printf '%s\n' "$path"
}

declare -A wanted=()
want() { # a path and, when it is a symlink, what it points to
  local path=$1
  [[ -e $staging/$path || -L $staging/$path ]] || { echo "rootfs.sh: $path is in none of the packages" >&2; exit 1; }
  wanted[$path]=1
  wanted[$(resolve "$path")]=1
}

loader=$(cd "$staging" && ls lib*/ld-linux*.so.* 2>/dev/null | head -n1)
[[ -n $loader ]] || { echo "rootfs.sh: no dynamic loader in the packages" >&2; exit 1; }
want "$loader"
for file in "${programs[@]}" "${extensions[@]}"; do
  want "$file"
  # The libraries, as the packages' own loader finds them in the tree; "not found" fails.
  listing=$(chroot "$staging" "/$loader" --list "/$(resolve "$file")") \
    || { echo "rootfs.sh: cannot list the libraries of $file" >&2; exit 1; }
  if grep -q 'not found' <<<"$listing"; then
    echo "rootfs.sh: $file needs a library none of the packages has:" >&2
    grep 'not found' <<<"$listing" >&2
    exit 1
  fi
  while read -r lib; do want "${lib#/}"; done < <(awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing")
done
for file in "${data[@]}"; do want "$file"; done

for path in "${!wanted[@]}"; do
  (cd "$staging" && cp -a --parents "$path" "$root/")
done

# Which package each kept file came from: its status entry and its copyright.
declare -A owner=()
for deb in "$staging"/var/cache/apt/archives/*.deb; do
  package=$(dpkg-deb --field "$deb" Package)
  while read -r path; do owner[$path]=$package; done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./\(.*[^/]\)$|\1|p')
done
declare -A used=()
for path in "${!wanted[@]}"; do
  [[ $path == usr/local/bin/imds-guard ]] && continue
  [[ -n ${owner[$path]:-} ]] || { echo "rootfs.sh: no package owns $path" >&2; exit 1; }
  used[${owner[$path]}]=1
done
mkdir -p "$root/var/lib/dpkg/status.d"
for deb in "$staging"/var/cache/apt/archives/*.deb; do
  package=$(dpkg-deb --field "$deb" Package)
  [[ -n ${used[$package]:-} ]] || continue
  {
    echo "Package: $package"
    echo "Status: install ok installed"
    dpkg-deb --field "$deb" Source Version Architecture
  } >"$root/var/lib/dpkg/status.d/$package"
  install -D -m 0644 "$staging/usr/share/doc/$package/copyright" "$root/usr/share/doc/$package/copyright"
done

# Root and nobody, for the tools that look a user up; the guard runs as root (the DaemonSet) or as
# the sidecar's UID, which needs no entry.
mkdir -p "$root/etc" "$root/tmp" "$root/run" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
# One time for every file, so that the same inputs make the same layer.
find "$root" -exec touch --no-dereference --date="@${SOURCE_DATE_EPOCH:-0}" {} +
