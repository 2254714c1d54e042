//! Alibaba Cloud ECS's metadata service (`imds-guard emulate --cloud alibaba`): the AWS
//! emulator's token flow and tree handling ([`super::handler::ALIBABA`] says what differs: the
//! `X-aliyun-ecs-metadata-token[-ttl-seconds]` headers, `ram/security-credentials/`, Alibaba's
//! credentials document, and 403 for a tokenless read in hardened mode, `--tokens required`).
//!
//! Only the built-in tree lives here. `meta-data/all` (an aggregate some versions serve) is left
//! out: its format is not documented well enough to emulate.

use std::time::SystemTime;

use serde_json::{json, Value};

/// The RAM role whose credentials the built-in tree offers.
pub(crate) const ROLE: &str = "imds-guard-node-role";
pub(crate) const INSTANCE_ID: &str = "i-bp1emulator0000000001";

/// The built-in tree below `/latest/`. `_started` is unused: nothing in it is time-stamped.
pub(crate) fn builtin(_started: SystemTime) -> Value {
    json!({
        "dynamic": {
            "instance-identity": {
                "document": json!({
                    "instance-id": INSTANCE_ID,
                    "region-id": "cn-hangzhou",
                    "zone-id": "cn-hangzhou-h",
                    "owner-account-id": "1234567890123456",
                }).to_string(),
            },
        },
        "meta-data": {
            "hostname": "iZbp1emulator0000000001Z",
            "image-id": "aliyun_3_x64_20G_alibase_20240528.vhd",
            "instance-id": INSTANCE_ID,
            "instance": { "instance-type": "ecs.g7.xlarge" },
            "mac": "00:16:3e:00:12:34",
            "private-ipv4": "172.16.0.10",
            "ram": { "security-credentials": { ROLE: "" } },
            "region-id": "cn-hangzhou",
            "vpc-id": "vpc-bp1emulator000000001",
            "zone-id": "cn-hangzhou-h",
        },
        "user-data": "#!/bin/bash\n# imds-guard emulator: fake node bootstrap script\n\
                      NODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n",
    })
}

#[cfg(test)]
mod tests;
