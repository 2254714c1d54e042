//! With `[netfilter] manage = true`, `/readyz` tells whether the interception rules are in place:
//! rules removed by someone else are put back at the next check; when they cannot be put back the
//! guard stops being ready (and says so in its metrics) until they can.
//!
//! Runs in a network namespace of its own (root, `ip`, `iptables`, `curl`); the failure to
//! reinstall is produced by putting wrappers for the `*-restore` commands first on the guard's
//! PATH, which refuse while a flag file exists.

use crate::netfilter_netns;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use netfilter_netns::http::curl;
use netfilter_netns::{preflight, wait_until, Ns};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

fn admin(node: &Ns, path: &str) -> (u16, String) {
    let got = curl(node, 2, &[&format!("http://127.0.0.1:8182{path}")]);
    (got.status, got.body)
}

#[test]
fn readiness_follows_the_rules_and_removed_rules_come_back() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
        ("curl", "curl"),
    ]);
    let node = Ns::new("ready");
    node.sh("ip addr add 10.198.0.1/32 dev lo");

    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("refuse");
    let wrappers = dir.path().join("bin");
    std::fs::create_dir(&wrappers).unwrap();
    for family in ["iptables", "ip6tables"] {
        for variant in ["", "-nft", "-legacy"] {
            let name = format!("{family}{variant}-restore");
            let Some(real) = imds_guard::netfilter::tools::find(&name) else {
                continue;
            };
            let script = format!(
                "#!/bin/sh\nif [ -e '{}' ]; then echo 'refused by the test' >&2; exit 1; fi\nexec '{}' \"$@\"\n",
                flag.display(),
                real.display()
            );
            let path = wrappers.join(&name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "10.198.0.1:8181"
admin_listen = "127.0.0.1:8182"

[upstream]
url = "http://127.0.0.1:1338"
emulator = true

[netfilter]
manage = true
interfaces = ["podveth+"]
check_interval_seconds = 1
"#,
    )
    .unwrap();
    let path_var = format!(
        "PATH={}:{}",
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config_arg = config.to_string_lossy().into_owned();
    let mut guard = node.spawn(&["env", &path_var, BIN, "run", "--config", &config_arg]);

    assert!(
        wait_until(Duration::from_secs(10), || admin(&node, "/readyz").0 == 200),
        "never ready:\n{}",
        guard.output()
    );
    let status = node.exec(&[BIN, "iptables", "status", "--config", &config_arg]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // Someone flushes our chain: the next check puts the rules back.
    node.sh("iptables -t nat -F IMDS-GUARD");
    assert!(
        wait_until(Duration::from_secs(5), || {
            node.exec(&[BIN, "iptables", "status", "--config", &config_arg])
                .status
                .code()
                == Some(0)
        }),
        "rules not put back:\n{}",
        guard.output()
    );
    assert_eq!(admin(&node, "/readyz").0, 200);

    // Now they cannot be put back: not ready, and the metric says why.
    std::fs::write(&flag, "").unwrap();
    node.sh("iptables -t nat -F IMDS-GUARD");
    assert!(
        wait_until(Duration::from_secs(5), || admin(&node, "/readyz").0 == 503),
        "still ready without rules:\n{}",
        guard.output()
    );
    assert!(admin(&node, "/readyz")
        .1
        .contains("netfilter rules not in place"));
    assert!(admin(&node, "/metrics")
        .1
        .lines()
        .any(|l| l == "imds_guard_netfilter_rules_ok 0"));
    assert!(admin(&node, "/healthz").0 == 200, "alive all the same");

    // And once they can: ready again.
    std::fs::remove_file(&flag).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || admin(&node, "/readyz").0 == 200),
        "not ready again:\n{}",
        guard.output()
    );
    assert!(admin(&node, "/metrics")
        .1
        .lines()
        .any(|l| l == "imds_guard_netfilter_rules_ok 1"));
    assert!(guard
        .output()
        .contains("netfilter rules are not all in place; installing them again"));
    assert!(
        guard.terminate(Duration::from_secs(5)),
        "did not stop on SIGTERM"
    );
}
