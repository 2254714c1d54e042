//! Why no rule set can be made: settings the rules cannot honour, each naming its config key.

use std::net::SocketAddr;

/// Why no rule set can be made for a listen address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "{0} is a loopback address: pod traffic DNATed from PREROUTING to loopback is dropped by \
         the kernel (unless route_localnet is set); listen on the node's address or on 0.0.0.0"
    )]
    LoopbackListen(SocketAddr),
    #[error(
        "{0} is an IPv6 address: pods' IPv4 traffic cannot be DNATed to it; listen on the node's \
         IPv4 address, on 0.0.0.0 or on [::]"
    )]
    Ipv6Listen(SocketAddr),
    #[error("{0} has port 0: the rules need the port the proxy listens on")]
    PortZero(SocketAddr),
    #[error("is empty: no pod traffic would be intercepted")]
    NoInterfaces,
    #[error(
        "{0}: in sidecar mode the proxy must listen on an IPv4 loopback address (127.0.0.1:PORT): \
         the rules DNAT the pod's own IPv4 traffic there, and every connection the proxy accepts \
         is taken to come from this pod"
    )]
    SidecarListen(SocketAddr),
    #[error(
        "the sidecar's UID is 0: every process running as the sidecar's UID bypasses the rules, \
         so the sidecar needs a UID of its own that no other container of the pod uses (not root)"
    )]
    SidecarRoot,
}

impl RuleError {
    /// The config key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            RuleError::NoInterfaces => "netfilter.interfaces",
            RuleError::SidecarRoot => "netfilter.sidecar_uid",
            _ => "server.listen",
        }
    }
}
