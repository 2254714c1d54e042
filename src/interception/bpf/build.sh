#!/usr/bin/env bash
# Builds the kernel programs (imds_guard.bpf.c) into imds_guard.bpf.o with clang. The object is
# committed, so `cargo build` needs only Rust; `--check` rebuilds into a temporary file and fails
# when it differs from the committed one (the test command runs it). Needs clang and the kernel
# and libbpf headers and llvm-strip (Debian: clang, llvm, linux-libc-dev, libbpf-dev).
set -euo pipefail
cd "$(dirname "$0")"
out=imds_guard.bpf.o
if [[ ${1:-} == --check ]]; then
  out=$(mktemp --suffix=.o)
  trap 'rm -f "$out"' EXIT
fi
# -g for BTF (the maps are BTF-defined); the compilation directory and file prefix fixed so that
# the object is the same wherever the checkout is.
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
  -fdebug-compilation-dir=. -fdebug-prefix-map="$PWD"=. \
  -Wall -Werror -c imds_guard.bpf.c -o "$out"
# Debug info but BTF goes: smaller, and free of anything that names the build machine.
strip=$(command -v llvm-strip || command -v llvm-strip-14 || true)
[[ -n $strip ]] || { echo "llvm-strip is missing (apt-get install llvm)" >&2; exit 1; }
"$strip" -g --keep-section=.BTF --keep-section=.BTF.ext "$out"
if [[ ${1:-} == --check ]]; then
  if ! cmp -s "$out" imds_guard.bpf.o; then
    echo "src/interception/bpf/imds_guard.bpf.o is not what imds_guard.bpf.c builds to:" >&2
    echo "run bash src/interception/bpf/build.sh and commit the object" >&2
    exit 1
  fi
  echo "kernel programs: the committed object matches its source"
fi
