//! Loading, attaching and pinning the kernel programs (`bpf/imds_guard.bpf.c`).
//!
//! Loaded with aya: pure Rust, so the guard builds with nothing but cargo (libbpf-rs would need
//! libelf and zlib, or a C toolchain for its vendored builds), and it covers every piece used here
//! — cgroup socket-address and sockops programs, BTF-defined maps pinned by name, tcx links with
//! ordering, pinned links. What it lacks, replacing a cgroup link's program in place, is done by
//! attaching the new links beside the old ones (cgroup links always run beside one another,
//! and a rewritten connect no longer matches, so two generations never redirect twice) and only
//! then removing the old: there is no moment without a program.
//!
//! Everything lives under `[interception] bpf_pin_dir`:
//! ```text
//! maps-v1/{targets,settings,dialled,records,blocked}   shared by every generation of the programs
//! links/<hook>@<generation>                            one pinned link per hook
//! backstop/<interface>                                 one tcx link per pod interface
//! ```
//! A generation names the object and the cgroup it is attached to: a restart of the same guard
//! finds its links in place and keeps them; an upgrade or a new `pods_cgroup` swaps them.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, Map, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, Program};
use aya::{include_bytes_aligned, Ebpf, EbpfLoader};

use super::InterceptionError;
use crate::cgroup::{v6_form, Target};
use crate::upstream::error_chain as chain;

/// The programs, built from `bpf/imds_guard.bpf.c` by `bpf/build.sh`.
pub static OBJECT: &[u8] = include_bytes_aligned!("bpf/imds_guard.bpf.o");

/// The layout of the pinned maps; a change of any map's key or value makes a new directory.
pub const MAPS_DIR: &str = "maps-v1";
/// Where the cgroup hooks' links are pinned.
pub const LINKS_DIR: &str = "links";
/// Where the backstop's links are pinned.
pub const BACKSTOP_DIR: &str = "backstop";

/// The cgroup hooks, by program name, in the order they are attached (the record-keeping
/// sockops first, so that no redirected connection goes unrecorded).
pub const HOOKS: &[&str] = &[
    "imds_sockops",
    "imds_getpeername4",
    "imds_getpeername6",
    "imds_connect4",
    "imds_connect6",
];

/// Attached as links (kernel ≥ 5.7), which take no flags: a cgroup link always runs beside the
/// cgroup's other programs and its ancestors', as `BPF_F_ALLOW_MULTI` would.
const LINK_MODE: CgroupAttachMode = CgroupAttachMode::Single;

/// `settings.flags`
const FLAG_CONFIGURED: u16 = 1;
const FLAG_HOST_NETWORK: u16 = 2;

/// What the programs are told (the `settings` map's one value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The guard's listener (IPv4); IPv6 dials go to its IPv4-mapped form.
    pub guard: SocketAddr,
    /// The node's network namespace cookie; `None`: the initial namespace's.
    pub host_netns: Option<u64>,
    pub host_network_pods: bool,
    /// The guard's own pod cgroup and its level: never redirected.
    pub exempt: Option<(u64, u32)>,
}

/// The most distinct target ports the programs check before hashing (`settings.ports`).
pub const MAX_PORTS: usize = 4;

/// The distinct ports of `targets`, as `settings.ports` holds them (0 = unused).
pub fn target_ports(targets: &[Target]) -> Result<[u16; MAX_PORTS], InterceptionError> {
    let mut ports = [0u16; MAX_PORTS];
    let mut n = 0;
    for t in targets {
        if ports[..n].contains(&t.port) {
            continue;
        }
        if n == MAX_PORTS {
            return Err(InterceptionError::Map(format!(
                "more than {MAX_PORTS} target ports"
            )));
        }
        ports[n] = t.port;
        n += 1;
    }
    Ok(ports)
}

