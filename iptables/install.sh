#!/usr/bin/env bash
# Installs the netfilter rules that send pods' metadata-service traffic to imds-guard, for
# operators who manage netfilter themselves. The same rules as `imds-guard iptables install`.
#
#   install.sh [--print] LISTEN [INTERFACE...]
#   install.sh [--print] --sidecar UID LISTEN
#
# LISTEN is imds-guard's server.listen: the node's address (DNAT), 0.0.0.0:PORT or [::]:PORT
# (REDIRECT). INTERFACEs are pod interface patterns (default: eni+ cali+ cni0 weave lxc+ azv+).
# --sidecar UID: sidecar mode, inside a pod's network namespace (`imds-guard iptables install
# --sidecar`): nat OUTPUT DNATs every process's metadata traffic to LISTEN (loopback), except
# the sidecar's UID's; IPv6 metadata traffic is rejected, except the sidecar's.
# --print shows the iptables-restore input and changes nothing.
#
# Environment: IMDS_GUARD_CLOUD=aws|gcp|azure|alibaba|oci|openstack|digitalocean|hetzner|tencent|
# huawei|exoscale|linode (default aws: imds-guard's [upstream] cloud): whose metadata server is
# intercepted. Its IPv4 address on port 80 (100.100.100.200 for alibaba, 169.254.0.23 for
# tencent, 169.254.169.254 for the others) goes to LISTEN; its IPv6 endpoint (aws
# fd00:ec2::254, gcp fd20:ce::254, oci fd00:c1::a9fe:a9fe, linode fd00:a9fe:a9fe::1, openstack
# and hetzner fe80::a9fe:a9fe) is redirected with a [::] LISTEN and rejected otherwise; the ports
# the guard cannot inspect (gcp: 443, its HTTPS endpoint) and the side doors beside the server
# (azure: the WireServer 168.63.129.16, ports 80 and 32526, never its DNS on 53; exoscale: the
# password server, 169.254.169.254:8080) are rejected with a TCP reset in filter FORWARD
# (sidecar: OUTPUT).
# IMDS_GUARD_BACKEND=auto|legacy|nft (default auto: the backend the host uses).
# IMDS_GUARD_SAVE_V4 / IMDS_GUARD_SAVE_V6 (with --print): files holding iptables-save /
# ip6tables-save output to plan against instead of the live rules; IPv6 is planned only when
# IMDS_GUARD_SAVE_V6 is given.
#
# Idempotent: our chain IMDS-GUARD is rewritten in one iptables-restore --noflush transaction per
# table, missing jumps are inserted, and jumps to our chain that are not wanted are deleted. No
# other chain or rule is touched. Afterwards the tracked connections to the metadata service that
# bypassed the rules (opened before them) are deleted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"

# The metadata server of each cloud, as crates/core/src/cloud.rs has it: the IPv4 address, the
# IPv6 endpoint (empty: none), and what pods are refused outright (ADDRESS:PORT, empty: none): the
# ports the guard cannot inspect, then the side doors.
cloud=${IMDS_GUARD_CLOUD:-aws}
v4_addr=169.254.169.254
v6_addr=""
refused=""
case "$cloud" in
  aws) v6_addr=fd00:ec2::254 ;;
  gcp) v6_addr=fd20:ce::254 refused=169.254.169.254:443 ;;
  azure) refused="168.63.129.16:80 168.63.129.16:32526" ;;
  alibaba) v4_addr=100.100.100.200 ;;
  oci) v6_addr=fd00:c1::a9fe:a9fe ;;
  openstack | hetzner) v6_addr=fe80::a9fe:a9fe ;;
  digitalocean | huawei) ;;
  tencent) v4_addr=169.254.0.23 ;;
  exoscale) refused=169.254.169.254:8080 ;;
  linode) v6_addr=fd00:a9fe:a9fe::1 ;;
  *) die "IMDS_GUARD_CLOUD: unknown cloud \"$cloud\": expected one of aws, gcp, azure, alibaba, oci, openstack, digitalocean, hetzner, tencent, huawei, exoscale, linode" ;;
esac

usage="usage: install.sh [--print] LISTEN [INTERFACE...] | install.sh [--print] --sidecar UID LISTEN"
print=no
sidecar_uid=""
while [ $# -gt 0 ]; do
  case "$1" in
    --print) print=yes ;;
    --sidecar) [ $# -ge 2 ] || die "$usage"; sidecar_uid=$2; shift ;;
    *) break ;;
  esac
  shift
