//! The command line: `run`, `emulate`, `check`, `explain`, `iptables`, `policy`, `canary`.
//!
//! Argument parsing and the commands that only read files (`check`, `explain`, `policy`, in
//! [`policy`]) live here; `main` wires the rest.

pub mod rollout;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use imds_guard_core::cloud::Cloud;

use crate::canary;
use crate::config::{Config, Source};
use crate::disposition::{Disposal, Refusal};
use crate::imds::Method;
use crate::inventory::{self, Feed, InventoryError, Lookup};
use crate::netfilter::{self, NetfilterError, Settings};
use crate::policy::{Facts, Reason, Verdict};
#[cfg(feature = "emulator")]
use imds_guard_emulator::TokenMode;

/// imds-guard: keeps pods away from the cloud instance metadata service unless a policy allows
/// them, and audits every request.
#[derive(Debug, Parser)]
#[command(name = "imds-guard", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The config file option shared by the commands that read one.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file (TOML).
    #[arg(long, env = "IMDS_GUARD_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy: identify pods, apply the policy, forward or refuse, audit.
    Run(RunArgs),
    /// Serve an emulator of a cloud's instance metadata service (AWS by default).
    #[cfg(feature = "emulator")]
    Emulate(EmulateArgs),
    /// Refused: this build has no emulator (built without the `emulator` feature, as the
    /// shipped image is).
    #[cfg(not(feature = "emulator"))]
    #[command(hide = true)]
    Emulate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Validate a config file: exit 0 if valid, otherwise name the key and why.
    Check(ConfigArg),
    /// Show the decision for one request without sending anything.
    Explain(ExplainArgs),
    /// Install, remove or check the netfilter rules that send pods' metadata traffic to the proxy.
    Iptables(IptablesArgs),
    /// Show or remove the cgroup interception's pinned kernel programs (`[interception] method =
    /// "cgroup"`).
    Interception(InterceptionArgs),
    /// From audit lines to a policy: suggest least-privilege rules, replay requests under a new
    /// config.
    Policy(rollout::PolicyArgs),
    /// Prove that this pod's metadata requests reach the node's guard: once, or every interval
    /// with metrics and a readiness endpoint (as a DaemonSet).
    Canary(CanaryArgs),
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// Probe once, print the verdict and exit: 0 protected, 1 not.
    #[arg(long)]
    pub once: bool,
    /// The metadata service's URL as pods use it [default: http:// and the cloud's address].
    #[arg(long)]
    pub url: Option<String>,
    /// The cloud whose metadata address is probed when --url is not given.
    #[arg(long, default_value = "aws")]
    pub cloud: Cloud,
    /// Time between probes, in seconds.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_seconds: u64,
    /// How long one probe may take before it counts as `timeout`, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Where to serve /metrics, /readyz and /healthz (not with --once).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8183")]
    pub metrics_listen: SocketAddr,
    /// The node this runs on, for the verdict and the log.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node: Option<String>,
}

impl CanaryArgs {
    /// What to probe and how often; a `--url` that cannot be probed is refused.
    pub fn settings(&self) -> Result<canary::watch::Settings, canary::UrlError> {
        let target = match &self.url {
            Some(url) => canary::Target::parse(url)?,
            None => canary::Target::of_cloud(self.cloud),
        };
        Ok(canary::watch::Settings {
            target,
            interval: Duration::from_secs(self.interval_seconds),
            timeout: Duration::from_millis(self.timeout_ms),
            node: self.node.clone(),
        })
    }
}

#[derive(Debug, Args)]
pub struct InterceptionArgs {
    #[command(subcommand)]
    pub action: InterceptionAction,
}

#[derive(Debug, Subcommand)]
pub enum InterceptionAction {
    /// List the pinned programs, links and maps; exit 0 only when every hook is in place.
    Status(ConfigArg),
    /// Detach and unpin every program and map the guard left (the only way they go, as with
    /// `iptables remove`): pods then reach the metadata service directly.
    Remove(ConfigArg),
}

#[derive(Debug, Args)]
pub struct IptablesArgs {
    #[command(subcommand)]
    pub action: IptablesAction,
}

#[derive(Debug, Subcommand)]
pub enum IptablesAction {
    /// Install the rules (idempotent), check them, and clear connections older than them.
    Install(IptablesInstallArgs),
    /// Remove our chain and every jump to it; nothing else is touched.
    Remove(IptablesRulesArgs),
    /// Exit 0 only when exactly the expected rules are in place; print what is missing or extra.
    Status(IptablesRulesArgs),
}

