// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// The netfilter bypass, modelled for the tests: on the node side of a pod's veth (tc ingress), the
// pod's IPv4 packets to 169.254.169.254 are sent straight out of the uplink with
// bpf_redirect_neigh, as Cilium's BPF host routing sends pod traffic. They leave before the node's
// IP stack sees them, so no PREROUTING rule (our DNAT among them) is ever evaluated.
//
// Built by the test that attaches it: clang -O2 -g -target bpf -DUPLINK_IFINDEX=<n>. The section
// name is one both loaders know: iproute2's tc (libbpf) and aya (the tcx attachment).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef UPLINK_IFINDEX
#error "build with -DUPLINK_IFINDEX=<the uplink's ifindex in the node namespace>"
#endif

// 169.254.169.254
#define IMDS_V4 0xa9fea9fe

SEC("classifier")
int redirect_imds(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->daddr != bpf_htonl(IMDS_V4))
		return TC_ACT_OK;
	// No FIB parameters: the kernel looks the route and the neighbour up itself.
	return bpf_redirect_neigh(UPLINK_IFINDEX, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
