//! The MCP server over Streamable HTTP, mounted at `/mcp` behind the daemon's token check.

use std::sync::Arc;

use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::tools::CodencerTools;
use crate::daemon::AppState;

/// `/mcp`, served by one [`CodencerTools`] per MCP session. `allowed_hosts` are the
/// `Host` values accepted (loopback by default; a deployment behind a proxy adds its name).
pub(crate) fn router(
    state: AppState,
    allowed_hosts: Vec<String>,
    shutdown: CancellationToken,
) -> Router<AppState> {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    if !allowed_hosts.is_empty() {
        config.allowed_hosts = allowed_hosts;
    }
    let service: StreamableHttpService<CodencerTools, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(CodencerTools::new(state.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        );
    Router::new().route_service("/mcp", service)
}
