//! `skiffd`: parse flags, set up logging, run the daemon until SIGTERM/SIGINT.

use std::path::{Path, PathBuf};

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
    /// The containerd shim v2 binary tasks run under: a path, or a name looked up next to
    /// skiffd, then on PATH (`containerd-shim-runc-v2` runs the stock Go shim).
    #[arg(long, default_value = DEFAULT_SHIM)]
    shim: PathBuf,
    /// The init `--init` runs as the container's pid 1 (default: `skiff-init` next to skiffd,
    /// then on PATH).
    #[arg(long)]
    init_path: Option<PathBuf>,
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

/// Our shim, `containerd-shim-skiff-v2` (crate `shim/`).
const DEFAULT_SHIM: &str = "containerd-shim-skiff-v2";
/// Our init for `--init` (crate `init/`).
const DEFAULT_INIT: &str = "skiff-init";

/// A binary next to skiffd (the install layout of `scripts/build-static.sh` and of cargo's
/// target directory).
fn next_to_me(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
}

/// A flag naming a binary: a path is taken as is; a bare name is looked up next to skiffd,
/// then on PATH.
fn find_binary(flag: &Path) -> Option<PathBuf> {
    if flag.components().count() > 1 {
        return Some(flag.to_owned());
    }
    let name = flag.to_string_lossy();
    next_to_me(&name).or_else(|| find_on_path(&name))
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
    for (name, extra) in [
        ("skiff", next_to_me("skiff")),
        ("runc", None),
        ("crun", None),
    ] {
        if let Some(p) = find_on_path(name).or(extra) {
            runtimes.insert(name.to_owned(), p);
        }
    }
    for r in &cli.add_runtime {
        let (name, path) = r
            .split_once('=')
            .with_context(|| format!("--add-runtime {r:?}: expected NAME=PATH"))?;
        // The shim runs the runtime from the bundle's directory: make the path absolute.
        let path = std::path::absolute(path)
            .with_context(|| format!("--add-runtime {r:?}: cannot make {path:?} absolute"))?;
        runtimes.insert(name.to_owned(), path);
    }
    // A missing shim is reported when a container starts: image work needs none.
    let shim = find_binary(&cli.shim).unwrap_or_else(|| {
        tracing::warn!(shim = %cli.shim.display(), "shim not found next to skiffd or on PATH; containers cannot start");
        cli.shim.clone()
    });
    // A missing init fails `--init` containers only. The init runs inside containers whose
    // rootfs may have no dynamic loader (busybox), so only a static binary will do.
    let init = match &cli.init_path {
        Some(p) => {
            if !is_static_elf(p).with_context(|| format!("--init-path {}", p.display()))? {
                anyhow::bail!(
                    "--init-path {}: the init must be statically linked (it runs inside containers that may have no dynamic loader); build it with scripts/build-static.sh",
                    p.display()
                );
            }
            // Bind-mounted from the bundle's directory: it must be absolute.
            Some(
                std::fs::canonicalize(p)
                    .with_context(|| format!("--init-path {}", p.display()))?,
            )
        }
        None => find_binary(Path::new(DEFAULT_INIT)).filter(|p| {
            let ok = is_static_elf(p).unwrap_or(false);
            if !ok {
                tracing::warn!(init = %p.display(), "found an init that is not statically linked; --init is unavailable (scripts/build-static.sh builds one; pass it with --init-path)");
            }
            ok
        }),
    };
    if let Some(p) = &init {
        tracing::debug!(init = %p.display(), "init for --init");
    }
    let config = Config {
        data_root: cli.data_root,
        exec_root: cli.exec_root,
        sockets,
        runtimes,
        default_runtime: cli.default_runtime,
        shim,
        init,
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

/// True if `path` is an ELF executable without a `PT_INTERP` program header (needs no dynamic
/// loader). Reads the 64-bit little-endian layout of the machines Skiff runs on.
fn is_static_elf(path: &Path) -> std::io::Result<bool> {
    let image = std::fs::read(path)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a 64-bit ELF file");
    if image.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return Err(bad());
    }
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(image.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(image.get(at..at + 8)?.try_into().ok()?))
    };
    const PT_INTERP: u32 = 3;
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    for i in 0..phnum {
        let typ = u32_at(phoff + i * phentsize).ok_or_else(bad)?;
        if typ == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod init_tests {
    use super::*;

    #[test]
    fn dynamic_and_static_binaries_are_told_apart() {
        // This test binary is dynamically linked; busybox-static is not.
        let me = std::env::current_exe().expect("test binary");
        assert!(!is_static_elf(&me).expect("an ELF file"));
        assert!(is_static_elf(Path::new("/bin/busybox")).expect("busybox-static"));
        assert!(is_static_elf(Path::new("/etc/hostname")).is_err());
    }
}
