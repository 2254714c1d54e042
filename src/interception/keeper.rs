//! Keeps the cgroup method in place while the guard runs: the backstop follows pod interfaces as
//! they come and go, and hooks that someone removed are put back (and said so), as the netfilter
//! keeper puts back rules.

use std::time::Duration;

use super::backstop::Backstop;
use super::{install, status, Plan};
use crate::config::Config;

/// How often new pod interfaces get the backstop: a new pod's interface is bare until then.
pub const BACKSTOP_INTERVAL: Duration = Duration::from_secs(2);

/// Runs until dropped.
pub async fn keep(config: Config, plan: Plan, mut backstop: Option<Backstop>) {
    let check_every = Duration::from_secs(config.netfilter.check_interval_seconds);
    let mut last_check = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(BACKSTOP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some(b) = &mut backstop {
            match b.sync() {
                Ok(added) if !added.is_empty() => {
                    tracing::info!(interfaces = ?added, "backstop attached");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "backstop"),
            }
        }
        if last_check.elapsed() < check_every {
            continue;
        }
        last_check = tokio::time::Instant::now();
        if !status(&config).complete {
            tracing::error!(
                "the cgroup hooks were removed from under the guard; putting them back"
            );
            if let Err(e) = install(&plan) {
                tracing::error!(error = %e, "cannot put the cgroup hooks back");
            }
        }
    }
}