impl Settings {
    /// The map value, laid out as `struct settings` (network byte order where the kernel keeps
    /// it).
    pub fn encode(&self, ports: [u16; MAX_PORTS]) -> [u8; 56] {
        let mut out = [0u8; 56];
        if let SocketAddr::V4(v4) = self.guard {
            out[0..4].copy_from_slice(&v4.ip().octets());
        }
        // guard_v6 (bytes 4..20) stays zero: IPv6 dials go to the IPv4-mapped form.
        out[20..22].copy_from_slice(&self.guard.port().to_be_bytes());
        let mut flags = FLAG_CONFIGURED;
        if self.host_network_pods {
            flags |= FLAG_HOST_NETWORK;
        }
        out[22..24].copy_from_slice(&flags.to_ne_bytes());
        out[24..32].copy_from_slice(&self.host_netns.unwrap_or(0).to_ne_bytes());
        let (id, level) = self.exempt.unwrap_or((0, 0));
        out[32..40].copy_from_slice(&id.to_ne_bytes());
        out[40..44].copy_from_slice(&level.to_ne_bytes());
        for (i, port) in ports.iter().enumerate() {
            out[48 + 2 * i..50 + 2 * i].copy_from_slice(&port.to_be_bytes());
        }
        out
    }
}

/// A target's map key (`struct target`).
fn target_key(addr: std::net::Ipv6Addr, port: u16) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&addr.octets());
    key[16..18].copy_from_slice(&port.to_be_bytes());
    key
}

/// A connection's map key (`struct tuple`), as the guard's accepted socket sees it: the peer is
/// the client (`saddr`), the local address the guard's (`daddr`).
pub fn tuple_key(peer: SocketAddr, local: SocketAddr) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..16].copy_from_slice(&v6_form(peer.ip()).octets());
    key[16..32].copy_from_slice(&v6_form(local.ip()).octets());
    key[32..34].copy_from_slice(&peer.port().to_be_bytes());
    key[34..36].copy_from_slice(&local.port().to_be_bytes());
    key
}

/// The generation of the programs for the pods' cgroup `cgroup_id`: the object's hash and the
/// cgroup.
pub fn generation(cgroup_id: u64) -> String {
    // FNV-1a: stable across builds and versions, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in OBJECT {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}-{cgroup_id}")
}

/// Loads the object with its maps pinned (or reused) under `pin_dir/maps-v1`.
pub fn load(pin_dir: &Path) -> Result<Ebpf, InterceptionError> {
    let maps = pin_dir.join(MAPS_DIR);
    std::fs::create_dir_all(&maps).map_err(|e| InterceptionError::PinDir(maps.clone(), e))?;
    EbpfLoader::new()
        .default_map_pin_directory(&maps)
        .load(OBJECT)
        .map_err(|e| {
            // The cause (a `bpf()` refused, say: no CAP_BPF, or a seccomp profile that allows it
            // only with CAP_SYS_ADMIN) is in the error's sources.
            InterceptionError::Load(crate::upstream::error_chain(e))
        })
}

/// Writes the settings, the targets and the backstop's addresses into the (pinned) maps.
pub fn configure(
    ebpf: &mut Ebpf,
    settings: &Settings,
    targets: &[Target],
    blocked: &[std::net::Ipv6Addr],
) -> Result<(), InterceptionError> {
    let wanted: Vec<([u8; 20], u32)> = targets
        .iter()
        .map(|t| (target_key(t.addr, t.port), t.action.code()))
        .collect();
    replace_all(ebpf, "targets", &wanted)?;
    let blocked: Vec<([u8; 20], u32)> = blocked.iter().map(|a| (target_key(*a, 0), 1)).collect();
    replace_all(ebpf, "blocked", &blocked)?;
    let ports = target_ports(targets)?;
    let mut s: Array<_, [u8; 56]> =
        Array::try_from(map(ebpf, "settings")?).map_err(|e| map_err("settings", e))?;
    s.set(0, settings.encode(ports), 0)
        .map_err(|e| map_err("settings", e))?;
    Ok(())
}

fn map_err(name: &str, e: aya::maps::MapError) -> InterceptionError {
    InterceptionError::Map(format!("{name}: {e}"))
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Map, InterceptionError> {
    ebpf.map_mut(name)
        .ok_or_else(|| InterceptionError::Map(format!("no map `{name}`")))
}

/// Makes the (pinned, so possibly already filled) hash map `name` hold exactly `wanted`: what an
/// earlier start wrote and this one does not want goes.
fn replace_all(
    ebpf: &mut Ebpf,
    name: &str,
    wanted: &[([u8; 20], u32)],
) -> Result<(), InterceptionError> {
    let mut m: HashMap<_, [u8; 20], u32> =
        HashMap::try_from(map(ebpf, name)?).map_err(|e| map_err(name, e))?;
    let stale: Vec<[u8; 20]> = m
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.iter().any(|(w, _)| w == k))
        .collect();
    for (key, value) in wanted {
        m.insert(key, value, 0).map_err(|e| map_err(name, e))?;
    }
    for key in stale {
        m.remove(&key).map_err(|e| map_err(name, e))?;
    }
    Ok(())
}

