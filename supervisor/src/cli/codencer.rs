//! `codencer`: run a TaskSpec end to end without a daemon; local maintenance.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use codencer_store::RunStatus;

use super::common::*;
use codencer_policy::PolicySources;

use super::drive::drive;
use crate::engine::Engine;
use crate::plan::RunPlan;
use crate::spec::TaskSpec;
use crate::{Resumed, RunOutcome};

#[derive(Debug, Parser)]
#[command(
    name = "codencer",
    version,
    about = "Run AI coding executors in confined git worktrees, and keep the record."
)]
struct Cli {
    /// State directory (default: $CODENCER_HOME, else $XDG_DATA_HOME/codencer).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a TaskSpec to the end and print its result.
    Run {
        /// The TaskSpec (YAML or JSON).
        spec: PathBuf,
        /// Print the run's result as JSON on stdout, and nothing else.
        #[arg(long)]
        json: bool,
        /// Seconds a running attempt may go on after SIGINT/SIGTERM before it is killed.
        #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
        grace: u64,
    },
    /// Continue a run: after the supervisor died, or once its approval gate was decided.
    Resume {
        /// Run id (a unique prefix is enough).
        run: String,
        #[arg(long)]
        json: bool,
        /// Seconds a running attempt may go on after SIGINT/SIGTERM before it is killed.
        #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
        grace: u64,
    },
    /// Remove worktrees of finished runs (their branches stay unless --branches).
    Gc {
        /// Also delete the runs' `codencer/<run>/...` branches.
        #[arg(long)]
        branches: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the effective policy for a TaskSpec, or check policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// List the executors: installed or not, version, default policy.
    Executors {
        #[arg(long)]
        json: bool,
    },
    /// Show which sandbox layers this host can enforce.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Serve MCP on stdio for a planner that spawns a process, forwarding to the daemon
    /// (CODENCER_URL, CODENCER_TOKEN). Starts nothing itself.
    Mcp {
        /// The daemon's URL.
        #[arg(long, env = "CODENCER_URL", default_value = "http://127.0.0.1:8750")]
        url: String,
        /// API token (scopes decide which tools succeed).
        #[arg(long, env = "CODENCER_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Check or rebuild the store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the effective policy of each step: every value, where it came from, and what
    /// the executor will be able to see, reach and write.
    Explain {
        spec: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Validate the policy files in DIR (as the operator layer over the built-ins).
    Check { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Check SQLite integrity, the event hash chain and every artifact blob.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the run-tree projections from the events alone, reporting any difference.
    Rebuild {
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(false, "warn");
    let state = state_dir(cli.state_dir);
    match cli.command {
        Command::Run { spec, json, grace } => run(&state, &spec, json, secs(grace)),
        Command::Resume { run, json, grace } => resume(&state, &run, json, secs(grace)),
        Command::Gc { branches, json } => super::render::gc(&state, branches, json),
        Command::Policy {
            command: PolicyCommand::Explain { spec, json },
        } => super::policy::explain(&spec, json),
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => super::policy::check(&dir),
        Command::Executors { json } => super::executors::list(json),
        Command::Doctor { json } => super::policy::doctor(json),
        Command::Mcp { url, token } => mcp_stdio(&url, &token),
        Command::Store {
            command: StoreCommand::Verify { json },
        } => store_verify(&state, json),
        Command::Store {
            command: StoreCommand::Rebuild { json },
        } => store_rebuild(&state, json),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn run(
    state: &std::path::Path,
    spec_path: &std::path::Path,
    json: bool,
    grace: Duration,
) -> ExitCode {
    // Both overlap checking the TaskSpec (a git process) and the policy.
    crate::engine::start_host_probe();
    crate::engine::open_store_ahead(state);
    let spec = match TaskSpec::load(spec_path) {
        Ok(spec) => spec,
        Err(errors) => {
            eprintln!("error: invalid TaskSpec (nothing was run or recorded)\n{errors}");
            return exit(EXIT_INVALID);
        }
    };
    let plan = match RunPlan::resolve(spec, &PolicySources::from_env()) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!(
                "error: the policy refuses this TaskSpec (nothing was run or recorded)\n{err}"
            );
            return exit(EXIT_INVALID);
        }
    };
    for step in &plan.steps {
        let located = codencer_adapters::adapter(&step.spec.executor).map(crate::executors::locate);
        if let Some(Err(err)) = located {
            eprintln!("error: {err} (nothing was run or recorded)");
            return exit(EXIT_INVALID);
        }
    }
    block_on_then_exit(run_async(state, plan, json, grace))
}

async fn run_async(
    state: &std::path::Path,
    plan: RunPlan,
    json: bool,
    grace: Duration,
) -> ExitCode {
    let spec = &plan.spec;
    let engine = match Engine::start(state, local_actor()).await {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            return exit(EXIT_INFRASTRUCTURE);
        }
    };
    let created = match engine.create_run(&plan) {
        Ok(created) => created,
        Err(err) => {
            eprintln!("error: could not record the run: {}", error_chain(&err));
            return exit(EXIT_INFRASTRUCTURE);
        }
    };
    if !json {
        eprintln!(
            "run {} · {} · {} step(s) · state {}",
            created.run_id,
            spec.name,
            spec.steps.len(),
            state.display()
        );
    }
    let run_id = created.run_id.clone();
    let step_ids = created.step_ids.clone();
    let execution = engine.execute(Arc::new(plan.clone()), created);
    drive(&engine, run_id, step_ids, json, grace, execution).await
}

fn resume(state: &std::path::Path, run: &str, json: bool, grace: Duration) -> ExitCode {
    block_on_then_exit(async {
        if !state.join("codencer.db").exists() {
            eprintln!(
                "error: no Codencer state at {} (pass --state-dir or set CODENCER_HOME)",
                state.display()
            );
            return exit(EXIT_INVALID);
        }
        let engine = match Engine::start(state, local_actor()).await {
            Ok(engine) => engine,
            Err(err) => {
                eprintln!("error: {}", error_chain(&err));
                return exit(EXIT_INFRASTRUCTURE);
            }
        };
        let store = engine.recorder().store().clone();
        let tree = match store.resolve_run_id(run).and_then(|id| store.run_tree(&id)) {
            Ok(Some(tree)) => tree,
            Ok(None) => {
                eprintln!("error: no run `{run}`");
                return exit(EXIT_INVALID);
            }
            Err(err) => {
                eprintln!("error: {}", error_chain(&err));
                return exit(EXIT_INVALID);
            }
        };
        let run_id = tree.run.id.clone();
        let step_ids = tree.steps.iter().map(|s| s.step.id.clone()).collect();
        if !json {
            eprintln!(
                "resuming run {run_id} · {} · {}",
                tree.run.name,
                tree.run.status.as_str()
            );
        }
        let resuming = async {
            let status = match engine.resume(&run_id).await? {
                Resumed::Ran(outcome) => return Ok(outcome),
                Resumed::Finished(status) => status,
                Resumed::AwaitingApproval { gate_id } => {
                    eprintln!(
                        "awaiting approval: decide with `orchestratorctl gates approve|reject {gate_id} --reason ...`, then resume again"
                    );
                    RunStatus::AwaitingApproval
                }
            };
            Ok(RunOutcome {
                run_id: run_id.clone(),
                status,
                infrastructure: None,
            })
        };
        drive(&engine, run_id.clone(), step_ids, json, grace, resuming).await
    })
}

fn store_verify(state: &std::path::Path, json: bool) -> ExitCode {
    store_report(state, json, "verify", codencer_store::Store::verify, |r| {
        r.ok
    })
}

/// Exits 1 when the live projections differed from the events (they are then replaced).
fn store_rebuild(state: &std::path::Path, json: bool) -> ExitCode {
    store_report(
        state,
        json,
        "rebuild",
        codencer_store::Store::rebuild,
        |r| r.ok,
    )
}

/// Runs a store check and prints its report; exit 0 when `ok`, 1 when not, 4 on failure.
fn store_report<T: serde::Serialize + std::fmt::Display>(
    state: &std::path::Path,
    json: bool,
    what: &str,
    check: impl FnOnce(&codencer_store::Store) -> Result<T, codencer_store::StoreError>,
    ok: impl Fn(&T) -> bool,
) -> ExitCode {
    let report = open_store(state)
        .and_then(|store| check(&store).map_err(|e| format!("{what} failed: {}", error_chain(&e))));
    match report {
        Ok(report) => {
            super::client::print_json_or(json, &report, || println!("{report}"));
            exit(if ok(&report) {
                EXIT_PASSED
            } else {
                EXIT_FAILED
            })
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit(EXIT_INFRASTRUCTURE)
        }
    }
}

fn mcp_stdio(url: &str, token: &str) -> ExitCode {
    block_on(async {
        match crate::mcp::serve_stdio(url, token).await {
            Ok(()) => exit(EXIT_PASSED),
            Err(err) => {
                eprintln!("error: {}", error_chain(&err));
                exit(EXIT_INFRASTRUCTURE)
            }
        }
    })
}