#[derive(Debug, Args)]
pub struct IptablesInstallArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the iptables-restore input that would be applied, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub mode: ModeArgs,
}

#[derive(Debug, Args)]
pub struct IptablesRulesArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub mode: ModeArgs,
}

/// Node mode (the default) or sidecar mode.
#[derive(Debug, Args)]
pub struct ModeArgs {
    /// Sidecar mode, run inside the pod's network namespace: nat OUTPUT sends every process's
    /// metadata traffic to server.listen (loopback), except the sidecar's own UID's.
    #[arg(long)]
    pub sidecar: bool,
    /// The sidecar's UID, instead of [netfilter] sidecar_uid.
    #[arg(long, value_name = "UID", requires = "sidecar")]
    pub sidecar_uid: Option<u32>,
}

impl ModeArgs {
    /// The rule settings for `config` in this mode.
    fn settings(&self, config: &Config) -> Result<Settings, NetfilterError> {
        if !self.sidecar {
            if config.inventory.source == Source::SelfPod {
                return Err(NetfilterError::Usage(
                    "inventory.source = \"self\" is sidecar mode: add --sidecar",
                ));
            }
            return Ok(Settings::from_config(config));
        }
        let uid =
            self.sidecar_uid
                .or(config.netfilter.sidecar_uid)
                .ok_or(NetfilterError::Usage(
                "--sidecar needs the sidecar's UID: --sidecar-uid UID or [netfilter] sidecar_uid",
            ))?;
        Ok(Settings::sidecar(config, uid))
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Remove this taint (e.g. imds-guard/not-ready) from the node once the rules are in place
    /// and the inventory is synced. Kubernetes source only; needs get and patch on nodes.
    #[arg(long, value_name = "KEY")]
    pub remove_startup_taint: Option<String>,
    /// How often to check the config file for changes, in milliseconds (0: reload on SIGHUP only).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub watch_config_ms: u64,
}

#[cfg(feature = "emulator")]
#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:1338")]
    pub listen: SocketAddr,
    /// Whether IMDSv2 tokens are optional or required for reads.
    #[arg(long, default_value = "optional")]
    pub tokens: TokenMode,
    /// IP TTL of token responses (the instance's HttpPutResponseHopLimit), 1 to 64.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub hop_limit: u8,
    /// JSON file deep-merged over the built-in metadata tree (null removes a key).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Lifetime of the emulated IAM role credentials, in seconds; they rotate at half of it.
    #[arg(long, default_value_t = 21_600, value_parser = clap::value_parser!(u64).range(2..))]
    pub credentials_ttl: u64,
    /// Answer at most this many requests per second and refuse the rest with 429, as the
    /// service throttles an instance (off by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub throttle_rps: Option<u32>,
    /// The cloud whose metadata server to emulate: aws, gcp, azure, alibaba, oci, openstack,
    /// digitalocean, hetzner, tencent, huawei, exoscale or linode.
    #[arg(long, default_value = "aws")]
    pub cloud: Cloud,
    /// GCP: flip instance/maintenance-event between NONE and MIGRATE_ON_HOST_MAINTENANCE every
    /// this many milliseconds, so wait_for_change long polls see changes (off by default).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub change_every_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The source address of the request (the pod's IP).
    #[arg(long)]
    pub source: IpAddr,
    /// The request target, e.g. /latest/meta-data/iam/info.
    #[arg(long)]
    pub path: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The request carries an IMDSv2 token.
    #[arg(long)]
    pub token: bool,
}

/// A one-line summary of a valid config, for `check`.
pub fn summary(config: &Config) -> String {
    format!(
        "config ok: {} rule(s), inventory {}{}, upstream {}{}, mode {:?}",
        config.policy.rules().len(),
        config.inventory.source.as_str(),
        match config.inventory.source {
            Source::Static => format!(" with {} pod(s)", config.inventory.pods.len()),
            Source::Kubernetes | Source::SelfPod => String::new(),
        },
        config.upstream.url,
        if config.upstream.emulator {
            " (built-in emulator)"
        } else {
            ""
        },
        config.server.mode,
    )
    .to_lowercase()
}

