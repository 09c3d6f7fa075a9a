//! Signals (runtime.md#kill): `kill <container-id> <signal>` with the signal given by name
//! and by number, each reaching the container process.

use anyhow::Context as _;

use super::{case, wait_for_file};
use crate::case::Case;
use crate::ctx::{Ctx, STATUS_TIMEOUT};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "signals.by_name",
            "runtime.md#kill; runc CLI: kill ID SIGNAL",
            "kill <container-id> <signal> ... This operation MUST send the specified signal to the container process. (runc's CLI takes the signal as a name, with or without SIG: HUP, SIGUSR2)",
            by_name
        ),
        case!(
            "signals.by_number",
            "runtime.md#kill; runc CLI: kill ID SIGNAL",
            "kill <container-id> <signal> ... This operation MUST send the specified signal to the container process. (runc's CLI takes the signal as a number: 1, 12)",
            by_number
        ),
    ]
}

/// A container whose shell records SIGHUP and SIGUSR2; `hup` and `usr2` are how the case
/// names them to `kill`.
fn deliver(ctx: &mut Ctx, hup: &str, usr2: &str) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh(
        "trap 'touch /got-hup' HUP; trap 'touch /got-usr2; exit 0' USR2; touch /ready; \
         while true; do sleep 0.05; done",
    );
    let (id, _) = ctx.start_running(&b)?;
    wait_for_file(&b.rootfs().join("ready"), STATUS_TIMEOUT)?;
    ctx.rt.run(&["kill", &id, hup])?.ok()?;
    wait_for_file(&b.rootfs().join("got-hup"), STATUS_TIMEOUT)
        .with_context(|| format!("the container process did not get `kill {hup}` (SIGHUP)"))?;
    ctx.rt.run(&["kill", &id, usr2])?.ok()?;
    wait_for_file(&b.rootfs().join("got-usr2"), STATUS_TIMEOUT)
        .with_context(|| format!("the container process did not get `kill {usr2}` (SIGUSR2)"))?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)
}

fn by_name(ctx: &mut Ctx) -> anyhow::Result<()> {
    deliver(ctx, "HUP", "SIGUSR2")
}

fn by_number(ctx: &mut Ctx) -> anyhow::Result<()> {
    deliver(ctx, "1", "12")
}
