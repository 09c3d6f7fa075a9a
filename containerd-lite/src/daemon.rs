//! The daemon: the data-root lock, opening the stores, the unix-socket listeners and the
//! graceful shutdown.
//!
//! Start-up order: create `--data-root` and take an exclusive `flock(2)` on
//! `<data-root>/skiffd.lock` (a second daemon on the same root fails here, before it touches
//! anything); open the metadata database, content store and snapshotter; run the recovery
//! (drop dead ingests, remove orphan snapshot dirs, collect garbage); only then replace stale
//! sockets and listen. Shutdown: stop accepting, let open connections finish (bounded), remove
//! the sockets; the lock goes with the process.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;

use crate::api::docker::{ApiState, handle};
use crate::content::ContentStore;
use crate::images::ImageService;
use crate::metadata::MetadataStore;
use crate::snapshots::Snapshotter;

/// How long open connections may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The daemon's configuration (the flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state (`/var/lib/skiff`).
    pub data_root: PathBuf,
    /// Runtime state (`/run/skiffd`).
    pub exec_root: PathBuf,
    /// Unix socket paths to serve the Docker API on.
    pub sockets: Vec<PathBuf>,
    /// OCI runtimes by name (`skiff`, `runc`, `crun`, …).
    pub runtimes: std::collections::BTreeMap<String, PathBuf>,
    /// The runtime used when `--runtime` is not given.
    pub default_runtime: String,
    /// The shim binary (containerd shim v2).
    pub shim: PathBuf,
    /// The init of `--init` containers (`skiff-init`); None when none was found.
    pub init: Option<PathBuf>,
}

/// Errors while starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another skiffd holds the data root.
    #[error("data root {0} is in use by another skiffd (lock held on skiffd.lock)")]
    Locked(PathBuf),
    /// A `-H` value that is not `unix://PATH`.
    #[error("unsupported host {0:?}: only unix://PATH is supported")]
    Host(String),
    /// A filesystem step failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A store failed to open.
    #[error("open {what}")]
    Store {
        /// Which store.
        what: &'static str,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

fn store_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> Error {
    move |e| Error::Store {
        what,
        source: Box::new(e),
    }
}

/// Parses `-H unix:///run/skiffd/docker.sock` (a bare absolute path is accepted too).
pub fn parse_host(h: &str) -> Result<PathBuf, Error> {
    match h.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        None if h.starts_with('/') => Ok(PathBuf::from(h)),
        _ => Err(Error::Host(h.to_owned())),
    }
}

/// Takes the exclusive lock on the data root.
pub fn lock_data_root(data_root: &Path) -> Result<Flock<File>, Error> {
    fs::create_dir_all(data_root).map_err(io_err("create", data_root))?;
    let path = data_root.join("skiffd.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            Error::Locked(data_root.to_owned())
        } else {
            Error::Io {
                op: "flock",
                path,
                source: errno.into(),
            }
        }
    })
}

/// Opens the stores under `data_root` and recovers from an unclean stop.
pub fn open_images(data_root: &Path) -> Result<ImageService, Error> {
    let meta =
        Arc::new(MetadataStore::open(&data_root.join("meta.redb")).map_err(store_err("metadata"))?);
    open_images_with(data_root, meta)
}

