//! seccomp (config-linux.md#seccomp): the filter is installed, actions return the configured
//! errno, and argument operators select by argument. Checked by the probe, which calls
//! getpgid(0), getpriority(PRIO_PROCESS, 0) and getpriority(PRIO_PGRP, 0).

use anyhow::ensure;
use serde_json::{Value, json};

use super::case;
use crate::case::Case;
use crate::ctx::Ctx;

const EPERM: i64 = 1;
const EACCES: i64 = 13;
const EDOM: i64 = 33;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "seccomp.errno_ret",
            "config-linux.md#seccomp",
            "errnoRet (uint, OPTIONAL) - the errno return code to use. Some actions like SCMP_ACT_ERRNO and SCMP_ACT_TRACE allow to specify the errno code to return.",
            errno_ret
        ),
        case!(
            "seccomp.errno_default_eperm",
            "config-linux.md#seccomp",
            "errnoRet ... If not specified then its default value is EPERM.",
            errno_default_eperm
        ),
        case!(
            "seccomp.kill_action",
            "config-linux.md#seccomp",
            "action (string, REQUIRED) - the action for seccomp rules. A valid list of constants as of libseccomp v2.5.0 is shown below. SCMP_ACT_KILL ...",
            kill_action
        ),
        case!(
            "seccomp.arg_operator",
            "config-linux.md#seccomp",
            "args (array of objects, OPTIONAL) - the specific syscall in seccomp. ... index (uint, REQUIRED) ... value (uint64, REQUIRED) ... op (string, REQUIRED) ... SCMP_CMP_EQ",
            arg_operator
        ),
    ]
}

fn filter(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

fn errno_ret(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": EDOM }
    ]));
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.status("Seccomp")? == "2",
        "Seccomp mode is {}, want 2 (filter)",
        r.status("Seccomp")?
    );
    let got = r.syscall("getpgid")?;
    ensure!(
        got == EDOM,
        "getpgid failed with errno {got}, want errnoRet {EDOM}"
    );
    ensure!(
        r.syscall("getpriority_process")? == 0,
        "an unfiltered syscall failed"
    );
    Ok(())
}

fn errno_default_eperm(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_ERRNO" }
    ]));
    let r = ctx.probe(&mut b, &[])?;
    let got = r.syscall("getpgid")?;
    ensure!(
        got == EPERM,
        "getpgid failed with errno {got}, want EPERM ({EPERM})"
    );
    Ok(())
}

fn kill_action(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[crate::bundle::PROBE])?;
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_KILL" }
    ]));
    // Killed at getpgid, the probe never finishes its report (at most a truncated prefix
    // reaches the file, since its stdout is fully buffered).
    let out = ctx.run_to_exit(&b)?;
    if let Ok(r) = crate::probe::parse(&out) {
        anyhow::bail!(
            "the probe survived getpgid under SCMP_ACT_KILL (errno {})",
            r.syscall("getpgid").unwrap_or(-1)
        );
    }
    Ok(())
}

fn arg_operator(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    // PRIO_PGRP is 1: only getpriority(PRIO_PGRP, ...) is refused.
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES,
          "args": [ { "index": 0, "value": 1, "op": "SCMP_CMP_EQ" } ] }
    ]));
    let r = ctx.probe(&mut b, &[])?;
    let pgrp = r.syscall("getpriority_pgrp")?;
    let process = r.syscall("getpriority_process")?;
    ensure!(
        pgrp == EACCES,
        "getpriority(PRIO_PGRP) gave errno {pgrp}, want {EACCES}"
    );
    ensure!(
        process == 0,
        "getpriority(PRIO_PROCESS) gave errno {process}: the argument was not compared"
    );
    Ok(())
}
