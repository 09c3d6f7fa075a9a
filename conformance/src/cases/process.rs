//! The container process (config.md#process): args, env, cwd, user, umask, rlimits,
//! capabilities, noNewPrivileges, oomScoreAdj — checked by the probe from inside.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::{ChildGuard, case, ensure_failed, wait_for_file};
use crate::bundle::PROBE;
use crate::case::Case;
use crate::ctx::{Ctx, STATUS_TIMEOUT};
use crate::probe;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "process.args",
            "config.md#process",
            "args (array of strings, OPTIONAL) with similar semantics to IEEE Std 1003.1-2008 execvp's argv.",
            args
        ),
        case!(
            "process.env",
            "config.md#process",
            "env (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ.",
            env
        ),
        case!(
            "process.cwd",
            "config.md#process",
            "cwd (string, REQUIRED) is the working directory that will be set for the executable. This value MUST be an absolute path.",
            cwd
        ),
        case!(
            "process.terminal",
            "config.md#process; config-linux.md#default-devices",
            "terminal (bool, OPTIONAL) specifies whether a terminal is attached to the process ... /dev/console is set up if terminal is enabled in the config by bind mounting the pseudoterminal pty to /dev/console.",
            terminal
        ),
        case!(
            "process.user",
            "config.md#posix-platform-user",
            "uid (int, REQUIRED) specifies the user ID in the container namespace. gid (int, REQUIRED) specifies the group ID in the container namespace. additionalGids (array of ints, OPTIONAL) specifies additional group IDs in the container namespace to be added to the process.",
            user
        ),
        case!(
            "process.umask",
            "config.md#posix-platform-user",
            "umask (int, OPTIONAL) specifies the umask of the user.",
            umask
        ),
        case!(
            "process.rlimits",
            "config.md#posix-process",
            "soft (uint64, REQUIRED) the value of the limit enforced for the corresponding resource. hard (uint64, REQUIRED) the ceiling for the soft limit that could be set by an unprivileged process.",
            rlimits
        ),
        case!(
            "process.rlimits_duplicate_fails",
            "config.md#posix-process",
            "If rlimits contains duplicated entries with same type, the runtime MUST generate an error.",
            rlimits_duplicate_fails
        ),
        case!(
            "process.capabilities",
            "config.md#linux-process",
            "capabilities (object, OPTIONAL) is an object containing arrays that specifies the sets of capabilities for the process. ... effective ... bounding ... permitted ... inheritable ... ambient",
            capabilities
        ),
        case!(
            "process.capabilities_ambient",
            "config.md#linux-process",
            "ambient (array of strings, OPTIONAL) the ambient field is an array of the ambient capabilities that are kept for the process.",
            capabilities_ambient
        ),
        case!(
            "process.no_new_privileges",
            "config.md#linux-process",
            "noNewPrivileges (bool, OPTIONAL) setting noNewPrivileges to true prevents the process from gaining additional privileges.",
            no_new_privileges
        ),
        case!(
            "process.no_new_privileges_false",
            "config.md#linux-process",
            "noNewPrivileges (bool, OPTIONAL) setting noNewPrivileges to true prevents the process from gaining additional privileges (so false leaves the flag unset).",
            no_new_privileges_false
        ),
        case!(
            "process.oom_score_adj",
            "config.md#linux-process",
            "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value.",
            oom_score_adj
        ),
    ]
}

fn args(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let r = ctx.probe(&mut b, &["one", "two words", ""])?;
    let got = r.strings("args");
    ensure!(
        got == ["/bin/probe", "one", "two words", ""],
        "argv is {got:?}"
    );
    Ok(())
}

fn env(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let want = ["PATH=/bin", "ONE=1", "SPACED=a b", "EMPTY="];
    b.config["process"]["env"] = json!(want);
    let r = ctx.probe(&mut b, &[])?;
    let got = r.env();
    for w in want {
        ensure!(
            got.contains(&w),
            "{w:?} missing from the environment {got:?}"
        );
    }
    Ok(())
}

fn cwd(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.mkdir_in_rootfs("/work/dir")?;
    b.config["process"]["cwd"] = json!("/work/dir");
    let r = ctx.probe(&mut b, &[])?;
    ensure!(r.str("cwd")? == "/work/dir", "cwd is {:?}", r.str("cwd")?);
    Ok(())
}

fn user(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [10, 20] });
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.u64("uid")? == 1000 && r.u64("euid")? == 1000,
        "uid/euid are {}/{}",
        r.u64("uid")?,
        r.u64("euid")?
    );
    ensure!(
        r.u64("gid")? == 1001 && r.u64("egid")? == 1001,
        "gid/egid are {}/{}",
        r.u64("gid")?,
        r.u64("egid")?
    );
    let groups: Vec<u64> = r.0["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| g.as_u64()).collect())
        .unwrap_or_default();
    for g in [10, 20] {
        ensure!(
            groups.contains(&g),
            "supplementary groups {groups:?} lack {g}"
        );
    }
    ensure!(
        groups.iter().all(|g| [10, 20, 1001].contains(g)),
        "supplementary groups {groups:?} include groups that were not asked for"
    );
    Ok(())
}

