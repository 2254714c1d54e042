//! The redirect program (`redirect.bpf.c`), built with clang for one uplink and attached to an
//! interface's ingress: with `tc` (a clsact qdisc and a `bpf` filter), or as tcx through aya. A tcx
//! link lives as long as a reference to it, so it is made by a thread that has entered the
//! namespace (`setns` changes only the calling thread's) and pinned in a bpffs the test mounts:
//! removing the pin detaches it.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use aya::programs::links::FdLink;
use aya::programs::tc::{SchedClassifier, TcAttachOptions, TcAttachType};
use aya::programs::LinkOrder;

use crate::netfilter_netns::Ns;

/// The program's function name, as `tc` and the guard show it.
const PROGRAM: &str = "redirect_imds";
/// The redirect program on an interface's ingress; removed on drop (the clsact qdisc deleted, or
/// the tcx link's pin removed and its bpffs unmounted).
pub struct Redirect<'a> {
    ns: &'a Ns,
    interface: String,
    /// The built object, kept until the program is detached.
    _dir: tempfile::TempDir,
    /// The tcx link's pin and the bpffs mount holding it; `None`: attached with `tc`.
    pin: Option<(PathBuf, tempfile::TempDir)>,
    attached: bool,
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bypass_model/redirect.bpf.c")
}

/// Builds the program for `ns`'s `uplink` into a temporary directory.
fn build(ns: &Ns, uplink: &str) -> (tempfile::TempDir, String) {
    let path = format!("/sys/class/net/{uplink}/ifindex");
    let uplink_index = ns.ok(&["cat", &path]).trim().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let object = dir.path().join("redirect.bpf.o");
    let include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let out = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", &include])
        .arg(format!("-DUPLINK_IFINDEX={uplink_index}"))
        .arg("-c")
        .arg(source())
        .arg("-o")
        .arg(&object)
        .output()
        .expect("cannot run clang");
    assert!(
        out.status.success(),
        "clang could not build {}:\n{}",
        source().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, object.to_string_lossy().into_owned())
}

/// Builds the program for `ns`'s `uplink` and attaches it to `interface`'s ingress with `tc`
/// (iproute2 loads it). Both interfaces must be ones the test made, in `ns`.
pub fn attach_redirect<'a>(ns: &'a Ns, interface: &str, uplink: &str) -> Redirect<'a> {
    let (dir, object) = build(ns, uplink);
    ns.ok(&["tc", "qdisc", "add", "dev", interface, "clsact"]);
    // From here on, the qdisc is removed on drop, whatever fails next.
    let redirect = Redirect {
        ns,
        interface: interface.to_owned(),
        _dir: dir,
        pin: None,
        attached: true,
    };
    ns.ok(&[
        "tc",
        "filter",
        "add",
        "dev",
        interface,
        "ingress",
        "bpf",
        "da",
        "obj",
        &object,
        "sec",
        "classifier",
    ]);
    let shown = ns.ok(&["tc", "filter", "show", "dev", interface, "ingress"]);
    assert!(shown.contains(PROGRAM), "not attached:\n{shown}");
    redirect
}

/// [`attach_redirect`] as a tcx program (kernel 6.6 and later), its link pinned in a bpffs of the
/// test's own.
pub fn attach_redirect_tcx<'a>(ns: &'a Ns, interface: &str, uplink: &str) -> Redirect<'a> {
    let (dir, object) = build(ns, uplink);
    let bpffs = tempfile::tempdir().expect("tempdir");
    let mounted = Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(bpffs.path())
        .status()
        .expect("mount");
    assert!(mounted.success(), "cannot mount a bpffs");
    let pin = bpffs.path().join("redirect");
    // From here on, the pin and the mount go on drop, whatever fails next.
    let redirect = Redirect {
        ns,
        interface: interface.to_owned(),
        _dir: dir,
        pin: Some((pin.clone(), bpffs)),
        attached: true,
    };
    let netns = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("the namespace");
    let interface = interface.to_owned();
    std::thread::spawn(move || {
        // SAFETY: a valid namespace descriptor, open for the call; only this thread moves.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let mut ebpf = aya::Ebpf::load_file(&object).expect("load the object");
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .expect("the program")
            .try_into()
            .expect("a classifier");
        program.load().expect("load the program");
        let id = program
            .attach_with_options(
                &interface,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .expect("attach to tcx ingress");
        let link = FdLink::try_from(program.take_link(id).expect("the link")).expect("a tcx link");
        link.pin(&pin).expect("pin the link");
    })
    .join()
    .expect("the tcx attach failed");
    redirect
}

impl Redirect<'_> {
    /// Removes the program, checking (for `tc`) that it is gone.
    pub fn detach(mut self) {
        self.attached = false;
        match self.pin.take() {
            Some((pin, bpffs)) => unpin(&pin, &bpffs),
            None => {
                self.ns
                    .ok(&["tc", "qdisc", "del", "dev", &self.interface, "clsact"]);
                let shown =
                    self.ns
                        .ok(&["tc", "filter", "show", "dev", &self.interface, "ingress"]);
                assert!(!shown.contains(PROGRAM), "still attached:\n{shown}");
            }
        }
    }
}

/// Removes the tcx link's pin (the link, and with it the program, goes) and unmounts its bpffs.
fn unpin(pin: &Path, bpffs: &tempfile::TempDir) {
    let _ = std::fs::remove_file(pin);
    let _ = Command::new("umount").arg(bpffs.path()).status();
}

impl Drop for Redirect<'_> {
    fn drop(&mut self) {
        if !self.attached {
            return;
        }
        match self.pin.take() {
            Some((pin, bpffs)) => unpin(&pin, &bpffs),
            None => {
                let _ = self
                    .ns
                    .exec(&["tc", "qdisc", "del", "dev", &self.interface, "clsact"]);
            }
        }
    }
}
