// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// imds-guard's kernel programs for `[interception] method = "cgroup"`.
//
// Attached to the pods' cgroup (and so to every process below it, in whatever network namespace):
//   connect4 / connect6        a TCP connect to the metadata server (IPv4, IPv6, IPv4-mapped) is
//                              rewritten to the guard's listener, or refused (EPERM) for the ports
//                              the guard cannot inspect; the address dialled and the cgroup that
//                              dialled are kept by socket cookie.
//   getpeername4 / getpeername6 the client sees the address it dialled, not the guard's.
//   sockops (TCP_CONNECT_CB)    once the kernel has chosen the source address and port, the
//                              connection's 4-tuple, as the guard will see it, is recorded with
//                              the cgroup that dialled: the guard looks it up on accept.
// On the pod interfaces (tcx ingress), the backstop drops every packet to a metadata address: what
// a raw socket or a sandboxed runtime sends goes around the connect hooks, never around this.
//
// Built with `bash src/interception/bpf/build.sh` (clang -target bpf); the object is committed so
// that `cargo build` needs only Rust, and the test command rebuilds it and fails on a difference.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef TCX_NEXT
#define TCX_NEXT -1
#endif
#ifndef LIBBPF_PIN_BY_NAME
#define LIBBPF_PIN_BY_NAME 1
#endif

// Keeps the compiler from merging loads across it.
#define barrier() asm volatile("" ::: "memory")

#define SOCK_STREAM 1
#define AF_INET 2
#define AF_INET6 10

// What becomes of a connect to a target address and port.
#define ACTION_REDIRECT 1
#define ACTION_REFUSE 2

// settings.flags
#define FLAG_CONFIGURED 1     // userspace has written the settings: until then, refuse
#define FLAG_HOST_NETWORK 2   // redirect sockets in the node's network namespace too
#define FLAG_GUARD_V6 4       // guard_v6 is set: IPv6 destinations go there, not to ::ffff:guard_v4

// An address in IPv6 form (IPv4 as ::ffff:a.b.c.d) and a port, both in network byte order.
struct target {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
};

struct settings {
	__u32 guard_v4;       // network byte order
	__u32 guard_v6[4];    // network byte order
	__u16 guard_port;     // network byte order
	__u16 flags;
	__u64 host_netns;     // the node's network namespace cookie (0: the initial namespace's)
	__u64 exempt_cgroup;  // the guard's own pod cgroup: never redirected
	__u32 exempt_level;   // its level in the hierarchy (root = 0)
	__u32 pad;
	__u16 ports[4];       // every port in `targets` (network byte order, 0 = unused): connects
	                      // to any other port are let through without a hash lookup
};

// What connect saw, for getpeername and sockops (by socket cookie).
struct dialled {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
	__u32 pad2;
	__u64 cgroup;
};

// A redirected connection as the guard's accepted socket sees it.
struct tuple {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;          // network byte order
	__u16 dport;          // network byte order
};

struct record {
	__u64 cgroup;
	__u64 netns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct target);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct dialled);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dialled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, struct record);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} records SEC(".maps");

// Addresses the backstop drops (IPv6 form).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct target);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} blocked SEC(".maps");

static __always_inline int exempt(const struct settings *s, struct bpf_sock_addr *ctx)
{
	// Without the node's cookie (kernels before 5.14 cannot tell it to the guard), the initial
	// namespace's: the node's, wherever the guard runs as a hostNetwork pod.
	__u64 host = s->host_netns ? s->host_netns : bpf_get_netns_cookie(NULL);

	if (!(s->flags & FLAG_HOST_NETWORK) && bpf_get_netns_cookie(ctx) == host)
		return 1;
	if (s->exempt_cgroup &&
	    bpf_get_current_ancestor_cgroup_id(s->exempt_level) == s->exempt_cgroup)
		return 1;
	return 0;
}

// Decides one connect to `t`: 1 to go on (rewritten or not), 0 to refuse with EPERM.
static __always_inline int intercept(struct bpf_sock_addr *ctx, struct target *t, int v6)
{
	__u32 *action;
	__u32 zero = 0;
	struct settings *s;
	struct dialled d = {};
	__u64 cookie;

	if (ctx->type != SOCK_STREAM)
		return 1;
	s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		return 0;
	// Most connects go to ports no metadata server answers on: done before any hashing. Until
	// the settings are written every port is 0, so nothing is let through here.
	if ((s->flags & FLAG_CONFIGURED) && t->port != s->ports[0] && t->port != s->ports[1] &&
	    t->port != s->ports[2] && t->port != s->ports[3])
		return 1;
	action = bpf_map_lookup_elem(&targets, t);
	if (!action)
		return 1;
	if (!(s->flags & FLAG_CONFIGURED))
		return 0;
	if (exempt(s, ctx))
		return 1;
	if (*action != ACTION_REDIRECT)
		return 0;

	cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(d.addr, t->addr, sizeof(d.addr));
	d.port = t->port;
	d.cgroup = bpf_get_current_cgroup_id();
	if (bpf_map_update_elem(&dialled, &cookie, &d, BPF_ANY))
		return 0;

	if (!v6) {
		ctx->user_ip4 = s->guard_v4;
	} else if (s->flags & FLAG_GUARD_V6) {
		ctx->user_ip6[0] = s->guard_v6[0];
		ctx->user_ip6[1] = s->guard_v6[1];
		ctx->user_ip6[2] = s->guard_v6[2];
		ctx->user_ip6[3] = s->guard_v6[3];
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = s->guard_v4;
	}
	ctx->user_port = s->guard_port;
	return 1;
}

