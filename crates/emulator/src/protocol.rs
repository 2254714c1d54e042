//! What differs between the EC2-style services the handler answers for: AWS's, Alibaba's (the
//! same token flow under its own header names, `ram/` instead of `iam/`, its credentials document,
//! 403 for a tokenless read in hardened mode) and OpenStack's `/latest/` tree (no tokens at all).

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
    /// Where role names live below `/latest/`.
    pub(crate) credentials_dir: &'static [&'static str],
    /// The shape of the credentials document of a role.
    pub(crate) credentials: CredentialsFormat,
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
}

/// AWS IMDS.
pub(crate) const AWS: Ec2Protocol = Ec2Protocol {
    tokens: Some(TokenFlow {
        ttl_header: TTL_HEADER,
        token_header: TOKEN_HEADER,
        tokenless: StatusCode::UNAUTHORIZED,
    }),
    server: Some(AWS_SERVER),
    credentials_dir: &CREDENTIALS_DIR,
    credentials: CredentialsFormat::Aws,
};

/// Alibaba ECS. The `Server` header of the real service is not documented: none is sent.
pub(crate) const ALIBABA: Ec2Protocol = Ec2Protocol {
    tokens: Some(TokenFlow {
        ttl_header: ALIBABA_TOKEN_TTL_HEADER,
        token_header: ALIBABA_TOKEN_HEADER,
        tokenless: StatusCode::FORBIDDEN,
    }),
    server: None,
    credentials_dir: &["meta-data", "ram", "security-credentials"],
    credentials: CredentialsFormat::Alibaba,
};

/// OpenStack's EC2-compatible `/latest/` tree: no tokens, no `Server` header.
pub(crate) const OPENSTACK: Ec2Protocol = Ec2Protocol {
    tokens: None,
    server: None,
    credentials_dir: &CREDENTIALS_DIR,
    credentials: CredentialsFormat::Aws,
};

/// The EC2-style protocol of `cloud`, where it has one (AWS's for the others, unused).
pub(crate) fn protocol(cloud: Cloud) -> Ec2Protocol {
    match cloud {
        Cloud::Alibaba => ALIBABA,
        Cloud::Openstack => OPENSTACK,
        _ => AWS,
    }
}
