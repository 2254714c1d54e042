//! The interception rules as data: the rule set, the `iptables-restore` text that installs or
//! removes it, and the reading of `iptables-save` output. Pure, so every decision is tested
//! without root; the adapter that runs the commands is the main crate's `netfilter`.

mod error;
mod lines;
pub mod rules;
mod save;
