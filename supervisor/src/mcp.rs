//! The MCP endpoint: Codencer's operations as tools for a planner model. Streamable HTTP at
//! `/mcp` on the daemon (token required); stdio through `codencer mcp`, which forwards to
//! the daemon. See docs/mcp.md.

mod proxy;
mod server;
mod tools;

pub use proxy::{McpProxyError, serve_stdio};
pub(crate) use server::router;
