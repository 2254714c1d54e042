#!/usr/bin/env bash
# Builds the Kubernetes control-plane programs the tests run — etcd and kube-apiserver — from their
# published Go modules, once per machine, into a cache keyed by version:
#   ${IMDS_GUARD_CONTROLPLANE_CACHE:-$HOME/.cache/imds-guard/controlplane}/<version>/bin/
# Prints the bin directory on stdout when done; progress goes to stderr. A second run finds the
# binaries and returns at once.
set -euo pipefail

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
cache=${IMDS_GUARD_CONTROLPLANE_CACHE:-$HOME/.cache/imds-guard/controlplane}
bin="$cache/kubernetes-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"

say() { echo "controlplane: $*" >&2; }

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || { say "go is missing: install Go 1.26 (apt-get install golang-go, or the machine's toolchain)"; exit 1; }
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

# A module of our own that requires the program's module and replaces each module the program's
# own go.mod replaces with a local path by its published version (go install refuses modules with
# replace directives).
own_module() {
  local dir=$1 module=$2 version=$3 staging_version=$4
  mkdir -p "$dir"
  local gomod
  gomod=$(go mod download -json "$module@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || { say "cannot download $module@$version"; exit 1; }
  {
    echo "module imds-guard.test/controlplane"
    echo
    sed -n 's/^go \(.*\)$/go \1/p' "$gomod" | head -1
    sed -n '/^godebug/,/^)/p' "$gomod"
    echo
    echo "require $module $version"
    echo
    echo "replace ("
    sed -n 's/^\s*\([^ ]*\) => \.\/staging\/.*$/\t\1 => \1 '"$staging_version"'/p' "$gomod"
    echo ")"
  } >"$dir/go.mod"
}

if [ ! -x "$bin/etcd" ]; then
  say "building etcd $ETCD_VERSION (a few minutes on 2 cores)"
  dir="$work/etcd"
  mkdir -p "$dir"
  gomod=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  {
    echo "module imds-guard.test/etcd"
    echo
    sed -n 's/^go \(.*\)$/go \1/p' "$gomod" | head -1
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(go.etcd.io/etcd/[^ ]*\) => \.\./.*$#\t\1 => \1 '"$ETCD_VERSION"'#p' "$gomod"
    echo ")"
  } >"$dir/go.mod"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
   go build -trimpath -o "$bin/etcd" go.etcd.io/etcd/server/v3 >&2)
  say "etcd built"
fi

if [ ! -x "$bin/kube-apiserver" ]; then
  say "building kube-apiserver $KUBERNETES_VERSION (8 to 20 minutes on 2 cores, once)"
  staging="v0${KUBERNETES_VERSION#v1}"
  dir="$work/kubernetes"
  own_module "$dir" k8s.io/kubernetes "$KUBERNETES_VERSION" "$staging"
  major=${KUBERNETES_VERSION#v}; major=${major%%.*}
  minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  done
  (cd "$dir" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" >&2
   go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2)
  say "kube-apiserver built"
fi
echo "$bin"
