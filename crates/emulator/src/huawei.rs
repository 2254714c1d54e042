//! Huawei Cloud ECS's metadata service (`imds-guard emulate --cloud huawei`): OpenStack's
//! service ([`super::openstack`]) with what Huawei's ECS user guide ("Obtaining Metadata") adds.
//! No header, no token.
//!
//! - `/openstack/<version>/` as Nova serves it; `meta_data.json` in Huawei's shape (`uuid`,
//!   `name`, `hostname`, `availability_zone`, `region_id`, `project_id`,
//!   `enterprise_project_id`, `instance_type`, `launch_index`, `random_seed`, `meta` with the
//!   `metering.*` keys, and the public keys as Nova gives them).
//! - `GET /openstack/latest/securitykey`: the temporary AK/SK of the agency bound to the instance,
//!   `{"credential": {"access", "secret", "securitytoken", "expires_at"}}` with `expires_at` in
//!   RFC 3339 UTC with microseconds, as huaweicloudsdkcore's metadata provider reads it. The keys
//!   expire and rotate as the other clouds' role credentials do (`--credentials-ttl`). Huawei
//!   documents it under `latest` only: a dated version answers 404 (strict), and only the listing
//!   of `latest` names it. GET and HEAD; 405 with `Allow: GET, HEAD` otherwise.
//! - The EC2-compatible `/latest/` tree in Nova's shape (`hostname`, `instance-id`,
//!   `instance-type`, `local-ipv4`, `placement/availability-zone`, `public-ipv4`,
//!   `public-keys/0/openssh-key`, `security-groups`…, and `user-data`), with Huawei's values and
//!   no role credentials. Nova's EC2 `instance-id` is its own `i-` id, not the UUID.
//! - No token flow is documented. The SDK first asks `PUT /meta-data/latest/api/token` and reads
//!   tokenless when that answers 404, 405 or 503: here it is 405, as every `PUT` outside
//!   `password` is, and token headers are ignored.
//! - The `Server` header of the real service is not documented: none is sent. Paths are not
//!   normalised (`..` or `//` is 404), as in the OpenStack emulator.

use std::time::SystemTime;

use http::StatusCode;
use serde_json::{json, Value};

use super::answer::{self, Answer};
use super::handler::State;
use super::openstack::{PUBLIC_KEY, USER_DATA};

/// The file of `/openstack/latest/` holding the agency's temporary keys.
pub(crate) const SECURITYKEY: &str = "securitykey";
/// The ECS id: `uuid` of `meta_data.json`.
pub(crate) const UUID: &str = "6b1c9e2a-4f3d-4a8b-9c7e-5d2f1a0b3c4e";
/// Nova's EC2-style id of the same instance: `/latest/meta-data/instance-id`.
pub(crate) const EC2_INSTANCE_ID: &str = "i-0000a3f1";
/// The agency whose keys `securitykey` serves (it names the credentials' random stream only:
/// the document does not carry it).
pub(crate) const AGENCY: &str = "imds-guard-node-agency";
const NAME: &str = "emu-node-0";
const HOSTNAME: &str = "emu-node-0.novalocal";
const REGION: &str = "cn-north-4";
const ZONE: &str = "cn-north-4a";
const FLAVOR: &str = "s6.large.2";
const PRIVATE_IP: &str = "192.168.0.23";
const PUBLIC_IP: &str = "203.0.113.61";

/// `meta_data.json`, in the shape of Huawei's example.
pub(crate) fn meta_data() -> Value {
    json!({
        "random_seed": "ZW11bGF0b3Itbm90LWEtcmFuZG9tLXNlZWQtZW11bGF0b3Itbm90LWEtcmFuZG9tLXNlZWQ=",
        "uuid": UUID,
        "availability_zone": ZONE,
        "enterprise_project_id": "0",
        "hostname": HOSTNAME,
        "launch_index": 0,
        "instance_type": FLAVOR,
        "meta": {
            "metering.image_id": "c0ffee00-1d2e-4f3a-8b4c-5d6e7f8a9b0c",
            "metering.imagetype": "gold",
            "metering.resourcespeccode": "s6.large.2.linux",
            "metering.cloudServiceType": "hws.service.type.ec2",
            "image_name": "EulerOS 2.10 64bit",
            "metering.resourcetype": "1",
            "vpc_id": "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f",
            "os_bit": "64",
            "os_type": "Linux",
            "charging_mode": "0",
        },
        "region_id": REGION,
        "project_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "name": NAME,
        "keys": [{ "data": PUBLIC_KEY, "name": "node-key", "type": "ssh" }],
        "public_keys": { "node-key": PUBLIC_KEY },
    })
}

/// `GET /openstack/latest/securitykey`: the agency's keys of the current window.
pub(crate) fn securitykey(state: &State) -> Answer {
    let body = state.credentials.huawei_document(AGENCY, SystemTime::now());
    answer::answer(StatusCode::OK, "application/json", body)
}

/// The built-in EC2-compatible tree below `/latest/`, in Nova's shape. `_started` is unused:
/// nothing in it is time-stamped.
pub(crate) fn builtin(_started: SystemTime) -> Value {
    json!({
        "meta-data": {
            "ami-id": "ami-0000002c",
            "ami-launch-index": "0",
            "ami-manifest-path": "FIXME",
            "block-device-mapping": { "ami": "vda", "root": "/dev/vda" },
            "hostname": HOSTNAME,
            "instance-action": "none",
            "instance-id": EC2_INSTANCE_ID,
            "instance-type": FLAVOR,
            "local-hostname": HOSTNAME,
            "local-ipv4": PRIVATE_IP,
            "placement": { "availability-zone": ZONE },
            "public-hostname": HOSTNAME,
            "public-ipv4": PUBLIC_IP,
            "public-keys": { "0=node-key": { "openssh-key": PUBLIC_KEY } },
            "reservation-id": "r-3k5m7n9p",
            "security-groups": "default",
        },
        "user-data": USER_DATA,
    })
}

#[cfg(test)]
mod tests;
