#!/usr/bin/env bash
# Makes the pinned toolchain (rust-toolchain.toml) available: where rustup lacks it but the
# machine's stable toolchain is that very version, the pin's name points at it (rustup refuses to
# `link` a release name), so nothing is downloaded; anywhere else rustup installs the pin as usual.
# Run by .ci/run and tests/run.sh before any cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."
pin=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
if command -v rustup >/dev/null 2>&1 && ! rustup toolchain list | grep -q "^$pin-"; then
  if [[ $(rustc +stable --version 2>/dev/null | awk '{ print $2 }') == "$pin" ]]; then
    host=$(rustc +stable -vV | sed -n 's/^host: //p')
    ln -s "$(rustc +stable --print sysroot)" "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$pin-$host"
  fi
fi
