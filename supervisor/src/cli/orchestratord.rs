//! `orchestratord`: flags, environment and config file into a [`DaemonConfig`]; logging;
//! signals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use super::common::*;
use crate::daemon::config::{DEFAULT_LISTEN, DEFAULT_MAX_CONCURRENT_RUNS, DaemonFile};
use crate::daemon::{self, DaemonConfig};

#[derive(Debug, Parser)]
#[command(
    name = "orchestratord",
    version,
    about = "The Codencer daemon: runs TaskSpecs for planners over an authenticated HTTP API and MCP."
)]
struct Args {
    /// Config file (TOML; default: $CODENCER_CONFIG/daemon.toml when it exists).
    #[arg(long, env = "CODENCER_DAEMON_CONFIG")]
    config: Option<PathBuf>,
    /// State directory (default: $CODENCER_HOME, else $XDG_DATA_HOME/codencer).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// host:port to listen on (default 127.0.0.1:8750; port 0 picks a free one).
    #[arg(long, env = "CODENCER_LISTEN")]
    listen: Option<String>,
    /// Also (or only, with --no-tcp) listen on this unix socket.
    #[arg(long, env = "CODENCER_SOCKET")]
    socket: Option<PathBuf>,
    /// Do not listen on TCP (use --socket).
    #[arg(long)]
    no_tcp: bool,
    /// Runs executing at once; more wait in the queue (default 4).
    #[arg(long, env = "CODENCER_MAX_RUNS")]
    max_concurrent_runs: Option<usize>,
    /// Allow a non-loopback --listen (only behind a TLS-terminating proxy; docs/deployment.md).
    #[arg(long)]
    allow_remote: bool,
    /// Log JSON lines (tracing) instead of text.
    #[arg(long)]
    json: bool,
    /// Write the URL the daemon listens on to this file once it does.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Seconds running attempts may go on after SIGTERM/SIGINT before they are killed.
    #[arg(long, env = "CODENCER_GRACE", default_value_t = DEFAULT_GRACE_SECS)]
    grace: u64,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let file_path = args.config.clone().or_else(|| {
        let dir = std::env::var_os("CODENCER_CONFIG").filter(|d| !d.is_empty())?;
        let path = PathBuf::from(dir).join("daemon.toml");
        path.exists().then_some(path)
    });
    let file = match file_path.as_deref().map(DaemonFile::load).transpose() {
        Ok(file) => file.unwrap_or_default(),
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            return exit(EXIT_INVALID);
        }
    };
    let config = DaemonConfig {
        state_dir: state_dir(args.state_dir.or(file.state_dir)),
        listen: if args.no_tcp {
            None
        } else {
            Some(
                args.listen
                    .or(file.listen)
                    .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            )
        },
        socket: args.socket.or(file.socket),
        max_concurrent_runs: args
            .max_concurrent_runs
            .or(file.max_concurrent_runs)
            .unwrap_or(DEFAULT_MAX_CONCURRENT_RUNS),
        log_json: args.json || file.log_json.unwrap_or(false),
        allow_remote: args.allow_remote || file.allow_remote.unwrap_or(false),
        public_hosts: file.public_hosts,
        addr_file: args.addr_file,
        grace: std::time::Duration::from_secs(args.grace),
    };
    init_tracing(config.log_json, "info");
    if let Err(err) = config.validate() {
        eprintln!("error: {}", error_chain(&err));
        return exit(EXIT_INVALID);
    }
    block_on(async {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => None } } => {}
            }
            tracing::info!(
                "stopping: no new attempts; running ones get the grace period, then unfinished runs go on at the next start"
            );
            stop.cancel();
        });
        match daemon::serve(config, shutdown).await {
            Ok(()) => exit(EXIT_PASSED),
            Err(err) => {
                tracing::error!(cause = %error_chain(&err), "daemon failed");
                eprintln!("error: {}", error_chain(&err));
                exit(EXIT_INFRASTRUCTURE)
            }
        }
    })
}
