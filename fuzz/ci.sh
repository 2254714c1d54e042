#!/usr/bin/env bash
# CI's bounded fuzz run: each target from its seeds for a fixed time (about three minutes in all,
# after a build of a minute or two); a crash, a hang or a broken invariant fails the run and leaves
# the input under fuzz/artifacts/<target>/. Needs the nightly toolchain (skipped, saying so, where
# there is none: a toolchain cannot be installed from here) and cargo-fuzz (installed once from
# crates.io when missing). Builds into fuzz/target, apart from the main build.
set -euo pipefail
cd "$(dirname "$0")"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain here; the bounded fuzz run is skipped"
  exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export CARGO_TARGET_DIR="$PWD/target"

# target and seconds: the query reader and the pattern matchers get the most time (they are the
# newest); the path reader and the decision keep a share.
runs=(query_parse:40 query_read:40 pattern:40 target_path:30 policy:30)
echo "fuzz: building ${#runs[@]} targets"
cargo +nightly fuzz build >/dev/null 2>&1 || cargo +nightly fuzz build
mkdir -p target/logs
for run in "${runs[@]}"; do
  name=${run%%:*}
  seconds=${run##*:}
  log=target/logs/$name.log
  mkdir -p "corpus/$name"
  if cargo +nightly fuzz run "$name" "corpus/$name" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs_done=$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1)
    echo "fuzz: $name: ${runs_done:-finished} (no crash)"
  else
    echo "fuzz: $name FAILED (whole log: fuzz/$log):"
    grep -A4 'panicked at' "$log" | head -c 4000 || true
    echo
    grep -E 'SUMMARY|Test unit written' "$log" || tail -n 30 "$log"
    grep -A3 'Reproduce with' "$log" || true
    exit 1
  fi
done
