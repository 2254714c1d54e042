//! One file watched by path: re-read it, compare the content with what was last acted on, act
//! once per change, and report a failure once per change of state, not on every poll.
//!
//! The config ([`crate::reload`]) and the sidecar's labels file
//! ([`crate::inventory::self_source`]) both sit on volumes that the kubelet updates by swapping a
//! `..data` symlink. So the file is opened by path on every read, which follows the symlink, and
//! compared by content: the old target's timestamps or inotify events say nothing about the new one.

use std::io::{self, Read as _};
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

/// What was last made of the file.
#[derive(Debug, Default)]
pub struct Seen {
    /// The content last acted on, good or bad (`None`: not read yet, or the last read failed), so
    /// that a bad file is acted on once and not on every poll.
    content: Option<Vec<u8>>,
    /// Whether the last read failed, so that a failure is reported once per change of state.
    failed: bool,
}

/// What one read of the file amounts to.
#[derive(Debug)]
pub enum Judged<'a> {
    /// The content is as last acted on: nothing to do.
    Unchanged,
    /// Content to act on: new, or explicitly asked for.
    Changed(&'a [u8]),
    /// The file could not be read; nothing is to be acted on. `report`: whether to say so, which
    /// is when the read was explicitly asked for or the previous read did not fail.
    Failed { error: io::Error, report: bool },
}

impl Seen {
    /// Nothing read yet: the first content read is new.
    pub fn nothing() -> Seen {
        Seen::default()
    }

    /// `content` has already been acted on (at start-up): the same content again is not new.
    pub fn acted_on(content: Vec<u8>) -> Seen {
        Seen {
            content: Some(content),
            failed: false,
        }
    }

    /// Judges one read of the file. `forced` (an explicit request) makes readable content new
    /// even when unchanged, and a failure reported even when the previous read failed too.
    pub fn judge(&mut self, read: io::Result<Vec<u8>>, forced: bool) -> Judged<'_> {
        match read {
            Err(error) => {
                let report = forced || !self.failed;
                self.failed = true;
                // Forgotten, so that whatever is read once the file is back gets acted on, even
                // the content of before the failure.
                self.content = None;
                Judged::Failed { error, report }
            }
            Ok(content) => {
                self.failed = false;
                if !forced && self.content.as_deref() == Some(&content[..]) {
                    return Judged::Unchanged;
                }
                Judged::Changed(self.content.insert(content).as_slice())
            }
        }
    }
}

/// Reads the file at `path` whole (blocking), or fails if it is larger than `cap` bytes: a file
/// that size is not the file expected, and is not to be held in memory.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let mut content = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut content)?;
    if content.len() as u64 > cap {
        return Err(io::Error::other(format!("larger than {cap} bytes")));
    }
    Ok(content)
}

/// Re-reads the file at `path` (capped at `cap` bytes) every `poll`, and on each message from
/// `requests` (an explicit request: the read is forced), and hands each judged read to `act`.
/// Returns when neither can trigger a read any more: no polling, and no request channel or a
/// closed one.
pub async fn watch(
    path: &Path,
    cap: u64,
    mut seen: Seen,
    poll: Option<Duration>,
    mut requests: Option<mpsc::UnboundedReceiver<()>>,
    mut act: impl FnMut(Judged<'_>),
) {
    // Without polling the interval still exists but its branch is disabled.
    let mut ticks = tokio::time::interval(poll.unwrap_or(Duration::from_secs(3600)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut requests_open = requests.is_some();
    loop {
        let forced = tokio::select! {
            request = next(&mut requests), if requests_open => {
                requests_open = request.is_some();
                if !requests_open {
                    // A closed channel is no request: nothing to read for it.
                    continue;
                }
                true
            }
            _ = ticks.tick(), if poll.is_some() => false,
            else => return,
        };
        let owned = path.to_owned();
        let read = tokio::task::spawn_blocking(move || read_capped(&owned, cap))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        act(seen.judge(read, forced));
    }
}

/// The next request; never, without a channel (its branch is disabled then anyway).
async fn next(requests: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match requests {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
