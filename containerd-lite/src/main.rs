//! `skiffd`: parse flags, set up logging, run the daemon until SIGTERM/SIGINT.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use skiffd::daemon::{self, Config};

/// skiffd: the Skiff daemon (Docker Engine API 1.44 on a unix socket).
#[derive(Debug, Parser)]
#[command(name = "skiffd", version)]
struct Cli {
    /// Root of persistent state.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_root: PathBuf,
    /// Root of runtime state (sockets, shim state).
    #[arg(long, default_value = "/run/skiffd")]
    exec_root: PathBuf,
    /// Socket to listen on (unix://PATH); repeatable.
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiffd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let hosts = if cli.hosts.is_empty() {
        vec!["unix:///run/skiffd/docker.sock".to_owned()]
    } else {
        cli.hosts
    };
    let sockets = hosts
        .iter()
        .map(|h| daemon::parse_host(h))
        .collect::<Result<Vec<_>, _>>()?;
    let config = Config {
        data_root: cli.data_root,
        exec_root: cli.exec_root,
        sockets,
    };
    // One thread for the API; store work runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(8)
        .thread_keep_alive(std::time::Duration::from_secs(10))
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM"),
                        _ = int.recv() => tracing::info!("SIGINT"),
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        daemon::run(config, shutdown).await
    })?;
    Ok(())
}