fn open_images_with(data_root: &Path, meta: Arc<MetadataStore>) -> Result<ImageService, Error> {
    let content =
        ContentStore::open(data_root.join("content")).map_err(store_err("content store"))?;
    let snapshots = Snapshotter::open(data_root.join("snapshots/overlay"), meta.clone())
        .map_err(store_err("snapshotter"))?;
    let svc = ImageService::new(content, snapshots, meta);
    let stats = svc.recover().map_err(store_err("recovery"))?;
    if stats.blobs + stats.snapshots > 0 {
        tracing::info!(
            blobs = stats.blobs,
            snapshots = stats.snapshots,
            "removed leftovers of an unclean stop"
        );
    }
    Ok(svc)
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let started = Instant::now();
    let _lock = lock_data_root(&config.data_root)?;
    fs::create_dir_all(&config.exec_root).map_err(io_err("create", &config.exec_root))?;
    let data_root = config.data_root.clone();
    let (meta, images) = tokio::task::spawn_blocking(move || {
        let meta = Arc::new(
            MetadataStore::open(&data_root.join("meta.redb")).map_err(store_err("metadata"))?,
        );
        let images = open_images_with(&data_root, meta.clone())?;
        Ok::<_, Error>((meta, images))
    })
    .await
    .map_err(|e| Error::Store {
        what: "stores",
        source: Box::new(e),
    })??;
    let images = Arc::new(images);
    let events = Arc::new(crate::events::EventLog::new());
    let ttrpc_socket = config.exec_root.join("skiffd.sock.ttrpc");
    let (event_server, shim_events) =
        crate::tasks::EventServer::start(&ttrpc_socket).map_err(store_err("shim event server"))?;
    let publish_binary = std::env::current_exe().map_err(io_err("locate", Path::new("skiffd")))?;
    let runtime = crate::containers::RuntimeConfig {
        runtimes: config.runtimes.clone(),
        default: config.default_runtime.clone(),
        shim: crate::tasks::ShimConfig {
            binary: config.shim.clone(),
            address: ttrpc_socket.clone(),
            ttrpc_address: ttrpc_socket,
            publish_binary,
            runtime_root: config.exec_root.join("runtime"),
        },
        init: config.init.clone(),
    };
    let containers = Arc::new(
        crate::containers::ContainerService::new(
            meta,
            images.clone(),
            events.clone(),
            &config.data_root,
            runtime,
        )
        .map_err(store_err("containers"))?,
    );
    let (reconnected, settled) = containers
        .recover()
        .await
        .map_err(store_err("container recovery"))?;
    if reconnected + settled > 0 {
        tracing::info!(reconnected, settled, "containers of a previous skiffd");
    }
    tokio::spawn(containers.clone().run(shim_events));
    match containers.restart_by_policy().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(containers = n, "restarted by policy"),
        Err(e) => tracing::error!(error = %e, "restart policies"),
    }
    let state = Arc::new(ApiState {
        images,
        containers,
        events,
        data_root: config.data_root.clone(),
        started,
    });

    let mut listeners = Vec::new();
    for path in &config.sockets {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        // We hold the data-root lock, so a socket file here is a dead daemon's.
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove stale socket", path)(e)),
        }
        let l = UnixListener::bind(path).map_err(io_err("listen on", path))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660))
            .map_err(io_err("chmod", path))?;
        listeners.push(l);
    }
    tracing::info!(
        sockets = ?config.sockets,
        data_root = %config.data_root.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "skiffd ready"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut accept_tasks = Vec::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel::<tokio::net::UnixStream>(64);
    for l in listeners {
        let mut stop = stop_rx.clone();
        let tx = conn_tx.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    r = l.accept() => match r {
                        Ok((s, _)) => {
                            if tx.send(s).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            }
        }));
    }
    drop(conn_tx);
    // Connections are served with upgrades (attach and exec hijack the connection). hyper-util's
    // GracefulShutdown does not take upgradeable connections, so each connection watches the
    // stop signal itself and the count of open ones is tracked here.
    let open = Arc::new(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            s = conn_rx.recv() => {
                let Some(stream) = s else { break };
                let st = state.clone();
                let mut stop = stop_rx.clone();
                let token = open.clone();
                tokio::spawn(async move {
                    let _token = token;
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |req| handle(st.clone(), req)),
                        )
                        .with_upgrades();
                    tokio::pin!(conn);
                    let r = tokio::select! {
                        r = conn.as_mut() => r,
                        () = crate::containers::io::wait_true(&mut stop) => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while Arc::strong_count(&open) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Arc::strong_count(&open) > 1 {
        tracing::warn!("connections still open after the grace period; closing them");
    }
    drop(event_server);
    for path in &config.sockets {
        let _ = fs::remove_file(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            parse_host("unix:///run/skiffd/docker.sock").unwrap(),
            PathBuf::from("/run/skiffd/docker.sock")
        );
        assert!(parse_host("tcp://127.0.0.1:2375").is_err());
        assert!(parse_host("unix://relative").is_err());
    }

    #[test]
    fn second_lock_on_one_root_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _first = lock_data_root(dir.path()).unwrap();
        let err = lock_data_root(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Locked(_)), "{err}");
    }
}