done
[ $# -ge 1 ] || die "$usage"
listen=$1
shift
if [ -n "$sidecar_uid" ]; then
  case "$sidecar_uid" in '' | *[!0-9]*) die "--sidecar UID: $sidecar_uid is not a UID" ;; esac
  [ ${#sidecar_uid} -le 10 ] && [ "$sidecar_uid" -le 4294967295 ] || die "--sidecar UID: $sidecar_uid is not a UID"
  [ $# -eq 0 ] || die "$usage"
else
  [ $# -ge 1 ] || set -- eni+ cali+ cni0 weave lxc+ azv+
fi

# Pod interface patterns, without repeats, in order.
interfaces=()
for iface in "$@"; do
  case " ${interfaces[*]:-} " in *" $iface "*) ;; *) interfaces+=("$iface") ;; esac
done

case "$listen" in
  \[*\]:*) host=${listen#\[}; host=${host%%\]*}; port=${listen##*\]:} ;;
  *:*) host=${listen%:*}; port=${listen##*:} ;;
  *) die "LISTEN must be ADDRESS:PORT, as server.listen" ;;
esac
case "$port" in '' | *[!0-9]*) die "LISTEN $listen: no port" ;; esac
if [ -n "$sidecar_uid" ]; then
  case "$host" in
    127.*) ;;
    *) die "$listen: in sidecar mode the proxy must listen on an IPv4 loopback address (127.0.0.1:PORT): the rules DNAT the pod's own IPv4 traffic there, and every connection the proxy accepts is taken to come from this pod" ;;
  esac
fi
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "$listen has port 0: the rules need the port the proxy listens on"
if [ -n "$sidecar_uid" ]; then
  [ "$sidecar_uid" -ne 0 ] || die "the sidecar's UID is 0: every process running as the sidecar's UID bypasses the rules, so the sidecar needs a UID of its own that no other container of the pod uses (not root)"
  v4_target="-j DNAT --to-destination $host:$port"
else
  case "$host" in
    127.* | ::1 | ::ffff:127.*)
      die "$listen is a loopback address: pod traffic DNATed from PREROUTING to loopback is dropped by the kernel (unless route_localnet is set); listen on the node's address or on 0.0.0.0" ;;
    0.0.0.0 | ::) v4_target="-j REDIRECT --to-ports $port" ;;
    *:*) die "$listen is an IPv6 address: pods' IPv4 traffic cannot be DNATed to it; listen on the node's IPv4 address, on 0.0.0.0 or on [::]" ;;
    *) v4_target="-j DNAT --to-destination $host:$port" ;;
  esac
fi

# What each jump to our chain matches (then " -j IMDS-GUARD"): one per pod interface in node
# mode, all traffic in sidecar mode.
jump_specs=()
if [ -n "$sidecar_uid" ]; then
  jump_specs=("")
else
  for iface in "${interfaces[@]}"; do jump_specs+=("-i $iface "); done
fi

# The hook of the filter table (the nat table's too, in sidecar mode): pod traffic is forwarded
# by a node, and sent from OUTPUT inside a pod.
if [ -n "$sidecar_uid" ]; then
  filter_hook=OUTPUT
  nat_hook=OUTPUT
  # Every rule spares the sidecar's own UID (then a space, or nothing in node mode).
  others="-m owner ! --uid-owner $sidecar_uid "
else
  filter_hook=FORWARD
  nat_hook=PREROUTING
  others=""
fi

# Tables of a family, one per line: TABLE HOOK, nat first.
wanted_tables() {
  if [ "$1" = 4 ]; then
    echo "nat $nat_hook"
    [ -n "$refused" ] && echo "filter $filter_hook"
  else
    # An IPv6 listener takes the IPv6 endpoint (node mode only: a sidecar listens on IPv4).
    [ -z "$sidecar_uid" ] && [ "$host" = :: ] && [ -n "$v6_addr" ] && echo "nat PREROUTING"
    echo "filter $filter_hook"
  fi
  return 0
}
wanted_rules() { # family table
  local reject="-j REJECT --reject-with icmp6-adm-prohibited" p
  case "$1 $2" in
    "4 nat") echo "-d $v4_addr/32 -p tcp -m tcp --dport 80 $others$v4_target" ;;
    "4 filter")
      for p in $refused; do
        echo "-d ${p%:*}/32 -p tcp -m tcp --dport ${p##*:} $others-j REJECT --reject-with tcp-reset"
      done ;;
    "6 nat") echo "-d $v6_addr/128 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports $port" ;;
    "6 filter")
      echo "-d ::ffff:$v4_addr/128 $others$reject"
      [ -z "$v6_addr" ] || echo "-d $v6_addr/128 $others$reject" ;;
  esac
}

