//! Tencent Cloud CVM's metadata service (`imds-guard emulate --cloud tencent`), at
//! `metadata.tencentyun.com` (169.254.0.23): the AWS emulator's tree handling without a token
//! flow ([`super::protocol::TENCENT`] says what differs: no tokens, `cam/security-credentials/`,
//! Tencent's credentials document).
//!
//! - `/latest/meta-data/` with the leaves Tencent documents ("Querying Instance Metadata"):
//!   `instance-id`, `instance-name`, `uuid`, `local-ipv4`, `public-ipv4`, `mac`,
//!   `placement/region|zone`, `network/interfaces/macs/<mac>/…` (with `local-ipv4s/<ip>/…`),
//!   `payment/charge-type`, `app-id`, `instance/instance-type|image-id`; `/latest/user-data`.
//! - `cam/security-credentials/` lists the role bound to the instance (one name, no newline:
//!   tencentcloud-sdk reads the whole answer as the name); `cam/security-credentials/<role>` is
//!   `{"TmpSecretId", "TmpSecretKey", "ExpiredTime", "Expiration", "Token", "Code"}`, expiring
//!   and rotating as the other clouds' role credentials do (`--credentials-ttl`).
//! - Undocumented, so strict: no token flow (a `PUT` anywhere is 405, token headers are
//!   ignored); `/` lists `latest` only, and no other root is served (clients that read
//!   `/meta-data/…` without `/latest` get 404); no `Server` header; methods GET and HEAD, 405 with
//!   `Allow: GET, HEAD` otherwise; paths are not normalised (`..`, `.`, `//` or `%2F` is 404);
//!   errors are the AWS emulator's short HTML pages (the real bodies are not documented).

use std::time::SystemTime;

use serde_json::{json, Value};

/// The CAM role bound to the instance.
pub(crate) const ROLE: &str = "imds-guard-node-role";
/// `instance-id`.
pub(crate) const INSTANCE_ID: &str = "ins-6p2kqn8s";
/// `uuid`.
pub(crate) const UUID: &str = "3f1c2b4a-7d6e-4c5b-9a8f-0e1d2c3b4a59";
const INSTANCE_NAME: &str = "emu-node-0";
const MAC: &str = "52:54:00:4e:6a:21";
const PRIVATE_IP: &str = "10.0.0.12";
const PUBLIC_IP: &str = "203.0.113.23";
const USER_DATA: &str = "#!/bin/bash\n# imds-guard emulator: fake node bootstrap script\n\
                         NODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";

/// The built-in tree below `/latest/`. `_started` is unused: nothing in it is time-stamped.
pub(crate) fn builtin(_started: SystemTime) -> Value {
    json!({
        "meta-data": {
            "app-id": "1250000000",
            "cam": { "security-credentials": { ROLE: "" } },
            "instance": {
                "image-id": "img-eb30mz89",
                "instance-type": "S5.MEDIUM4",
            },
            "instance-id": INSTANCE_ID,
            "instance-name": INSTANCE_NAME,
            "local-ipv4": PRIVATE_IP,
            "mac": MAC,
            "network": { "interfaces": { "macs": { MAC: {
                "local-ipv4s": { PRIVATE_IP: {
                    "gateway": "10.0.0.1",
                    "local-ipv4": PRIVATE_IP,
                    "public-ipv4": PUBLIC_IP,
                    "public-ipv4-mode": "NAT",
                    "subnet-mask": "255.255.255.0",
                } },
                "mac": MAC,
                "primary-local-ipv4": PRIVATE_IP,
                "public-ipv4s": PUBLIC_IP,
                "subnet-id": "subnet-5tq9m3xa",
                "vpc-id": "vpc-2zxq8k1m",
            } } } },
            "payment": { "charge-type": "POSTPAID_BY_HOUR" },
            "placement": { "region": "ap-guangzhou", "zone": "ap-guangzhou-3" },
            "public-ipv4": PUBLIC_IP,
            "uuid": UUID,
        },
        "user-data": USER_DATA,
    })
}

#[cfg(test)]
mod tests;