SEC("cgroup/connect4")
int imds_connect4(struct bpf_sock_addr *ctx)
{
	struct target t = {};

	t.addr[2] = bpf_htonl(0x0000ffff);
	t.addr[3] = ctx->user_ip4;
	t.port = (__u16)ctx->user_port;
	return intercept(ctx, &t, 0);
}

SEC("cgroup/connect6")
int imds_connect6(struct bpf_sock_addr *ctx)
{
	struct target t = {};

	t.addr[0] = ctx->user_ip6[0];
	t.addr[1] = ctx->user_ip6[1];
	t.addr[2] = ctx->user_ip6[2];
	t.addr[3] = ctx->user_ip6[3];
	t.port = (__u16)ctx->user_port;
	return intercept(ctx, &t, 1);
}

// Puts back the address the client dialled, when its peer is the guard it was sent to.
static __always_inline struct dialled *dialled_by(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_lookup_elem(&dialled, &cookie);
}

SEC("cgroup/getpeername4")
int imds_getpeername4(struct bpf_sock_addr *ctx)
{
	struct dialled *d = dialled_by(ctx);

	if (d && d->addr[0] == 0 && d->addr[1] == 0 && d->addr[2] == bpf_htonl(0x0000ffff)) {
		ctx->user_ip4 = d->addr[3];
		ctx->user_port = d->port;
	}
	return 1;
}

SEC("cgroup/getpeername6")
int imds_getpeername6(struct bpf_sock_addr *ctx)
{
	struct dialled *d = dialled_by(ctx);

	if (d) {
		ctx->user_ip6[0] = d->addr[0];
		ctx->user_ip6[1] = d->addr[1];
		ctx->user_ip6[2] = d->addr[2];
		ctx->user_ip6[3] = d->addr[3];
		ctx->user_port = d->port;
	}
	return 1;
}

SEC("sockops")
int imds_sockops(struct bpf_sock_ops *ctx)
{
	struct tuple key = {};
	struct record rec = {};
	struct dialled *d;
	__u32 family, lport, rport, l4, r4, l6[4], r6[4];
	__u64 cookie;
	struct settings *s;
	__u32 zero = 0;

	if (ctx->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	// Only connections to the guard's port can be redirected ones.
	s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		return 1;
	rport = ctx->remote_port;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if ((__u16)(rport >> 16) != s->guard_port)
#else
	if ((__u16)rport != s->guard_port)
#endif
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	d = bpf_map_lookup_elem(&dialled, &cookie);
	if (!d)
		return 1;
	// Every field read once, unconditionally and in order, before any branch: the verifier
	// refuses a context pointer the compiler has offset to share one load between branches.
	family = ctx->family;
	barrier();
	lport = ctx->local_port;
	barrier();
	rport = ctx->remote_port;
	barrier();
	l4 = ctx->local_ip4;
	barrier();
	r4 = ctx->remote_ip4;
	barrier();
	l6[0] = ctx->local_ip6[0];
	barrier();
	l6[1] = ctx->local_ip6[1];
	barrier();
	l6[2] = ctx->local_ip6[2];
	barrier();
	l6[3] = ctx->local_ip6[3];
	barrier();
	r6[0] = ctx->remote_ip6[0];
	barrier();
	r6[1] = ctx->remote_ip6[1];
	barrier();
	r6[2] = ctx->remote_ip6[2];
	barrier();
	r6[3] = ctx->remote_ip6[3];
	barrier();
	if (family == AF_INET) {
		key.saddr[2] = bpf_htonl(0x0000ffff);
		key.saddr[3] = l4;
		key.daddr[2] = bpf_htonl(0x0000ffff);
		key.daddr[3] = r4;
	} else if (family == AF_INET6) {
		__builtin_memcpy(key.saddr, l6, sizeof(l6));
		__builtin_memcpy(key.daddr, r6, sizeof(r6));
	} else {
		return 1;
	}
	// local_port is in host byte order; remote_port is in network byte order, in the upper half
	// of the field on little-endian machines (the kernel shifts `sk_dport` left by 16 there).
	key.sport = bpf_htons((__u16)lport);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	key.dport = (__u16)(rport >> 16);
#else
	key.dport = (__u16)rport;
#endif
	rec.cgroup = d->cgroup;
	rec.netns = 0;
	bpf_map_update_elem(&records, &key, &rec, BPF_ANY);
	return 1;
}

SEC("classifier")
int imds_backstop(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct target t = {};

	if ((void *)(eth + 1) > end)
		return TCX_NEXT;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return TCX_NEXT;
		t.addr[2] = bpf_htonl(0x0000ffff);
		t.addr[3] = ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return TCX_NEXT;
		__builtin_memcpy(t.addr, &ip6->daddr, sizeof(t.addr));
	} else {
		return TCX_NEXT;
	}
	if (bpf_map_lookup_elem(&blocked, &t))
		return TC_ACT_SHOT;
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
