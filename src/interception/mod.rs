//! The cgroup interception method (`[interception] method = "cgroup"`): pods' connects to the
//! metadata service are redirected to the guard in the kernel, at `connect()`, by cgroup socket
//! hooks — before any packet exists, so no dataplane can route around them (Cilium's BPF host
//! routing and Calico's eBPF dataplane skip the node's netfilter, and with it the DNAT).
//!
//! ```text
//! pod process ──connect(169.254.169.254:80)──► connect4/6 hook on the pods' cgroup   (kernel)
//!     rewritten to the guard's listener; cookie → (address dialled, cgroup)
//!     sockops at TCP_CONNECT_CB: 4-tuple → cgroup                      (records map)
//! guard accepts ──► records[peer, local] ─► cgroup id ─► pod UID ─► pod (identity)
//! ```
//! The programs and their maps are pinned under `[interception] bpf_pin_dir`, so they stay when the
//! guard stops: pods then get "connection refused", never the service (fail closed). Only
//! `imds-guard interception remove` takes them out. Node processes outside the pods' cgroup are
//! never redirected; hostNetwork pods only with `host_network_pods = true`; the guard's own pod
//! never.
//!
//! Start-up refuses, naming what is missing, a node where the method cannot work (no cgroup v2,
//! pods outside it, a kernel without the hooks) — never a silent fallback to netfilter.

pub mod backstop;
pub mod cgroups;
pub mod identity;
pub mod keeper;
pub mod kernel;
mod sys;

use std::path::{Path, PathBuf};

use crate::cgroup;
use crate::config::{redirect_target, Config, Method};
pub use identity::Identifier;
use kernel::Settings;

/// The oldest kernel with every hook the method uses (getpeername hooks came in 5.8).
pub const MIN_KERNEL: (u32, u32) = (5, 8);

/// Why the cgroup method cannot be set up, or was not.
#[derive(Debug, thiserror::Error)]
pub enum InterceptionError {
    #[error("[interception] method = \"cgroup\" is not set")]
    NotCgroup,
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot use the bpf pin directory {path}: {1}", path = .0.display())]
    PinDir(PathBuf, std::io::Error),
    #[error("cannot open the cgroup {path}: {1}", path = .0.display())]
    Cgroup(PathBuf, std::io::Error),
    #[error("cannot load the kernel programs: {0}")]
    Load(String),
    #[error("cannot attach the {0} program: {1}")]
    Attach(&'static str, String),
    #[error("cannot attach the backstop to {0}: {1}")]
    Backstop(String, String),
    #[error("cannot remove {path}: {1}", path = .0.display())]
    Unpin(PathBuf, std::io::Error),
    #[error("kernel map: {0}")]
    Map(String),
}

/// The cgroup method, resolved against this machine.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cgroup v2 mount.
    pub cgroup_root: PathBuf,
    /// The pods' cgroup (absolute) and its id.
    pub pods_dir: PathBuf,
    pub pods_id: u64,
    pub pin_dir: PathBuf,
    pub settings: Settings,
    pub targets: Vec<cgroup::Target>,
    pub blocked: Vec<std::net::Ipv6Addr>,
    /// The backstop's interface patterns, when it is on.
    pub backstop: Option<Vec<String>>,
}

