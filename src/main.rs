//! The `imds-guard` binary: wires the library together and does nothing else.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use imds_guard::cli::{self, Cli, Command};
use imds_guard::{audit, canary, config, reload, server};
#[cfg(feature = "emulator")]
use imds_guard_emulator as emulator;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr; stdout carries only audit lines (and command output).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One TLS provider for the whole process, chosen explicitly: ring.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::warn!("a TLS crypto provider was already installed");
    }
    match cli.command {
        Command::Check(args) => match config::load(&args.config) {
            Ok(config) => {
                println!("{}: {}", args.config.display(), cli::summary(&config));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", args.config.display());
                ExitCode::from(2)
            }
        },
        Command::Explain(args) => {
            let result = config::load(&args.config.config)
                .map_err(|e| format!("{}: {e}", args.config.config.display()))
                .and_then(|config| {
                    let rt = runtime().map_err(|e| format!("{e:#}"))?;
                    rt.block_on(cli::explain(&config, &args))
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Iptables(args) => iptables(&args.action),
        Command::Interception(args) => interception(&args.action),
        Command::Policy(args) => {
            let outcome = cli::rollout::run(&args);
            print!("{}", outcome.stdout);
            for note in &outcome.notes {
                eprintln!("imds-guard: {note}");
            }
            ExitCode::from(outcome.code)
        }
        Command::Canary(args) => canary(&args),
        Command::Run(args) => exit(runtime().and_then(|rt| rt.block_on(run(args)))),
        #[cfg(feature = "emulator")]
        Command::Emulate(args) => exit(runtime().and_then(|rt| rt.block_on(emulate(args)))),
        #[cfg(not(feature = "emulator"))]
        Command::Emulate { .. } => exit(Err(anyhow::anyhow!(
            "emulate: this imds-guard was built without the emulator (the `emulator` feature); \
             the shipped image has none"
        ))),
    }
}

/// `iptables install|remove`: 0 done, 1 failed; `status`: 0 in place, 1 not, 2 cannot tell.
/// A bad config is 2 for all three.
fn iptables(action: &cli::IptablesAction) -> ExitCode {
    let (cli::IptablesAction::Install(cli::IptablesInstallArgs { config: args, .. })
    | cli::IptablesAction::Remove(cli::IptablesRulesArgs { config: args, .. })
    | cli::IptablesAction::Status(cli::IptablesRulesArgs { config: args, .. })) = action;
    let config = match config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    match cli::iptables(&config, action) {
        Ok(report) => {
            print!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("imds-guard: {e}");
            match action {
                cli::IptablesAction::Status(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `interception status`: 0 in place, 1 not; `remove`: 0 done, 1 failed. A bad config is 2.
fn interception(action: &cli::InterceptionAction) -> ExitCode {
    let (cli::InterceptionAction::Status(args) | cli::InterceptionAction::Remove(args)) = action;
    let config = match config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    match action {
        cli::InterceptionAction::Status(_) => {
            let status = imds_guard::interception::status(&config);
            for line in &status.lines {
                println!("{line}");
            }
            if status.complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        cli::InterceptionAction::Remove(_) => {
            match imds_guard::interception::remove(&config.interception.bpf_pin_dir) {
                Ok(removed) => {
                    for path in &removed {
                        println!("removed {}", path.display());
                    }
                    if removed.is_empty() {
                        println!("nothing to remove");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("imds-guard: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `canary --once`: 0 protected, 1 not; a bad `--url` is 2. Without `--once`: runs until
/// SIGTERM or SIGINT.
fn canary(args: &cli::CanaryArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("imds-guard: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.once {
        let metrics_listen = args.metrics_listen;
        return exit(runtime().and_then(|rt| {
            rt.block_on(async {
                let listener = bind(metrics_listen, "--metrics-listen").await?;
                canary::watch::run(settings, listener, shutdown_signal()).await;
                Ok(())
            })
        }));
    }
    let outcome = match runtime() {
        Ok(rt) => rt.block_on(canary::probe(&settings.target, settings.timeout)),
        Err(e) => {
            eprintln!("imds-guard: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!("{}", canary::verdict(outcome, settings.node.as_deref()));
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imds-guard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn run(args: cli::RunArgs) -> anyhow::Result<()> {
    let path = args.config.config;
    // The config is refused before any port is bound.
    let loaded = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let config = config::parse(&loaded)
        .and_then(|config| config.remove_startup_taint(args.remove_startup_taint))
        .with_context(|| format!("{}", path.display()))?;
    let listeners = server::Listeners {
        proxy: bind(config.server.listen, "server.listen").await?,
        admin: bind(config.server.admin_listen, "server.admin_listen").await?,
        #[cfg(feature = "emulator")]
        emulator: match config
            .upstream
            .socket_addr()
            .filter(|_| config.upstream.emulator)
        {
            Some(addr) => Some(bind(addr, "upstream.url (emulator)").await?),
            None => None,
        },
    };
    let audit: Arc<dyn audit::Sink> = Arc::new(audit::Stdout::new());
    let options = server::Options {
        reload: Some(reload::Reload {
            path,
            loaded,
            poll: (args.watch_config_ms > 0).then(|| Duration::from_millis(args.watch_config_ms)),
            requests: reload_requests(),
        }),
        ..server::Options::new(audit)
    };
    server::run(config, listeners, options, shutdown_signal()).await?;
    Ok(())
}

/// One message per SIGHUP.
fn reload_requests() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the config");
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; the config file is still watched")
        }
    }
    rx
}

#[cfg(feature = "emulator")]
async fn emulate(args: cli::EmulateArgs) -> anyhow::Result<()> {
    let metadata = match &args.metadata {
        Some(path) => Some(
            emulator::load_metadata(path)
                .with_context(|| format!("--metadata {}", path.display()))?,
        ),
        None => None,
    };
    let options = emulator::EmulatorOptions {
        tokens: args.tokens,
        hop_limit: args.hop_limit,
        metadata,
        credentials_ttl: std::time::Duration::from_secs(args.credentials_ttl),
        throttle: args.throttle_rps,
        cloud: args.cloud,
        change_every: args.change_every_ms.map(std::time::Duration::from_millis),
    };
    let listener = bind(args.listen, "--listen").await?;
    tracing::info!(listen = %args.listen, cloud = %args.cloud, tokens = %args.tokens, hop_limit = args.hop_limit, "emulator serving");
    emulator::serve(listener, options, shutdown_signal()).await?;
    Ok(())
}

async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the guard");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
