# Shared by install.sh and remove.sh: the iptables backend, and reading iptables-save output.
# Mirrors src/netfilter/tools.rs and crates/core/src/iptables/rules.rs; tests/netfilter_scripts.rs
# checks that they agree.

CHAIN=IMDS-GUARD
WAIT_SECONDS=10

die() {
  echo "imds-guard: $*" >&2
  exit 1
}

have() {
  PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1
}

run() {
  PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" "$@"
}

ipv6_enabled() {
  [ "$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null)" = 0 ]
}

# Prints the `-A` rules of table $1 in the iptables-save text on stdin.
table_rules() {
  awk -v t="$1" '/^\*/ { in_t = (substr($0, 2) == t); next }
                 /^COMMIT/ { in_t = 0; next }
                 in_t && $1 == "-A" { print }'
}

# Prints the jumps to our chain (rules of other chains whose target is ours) of table $1.
table_jumps() {
  table_rules "$1" | awk -v c="$CHAIN" '$2 != c && ($0 ~ (" -j " c "$") || $0 ~ (" -g " c "$"))'
}

# Prints the names of the tables that declare our chain, in order.
tables_with_chain() {
  awk -v c="$CHAIN" '/^\*/ { t = substr($0, 2); next }
                     /^COMMIT/ { t = ""; next }
                     t != "" && /^:/ && substr($1, 2) == c && !seen[t]++ { print t }'
}

# The restore text that deletes our jumps and chain in table $1 of the save text in $2.
remove_section() {
  printf '*%s\n' "$1"
  printf '%s\n' "$2" | table_jumps "$1" | sed 's/^-A /-D /'
  printf -- '-F %s\n-X %s\nCOMMIT\n' "$CHAIN" "$CHAIN"
}

# The restore text that removes everything of ours from the save text in $1.
remove_payload() {
  local table
  for table in $(printf '%s\n' "$1" | tables_with_chain); do
    remove_section "$table" "$1"
  done
}

# Counts `-A` rules in the save text on stdin.
count_rules() {
  grep -c '^-A ' || true
}

# Prints the save text of variant $1 (-legacy, -nft or empty), IPv4 and, if present, IPv6.
save_all() {
  run "iptables$1-save" 2>/dev/null || true
  if have "ip6tables$1-save" && ipv6_enabled; then
    run "ip6tables$1-save" 2>/dev/null || true
  fi
}

# Chooses the backend as src/netfilter/tools.rs does: $IMDS_GUARD_BACKEND (auto, legacy, nft);
# with auto, the kubelet's hint chain, then our own chain, then the larger rule set, nft on a tie.
# Prints the command suffix: -legacy, -nft, or empty for the plain names.
detect_backend() {
  case "${IMDS_GUARD_BACKEND:-auto}" in
    legacy) have iptables-legacy-restore || die "iptables-legacy-restore not found: apt-get install iptables"; echo -legacy; return ;;
    nft) have iptables-nft-restore || die "iptables-nft-restore not found: apt-get install iptables"; echo -nft; return ;;
    auto) ;;
    *) die "IMDS_GUARD_BACKEND must be auto, legacy or nft" ;;
  esac
  local legacy="" nft="" l n hint
  have iptables-legacy-save && legacy=yes
  have iptables-nft-save && nft=yes
  if [ -z "$legacy" ] && [ -z "$nft" ]; then
    have iptables-restore || die "iptables-restore not found: apt-get install iptables"
    echo ""
    return
  fi
  if [ -z "$nft" ]; then echo -legacy; return; fi
  if [ -z "$legacy" ]; then echo -nft; return; fi
  l=$(save_all -legacy)
  n=$(save_all -nft)
  for hint in 'KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY' "$CHAIN"; do
    local in_l=no in_n=no
    printf '%s\n' "$l" | grep -Eq "^:($hint) " && in_l=yes
    printf '%s\n' "$n" | grep -Eq "^:($hint) " && in_n=yes
    if [ "$in_l" = yes ] && [ "$in_n" = no ]; then echo -legacy; return; fi
    if [ "$in_l" = no ] && [ "$in_n" = yes ]; then echo -nft; return; fi
  done
  if [ "$(printf '%s\n' "$l" | count_rules)" -gt "$(printf '%s\n' "$n" | count_rules)" ]; then
    echo -legacy
  else
    echo -nft
  fi
}