/// The pinned links of the cgroup hooks: `(hook, generation, path)`.
pub fn pinned_links(pin_dir: &Path) -> Vec<(String, String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(pin_dir.join(LINKS_DIR)) else {
        return Vec::new();
    };
    let mut links: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (hook, generation) = name.split_once('@')?;
            Some((hook.to_owned(), generation.to_owned(), e.path()))
        })
        .collect();
    links.sort();
    links
}

/// Attaches every hook to `cgroup` and pins the links as generation `generation`, unless all of
/// them are pinned already; then removes the links of every other generation. Returns whether
/// anything was attached.
pub fn attach(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
    cgroup: &Path,
    generation: &str,
) -> Result<bool, InterceptionError> {
    let links_dir = pin_dir.join(LINKS_DIR);
    std::fs::create_dir_all(&links_dir)
        .map_err(|e| InterceptionError::PinDir(links_dir.clone(), e))?;
    let current = pinned_links(pin_dir);
    let in_place = HOOKS
        .iter()
        .all(|hook| current.iter().any(|(h, g, _)| h == hook && g == generation));
    if !in_place {
        let cgroup_dir =
            File::open(cgroup).map_err(|e| InterceptionError::Cgroup(cgroup.to_owned(), e))?;
        for hook in HOOKS {
            let path = links_dir.join(format!("{hook}@{generation}"));
            if path.exists() {
                continue;
            }
            let program = ebpf
                .program_mut(hook)
                .ok_or_else(|| InterceptionError::Load(format!("no program `{hook}`")))?;
            let link =
                attach_one(program, &cgroup_dir).map_err(|e| InterceptionError::Attach(hook, e))?;
            link.pin(&path)
                .map_err(|e| InterceptionError::Attach(hook, e.to_string()))?;
        }
    }
    // The new generation is in place and does all the work: the old ones can go.
    for (hook, gen, path) in current {
        if gen != generation {
            unpin_link(&path).map_err(|e| InterceptionError::Unpin(path.clone(), e))?;
            tracing::info!(hook, generation = gen, "replaced an older kernel program");
        }
    }
    Ok(!in_place)
}

/// Loads a cgroup program, attaches it to `cgroup` as a link, and hands the link over (aya's
/// program types share these steps but no trait for them).
macro_rules! link_to_cgroup {
    ($program:expr, $cgroup:expr) => {{
        let p = $program;
        p.load().map_err(|e| chain(e))?;
        let id = p.attach($cgroup, LINK_MODE).map_err(|e| chain(e))?;
        let link = p.take_link(id).map_err(|e| chain(e))?;
        FdLink::try_from(link).map_err(|e| chain(e))
    }};
}

fn attach_one(program: &mut Program, cgroup: &File) -> Result<FdLink, String> {
    match program {
        Program::CgroupSockAddr(p) => link_to_cgroup!(p, cgroup),
        Program::SockOps(p) => link_to_cgroup!(p, cgroup),
        other => Err(format!("unexpected program type {:?}", other.prog_type())),
    }
}

/// Removes one pinned link: the program is detached once the last reference (the pin) goes.
pub fn unpin_link(path: &Path) -> std::io::Result<()> {
    match PinnedLink::from_pin(path) {
        Ok(link) => link.unpin().map(drop),
        // Not a link (or already gone): the pin itself is what is removed.
        Err(_) => match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// The records map, for looking up accepted connections.
pub fn open_records(
    pin_dir: &Path,
) -> Result<HashMap<MapData, [u8; 36], [u8; 16]>, InterceptionError> {
    let path = pin_dir.join(MAPS_DIR).join("records");
    let data = MapData::from_pin(&path)
        .map_err(|e| InterceptionError::Map(format!("{}: {e}", path.display())))?;
    let map = Map::from_map_data(data).map_err(|e| InterceptionError::Map(e.to_string()))?;
    HashMap::try_from(map).map_err(|e| InterceptionError::Map(e.to_string()))
}

#[cfg(test)]
mod tests;
