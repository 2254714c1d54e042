//! The backstop: a tcx program on the ingress of every pod interface (the node's side of each
//! pod's veth) that drops packets to the metadata addresses.
//!
//! The connect hooks see sockets, not packets: a pod with `CAP_NET_RAW` can hand-craft TCP, and
//! sandboxed runtimes (Kata, gVisor) bypass the node kernel's socket hooks. Their packets still
//! cross the pod's interface, where this program drops them. Redirected connections are not
//! affected: their destination is the guard's address by then. It is attached first in the tcx
//! chain, ahead of any dataplane's program, and pinned, so it stays while the guard is away.
//! Pod interfaces come and go: [`Backstop::sync`] attaches to new ones and forgets the pins of
//! interfaces that are gone; the guard calls it every few seconds.

use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::tc::TcAttachOptions;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use aya::Ebpf;

use super::kernel::{unpin_link, BACKSTOP_DIR};
use super::sys::ifindex;
use super::InterceptionError;
use crate::netfilter::bypass::{interface_names, pod_interfaces};

/// The program's name in the object.
const PROGRAM: &str = "imds_backstop";

/// The interfaces of this network namespace that match any of `patterns` (as `iptables -i`
/// reads them), sorted.
pub fn matching_interfaces(patterns: &[String]) -> Vec<String> {
    let names = interface_names().unwrap_or_default();
    pod_interfaces(patterns, names.iter().map(String::as_str))
}

/// The backstop's program, loaded once, and where its links are pinned.
pub struct Backstop {
    ebpf: Ebpf,
    dir: PathBuf,
    patterns: Vec<String>,
}

impl Backstop {
    /// Loads the program (its `blocked` map is the pinned one, written by
    /// [`super::kernel::configure`]).
    pub fn new(
        mut ebpf: Ebpf,
        pin_dir: &Path,
        patterns: Vec<String>,
    ) -> Result<Self, InterceptionError> {
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| InterceptionError::Load(format!("no program `{PROGRAM}`")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| InterceptionError::Load(e.to_string()))?;
        program
            .load()
            .map_err(|e| InterceptionError::Attach("imds_backstop", e.to_string()))?;
        let dir = pin_dir.join(BACKSTOP_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| InterceptionError::PinDir(dir.clone(), e))?;
        Ok(Self {
            ebpf,
            dir,
            patterns,
        })
    }

    /// Attaches to every matching interface that has no backstop yet, and removes the pins of
    /// interfaces that are gone. Returns the interfaces newly covered.
    pub fn sync(&mut self) -> Result<Vec<String>, InterceptionError> {
        let present: Vec<(String, u32)> = matching_interfaces(&self.patterns)
            .into_iter()
            .filter_map(|name| ifindex(&name).map(|i| (name, i)))
            .collect();
        let pinned = pinned(&self.dir);
        for (pin, index) in &pinned {
            if !present.iter().any(|(_, i)| i == index) {
                unpin_link(&self.dir.join(pin))
                    .map_err(|e| InterceptionError::Unpin(self.dir.join(pin), e))?;
            }
        }
        let mut added = Vec::new();
        for (name, index) in present {
            if pinned.iter().any(|(_, i)| *i == index) {
                continue;
            }
            match self.attach(&name, index) {
                Ok(()) => added.push(name),
                // The interface went away between the listing and the attach: nothing to guard.
                Err(_) if ifindex(&name) != Some(index) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(added)
    }

    fn attach(&mut self, name: &str, index: u32) -> Result<(), InterceptionError> {
        let program: &mut SchedClassifier = self
            .ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| InterceptionError::Load(format!("no program `{PROGRAM}`")))?;
        let fail = |e: String| InterceptionError::Backstop(name.to_owned(), e);
        let id = program
            .attach_with_options(
                name,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            )
            .map_err(|e| fail(e.to_string()))?;
        let link = program.take_link(id).map_err(|e| fail(e.to_string()))?;
        let link = FdLink::try_from(link).map_err(|e| fail(e.to_string()))?;
        link.pin(self.dir.join(format!("{name}@{index}")))
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
}

/// The backstop pins: `(file name, interface index)`.
pub fn pinned(dir: &Path) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let index = name.rsplit_once('@')?.1.parse().ok()?;
            Some((name, index))
        })
        .collect()
}
