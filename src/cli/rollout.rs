//! `imds-guard policy suggest` and `policy replay`: the audit files read line by line, the
//! pure work done by the rollout crate (`imds_guard_rollout`), the outcome handed back for `main` to print.

use std::io::{BufRead, BufReader, Read as _};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cloud::Cloud;
use imds_guard_rollout::{replay, suggest, GroupBy, Log};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Print least-privilege [[rules]], one block per workload, from what audit lines show each
    /// workload was served.
    Suggest(SuggestArgs),
    /// Decide every recorded request again under a new config and print what would change;
    /// exit 1 when something that was served would be denied.
    Replay(ReplayArgs),
}

/// The audit lines and how to group them, for both commands.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Files of audit lines, as the guard writes them to stdout (log lines among them are
    /// skipped); `-` reads stdin.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub audit: Vec<PathBuf>,
    /// Group pods into workloads by this label (within their namespace), or by their owner with
    /// `owner`. Default: app.kubernetes.io/name, else app, else another label carried, else the
    /// owner, else the namespace.
    #[arg(long, value_name = "LABEL")]
    pub group_by: Option<String>,
}

#[derive(Debug, Args)]
pub struct SuggestArgs {
    #[command(flatten)]
    pub audit: AuditArgs,
    /// The cloud whose server the rules are for (default: the --config file's, else aws).
    #[arg(long)]
    pub cloud: Option<Cloud>,
    /// A config file to take the cloud from.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub audit: AuditArgs,
    /// The new config whose policy decides the recorded requests.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
}

/// What a `policy` command has to print, and its exit status.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    /// For stderr, one line each.
    pub notes: Vec<String>,
    /// 0 done (replay: nothing served would be denied); 1 replay: something served would be
    /// denied; 2 a bad config or an unreadable file.
    pub code: u8,
}

impl Outcome {
    fn failed(note: String) -> Self {
        Self {
            stdout: String::new(),
            notes: vec![note],
            code: 2,
        }
    }
}

/// Runs `imds-guard policy …`.
pub fn run(args: &PolicyArgs) -> Outcome {
    match &args.action {
        PolicyAction::Suggest(args) => run_suggest(args),
        PolicyAction::Replay(args) => run_replay(args),
    }
}

fn group_by(args: &AuditArgs) -> GroupBy {
    args.group_by
        .as_deref()
        .map(GroupBy::parse)
        .unwrap_or_default()
}

fn run_suggest(args: &SuggestArgs) -> Outcome {
    let cloud = match (args.cloud, &args.config) {
        (Some(cloud), _) => cloud,
        (None, Some(path)) => match crate::config::load(path) {
            Ok(config) => config.upstream.cloud,
            Err(e) => return Outcome::failed(format!("{}: {e}", path.display())),
        },
        (None, None) => Cloud::Aws,
    };
    let log = match read_all(&args.audit.audit) {
        Ok(log) => log,
        Err(e) => return Outcome::failed(e),
    };
    let parse = |text: &str| {
        crate::config::parse(text)
            .map(|config| config.policy)
            .map_err(|e| e.to_string())
    };
    let suggestion = suggest::suggest(&log, cloud, &group_by(&args.audit), &parse);
    let mut notes = suggestion.notes;
    if log.lines == 0 {
        notes.push("no audit lines found".into());
    }
    Outcome {
        stdout: suggestion.text,
        notes,
        code: 0,
    }
}

fn run_replay(args: &ReplayArgs) -> Outcome {
    let config = match crate::config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return Outcome::failed(format!("{}: {e}", args.config.display())),
    };
    let log = match read_all(&args.audit.audit) {
        Ok(log) => log,
        Err(e) => return Outcome::failed(e),
    };
    let mut notes = log.skipped();
    notes.extend(replay::warnings(&log, &config.policy));
    if log.lines == 0 {
        notes.push("no audit lines found".into());
    }
    let report = replay::replay(&log, &config.policy, &group_by(&args.audit));
    Outcome {
        stdout: report.render(),
        notes,
        code: if report.ok() { 0 } else { 1 },
    }
}

/// Reads every file (`-`: stdin) into one log.
fn read_all(paths: &[PathBuf]) -> Result<Log, String> {
    let mut log = Log::default();
    for path in paths {
        let read = if path.as_os_str() == "-" {
            read_into(&mut log, std::io::stdin().lock())
        } else {
            std::fs::File::open(path).and_then(|file| read_into(&mut log, BufReader::new(file)))
        };
        read.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    Ok(log)
}

/// Audit lines are a few kilobytes: a longer line is no audit line, and is not held whole.
const MAX_LINE: usize = 1 << 20;

/// Reads lines of `input` into `log`, bytes that are not UTF-8 replaced.
fn read_into(log: &mut Log, mut input: impl BufRead) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            // The rest of it, up to its end, is skipped without being kept.
            loop {
                let buf = input.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                match buf.iter().position(|b| *b == b'\n') {
                    Some(at) => {
                        input.consume(at + 1);
                        break;
                    }
                    None => {
                        let all = buf.len();
                        input.consume(all);
                    }
                }
            }
            if line.contains(&b'{') {
                log.add_malformed(format!("a line longer than {MAX_LINE} bytes"));
            }
            continue;
        }
        log.add_line(&String::from_utf8_lossy(&line));
    }
}

#[cfg(test)]
mod tests;
