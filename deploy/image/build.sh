#!/usr/bin/env bash
# Builds the guard's container image without a registry or a container engine:
#
#   bash deploy/image/build.sh            # prints the archive's path
#
# the release binary without the emulator (`cargo build --release --locked --no-default-features`:
# no emulator and none of its test keys in the product), a root filesystem made from Debian's
# packages by rootfs.sh (only what the guard runs), packed as an OCI image with umoci and written
# as an OCI image archive, target/image/imds-guard-VERSION.oci.tar, tagged imds-guard:VERSION.
# Load it with `podman load`, `ctr -n k8s.io images import`, `kind load image-archive`, or push it
# with `skopeo copy oci-archive:… docker://REGISTRY/…` (docs/deploy.md, "The image").
#
# The Dockerfile at the repository root describes the same image for a registry-based build
# (tests/image.rs checks that both agree). Cached by the inputs' hash (the binary, this directory,
# the labels): a second run with the same inputs only prints the path.
#
# Options: --binary PATH (an already built guard, instead of cargo), --source URL (the
# org.opencontainers.image.source label; defaults to the git remote "origin").
# Needs root, mmdebstrap and umoci (apt-get install mmdebstrap umoci).
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=
source=
while (($#)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    *) echo "usage: bash deploy/image/build.sh [--binary PATH] [--source URL]" >&2; exit 2 ;;
  esac
done
for tool in mmdebstrap umoci; do
  command -v "$tool" >/dev/null || { echo "build.sh: needs $tool (apt-get install mmdebstrap umoci)" >&2; exit 1; }
done
if [[ -z $binary ]]; then
  cargo build --release --locked --no-default-features --quiet --bin imds-guard
  binary=target/release/imds-guard
fi

version=$("$binary" --version | awk '{ print $2 }')
[[ -n $version ]] || { echo "build.sh: $binary --version printed no version" >&2; exit 1; }
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -z $source ]]; then
  source=$(git remote get-url origin 2>/dev/null || echo "unknown (revision $revision)")
fi
# One time for every file and for the image's creation: the commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date --utc --date="@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# The image's configuration, as the Dockerfile's last stage states it.
labels=(
  "org.opencontainers.image.title=imds-guard"
  "org.opencontainers.image.description=Guards the cloud instance metadata service from the pods of a Kubernetes node"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.revision=$revision"
  "org.opencontainers.image.source=$source"
  "org.opencontainers.image.licenses=Apache-2.0"
  "org.opencontainers.image.created=$created"
)
env=(
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  "MALLOC_ARENA_MAX=1"
)

out=target/image
archive=$out/imds-guard-$version.oci.tar
key=$( { sha256sum "$binary" | cut -d' ' -f1; cat deploy/image/*; printf '%s\n' "${labels[@]}" "${env[@]}"; } \
  | sha256sum | cut -d' ' -f1)
if [[ -f $archive && $(cat "$archive.key" 2>/dev/null) == "$key" ]]; then
  echo "$archive"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash deploy/image/rootfs.sh "$binary" "$work/rootfs" >&2

layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:$version"
# Unpacked empty, filled, repacked: one layer of the whole tree (`umoci insert` of this version
# writes a layer whose tar stream ends short).
umoci unpack --image "$layout:$version" "$work/bundle" >/dev/null
rmdir "$work/bundle/rootfs"
mv "$work/rootfs" "$work/bundle/rootfs"
umoci repack --image "$layout:$version" --history.created "$created" \
  --history.created_by "deploy/image/rootfs.sh" "$work/bundle"
config=(--config.user 0 --config.workingdir /)
for e in "${env[@]}"; do config+=(--config.env "$e"); done
for l in "${labels[@]}"; do config+=(--config.label "$l"); done
umoci config --image "$layout:$version" --created "$created" --history.created "$created" \
  --config.entrypoint /usr/local/bin/imds-guard \
  --config.cmd run --config.cmd --config --config.cmd /etc/imds-guard/config.toml \
  "${config[@]}"
umoci gc --layout "$layout"

# The tag as the tools that load an archive read it: OCI's ref.name with the repository
# (podman, skopeo), containerd's full name (ctr, kind, a kubelet's `image: imds-guard:VERSION`).
python3 - "$layout/index.json" "$version" <<'EOF'
import json, sys
path, version = sys.argv[1:]
index = json.load(open(path))
for m in index["manifests"]:
    m["annotations"] = {
        "org.opencontainers.image.ref.name": f"imds-guard:{version}",
        "io.containerd.image.name": f"docker.io/library/imds-guard:{version}",
    }
json.dump(index, open(path, "w"), separators=(",", ":"))
EOF

mkdir -p "$out"
tar --create --file "$work/image.tar" --directory "$layout" --sort=name --owner=0 --group=0 \
  --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" .
mv "$work/image.tar" "$archive"
echo "$key" >"$archive.key"
echo "$archive"