# The iptables-restore input that turns the save text in $2 into our rule set for family $1.
install_payload() {
  local family=$1 current=$2 table hook rule jump i
  local used=" "
  while read -r table hook; do
    used="$used$table "
    printf '*%s\n:%s - [0:0]\n-F %s\n' "$table" "$CHAIN" "$CHAIN"
    while IFS= read -r rule; do
      printf -- '-A %s %s\n' "$CHAIN" "$rule"
    done < <(wanted_rules "$family" "$table")
    local present=()
    for i in "${!jump_specs[@]}"; do present[i]=no; done
    while IFS= read -r jump; do
      local keep=no
      for i in "${!jump_specs[@]}"; do
        if [ "$jump" = "-A $hook ${jump_specs[i]}-j $CHAIN" ] && [ "${present[i]}" = no ]; then
          present[i]=yes
          keep=yes
          break
        fi
      done
      [ "$keep" = yes ] || printf -- '-D %s\n' "${jump#-A }"
    done < <(printf '%s\n' "$current" | table_jumps "$table")
    for ((i = ${#jump_specs[@]} - 1; i >= 0; i--)); do
      [ "${present[i]}" = yes ] || printf -- '-I %s %s-j %s\n' "$hook" "${jump_specs[i]}" "$CHAIN"
    done
    echo COMMIT
  done < <(wanted_tables "$family")
  for table in $(printf '%s\n' "$current" | tables_with_chain); do
    case "$used" in *" $table "*) ;; *) remove_section "$table" "$current" ;; esac
  done
}

# The rules of family $1 as iptables-save prints them, one "TABLE RULE" per line.
expected_lines() {
  local family=$1 table hook spec rule
  while read -r table hook; do
    for spec in "${jump_specs[@]}"; do echo "$table -A $hook $spec-j $CHAIN"; done
    wanted_rules "$family" "$table" | while IFS= read -r rule; do echo "$table -A $CHAIN $rule"; done
  done < <(wanted_tables "$family")
}

if [ "$print" = yes ] && [ -n "${IMDS_GUARD_SAVE_V4:-}" ]; then
  case "${IMDS_GUARD_BACKEND:-auto}" in
    legacy) suffix=-legacy ;; nft) suffix=-nft ;; *) suffix="" ;;
  esac
  families=(4)
  [ -n "${IMDS_GUARD_SAVE_V6:-}" ] && families+=(6)
else
  suffix=$(detect_backend)
  families=(4)
  if have "ip6tables$suffix-restore" && ipv6_enabled; then families+=(6); fi
fi

for family in "${families[@]}"; do
  cmd=iptables
  [ "$family" = 6 ] && cmd=ip6tables
  if [ "$print" = yes ] && [ -n "${IMDS_GUARD_SAVE_V4:-}" ]; then
    file_var=IMDS_GUARD_SAVE_V$family
    current=$(cat "${!file_var}")
  else
    current=$(run "$cmd$suffix-save")
  fi
  payload=$(install_payload "$family" "$current")
  if [ "$print" = yes ]; then
    printf '# %s --noflush --wait=%s\n%s\n' "$cmd$suffix-restore" "$WAIT_SECONDS" "$payload"
    continue
  fi
  printf '%s\n' "$payload" | run "$cmd$suffix-restore" --noflush --wait="$WAIT_SECONDS"
  # Check: every rule we want is there now.
  after=$(run "$cmd$suffix-save")
  while read -r table rule; do
    printf '%s\n' "$after" | table_rules "$table" | grep -qxF -- "$rule" ||
      die "not in place after install: $cmd -t $table $rule"
  done < <(expected_lines "$family")
done
[ "$print" = yes ] && exit 0

# NAT is decided on a connection's first packet: connections to the metadata service opened
# before the rules keep reaching it until their tracking entries are deleted. conntrack exits 1
# when nothing matched.
have conntrack || die "conntrack not found: apt-get install conntrack (the rules are installed, but connections opened before them were not cleared)"
for family in "${families[@]}"; do
  if [ "$family" = 4 ]; then f=ipv4 addr=$v4_addr; else f=ipv6 addr=$v6_addr; fi
  [ -n "$addr" ] || continue
  if ! said=$(run conntrack -D -f "$f" -p tcp --orig-dst "$addr" --orig-port-dst 80 --reply-src "$addr" 2>&1); then
    case "$said" in *" 0 flow entries"*) ;; *) die "conntrack failed: $said" ;; esac
  fi
done
if [ ${#families[@]} -gt 1 ]; then what="IPv4 and IPv6"; else what=IPv4; fi
echo "imds-guard: rules installed with iptables$suffix ($what)"
