//! The serving shim: the daemonised child of `start`.
//!
//! Order matters here:
//! 1. `setsid(2)`: leave containerd's process group (containerd starts `start` with
//!    `Setpgid`), so signals to that group and a containerd restart leave the shim alone.
//! 2. Block SIGCHLD before any thread exists, so every thread inherits the mask and only the
//!    loop's signalfd sees it ([`crate::reaper`]).
//! 3. `PR_SET_CHILD_SUBREAPER` (prctl(2)): container processes outlive the runtime CLI that
//!    started them and must be reparented to the shim, not to init, so their exits are ours.
//! 4. Bind the socket (a racing `start` for the same group may have won: then exit), start the
//!    ttrpc server with the task service under both `containerd.task.v2.Task` (containerd
//!    1.6–2.x with a plain address) and `containerd.task.v3.Task`, and only then tell `start`
//!    we are ready.
//! 5. Run the event loop ([`crate::reaper`]: reaping, OOM watches) on the main thread until
//!    Shutdown, then remove the socket and exit.
//!
//! Threads, which decide most of a shim's private memory (docs/benchmarks.md, the shim section):
//! the main thread (the loop), `events` (the publisher), and the ttrpc server's listener,
//! connection reaper and, per connection (containerd keeps one per task), a handler, a reader, a
//! response writer and one idle worker, plus a worker per request in progress (a Wait blocks
//! one until its process exits); stdio copies and a console socket accept add theirs.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::IntoRawFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};

use anyhow::Context as _;
use containerd_shim_protos::create_task;
use containerd_shim_protos::ttrpc::{self, MethodHandler};

use crate::args::Args;
use crate::events::{Publisher, Target};
use crate::reaper::{self, Reaper};
use crate::service::Service;
use crate::start::READY;

/// The task service names this shim answers to.
const TASK_SERVICES: [&str; 2] = ["containerd.task.v2.Task", "containerd.task.v3.Task"];
/// The service name the generated code registers.
const GENERATED_SERVICE: &str = "containerd.task.v3.Task";
/// The stack of the shim's own threads (events, stdio copies, console accept): they run
/// shallow code, and std's 2 MiB default only reserves address space anyway.
pub const THREAD_STACK: usize = 128 * 1024;

/// Serves until Shutdown.
pub fn serve(args: &Args) -> anyhow::Result<()> {
    nix::unistd::setsid().context("setsid")?;
    reaper::block_sigchld().context("blocking SIGCHLD")?;
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;

    let path = args
        .socket
        .strip_prefix("unix://")
        .context("-socket must be a unix:// address")?
        .to_string();
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // Another shim of this group won the race; `start` prints its address.
                tell_ready()?;
                return Ok(());
            }
            std::fs::remove_file(&path).with_context(|| format!("removing stale {path}"))?;
            UnixListener::bind(&path).with_context(|| format!("binding {path}"))?
        }
        Err(e) => return Err(e).with_context(|| format!("binding {path}")),
    };
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));

    let reaper = Reaper::new().context("creating the event loop")?;
    let target = Target {
        namespace: args.namespace.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        publish_binary: args.publish_binary.clone(),
        grpc_address: args.address.clone(),
    };
    let events = Publisher::start(target, reaper.clone()).context("starting the publisher")?;
    let service = Service::new(&args.namespace, reaper.clone(), events);

    // Per connection one idle worker, instead of ttrpc's 3 to 5: a worker that takes a request
    // has the next one spawned at once (the pool never drops below `min` idle), so a blocked
    // Wait never starves other requests, and a worker that finds another one idle exits
    // (`max`). `start_listen` because `start` insists on min < default < max.
    let mut server = ttrpc::Server::new()
        .add_listener(listener.into_raw_fd())
        .context("handing the socket to ttrpc")?
        .set_thread_count_default(1)
        .set_thread_count_min(1)
        .set_thread_count_max(1);
    for name in TASK_SERVICES {
        server = server.register_service(task_methods(&service, name));
    }
    server.start_listen().context("starting the ttrpc server")?;
    tracing::info!(socket = %args.socket, "serving");
    tell_ready()?;

    reaper.run(&*service).context("the event loop")?;
    tracing::info!("shutting down");
    let _ = std::fs::remove_file(&path);
    // Let the Shutdown response go out before the process ends.
    std::thread::sleep(std::time::Duration::from_millis(20));
    Ok(())
}

/// The generated handlers, renamed from `/containerd.task.v3.Task/<M>` to `/<service>/<M>`.
fn task_methods(
    service: &std::sync::Arc<Service>,
    name: &str,
) -> HashMap<String, Box<dyn MethodHandler + Send + Sync>> {
    let generated = format!("/{GENERATED_SERVICE}/");
    create_task(service.clone())
        .into_iter()
        .map(|(path, handler)| {
            let method = path.strip_prefix(&generated).unwrap_or(&path).to_string();
            (format!("/{name}/{method}"), handler)
        })
        .collect()
}

/// Tells `start` we serve: `ok`, then stdout goes to /dev/null so `start` sees EOF.
fn tell_ready() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(READY.as_bytes())?;
    out.flush()?;
    drop(out);
    let null = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    nix::unistd::dup2_stdout(&null).context("closing the readiness pipe")?;
    Ok(())
}
