//! The `mcp-auth-gateway` binary: parse the command line and dispatch.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use mcp_auth_gateway::cli::{Cli, Command};
use mcp_auth_gateway::config::{Config, ConfigError};
use mcp_auth_gateway::{devtoken, explain, server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Both aws-lc-rs and ring may end up in the graph; pin the provider so
    // rustls never has to guess.
    // An error means a provider is installed already, which is all we need.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .ok();
    match cli.command.unwrap_or(Command::Run) {
        Command::Token(args) => {
            let token = devtoken::mint(&args)?;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(args) => {
            let path = cli.config.context("--config FILE is required")?;
            let (config, _) = match Config::load(&path) {
                Ok(loaded) => loaded,
                Err(e) => {
                    report(&path, &e);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let (allowed, text) = explain::explain(&config, &args)?;
            write!(std::io::stdout(), "{text}")?;
            // Exit status mirrors the verdict, so scripts can assert on policies.
            Ok(if allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Check => {
            let path = cli.config.context("--config FILE is required")?;
            match Config::load(&path) {
                Ok((config, warnings)) => {
                    let mut out = std::io::stdout().lock();
                    for w in &warnings {
                        writeln!(out, "warning: {w}")?;
                    }
                    writeln!(
                        out,
                        "{}: OK ({} route(s), {} issuer(s))",
                        path.display(),
                        config.routes.len(),
                        config.issuers.len()
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    report(&path, &e);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Run => {
            let path = cli.config.context("--config FILE is required")?;
            let config = match Config::load(&path) {
                Ok(loaded) => loaded,
                Err(e) => {
                    report(&path, &e);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let (config, warnings) = config;
            let workers = cli.workers.map_or_else(
                || std::thread::available_parallelism().map_or(1, usize::from),
                usize::from,
            );
            // The control plane (signals, reload, key refresh, admin, trace
            // export) runs here; the workers serve traffic on their own threads.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let telemetry = telemetry::init(
                cli.log_format,
                config.tracing.as_ref(),
                runtime.handle().clone(),
            )?;
            for w in warnings {
                tracing::warn!(problem = %w, "config warning");
            }
            let served = runtime.block_on(server::run(Arc::new(config), Some(path), workers));
            runtime.block_on(telemetry.shutdown());
            served?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(path: &std::path::Path, e: &ConfigError) {
    eprintln!("{}: invalid configuration", path.display());
    for line in e.to_string().lines() {
        eprintln!("  - {line}");
    }
}
