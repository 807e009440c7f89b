//! Command-line interface: run the gateway, `check` a config, mint a dev `token`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::devtoken::TokenArgs;
use crate::explain::ExplainArgs;
use crate::telemetry::LogFormat;

/// OAuth 2.1 resource-server gateway for MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-auth-gateway", version, about)]
pub struct Cli {
    /// What to do; without a subcommand the gateway runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The YAML config file.
    #[arg(long, global = true, env = "MCP_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "MCP_GATEWAY_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Worker threads serving connections, each with its own event loop and
    /// upstream connection pool. Default: the CPUs this process may use
    /// (cgroup quotas included).
    #[arg(long, global = true, env = "MCP_GATEWAY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config, list every problem, and exit non-zero if any.
    Check,
    /// Mint a signed JWT for local testing.
    Token(Box<TokenArgs>),
    /// Show what the policy decides for one call, e.g.
    /// `explain --route /mcp --scopes "a b" tools/call get_weather`.
    Explain(ExplainArgs),
}
