#!/usr/bin/env bash
# Proves the quick tier needs nothing but Rust: builds what plain `cargo test` builds, then runs
# every one of those test programs as the unprivileged user `nobody`, with a bare PATH and an
# empty home (so none of the end-to-end tier's tools — Go-built binaries, PyPI and npm packages,
# root — is at hand). Fails when any of them fails. Run as root (CI does, after tests/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "quick-tier: run as root (it drops to nobody for the tests)" >&2; exit 1; }

executables=$(cargo test --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["profile"]["test"]:
        print(message["executable"])
')
[[ -n $executables ]] || { echo "quick-tier: cargo test --no-run built no test programs" >&2; exit 1; }
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
chmod 0777 "$home"
# As nobody where nobody can read the checkout; else (a checkout under a private home) as uid 0
# with no capabilities at all, which can open its own files but cannot make a namespace, a
# rule, a mount or a kernel program.
root=$PWD
if setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$root/Cargo.toml"; then
  drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  who=nobody
else
  drop=(setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs)
  who="uid 0 without capabilities"
fi
failed=()
count=0
for exe in $executables; do
  count=$((count + 1))
  if ! (cd "$root" && "${drop[@]}" env -i PATH=/usr/bin:/bin HOME="$home" "$exe" --quiet \
      >"$home/out" 2>&1); then
    cat "$home/out" >&2
    failed+=("$(basename "$exe")")
  fi
done
if ((${#failed[@]})); then
  echo "quick-tier: failed as $who: ${failed[*]}" >&2
  exit 1
fi
echo "quick-tier: $count test programs passed as $who"
