//! imds-guard keeps pods away from the cloud instance metadata service (IMDS,
//! `169.254.169.254`) unless a policy allows them, and records who asked for what.
//!
//! The data path, and the modules that follow it:
//!
//! ```text
//! pod ──tcp 169.254.169.254:80──► node netfilter: DNAT to the guard's listener   (netfilter)
//!                               or cgroup connect hook: rewritten at connect() (interception)
//!     ──► accept     connection limits, hyper HTTP/1, hop-limit handle   (listen, limits, net)
//!                    with the cgroup hooks: the cgroup that dialled      (interception)
//!     ──► read       strict request target, method, body — 400 at once   (target, imds)
//!     ──► identify   source IP (and cgroup) ─► pod                       (inventory, index)
//!     ──► decide     pod × method × path × token ─► allow/deny           (policy)
//!     ──► dispose    forward, forward in audit mode, or refuse           (disposition)
//!     ──► forward    pooled upstream client to the real IMDS             (upstream)
//!         or refuse  the status, JSON and headers of the one table       (respond)
//!     ──► audit      one JSON line per request, always                   (audit, metrics)
//! ```
//! `proxy` carries one request through these steps as one `Exchange`.
//!
//! The layers, each importing only from those beneath it (`tests/layers.rs` checks):
//!
//! ```text
//! core      imds_guard_core (crates/core): target, imds, index, policy, disposition, netfilter
//!           rules — no IO; re-exported here as `target`, `imds`, `index`, `policy`, `disposition`
//! config    parsed and validated once, before anything listens
//! adapters  inventory, netfilter, upstream, audit, metrics, emulator, listen, respond, file_watch,
//!           limits, net, taint — each started by its own `start` where it runs on its own
//! app       proxy, server, admin, reload, cli (with `policy suggest` and `replay` from the
//!           rollout crate), canary (the probe that proves a node's pods are intercepted)
//! main      wiring only
//! ```
//!
//! Two deployment modes share the path. Node mode: the node's `PREROUTING` DNATs pods' traffic to
//! a hostNetwork guard, which identifies pods from a watch of the node's pods
//! (`inventory::kubernetes`). Sidecar mode: inside one pod, `OUTPUT` DNATs every process but the
//! guard's UID to the guard on loopback (`netfilter::rules::RuleSet::sidecar`), and every
//! connection is that pod (`inventory::self_source`, from the downward API).
//!
//! `server::run` composes the parts around listeners and a shutdown future handed in by the
//! caller, so tests bind `127.0.0.1:0` and drive the real server; `reload` swaps the policy in
//! place on SIGHUP or a change of the file (watched by `file_watch`); `emulator` is an
//! AWS-faithful IMDS used as the upstream for local runs, tests and benchmarks.
// One small module makes a system call the standard library has no binding for
// (`interception::sys`); nothing else may use `unsafe`.
#![deny(unsafe_code)]

pub use imds_guard_core::{
    bucket, cacheable, cgroup, cloud, disposition, imds, index, policy, query, target,
};

pub mod admin;
pub mod audit;
pub mod canary;
pub mod cli;
pub mod config;
pub mod conn_caps;
pub mod file_watch;
pub mod front;
pub mod interception;
pub mod inventory;
pub mod listen;
pub mod metrics;
pub mod netfilter;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod server;
pub mod taint;
pub mod upstream;
