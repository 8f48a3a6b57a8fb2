//! `codencer mcp`: an MCP server on stdio that forwards every tool call to the daemon's
//! `/mcp` endpoint, for planners that spawn a process. It starts nothing itself.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ErrorData as McpError, RoleClient, RoleServer, ServerHandler, ServiceExt};

/// Why the stdio bridge stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpProxyError {
    #[error(
        "cannot connect to the daemon's MCP endpoint at {url} (is orchestratord running? is the token valid?)"
    )]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the stdio MCP session failed")]
    Serve(#[source] Box<dyn std::error::Error + Send + Sync>),
}

struct Forward {
    daemon: RunningService<RoleClient, rmcp::model::ClientConfig>,
    info: ServerConfig,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward").finish_non_exhaustive()
    }
}

impl ServerHandler for Forward {
    fn get_info(&self) -> ServerConfig {
        self.info.clone()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.daemon
            .list_tools(request)
            .await
            .map_err(|e| McpError::internal_error(format!("the daemon did not answer: {e}"), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        match self.daemon.call_tool(request).await {
            Ok(result) => Ok(result.into()),
            // A model can act on a tool error; a transport error would end its session.
            Err(e) => {
                Ok(
                    rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                        format!(
                            "error[daemon_unreachable]: the Codencer daemon did not answer ({e}). \
                     Check that orchestratord is running and CODENCER_URL points at it, then retry."
                        ),
                    )])
                    .into(),
                )
            }
        }
    }
}

/// Serves MCP on stdin/stdout, forwarding to `url` (`http://host:port`) with `token`.
pub async fn serve_stdio(url: &str, token: &str) -> Result<(), McpProxyError> {
    let endpoint = format!("{}/mcp", url.trim_end_matches('/'));
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header(token),
    );
    let daemon = rmcp::model::ClientConfig::default()
        .serve(transport)
        .await
        .map_err(|e| McpProxyError::Connect {
            url: endpoint.clone(),
            source: Box::new(e),
        })?;
    let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
    if let Some(instructions) = daemon.peer_info().and_then(|i| i.instructions.clone()) {
        info = info.with_instructions(instructions);
    }
    let server = Forward { daemon, info }
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpProxyError::Serve(Box::new(e)))?;
    server
        .waiting()
        .await
        .map_err(|e| McpProxyError::Serve(Box::new(e)))?;
    Ok(())
}
