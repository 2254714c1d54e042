#!/usr/bin/env bash
# Removes imds-guard's netfilter rules: our chain IMDS-GUARD and every jump to it, in every table
# and (with IMDS_GUARD_BACKEND=auto, the default) in both iptables backends. The same as
# `imds-guard iptables remove`. Nothing else is touched.
#
#   remove.sh [--print]
#
# --print shows the iptables-restore input and changes nothing. With --print,
# IMDS_GUARD_SAVE_V4 / IMDS_GUARD_SAVE_V6 name files of iptables-save output to plan against
# instead of the live rules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

print=no
if [ "${1:-}" = --print ]; then
  print=yes
  shift
fi
[ $# -eq 0 ] || die "usage: remove.sh [--print]"

if [ "$print" = yes ] && [ -n "${IMDS_GUARD_SAVE_V4:-}" ]; then
  for family in 4 6; do
    file_var=IMDS_GUARD_SAVE_V$family
    [ -n "${!file_var:-}" ] || continue
    remove_payload "$(cat "${!file_var}")"
  done
  exit 0
fi

case "${IMDS_GUARD_BACKEND:-auto}" in
  legacy) suffixes=(-legacy) ;;
  nft) suffixes=(-nft) ;;
  auto)
    suffixes=()
    have iptables-legacy-restore && suffixes+=(-legacy)
    have iptables-nft-restore && suffixes+=(-nft)
    [ ${#suffixes[@]} -gt 0 ] || suffixes=("") ;;
  *) die "IMDS_GUARD_BACKEND must be auto, legacy or nft" ;;
esac
have "iptables${suffixes[0]}-restore" || die "iptables${suffixes[0]}-restore not found: apt-get install iptables"

for suffix in "${suffixes[@]}"; do
  for cmd in iptables ip6tables; do
    have "$cmd$suffix-restore" || continue
    # No IPv6 in this kernel: nothing of ours can be there.
    current=$(run "$cmd$suffix-save" 2>/dev/null) || { [ "$cmd" = ip6tables ] && continue; die "$cmd$suffix-save failed"; }
    payload=$(remove_payload "$current")
    [ -n "$payload" ] || continue
    if [ "$print" = yes ]; then
      printf '# %s --noflush --wait=%s\n%s\n' "$cmd$suffix-restore" "$WAIT_SECONDS" "$payload"
    else
      printf '%s\n' "$payload" | run "$cmd$suffix-restore" --noflush --wait="$WAIT_SECONDS"
      echo "imds-guard: removed our rules with $cmd$suffix"
    fi
  done
done
