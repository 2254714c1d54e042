//! Exoscale's metadata service (`imds-guard emulate --cloud exoscale`): an EC2-style tree, as
//! cloud-init's Exoscale datasource reads it, without a token flow or role credentials
//! ([`super::protocol::EXOSCALE`]).
//!
//! - The same tree under `/1.0/` (the version cloud-init asks for) and `/latest/`; `/` lists
//!   both. `meta-data/` holds `instance-id` (the instance's UUID), `vm-id` (the same UUID),
//!   `local-hostname`, `public-ipv4`, `availability-zone`, `service-offering` and
//!   `public-keys/` (AWS's layout: `0=node-key`, reached as `0/openssh-key`); `user-data` is the
//!   user data.
//! - Undocumented, so strict: no token flow (a `PUT` anywhere is 405, token headers are
//!   ignored); no other root (dated EC2 versions, or CloudStack's older `/latest/<key>` without
//!   `meta-data/`, are 404); no `Server` header; methods GET and HEAD, 405 with
//!   `Allow: GET, HEAD` otherwise; paths are not normalised (`..`, `.` or `//` is 404); errors
//!   are the AWS emulator's short HTML pages (the real bodies are not documented).
//! - The password server beside it (the same address, port 8080, which hands out the VM's
//!   password to a `DomU_Request: send_my_password` GET) is not emulated: the guard refuses that
//!   port to every pod before any byte is sent, so only the node itself would ever reach it, and
//!   nothing the guard forwards depends on how it answers. Tests of the refusal use a stand-in
//!   listener on the port.

use std::time::SystemTime;

use serde_json::{json, Value};

/// `instance-id` and `vm-id`.
pub(crate) const INSTANCE_ID: &str = "0d7a6d8e-3c1f-4b2a-9e5d-7f6a5b4c3d2e";
const HOSTNAME: &str = "emu-node-0";
const PUBLIC_IP: &str = "203.0.113.45";
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key";
const USER_DATA: &str = "#!/bin/bash\n# imds-guard emulator: fake node bootstrap script\n\
                         NODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";

/// The built-in tree below each root. `_started` is unused: nothing in it is time-stamped.
pub(crate) fn builtin(_started: SystemTime) -> Value {
    json!({
        "meta-data": {
            "availability-zone": "ch-gva-2",
            "instance-id": INSTANCE_ID,
            "local-hostname": HOSTNAME,
            "public-ipv4": PUBLIC_IP,
            "public-keys": { "0=node-key": { "openssh-key": PUBLIC_KEY } },
            "service-offering": "standard.medium",
            "vm-id": INSTANCE_ID,
        },
        "user-data": USER_DATA,
    })
}

#[cfg(test)]
mod tests;
