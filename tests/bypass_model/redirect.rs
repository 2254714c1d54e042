//! The redirect program (`redirect.bpf.c`), built with clang for one uplink and attached to an
//! interface's ingress: with `tc` (a clsact qdisc and a `bpf` filter), or as tcx through aya. A tcx
//! link lives as long as the process that made it, so that process is this test binary run again
//! inside the namespace as the ignored test [`tcx_holder`], holding the link until its stdin
//! closes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aya::programs::tc::{SchedClassifier, TcAttachOptions, TcAttachType};
use aya::programs::LinkOrder;

use crate::netfilter_netns::Ns;

/// The program's function name, as `tc` and the guard show it.
const PROGRAM: &str = "redirect_imds";
/// Tells the holder what to attach: "OBJECT INTERFACE".
const HOLD: &str = "BYPASS_MODEL_TCX_HOLD";
const HELD: &str = "tcx attached";

/// The redirect program on an interface's ingress; removed on drop (the clsact qdisc deleted, or
/// the tcx holder ended).
pub struct Redirect<'a> {
    ns: &'a Ns,
    interface: String,
    /// The built object, kept until the program is detached.
    _dir: tempfile::TempDir,
    /// The tcx holder; `None`: attached with `tc`.
    holder: Option<Child>,
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
        holder: None,
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

/// [`attach_redirect`] as a tcx program (kernel 6.6 and later), held by a process in `ns`.
pub fn attach_redirect_tcx<'a>(ns: &'a Ns, interface: &str, uplink: &str) -> Redirect<'a> {
    let (dir, object) = build(ns, uplink);
    let exe = std::env::current_exe().expect("the test binary");
    let exe = exe.to_string_lossy();
    let mut child = ns
        .command(&[
            &exe,
            "bypass_model::redirect::tcx_holder",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLD, format!("{object} {interface}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the tcx holder");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    // Ended on drop from here on.
    let redirect = Redirect {
        ns,
        interface: interface.to_owned(),
        _dir: dir,
        holder: Some(child),
        attached: true,
    };
    let (tx, lines) = mpsc::channel();
    for pipe in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut said = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
        if line.contains(HELD) {
            return redirect;
        }
        said.push(line);
    }
    panic!("the tcx holder did not attach:\n{}", said.join("\n"));
}

impl Redirect<'_> {
    /// Removes the program, checking (for `tc`) that it is gone.
    pub fn detach(mut self) {
        self.attached = false;
        match self.holder.take() {
            Some(child) => end(child),
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

/// Ends the holder: its stdin closes, it returns and its link goes with it; killed if it lingers.
fn end(mut child: Child) {
    drop(child.stdin.take());
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Redirect<'_> {
    fn drop(&mut self) {
        if !self.attached {
            return;
        }
        match self.holder.take() {
            Some(child) => end(child),
            None => {
                let _ = self
                    .ns
                    .exec(&["tc", "qdisc", "del", "dev", &self.interface, "clsact"]);
            }
        }
    }
}

/// Not a test: the tcx holder that [`attach_redirect_tcx`] runs inside a namespace. Loads the
/// object named in `BYPASS_MODEL_TCX_HOLD`, attaches it to the interface's tcx ingress, says so,
/// and keeps the link until stdin closes. Run on its own (no variable), it does nothing.
#[test]
#[ignore = "run by attach_redirect_tcx inside a test namespace"]
fn tcx_holder() {
    let Ok(hold) = std::env::var(HOLD) else {
        return;
    };
    let (object, interface) = hold.split_once(' ').expect("OBJECT INTERFACE");
    let mut ebpf = aya::Ebpf::load_file(object).expect("load the object");
    let program: &mut SchedClassifier = ebpf
        .program_mut(PROGRAM)
        .expect("the program")
        .try_into()
        .expect("a classifier");
    program.load().expect("load the program");
    program
        .attach_with_options(
            interface,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .expect("attach to tcx ingress");
    println!("{HELD}");
    // Until the test closes stdin; the link goes when `ebpf` is dropped.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
}
