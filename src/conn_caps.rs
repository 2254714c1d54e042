//! Connection caps (`[server] max_connections`, `max_connections_per_source`; not the rate limits
//! of `[limits]`, which are `front::rate_limits`): open connections per source address and in total, so
//! that one pod (or a handful) holding thousands of idle connections cannot starve the others.
//!
//! A connection over a cap is answered with a fixed 429 (`respond::CONNECTION_REFUSAL`) and
//! closed at once, before any request is read: cheap for the guard, and clear to a well-behaved
//! client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    PerSource,
    Total,
}

impl Cap {
    /// The metric label and audit word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerSource => "per-source",
            Self::Total => "total",
        }
    }
}

/// Open-connection counts against their caps.
#[derive(Debug)]
pub struct ConnCaps {
    total: usize,
    per_source: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One open connection's place; released when dropped.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnCaps>,
    source: IpAddr,
}

impl ConnCaps {
    /// Caps of `total` open connections, and `per_source` from any one address.
    pub fn new(total: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_source,
            open: Mutex::default(),
        })
    }

    /// Takes a place for a connection from `source`, or says which cap is reached.
    pub fn acquire(self: &Arc<Self>, source: IpAddr) -> Result<Permit, Cap> {
        let source = source.to_canonical();
        let mut open = self.open.lock();
        if open.total >= self.total {
            return Err(Cap::Total);
        }
        let count = open.by_source.entry(source).or_default();
        if *count >= self.per_source {
            return Err(Cap::PerSource);
        }
        *count += 1;
        open.total += 1;
        Ok(Permit {
            limits: Arc::clone(self),
            source,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests;