/// The kernel's release, as `(major, minor)`.
fn kernel_release() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = text.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Checks the machine and resolves the config's `[interception]` keys (without changing
/// anything).
pub fn plan(config: &Config) -> Result<Plan, InterceptionError> {
    let i = &config.interception;
    if i.method != Method::Cgroup {
        return Err(InterceptionError::NotCgroup);
    }
    let unsupported = |s: String| InterceptionError::Unsupported(s);
    match kernel_release() {
        Some(release) if release < MIN_KERNEL => {
            return Err(unsupported(format!(
                "the kernel is {}.{}: the cgroup method needs {}.{} or later (cgroup getpeername hooks)",
                release.0, release.1, MIN_KERNEL.0, MIN_KERNEL.1
            )))
        }
        _ => {}
    }
    let (cgroup_root, hybrid) = match &i.cgroup_root {
        Some(root) => (root.clone(), false),
        None => {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            cgroups::cgroup2_mount(&mountinfo).ok_or_else(|| {
                unsupported(
                    "no cgroup v2 hierarchy is mounted (/proc/self/mountinfo): the cgroup method \
                     needs cgroup v2 (set [interception] cgroup_root if it is mounted elsewhere)"
                        .into(),
                )
            })?
        }
    };
    if !cgroup_root.join("cgroup.controllers").exists() {
        return Err(unsupported(format!(
            "{} is not a cgroup v2 hierarchy ([interception] cgroup_root)",
            cgroup_root.display()
        )));
    }
    let pods_rel = match &i.pods_cgroup {
        Some(rel) => rel.clone(),
        None => cgroups::find_pods_cgroup(&cgroup_root).ok_or_else(|| {
            let why = if hybrid {
                "this is a hybrid cgroup v1/v2 node, where kubelet does not separate pods in the v2 tree, \
                 so a cgroup cannot name its pod: the cgroup method needs pure cgroup v2"
            } else {
                "set [interception] pods_cgroup to kubelet's pods cgroup"
            };
            unsupported(format!(
                "no pods' cgroup (kubepods.slice or kubepods) under {}: {why}",
                cgroup_root.display()
            ))
        })?,
    };
    let pods_dir = cgroup_root.join(&pods_rel);
    let pods_id = cgroups::cgroup_id(&pods_dir).map_err(|e| {
        unsupported(format!(
            "the pods' cgroup {} cannot be read ({e}) ([interception] pods_cgroup)",
            pods_dir.display()
        ))
    })?;
    let guard = redirect_target(config.server.listen).map_err(unsupported)?;
    let host_netns = sys::own_netns_cookie()
        .map_err(|e| unsupported(format!("cannot read this network namespace's cookie: {e}")))?;
    let exempt = own_pod(&cgroup_root, &pods_dir);
    let cloud = config.upstream.cloud;
    Ok(Plan {
        cgroup_root,
        pods_dir,
        pods_id,
        pin_dir: i.bpf_pin_dir.clone(),
        settings: Settings {
            guard,
            host_netns,
            host_network_pods: i.host_network_pods,
            exempt,
        },
        targets: cgroup::targets(cloud),
        blocked: cgroup::blocked(cloud),
        backstop: i
            .backstop
            .then(|| i.backstop_interfaces(&config.netfilter.interfaces).to_vec()),
    })
}

/// The guard's own pod cgroup and its level, when the guard runs in a pod: from `$POD_UID` (the
/// downward API; a container's private cgroup namespace hides its path), else from the guard's
/// own cgroup path.
fn own_pod(root: &Path, pods_dir: &Path) -> Option<(u64, u32)> {
    let dir = match std::env::var("POD_UID") {
        Ok(uid) if !uid.is_empty() => cgroups::find_pod(pods_dir, &uid),
        _ => {
            let own = cgroups::own_cgroup(&std::fs::read_to_string("/proc/self/cgroup").ok()?)?;
            // The deepest component that names a pod.
            let mut pod = None;
            let mut path = PathBuf::new();
            for part in own.components() {
                path.push(part);
                if cgroup::pod_uid(&part.as_os_str().to_string_lossy()).is_some() {
                    pod = Some(root.join(&path));
                }
            }
            pod
        }
    }?;
    let level = dir.strip_prefix(root).ok()?.components().count();
    Some((cgroups::cgroup_id(&dir).ok()?, u32::try_from(level).ok()?))
}

/// What `install` leaves the guard with.
pub struct Installed {
    pub identifier: Identifier,
    /// The backstop, to be kept in step with pod interfaces.
    pub backstop: Option<backstop::Backstop>,
}

