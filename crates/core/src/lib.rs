//! imds-guard's core: what a request is, who sent it, and whether it may pass. No IO.
//!
//! ```text
//! request target ─► target::parse_target   the one strict reading; the checked path is the sent path
//! method × path  ─► imds::classify         token request, read, or not allowed (the AWS protocol)
//! source address ─► index::Index::lookup   the pod, unknown, ambiguous or not ready
//! pod × request  ─► policy::Policy::decide allow or deny, with the rule and the reason
//! decision       ─► disposition            forwarded, forwarded in audit mode, or refused — and
//!                                          the one table of every answer the guard makes itself
//! ```
//!
//! `cgroup` holds what the cgroup socket hooks redirect and how a cgroup names its pod;
//! `netfilter` holds the interception rules as data (the text `iptables-restore` takes and
//! `iptables-save` gives back). Nothing here knows an async runtime, an HTTP stack or a Kubernetes
//! client: the main crate's adapters feed the index and carry the decisions out, and a check in the
//! tests (`tests/layers.rs`) keeps it that way.
#![forbid(unsafe_code)]

pub mod bucket;
pub mod cacheable;
pub mod cgroup;
pub mod cloud;
pub mod disposition;
pub mod imds;
pub mod index;
pub mod iptables;
pub mod policy;
pub mod query;
pub mod target;
