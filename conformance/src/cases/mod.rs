//! The registry: every case, grouped by the part of the runtime-spec it checks.
//!
//! Each module's `cases()` lists its cases with the spec section they cite and the spec's
//! words they check. Names are `group.case`; the group is the spec area.

use std::path::Path;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

use crate::case::Case;
use crate::runtime::Output;

mod cgroups;
mod exec;
mod fs;
mod hooks;
mod lifecycle;
mod namespaces;
mod process;
mod runc_cli;
mod security;
mod signals;

/// Every case, in the order they are reported.
pub fn all() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(lifecycle::cases());
    all.extend(process::cases());
    all.extend(fs::cases());
    all.extend(namespaces::cases());
    all.extend(signals::cases());
    all.extend(hooks::cases());
    all.extend(security::cases());
    all.extend(exec::cases());
    all.extend(cgroups::cases());
    all.extend(runc_cli::cases());
    all
}

/// Builds a [`Case`].
macro_rules! case {
    ($name:literal, $spec:literal, $quote:literal, $run:path) => {
        $crate::case::Case {
            name: $name,
            spec: $spec,
            quote: $quote,
            run: $run,
        }
    };
}
pub(crate) use case;

/// Fails unless the runtime command failed (the spec requires an error).
pub fn ensure_failed(out: &Output, what: &str) -> anyhow::Result<()> {
    ensure!(
        !out.success(),
        "{what} succeeded (`{}`), but the spec requires an error",
        out.argv
    );
    Ok(())
}

/// Waits until `path` exists, for at most `timeout`.
pub fn wait_for_file(path: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    bail!("{} did not appear within {timeout:?}", path.display())
}

/// A helper process the case spawned, killed (by its handle) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits for the process to exit, for at most `timeout`; true if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
