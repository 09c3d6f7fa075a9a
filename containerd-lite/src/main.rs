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
    /// An OCI runtime `NAME=PATH` (repeatable; `skiff`, `runc` and `crun` are found on PATH,
    /// and `skiff` also next to skiffd).
    #[arg(long = "add-runtime")]
    add_runtime: Vec<String>,
    /// The runtime of containers created without `--runtime`.
    #[arg(long, default_value = "skiff")]
    default_runtime: String,
    /// The containerd shim v2 binary tasks run under.
    #[arg(long, default_value = "containerd-shim-runc-v2")]
    shim: PathBuf,
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

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
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
    let mut runtimes = std::collections::BTreeMap::new();
    let next_to_me = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("skiff")));
    for (name, extra) in [("skiff", next_to_me), ("runc", None), ("crun", None)] {
        if let Some(p) = find_on_path(name).or(extra.filter(|p| p.is_file())) {
            runtimes.insert(name.to_owned(), p);
        }
    }
    for r in &cli.add_runtime {
        let (name, path) = r
            .split_once('=')
            .with_context(|| format!("--add-runtime {r:?}: expected NAME=PATH"))?;
        runtimes.insert(name.to_owned(), PathBuf::from(path));
    }
    // A missing shim is reported when a container starts: image work needs none.
    let shim = if cli.shim.components().count() > 1 {
        cli.shim
    } else {
        find_on_path(&cli.shim.to_string_lossy()).unwrap_or_else(|| {
            tracing::warn!(shim = %cli.shim.display(), "shim not found on PATH; containers cannot start");
            cli.shim.clone()
        })
    };
    let config = Config {
        data_root: cli.data_root,
        exec_root: cli.exec_root,
        sockets,
        runtimes,
        default_runtime: cli.default_runtime,
        shim,
    };
    // One thread for the API; store work runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(8)
        .thread_keep_alive(std::time::Duration::from_secs(10))
        .build()
        .context("start the async runtime")?;
    let result = rt.block_on(async {
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
    });
    // Blocking work still running (a shim call that hangs) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result?;
    Ok(())
}
