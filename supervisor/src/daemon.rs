//! `orchestratord`: the same supervision tree as `codencer run`, long-lived, many runs at
//! once, behind an authenticated HTTP API and an MCP endpoint. See docs/api.md.

mod auth;
pub(crate) mod config;
mod error;
mod http;
mod http_events;
mod http_gates;
mod http_runs;
mod ops;
mod runner;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use auth::{Principal, Scope, create_token, hash_token, parse_scopes};
pub use config::{DaemonConfig, DaemonConfigError};
pub use error::ApiError;
pub(crate) use http::AppState;
pub use ops::{Daemon, RunChange, RunView, StepWait, Submitted};
pub use runner::{QueueView, Runner, Slot};

use crate::engine::Engine;
use crate::supervisor_error::SupervisorError;

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("the engine did not start")]
    Engine(#[from] SupervisorError),
    #[error("cannot listen on {what}")]
    Listen {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
    #[error("the store failed")]
    Store(#[from] codencer_store::StoreError),
}

/// Starts the engine, resumes unfinished runs in the background, and serves until
/// `shutdown` is cancelled. Then it drains: no new attempt starts, running attempts get
/// `config.grace` to end, then are killed and recorded `interrupted`; their runs stay
/// unfinished and go on at the next start.
pub async fn serve(config: DaemonConfig, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let engine = Engine::start(&config.state_dir, "orchestratord".to_string()).await?;
    let runner = Arc::new(Runner::new(engine, config.max_concurrent_runs));
    let state: AppState = Arc::new(Daemon {
        runner: runner.clone(),
    });
    let unfinished = runner.engine.recorder().store().unfinished_runs()?;
    if !unfinished.is_empty() {
        tracing::info!(runs = unfinished.len(), "resuming unfinished runs");
    }
    for run in unfinished {
        runner.kick(&run.id, &run.actor);
    }
    let mcp = crate::mcp::router(
        state.clone(),
        config.allowed_hosts(),
        shutdown.child_token(),
    );
    let app = http::router(state, mcp);

    let mut servers = tokio::task::JoinSet::new();
    if let Some(addr) = &config.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Listen {
                what: addr.clone(),
                source,
            })?;
        let bound = listener.local_addr().map_err(DaemonError::Serve)?;
        tracing::info!(address = %bound, "listening");
        if let Some(file) = &config.addr_file {
            std::fs::write(file, format!("http://{bound}\n")).map_err(|source| {
                DaemonError::Listen {
                    what: format!("address file {}", file.display()),
                    source,
                }
            })?;
        }
        let app = app.clone();
        let stop = shutdown.clone();
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
    }
    if let Some(path) = &config.socket {
        let _ = std::fs::remove_file(path);
        let listener =
            tokio::net::UnixListener::bind(path).map_err(|source| DaemonError::Listen {
                what: path.display().to_string(),
                source,
            })?;
        tracing::info!(socket = %path.display(), "listening");
        let stop = shutdown.clone();
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
    }
    let mut served = Ok(());
    while let Some(done) = servers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(err)) => served = Err(DaemonError::Serve(err)),
            Err(err) => served = Err(DaemonError::Serve(std::io::Error::other(err))),
        }
        if served.is_err() {
            break;
        }
    }
    runner.drain(config.grace).await;
    served
}