fn umask(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["process"]["user"]["umask"] = json!(0o027);
    let r = ctx.probe(&mut b, &[])?;
    let got = r.u64("umask")?;
    ensure!(got == 0o027, "umask is {got:04o}, want 0027");
    Ok(())
}

fn rlimits(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 256, "hard": 512 },
        { "type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192 },
    ]);
    let r = ctx.probe(&mut b, &[])?;
    for (name, soft, hard) in [("RLIMIT_NOFILE", 256, 512), ("RLIMIT_MSGQUEUE", 4096, 8192)] {
        let got = &r.0["rlimits"][name];
        ensure!(
            got["soft"] == soft && got["hard"] == hard,
            "{name} is {got}, want soft {soft} hard {hard}"
        );
    }
    Ok(())
}

fn rlimits_duplicate_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["true"])?;
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 256, "hard": 512 },
        { "type": "RLIMIT_NOFILE", "soft": 128, "hard": 512 },
    ]);
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    ensure_failed(&out, "create with two RLIMIT_NOFILE entries")
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_KILL: u64 = 1 << 5;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

fn capabilities(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let set = ["CAP_CHOWN", "CAP_KILL"];
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": []
    });
    let r = ctx.probe(&mut b, &[])?;
    let want = CAP_CHOWN | CAP_KILL;
    for (key, want) in [
        ("CapBnd", want),
        ("CapEff", want),
        ("CapPrm", want),
        ("CapInh", 0),
        ("CapAmb", 0),
    ] {
        let got = r.cap_mask(key)?;
        ensure!(got == want, "{key} is {got:#x}, want {want:#x}");
    }
    Ok(())
}

fn capabilities_ambient(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let set = ["CAP_NET_BIND_SERVICE"];
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": set, "ambient": set
    });
    let r = ctx.probe(&mut b, &[])?;
    for key in ["CapAmb", "CapEff", "CapPrm", "CapInh", "CapBnd"] {
        let got = r.cap_mask(key)?;
        ensure!(
            got == CAP_NET_BIND_SERVICE,
            "{key} is {got:#x}, want {CAP_NET_BIND_SERVICE:#x} for uid 1000 with an ambient CAP_NET_BIND_SERVICE"
        );
    }
    Ok(())
}

fn no_new_privileges(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["process"]["noNewPrivileges"] = json!(true);
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.status("NoNewPrivs")? == "1",
        "NoNewPrivs is {}",
        r.status("NoNewPrivs")?
    );
    Ok(())
}

fn no_new_privileges_false(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["process"]["noNewPrivileges"] = json!(false);
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.status("NoNewPrivs")? == "0",
        "NoNewPrivs is {}",
        r.status("NoNewPrivs")?
    );
    Ok(())
}

fn oom_score_adj(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["process"]["oomScoreAdj"] = json!(123);
    let r = ctx.probe(&mut b, &[])?;
    let got = r.str("oom_score_adj")?.trim().to_owned();
    ensure!(got == "123", "oom_score_adj is {got:?}, want 123");
    Ok(())
}

fn terminal(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[PROBE, "/dev/console"])?;
    b.config["process"]["terminal"] = json!(true);
    b.save()?;
    let sock = ctx.dir().join("console.sock");
    let captured = ctx.dir().join("console.out");
    let helper = Command::new(ctx.console_helper())
        .arg(&sock)
        .arg(&captured)
        .arg("30")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the console-socket receiver")?;
    let mut helper = ChildGuard(helper);
    wait_for_file(&sock, Duration::from_secs(5)).context("the console socket never appeared")?;
    let id = ctx.new_id();
    let bundle = b.dir().to_str().context("utf-8")?.to_owned();
    let sock = sock.to_str().context("utf-8")?.to_owned();
    ctx.rt
        .run(&[
            "create",
            "--bundle",
            &bundle,
            "--console-socket",
            &sock,
            &id,
        ])?
        .ok()?;
    ctx.start(&id)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    helper.wait_timeout(Duration::from_secs(5));
    let text =
        fs::read_to_string(&captured).context("nothing was received on the console socket")?;
    let r = probe::parse(&text)?;
    ensure!(
        r.0["tty"] == json!([1, 1, 1]),
        "stdin/stdout/stderr are not all terminals: isatty = {}",
        r.0["tty"]
    );
    let console = r.path("/dev/console")?;
    ensure!(
        console["type"] == "char" && console["major"] == 136,
        "/dev/console is not the pseudoterminal (a /dev/pts character device, major 136): {console}"
    );
    Ok(())
}
