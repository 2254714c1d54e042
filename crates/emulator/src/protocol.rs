//! What differs between the EC2-style services the handler answers for: AWS's, Alibaba's (the
//! same token flow under its own header names, `ram/` instead of `iam/`, its credentials document,
//! 403 for a tokenless read in hardened mode), Tencent's (no tokens, `cam/` and its credentials
//! document), Exoscale's (no tokens, no credentials, the tree under `/1.0/` too), and the
//! `/latest/` trees of OpenStack and Huawei (no tokens).

use http::StatusCode;
use imds_guard_core::cloud::{Cloud, ALIBABA_TOKEN_HEADER, ALIBABA_TOKEN_TTL_HEADER};

use super::handler::{TOKEN_HEADER, TTL_HEADER};
use super::tree::CREDENTIALS_DIR;

/// The `Server` header of AWS's answers.
pub(crate) const AWS_SERVER: &str = "EC2ws";

/// What differs between the EC2-style services this handler answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ec2Protocol {
    /// The session-token flow; `None` where there is none (OpenStack): `/latest/api/token` is
    /// then an ordinary path (404, or 405 for a PUT) and token headers are ignored.
    pub(crate) tokens: Option<TokenFlow>,
    /// The `Server` header of every answer, where the cloud is known to send one.
    pub(crate) server: Option<&'static str>,
    /// The first path segments the tree is served under (`latest`; Exoscale's `1.0` too), in the
    /// order `/` lists them.
    pub(crate) roots: &'static [&'static str],
    /// Where role names live below the root, and the shape of their credentials documents; `None`
    /// where the cloud serves no role credentials (every leaf is then served as it is stored).
    pub(crate) credentials: Option<RoleCredentials>,
}

/// Where a cloud's EC2-style tree keeps role credentials, and their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoleCredentials {
    /// The directory whose leaves are roles (below the root).
    pub(crate) dir: &'static [&'static str],
    /// The shape of a role's credentials document.
    pub(crate) format: CredentialsFormat,
}

/// A cloud's IMDSv2-style token flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenFlow {
    /// The request header of the token PUT giving the wanted lifetime (echoed in the answer).
    pub(crate) ttl_header: &'static str,
    /// The request header carrying a token on reads.
    pub(crate) token_header: &'static str,
    /// The answer to a read without a token when tokens are required: 401 on AWS; 403 on
    /// Alibaba, whose hardened mode refuses tokenless reads as forbidden.
    pub(crate) tokenless: StatusCode,
}

/// The credentials document a role's leaf serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialsFormat {
    /// AWS: `Code`, `LastUpdated`, `Type`, `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`.
    Aws,
    /// Alibaba: `AccessKeyId` (`STS.…`), `AccessKeySecret`, `Expiration`, `SecurityToken`,
    /// `LastUpdated`, `Code`.
    Alibaba,
    /// Tencent: `TmpSecretId` (`AKID…`), `TmpSecretKey`, `ExpiredTime` (Unix seconds, a number),
    /// `Expiration`, `Token`, `Code`.
    Tencent,
}

/// Only `latest`.
const LATEST: &[&str] = &["latest"];

/// AWS IMDS.
pub(crate) const AWS: Ec2Protocol = Ec2Protocol {
    tokens: Some(TokenFlow {
        ttl_header: TTL_HEADER,
        token_header: TOKEN_HEADER,
        tokenless: StatusCode::UNAUTHORIZED,
    }),
    server: Some(AWS_SERVER),
    roots: LATEST,
    credentials: Some(RoleCredentials {
        dir: &CREDENTIALS_DIR,
        format: CredentialsFormat::Aws,
    }),
};

/// Alibaba ECS. The `Server` header of the real service is not documented: none is sent.
pub(crate) const ALIBABA: Ec2Protocol = Ec2Protocol {
    tokens: Some(TokenFlow {
        ttl_header: ALIBABA_TOKEN_TTL_HEADER,
        token_header: ALIBABA_TOKEN_HEADER,
        tokenless: StatusCode::FORBIDDEN,
    }),
    server: None,
    roots: LATEST,
    credentials: Some(RoleCredentials {
        dir: &["meta-data", "ram", "security-credentials"],
        format: CredentialsFormat::Alibaba,
    }),
};

/// OpenStack's EC2-compatible `/latest/` tree: no tokens, no `Server` header.
pub(crate) const OPENSTACK: Ec2Protocol = Ec2Protocol {
    tokens: None,
    server: None,
    roots: LATEST,
    credentials: Some(RoleCredentials {
        dir: &CREDENTIALS_DIR,
        format: CredentialsFormat::Aws,
    }),
};

/// Tencent CVM (`metadata.tencentyun.com`): no tokens (none is documented; token headers are
/// ignored and `PUT` is 405 everywhere), CAM role credentials below `cam/`. The `Server` header
/// of the real service is not documented: none is sent.
pub(crate) const TENCENT: Ec2Protocol = Ec2Protocol {
    tokens: None,
    server: None,
    roots: LATEST,
    credentials: Some(RoleCredentials {
        dir: &["meta-data", "cam", "security-credentials"],
        format: CredentialsFormat::Tencent,
    }),
};

/// Huawei ECS's EC2-compatible `/latest/` tree: no tokens, no role credentials (the agency's
/// temporary keys are `/openstack/latest/securitykey`, not below `/latest/`).
pub(crate) const HUAWEI: Ec2Protocol = Ec2Protocol {
    tokens: None,
    server: None,
    roots: LATEST,
    credentials: None,
};

/// Exoscale: the same tree under `/1.0/` (what cloud-init reads) and `/latest/`; no tokens, no
/// role credentials.
pub(crate) const EXOSCALE: Ec2Protocol = Ec2Protocol {
    tokens: None,
    server: None,
    roots: &["1.0", "latest"],
    credentials: None,
};

/// The EC2-style protocol of `cloud`, where it has one (AWS's for the others, unused).
pub(crate) fn protocol(cloud: Cloud) -> Ec2Protocol {
    match cloud {
        Cloud::Alibaba => ALIBABA,
        Cloud::Openstack => OPENSTACK,
        Cloud::Tencent => TENCENT,
        Cloud::Huawei => HUAWEI,
        Cloud::Exoscale => EXOSCALE,
        Cloud::Aws
        | Cloud::Gcp
        | Cloud::Azure
        | Cloud::Oci
        | Cloud::Digitalocean
        | Cloud::Hetzner
        | Cloud::Linode => AWS,
    }
}
