//! `orchestratorctl`: inspect and drive runs, gates, artifacts, tokens and the audit log.
//! A client of the daemon when `--url`/`CODENCER_URL` is set (see `ctl_remote.rs`); with
//! `--state-dir` (or no URL) it reads and writes the store directly, offline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codencer_store::{Event, EventBody, RunFilter, RunStatus, Store};
use serde_json::json;

use super::common::*;
use super::ctl_error::{CtlError, store_error};
use super::render;
use crate::result::RunResult;

#[derive(Debug, Parser)]
#[command(
    name = "orchestratorctl",
    version,
    about = "Inspect Codencer runs, artifacts and the audit log."
)]
pub(super) struct Cli {
    /// State directory (default: $CODENCER_HOME, else $XDG_DATA_HOME/codencer). Works
    /// offline, against the store; wins over --url.
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// The daemon's URL (e.g. http://127.0.0.1:8750); also `url` in
    /// $CODENCER_CONFIG/client.toml.
    #[arg(long, global = true, env = "CODENCER_URL")]
    pub url: Option<String>,
    /// API token for the daemon; also `token` in $CODENCER_CONFIG/client.toml.
    #[arg(long, global = true, env = "CODENCER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Submit a TaskSpec to the daemon (with --wait, wait for the run and print its result).
    Submit {
        spec: PathBuf,
        #[arg(long)]
        wait: bool,
        /// Keep the run open for appended steps (`steps append`).
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// Steps of an open run: append the next one.
    Steps {
        #[command(subcommand)]
        command: StepsCommand,
    },
    /// API tokens: create, list, revoke.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Runs: list, show, tree, watch, cancel, resume, close.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Artifacts: get one's content.
    Artifacts {
        #[command(subcommand)]
        command: ArtifactsCommand,
    },
    /// Gates: list, approve, reject.
    Gates {
        #[command(subcommand)]
        command: GatesCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum StepsCommand {
    /// Append a step (YAML or JSON file) to an open run.
    Append {
        run: String,
        step: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum TokensCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// The token's name: the actor of every event it causes.
        name: String,
        /// runs:read, runs:write, gates:write, artifacts:read, admin (repeat or comma-separate).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id or name.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum RunsCommand {
    /// Follow a run live (daemon only): progress from the event stream, then its tree.
    Watch {
        id: String,
        /// Start after this event sequence number (resume a watch).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Print each event as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run (daemon only).
    Cancel {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Let a run go on (daemon only; offline, use `codencer resume`).
    Resume {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// End an open run (daemon only).
    Close {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first.
    List {
        #[arg(long)]
        json: bool,
        /// Only runs with this status (pending, running, awaiting_approval, passed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A run's result: status and one ResultSpec per step.
    Show {
        /// Run id (a unique prefix is enough).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// A run's whole record, drawn as a tree.
    Tree {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ArtifactsCommand {
    /// Write an artifact's content to stdout (or a file).
    Get {
        id: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum GatesCommand {
    /// List gates (all runs unless --run; all statuses unless --status).
    List {
        #[arg(long)]
        run: Option<String>,
        /// pending, passed, failed, approved or rejected.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending gate; `codencer resume RUN` then continues the run.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a pending gate; `codencer resume RUN` then ends the step failed.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Export every event, in order, one JSON object per line.
    Export {
        /// JSON lines (the only format for now; accepted for clarity).
        #[arg(long)]
        jsonl: bool,
        /// Only this run's events.
        #[arg(long)]
        run: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_tracing(false, "warn");
    if cli.state_dir.is_none() {
        super::ctl_remote::fill_from_config(&mut cli);
        if let Some(url) = cli.url.clone() {
            return super::ctl_remote::main(&url, cli);
        }
    }
    let state = state_dir(cli.state_dir);
    if let Command::Tokens { command } = cli.command {
        // Creating the first token is how a fresh state dir gets its admin.
        return super::ctl_remote::tokens_offline(&state, command);
    }
    let store = match open_store(&state) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("error: {err}");
            return exit(EXIT_INFRASTRUCTURE);
        }
    };
    let result = match cli.command {
        Command::Tokens { .. } => Err(CtlError::Invalid(NEEDS_DAEMON.to_string())),
        Command::Submit { .. } | Command::Steps { .. } => {
            Err(CtlError::Invalid(NEEDS_DAEMON.to_string()))
        }
        Command::Runs {
            command:
                RunsCommand::Watch { .. }
                | RunsCommand::Cancel { .. }
                | RunsCommand::Resume { .. }
                | RunsCommand::Close { .. },
        } => Err(CtlError::Invalid(NEEDS_DAEMON.to_string())),
        Command::Runs { command } => runs(&store, command),
        Command::Artifacts {
            command: ArtifactsCommand::Get { id, output },
        } => artifact_get(&store, &id, output),
        Command::Gates { command } => super::gates::run(&store, command_to_gates(command)),
        Command::Audit {
            command: AuditCommand::Export { jsonl: _, run },
        } => audit_export(&store, run),
    };
    match result {
        Ok(code) => exit(code),
        Err(CtlError::Invalid(err)) => {
            eprintln!("error: {err}");
            exit(EXIT_INVALID)
        }
        Err(CtlError::Infrastructure(err)) => {
            eprintln!("error: {err}");
            exit(EXIT_INFRASTRUCTURE)
        }
    }
}

const NEEDS_DAEMON: &str = "this command needs the daemon: set CODENCER_URL (or --url) and CODENCER_TOKEN, and drop --state-dir";

pub(super) fn parse_status(text: &str) -> Result<RunStatus, String> {
    text.parse()
        .map_err(|e: codencer_store::UnknownStatus| e.to_string())
}

fn runs(store: &Store, command: RunsCommand) -> Result<u8, CtlError> {
    match command {
        RunsCommand::List {
            json,
            status,
            limit,
        } => {
            let filter = RunFilter {
                status: status.as_deref().map(parse_status).transpose()?,
                limit: Some(limit),
                ..RunFilter::default()
            };
            let runs = store.list_runs(&filter).map_err(store_error)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).map_err(|e| e.to_string())?
                );
            } else if runs.is_empty() {
                println!("no runs");
            } else {
                println!(
                    "{:<26}  {:<17}  {:<24}  {:<12}  created",
                    "ID", "STATUS", "NAME", "EXECUTOR"
                );
                for r in runs {
                    println!(
                        "{:<26}  {:<17}  {:<24}  {:<12}  {}",
                        r.id,
                        r.status.as_str(),
                        r.name,
                        r.executor,
                        r.created_at
                    );
                }
            }
            Ok(EXIT_PASSED)
        }
        RunsCommand::Show { id, json } => {
            let tree = load_tree(store, &id)?;
            let result = RunResult::from_tree(&tree);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
                );
            } else {
                render::result_summary(&result);
            }
            Ok(EXIT_PASSED)
        }
        RunsCommand::Tree { id, json } => {
            let tree = load_tree(store, &id)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&tree).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", render::draw_tree(&tree));
            }
            Ok(EXIT_PASSED)
        }
        RunsCommand::Watch { .. }
        | RunsCommand::Cancel { .. }
        | RunsCommand::Resume { .. }
        | RunsCommand::Close { .. } => Err(CtlError::Invalid(NEEDS_DAEMON.to_string())),
    }
}

fn load_tree(store: &Store, id: &str) -> Result<codencer_store::RunTree, CtlError> {
    let run_id = store.resolve_run_id(id).map_err(store_error)?;
    store
        .run_tree(&run_id)
        .map_err(store_error)?
        .ok_or_else(|| CtlError::Invalid(format!("no run `{id}`")))
}

fn artifact_get(store: &Store, id: &str, output: Option<PathBuf>) -> Result<u8, CtlError> {
    let artifact = store.artifact(id).map_err(store_error)?.ok_or_else(|| {
        format!("no artifact `{id}` (list a run's artifacts with `orchestratorctl runs tree RUN`)")
    })?;
    let bytes = store.read_blob(&artifact.sha256).map_err(store_error)?;
    match output {
        Some(path) => std::fs::write(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| format!("cannot write to stdout: {e}"))?,
    }
    Ok(EXIT_PASSED)
}

fn audit_export(store: &Store, run: Option<String>) -> Result<u8, CtlError> {
    let run_id = run
        .map(|r| store.resolve_run_id(&r).map_err(store_error))
        .transpose()?;
    let mut stdout = std::io::stdout().lock();
    // Executors are learnt from the events themselves, in order: no lookups per line.
    let mut executors = Executors::default();
    let mut after = 0;
    loop {
        let events = store.events_since(after, 1000).map_err(store_error)?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        for event in &events {
            let executor = executors.learn(event);
            if run_id.is_some() && event.run_id != run_id {
                continue;
            }
            let line = audit_line(event, executor);
            if let Err(err) = writeln!(stdout, "{line}") {
                // The reader went away (`| head`): not an error of ours.
                if err.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(EXIT_PASSED);
                }
                return Err(CtlError::Infrastructure(format!(
                    "cannot write to stdout: {err}"
                )));
            }
        }
    }
    Ok(EXIT_PASSED)
}

/// Which executor each run and attempt uses, as the events declare them.
#[derive(Default)]
struct Executors {
    runs: std::collections::HashMap<String, String>,
    attempts: std::collections::HashMap<String, String>,
}

impl Executors {
    fn learn(&mut self, event: &Event) -> Option<String> {
        match &event.body {
            EventBody::RunCreated { executor, .. } => {
                if let Some(run) = &event.run_id {
                    self.runs.insert(run.clone(), executor.clone());
                }
                Some(executor.clone())
            }
            EventBody::StepCreated { executor, .. } => Some(executor.clone()),
            EventBody::AttemptStarted { executor, .. } => {
                if let Some(attempt) = &event.attempt_id {
                    self.attempts.insert(attempt.clone(), executor.clone());
                }
                Some(executor.clone())
            }
            _ => event
                .attempt_id
                .as_ref()
                .and_then(|a| self.attempts.get(a))
                .or_else(|| event.run_id.as_ref().and_then(|r| self.runs.get(r)))
                .cloned(),
        }
    }
}

/// One event in the audit shape of docs/cli.md.
fn audit_line(event: &Event, executor: Option<String>) -> serde_json::Value {
    let body = serde_json::to_value(&event.body).unwrap_or_default();
    let artifacts: Vec<String> = match &event.body {
        EventBody::ArtifactRecorded { artifact_id, .. } => vec![artifact_id.clone()],
        EventBody::ValidationCompleted {
            output_artifact: Some(a),
            ..
        } => vec![a.clone()],
        _ => Vec::new(),
    };
    json!({
        "event": event.body.kind(),
        "run_id": event.run_id,
        "step_id": event.step_id,
        "attempt_id": event.attempt_id,
        "actor": event.actor,
        "executor": executor,
        "result": body.get("payload").cloned().unwrap_or(serde_json::Value::Null),
        "artifacts": artifacts,
        "ts": event.ts,
        "seq": event.seq,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    })
}

pub(super) fn command_to_gates(command: GatesCommand) -> super::gates::GatesAction {
    match command {
        GatesCommand::List { run, status, json } => {
            super::gates::GatesAction::List { run, status, json }
        }
        GatesCommand::Approve { id, reason } => super::gates::GatesAction::Decide {
            id,
            approve: true,
            reason,
        },
        GatesCommand::Reject { id, reason } => super::gates::GatesAction::Decide {
            id,
            approve: false,
            reason: Some(reason),
        },
    }
}