/// Loads, configures and attaches the programs (keeping a running generation in place), then the
/// backstop. Idempotent.
pub fn install(plan: &Plan) -> Result<Installed, InterceptionError> {
    let mut ebpf = kernel::load(&plan.pin_dir)?;
    kernel::configure(&mut ebpf, &plan.settings, &plan.targets, &plan.blocked)?;
    let generation = kernel::generation(plan.pods_id);
    let attached = kernel::attach(&mut ebpf, &plan.pin_dir, &plan.pods_dir, &generation)?;
    tracing::info!(
        pods_cgroup = %plan.pods_dir.display(),
        pin_dir = %plan.pin_dir.display(),
        guard = %plan.settings.guard,
        generation,
        attached,
        "cgroup interception in place"
    );
    let backstop = match &plan.backstop {
        None => None,
        Some(patterns) => {
            // The same loaded object: its backstop program has not been loaded yet.
            let mut b = backstop::Backstop::new(ebpf, &plan.pin_dir, patterns.clone())?;
            let added = b.sync()?;
            if !added.is_empty() {
                tracing::info!(interfaces = ?added, "backstop attached");
            }
            Some(b)
        }
    };
    Ok(Installed {
        identifier: Identifier::open(&plan.pin_dir, plan.pods_dir.clone())?,
        backstop,
    })
}

/// What `interception status` reports.
pub struct Status {
    pub lines: Vec<String>,
    /// Every hook is pinned in exactly one generation.
    pub complete: bool,
}

/// The pinned programs and maps under the config's pin directory.
pub fn status(config: &Config) -> Status {
    let pin_dir = &config.interception.bpf_pin_dir;
    let links = kernel::pinned_links(pin_dir);
    let mut lines = vec![format!("pin directory {}", pin_dir.display())];
    let mut generations: Vec<&str> = links.iter().map(|(_, g, _)| g.as_str()).collect();
    generations.sort_unstable();
    generations.dedup();
    for (hook, generation, path) in &links {
        let alive = aya::programs::links::PinnedLink::from_pin(path).is_ok();
        lines.push(format!(
            "link {hook} generation {generation}{}",
            if alive { "" } else { " (not a link)" }
        ));
    }
    for (name, index) in backstop::pinned(&pin_dir.join(kernel::BACKSTOP_DIR)) {
        lines.push(format!("backstop {name} (interface index {index})"));
    }
    let maps = pin_dir.join(kernel::MAPS_DIR);
    for map in ["targets", "settings", "dialled", "records", "blocked"] {
        if maps.join(map).exists() {
            lines.push(format!("map {map}"));
        }
    }
    let complete = generations.len() == 1
        && kernel::HOOKS
            .iter()
            .all(|hook| links.iter().any(|(h, _, _)| h == hook));
    if !complete {
        lines.push(if links.is_empty() {
            "no cgroup hooks are pinned: pods are not intercepted by this method".into()
        } else {
            format!(
                "the hooks are incomplete: want {} in one generation",
                kernel::HOOKS.join(", ")
            )
        });
    }
    Status { lines, complete }
}

/// Removes every pinned link (connect hooks first), the backstop, the maps and the directories:
/// pods reach the metadata service directly again. Returns what was removed.
pub fn remove(pin_dir: &Path) -> Result<Vec<PathBuf>, InterceptionError> {
    let mut removed = Vec::new();
    let mut links = kernel::pinned_links(pin_dir);
    // Connect hooks before the record keeping (the reverse of the attach order).
    links.sort_by_key(|(hook, _, _)| {
        std::cmp::Reverse(kernel::HOOKS.iter().position(|h| h == hook))
    });
    for (_, _, path) in links {
        kernel::unpin_link(&path).map_err(|e| InterceptionError::Unpin(path.clone(), e))?;
        removed.push(path);
    }
    let backstop_dir = pin_dir.join(kernel::BACKSTOP_DIR);
    for (name, _) in backstop::pinned(&backstop_dir) {
        let path = backstop_dir.join(name);
        kernel::unpin_link(&path).map_err(|e| InterceptionError::Unpin(path.clone(), e))?;
        removed.push(path);
    }
    let maps = pin_dir.join(kernel::MAPS_DIR);
    if let Ok(entries) = std::fs::read_dir(&maps) {
        for entry in entries.flatten() {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| InterceptionError::Unpin(path.clone(), e))?;
            removed.push(path);
        }
    }
    for dir in [
        pin_dir.join(kernel::LINKS_DIR),
        backstop_dir,
        maps,
        pin_dir.to_owned(),
    ] {
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(InterceptionError::Unpin(dir, e))
            }
            _ => {}
        }
    }
    Ok(removed)
}
