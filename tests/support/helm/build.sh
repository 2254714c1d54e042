#!/usr/bin/env bash
# Builds helm — the chart tests' `helm lint` and `helm template` (tests/helm.rs) — from its
# published Go module, once per machine, into a cache keyed by version:
#   ${IMDS_GUARD_HELM_CACHE:-$HOME/.cache/imds-guard/helm}/<version>/bin/helm
# (helm.sh/helm/v4 has no replace directives, so plain `go install` builds it.) Its module and
# build caches live beside it, so a rebuild after a bump reuses what it can. Prints the bin
# directory on stdout when done; progress goes to stderr. A second run finds the binary and
# returns at once. With --where it builds nothing: it prints the bin directory and exits 0 when
# helm is there, 1 when not (the tests' check).
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v4.3.1}
cache=${IMDS_GUARD_HELM_CACHE:-$HOME/.cache/imds-guard/helm}
root="$cache/$HELM_VERSION"
bin="$root/bin"

say() { echo "helm: $*" >&2; }

if [ -x "$bin/helm" ]; then
  echo "$bin"
  exit 0
fi
if [ "${1:-}" = --where ]; then
  echo "$bin"
  exit 1
fi
command -v go >/dev/null 2>&1 || { say "go is missing: install Go 1.26 (apt-get install golang-go, or the machine's toolchain)"; exit 1; }
mkdir -p "$bin"
say "building helm $HELM_VERSION (a few minutes on 2 cores, once)"
started=$SECONDS
# Its own GOPATH (module cache) and GOCACHE, under the cache directory; the binary is written to a
# temporary name and moved into place, so an interrupted build never leaves a broken helm behind.
tmp="$root/tmp"
mkdir -p "$tmp"
GOPATH="$cache/gopath" GOMODCACHE="$cache/gopath/pkg/mod" GOCACHE="$cache/gocache" \
  GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local \
  go install -trimpath \
    -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
mv "$tmp/helm" "$bin/helm"
rmdir "$tmp" 2>/dev/null || true
say "helm $HELM_VERSION built in $((SECONDS - started)) s"
echo "$bin"
