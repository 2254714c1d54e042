//! The real binary inside a namespace: `imds-guard iptables …`, and the proxy started and waited
//! for until its admin port says it is ready.

use std::time::Duration;

use super::http::curl;
use super::{wait_until, Ns, Proc};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

/// `imds-guard iptables ACTION` inside `node`; (exit code, output).
pub fn iptables(node: &Ns, action: &str, config: &str) -> (Option<i32>, String) {
    let out = node.exec(&[BIN, "iptables", action, "--config", config]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `imds-guard run --config CONFIG` inside `node`, once its admin port (`127.0.0.1:8182`) answers
/// `/readyz` with 200.
pub fn start_proxy(node: &Ns, config: &str) -> Proc {
    let mut proxy = node.spawn(&[BIN, "run", "--config", config]);
    let ready = wait_until(Duration::from_secs(10), || {
        let admin = curl(node, 1, &["http://127.0.0.1:8182/readyz"]);
        admin.status == 200 || proxy.exited()
    });
    assert!(
        ready && !proxy.exited(),
        "proxy did not start:\n{}",
        proxy.output()
    );
    proxy
}
