//! imds-guard keeps pods away from the cloud instance metadata service (IMDS,
//! `169.254.169.254`) unless a policy allows them, and records who asked for what.
//!
//! The data path, and the modules that follow it (docs/architecture.md walks it file by file):
//!
//! ```text
//! pod ──tcp 169.254.169.254:80──► node netfilter: DNAT to the guard's listener   (netfilter)
//!                               or cgroup connect hook: rewritten at connect() (interception)
//!     ──► accept     connection caps, hyper HTTP/1, hop limit on answers  (listen, conn_caps,
//!                    with the cgroup hooks: the cgroup that dialled        imds_guard_net,
//!                                                                          interception)
//!     ──► read       strict request target, method, body — 400 at once   (target, query, imds)
//!     ──► identify   source IP (and cgroup) ─► pod                       (inventory, index)
//!     ──► decide     pod × method × path × token ─► allow/deny           (policy, disposition)
//!     ──► admit      the pod's rate                                      (front::rate_limits)
//!     ──► tokens     guard tokens issued and checked                     (front::pod_tokens)
//!     ──► forward    within the node's budget, through the cache, to     (front::cache,
//!                    the service over the pool                            upstream)
//!         or refuse  the status, JSON and headers of the one table       (respond)
//!     ──► audit      one JSON line per request, always                   (audit, metrics)
//! ```
//! `proxy` carries one request through these steps as one `Exchange`.
//!
//! The layers, each importing only from those beneath it (`tests/layers.rs` checks):
//!
//! ```text
//! core      imds_guard_core (crates/core): target, query, cloud, imds, index, policy,
//!           disposition, iptables, cgroup, cacheable, bucket — no IO; re-exported here
//! config    parsed and validated once, before anything listens
//! adapters  inventory, netfilter, interception, upstream, front, audit, metrics, listen,
//!           conn_caps, respond, file_watch, taint
//! app       proxy, server, admin, reload, cli (with the rollout crate's `policy suggest` and
//!           `replay`), canary (the probe that proves a node's pods are intercepted)
//! main      wiring only
//! ```
//!
//! Beside it: `imds_guard_net` (crates/net, the connections the guard and the emulator share),
//! `imds_guard_emulator` (crates/emulator, in this crate only through the default-on `emulator`
//! feature, left out of the shipped image) and `imds_guard_rollout` (crates/rollout).
//!
//! Two deployment modes share the path. Node mode: the node's `PREROUTING` DNATs pods' traffic to
//! a hostNetwork guard, which identifies pods from a watch of the node's pods
//! (`inventory::kubernetes`). Sidecar mode: inside one pod, `OUTPUT` DNATs every process but the
//! guard's UID to the guard on loopback (`netfilter::rules::RuleSet::sidecar`), and every
//! connection is that pod (`inventory::self_source`, from the downward API).
//!
//! `server::run` composes the parts around listeners and a shutdown future handed in by the
//! caller, so tests bind `127.0.0.1:0` and drive the real server; `reload` swaps the policy in
//! place on SIGHUP or a change of the file (watched by `file_watch`).
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
