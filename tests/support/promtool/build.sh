#!/usr/bin/env bash
# Builds promtool — Prometheus' rule checker and rule unit-test runner, which tests/monitoring.rs
# runs on deploy/components/monitoring/prometheus-rules.yaml — from the published Prometheus Go
# module, once per machine, into a cache keyed by version:
#   ${IMDS_GUARD_PROMTOOL_CACHE:-$HOME/.cache/imds-guard/promtool}/<version>/promtool
# Prints the binary's path on stdout when done; progress goes to stderr. A second run finds the
# binary and returns at once; with `--check` it builds nothing and fails when there is none.
#
# Prometheus 3's Go module versions are v0.3MM.P for release v3.MM.P (the module path has no /v3,
# so its tags are published as v0.x): v0.316.0 is Prometheus 3.16.0. Its go.mod has no replace
# directives, so a plain `go install` builds it.
set -euo pipefail

PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-v0.316.0}
cache=${IMDS_GUARD_PROMTOOL_CACHE:-$HOME/.cache/imds-guard/promtool}
dir="$cache/$PROMETHEUS_MODULE_VERSION"

say() { echo "promtool: $*" >&2; }

if [ -x "$dir/promtool" ]; then
  echo "$dir/promtool"
  exit 0
fi
# `--check`: only say where it is (above), or that it is missing; build nothing.
if [ "${1:-}" = "--check" ]; then
  say "not built yet: $dir/promtool (run bash tests/support/promtool/build.sh)"
  exit 1
fi
command -v go >/dev/null 2>&1 || { say "go is missing: install Go 1.26 (apt-get install golang-go, or the machine's toolchain)"; exit 1; }

# v0.316.0 -> 3.16.0, for `promtool --version` (as Prometheus' own release build stamps it).
minor=${PROMETHEUS_MODULE_VERSION#v0.3}; minor=${minor%%.*}; minor=$((10#$minor))
patch=${PROMETHEUS_MODULE_VERSION##*.}
release="3.$minor.$patch"

say "building promtool $release (module $PROMETHEUS_MODULE_VERSION; a few minutes on 2 cores, once)"
mkdir -p "$cache"
staging=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
ldflags="-X github.com/prometheus/common/version.Version=$release"
ldflags+=" -X github.com/prometheus/common/version.Branch=module"
ldflags+=" -X github.com/prometheus/common/version.Revision=$PROMETHEUS_MODULE_VERSION"
GOBIN="$staging" GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local \
  go install -trimpath -ldflags "$ldflags" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >&2
"$staging/promtool" --version >&2
# Moved into place whole, so that an interrupted build never leaves a half-written binary behind.
rm -rf "$dir"
mkdir -p "$dir"
mv "$staging/promtool" "$dir/promtool"
say "promtool built: $dir/promtool"
echo "$dir/promtool"