/// Why `explain` could not build the inventory.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// Decides one request as the proxy would, and describes the decision. With the Kubernetes
/// source, the node's pods are listed once (nothing is watched); with the `self` source, the
/// labels file is read once.
pub async fn explain(config: &Config, args: &ExplainArgs) -> Result<String, ExplainError> {
    let index = inventory::start(config, Feed::Once).await?.index;
    let lookup = index.lookup(args.source);
    let pod = match &lookup {
        Lookup::Found(pod) => pod.qualified_name(),
        Lookup::Unknown => "- (no pod has this address)".into(),
        Lookup::Ambiguous => "- (several pods claim this address)".into(),
        Lookup::NotReady => "- (inventory not ready)".into(),
        Lookup::Mismatch(pod) => format!(
            "- ({}'s cgroup, another pod's address)",
            pod.qualified_name()
        ),
    };
    let policy = &config.policy;
    let cloud = policy.cloud();
    let (decision, detail) = match crate::query::read(cloud, &args.path) {
        Err(e) => (
            policy.refuse(Reason::BadRequest),
            format!("request target refused: {e}"),
        ),
        Ok((path, query)) => {
            let facts = Facts::in_cloud(
                cloud,
                Method::from_name(&args.method),
                &path,
                &query,
                args.token,
            );
            let decision = policy.decide_for(&lookup, &facts);
            let shown = if query.is_empty() {
                format!("canonical path {path}")
            } else {
                format!("canonical target {path}?{}", query.canonical())
            };
            (decision, shown)
        }
    };
    let verdict = match Disposal::of(&decision, config.server.mode) {
        Disposal::Forward => "allow",
        Disposal::WouldDeny => "would-deny (audit mode forwards it)",
        Disposal::Refuse => "deny",
    };
    let status = match decision.verdict {
        Verdict::Allow => "forwarded; the metadata service answers".to_owned(),
        Verdict::Deny => Refusal::Denied(decision.reason)
            .answer_in(cloud)
            .status
            .to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "decision: {verdict}");
    let _ = writeln!(out, "status:   {status}");
    let _ = writeln!(out, "reason:   {}", decision.reason.as_str());
    let _ = writeln!(out, "pod:      {pod}");
    let _ = writeln!(out, "rule:     {}", decision.rule.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "request:  {} {} ({detail})", args.method, args.path);
    if decision.verdict == Verdict::Allow && decision.reason == Reason::TokenAllowed {
        let _ = writeln!(
            out,
            "token:    TTL capped at {} s",
            decision.max_token_ttl_seconds
        );
    }
    Ok(out)
}

/// What an `iptables` command has to say, and whether it succeeded.
pub struct Report {
    pub text: String,
    /// `false` when `status` found the rules not as wanted.
    pub ok: bool,
}

/// Runs `imds-guard iptables …` for a validated config.
pub fn iptables(config: &Config, action: &IptablesAction) -> Result<Report, NetfilterError> {
    let mut text = String::new();
    let mut ok = true;
    match action {
        IptablesAction::Install(args) if args.dry_run => {
            let settings = args.mode.settings(config)?;
            text = netfilter::Plan::new(&settings)?.render();
        }
        IptablesAction::Install(args) => {
            let settings = args.mode.settings(config)?;
            let done = netfilter::install(&settings)?;
            let _ = writeln!(
                text,
                "installed: {} rules with {}{}; {} connection(s) older than the rules cleared",
                done.rules,
                done.variant.name(netfilter::rules::Family::V4),
                if done.ipv6 { " and IPv6" } else { "" },
                done.cleared,
            );
        }
        // Everything of ours goes, whichever mode installed it: no UID is needed.
        IptablesAction::Remove(_) => {
            let removed = netfilter::remove(config.netfilter.backend)?;
            for (variant, count) in &removed {
                let name = variant.name(netfilter::rules::Family::V4);
                let _ = writeln!(text, "removed: our chain and {count} rules with {name}");
            }
            if removed.is_empty() {
                text.push_str("removed: nothing of ours was installed\n");
            }
        }
        IptablesAction::Status(args) => {
            let status = netfilter::status(&args.mode.settings(config)?)?;
            let name = status.variant.name(netfilter::rules::Family::V4);
            let ipv6 = if status.ipv6 { "IPv4 and IPv6" } else { "IPv4" };
            let _ = writeln!(text, "backend: {name} ({ipv6})");
            text.push_str(&status.diff.to_string());
            ok = status.diff.is_empty();
            let _ = if ok {
                writeln!(text, "ok: all {} rules in place", status.expected)
            } else {
                writeln!(
                    text,
                    "not in place: {} missing, {} extra",
                    status.diff.missing.len(),
                    status.diff.extra.len()
                )
            };
        }
    }
    Ok(Report { text, ok })
}

#[cfg(test)]
mod tests;
