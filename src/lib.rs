//! mcp-auth-gateway: an OAuth 2.1 resource server in front of unmodified MCP
//! servers. `ls src/` reads like the request path; see `docs/request-path.md`.

pub mod authn;
pub mod authserver;
pub mod authz;
pub mod body;
pub mod cli;
pub mod config;
pub mod cors;
pub mod devtoken;
pub mod explain;
pub mod filter;
pub mod forward;
pub mod gateway;
pub mod http_client;
pub mod json;
pub mod jsonrpc;
pub mod mcp;
pub mod reject;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod throttle;
pub mod uri;
pub mod well_known;
