//! imds-guard keeps pods away from the cloud instance metadata service (IMDS,
//! `169.254.169.254`) unless a policy allows them, and records who asked for what.
//!
//! The data path, and the modules that follow it:
//!
//! ```text
//! pod ──tcp 169.254.169.254:80──► node netfilter: DNAT to the guard's listener   (netfilter)
//!     ──► proxy      accept, read one HTTP/1 request            (proxy)
//!     ──► identify   source IP ─► pod                           (inventory)
//!     ──► check      strict request target, method, body        (target, imds)
//!     ──► decide     pod × method × path × token ─► allow/deny  (policy)
//!     ──► forward    pooled upstream client to the real IMDS    (proxy::upstream)
//!         or refuse  403/401/405/400/503 with a short JSON body (proxy::respond)
//!     ──► audit      one JSON line per request, always          (audit, metrics)
//! ```
//!
//! Two deployment modes share that path. Node mode: the node's `PREROUTING` DNATs pods' traffic
//! to a hostNetwork guard, which identifies pods from a watch of the node's pods
//! (`inventory::kubernetes`). Sidecar mode: inside one pod, `OUTPUT` DNATs every process but the
//! guard's UID to the guard on loopback (`netfilter::rules::RuleSet::sidecar`), and every
//! connection is that pod (`inventory::self_source`, from the downward API).
//!
//! `config` parses and validates the TOML once, before anything listens; `reload` swaps the policy
//! in place on SIGHUP or a change of the file. `limits` caps open connections per source and in
//! total; `net` sets the IP TTL of token answers (the hop limit). `taint` removes the node's
//! start-up taint once the guard protects it. `emulator` is an AWS-faithful IMDS used as the
//! upstream for local runs, tests and benchmarks. `server` wires the parts together around
//! listeners and a shutdown future handed in by the caller, so tests bind `127.0.0.1:0` and drive
//! the real server.
#![forbid(unsafe_code)]

pub use imds_guard_core::{disposition, imds, index, policy, target};

pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod file_watch;
pub mod inventory;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod net;
pub mod netfilter;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod server;
pub mod taint;
pub mod upstream;
