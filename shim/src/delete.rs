//! The `delete` action: containerd runs it after every task delete and when a shim died
//! (`reference/containerd-shim-and-store.md` §1.7). It force-deletes the container with the
//! runtime recorded in `<bundle>/options.json`, unmounts `<bundle>/rootfs`, and prints a
//! protobuf `DeleteResponse` with exit status 128 + SIGKILL, as the Go runc shim does. For a
//! grouped shim it touches only this container, never the shared serving shim.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::{Message as _, MessageField};

use crate::args::Args;
use crate::events::timestamp;
use crate::mounts;
use crate::runtime::{Runtime, RuntimeOptions, Waiter};

/// `128 + SIGKILL`: what containerd reports for a task whose shim had to be cleaned up.
pub const KILLED_STATUS: u32 = 137;

/// Runs `delete`; returns the encoded `DeleteResponse`.
pub fn delete(args: &Args) -> anyhow::Result<Vec<u8>> {
    let bundle = if args.bundle.is_empty() {
        std::env::current_dir().context("getting the bundle (working directory)")?
    } else {
        PathBuf::from(&args.bundle)
    };
    let options = RuntimeOptions::load(&bundle);
    let runtime = Runtime::new(&options, &args.namespace, &bundle, Waiter::Direct);
    // Failures are reported on stderr (containerd logs it) and do not stop the cleanup.
    if let Err(e) = runtime.delete(&args.id, true) {
        eprintln!("skiff shim delete {}: {e}", args.id);
    }
    if let Err(e) = mounts::unmount_all(&bundle.join("rootfs")) {
        eprintln!("skiff shim delete {}: {e}", args.id);
    }
    let pid = std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let response = DeleteResponse {
        pid,
        exit_status: KILLED_STATUS,
        exited_at: MessageField::some(timestamp(SystemTime::now())),
        ..Default::default()
    };
    response
        .write_to_bytes()
        .context("encoding the DeleteResponse")
}
