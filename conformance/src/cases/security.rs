//! seccomp (config-linux.md#seccomp): the filter is installed, each action does what it
//! names, errno values (per rule and default) are returned, every argument operator selects by
//! argument, flags are accepted and an unknown action is refused. Checked by the probe, which
//! calls getpgid(0) and getpriority(PRIO_PROCESS | PRIO_PGRP | PRIO_USER, 0), and catches
//! SIGSYS to tell SCMP_ACT_TRAP from SCMP_ACT_KILL.

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::{case, ensure_failed};
use crate::case::Case;
use crate::ctx::Ctx;

const EPERM: i64 = 1;
const EACCES: i64 = 13;
const EDOM: i64 = 33;
/// `si_code` of a SIGSYS sent by SECCOMP_RET_TRAP (seccomp(2)).
const SYS_SECCOMP: u64 = 1;
/// getpgid on x86_64 (asm/unistd_64.h).
const NR_GETPGID: u64 = 121;

/// System calls a static program and the runtimes' last steps before execve need, for the
/// filter whose default action is SCMP_ACT_ERRNO: the unconditional allow list of moby's
/// default profile (x86_64 names only), plus clone, clone3, socket, arch_prctl and
/// personality, minus getpgid (the call the case checks).
const ALLOW_LIST: &str = "
    accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir chmod chown
    clock_adjtime clock_getres clock_gettime clock_nanosleep clone clone3 close close_range
    connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve
    execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork
    fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex futex_waitv futimesat
    get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid geteuid getgid
    getgroups getitimer getpeername getpgrp getpid getppid getpriority getrandom getresgid
    getresuid getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday getuid
    getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy
    io_getevents io_pgetevents io_setup io_submit ioctl ioprio_get ioprio_set kill
    landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lgetxattr link
    linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise membarrier
    memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
    mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap
    msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
    newfstatat open openat openat2 pause personality pidfd_open pidfd_send_signal pipe pipe2
    pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64
    process_mrelease pselect6 pwrite64 pwritev pwritev2 read readahead readlink readlinkat
    readv recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max
    sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
    sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler
    sched_yield seccomp select semctl semget semop semtimedop sendfile sendmmsg sendmsg sendto
    set_robust_list set_thread_area set_tid_address setfsgid setfsuid setgid setgroups
    setitimer setpgid setpriority setregid setresgid setresuid setreuid setrlimit setsid
    setsockopt setuid setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 socket socketpair splice stat statfs statx symlink symlinkat sync sync_file_range
    syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
    timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill truncate umask
    uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid write writev
";

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
        case!(
            "seccomp.arg_op_ne",
            "config-linux.md#seccomp",
            "op (string, REQUIRED) - the operator for syscall arguments in seccomp. A valid list of constants as of libseccomp v2.3.2 is shown below. SCMP_CMP_NE",
            arg_op_ne
        ),
        case!(
            "seccomp.arg_op_lt",
            "config-linux.md#seccomp",
            "op (string, REQUIRED) - the operator for syscall arguments in seccomp. ... SCMP_CMP_LT",
            arg_op_lt
        ),
        case!(
            "seccomp.arg_op_le",
            "config-linux.md#seccomp",
            "op (string, REQUIRED) - the operator for syscall arguments in seccomp. ... SCMP_CMP_LE",
            arg_op_le
        ),
        case!(
            "seccomp.arg_op_gt",
            "config-linux.md#seccomp",
            "op (string, REQUIRED) - the operator for syscall arguments in seccomp. ... SCMP_CMP_GT",
            arg_op_gt
        ),
        case!(
            "seccomp.arg_op_ge",
            "config-linux.md#seccomp",
            "op (string, REQUIRED) - the operator for syscall arguments in seccomp. ... SCMP_CMP_GE",
            arg_op_ge
        ),
        case!(
            "seccomp.arg_op_masked_eq",
            "config-linux.md#seccomp",
            "value (uint64, REQUIRED) - the value for syscall arguments in seccomp. valueTwo (uint64, OPTIONAL) - the value for syscall arguments in seccomp. op ... SCMP_CMP_MASKED_EQ (libseccomp: (arg & value) == valueTwo)",
            arg_op_masked_eq
        ),
        case!(
            "seccomp.trap_action",
            "config-linux.md#seccomp",
            "action (string, REQUIRED) - the action for seccomp rules. ... SCMP_ACT_TRAP (seccomp(2): the system call is not executed and the process gets SIGSYS with si_code SYS_SECCOMP)",
            trap_action
        ),
        case!(
            "seccomp.log_action",
            "config-linux.md#seccomp",
            "action (string, REQUIRED) - the action for seccomp rules. ... SCMP_ACT_LOG (seccomp(2): the system call is allowed after being logged)",
            log_action
        ),
        case!(
            "seccomp.default_errno_ret",
            "config-linux.md#seccomp",
            "defaultAction (string, REQUIRED) - the default action for seccomp. ... defaultErrnoRet (uint, OPTIONAL) - the errno return code to use. Some actions like SCMP_ACT_ERRNO and SCMP_ACT_TRACE allow to specify the errno code to return.",
            default_errno_ret
        ),
        case!(
            "seccomp.flag_log",
            "config-linux.md#seccomp",
            "flags (array of strings, OPTIONAL) - list of flags to use with seccomp(2). A valid list of constants is shown below. SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            flag_log
        ),
        case!(
            "seccomp.unknown_action_fails",
            "config-linux.md#seccomp; runtime.md#create",
            "action (string, REQUIRED) - the action for seccomp rules. A valid list of constants as of libseccomp v2.5.0 is shown below. ... If the runtime cannot apply a property as specified in the configuration, it MUST generate an error and a new container MUST NOT be created.",
            unknown_action_fails
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

/// Runs the probe under a filter that refuses getpriority with EACCES when argument 0 (which:
/// PRIO_PROCESS 0, PRIO_PGRP 1, PRIO_USER 2) matches `op` against `value` (and `value_two`),
/// and checks which of the three calls were refused.
fn arg_op(
    ctx: &mut Ctx,
    op: &str,
    value: u64,
    value_two: Option<u64>,
    refused: [bool; 3],
) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let mut arg = json!({ "index": 0, "value": value, "op": op });
    if let Some(two) = value_two {
        arg["valueTwo"] = json!(two);
    }
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES,
          "args": [arg] }
    ]));
    let r = ctx.probe(&mut b, &[])?;
    let calls = [
        ("PRIO_PROCESS (0)", "getpriority_process"),
        ("PRIO_PGRP (1)", "getpriority_pgrp"),
        ("PRIO_USER (2)", "getpriority_user"),
    ];
    for ((which, key), want_refused) in calls.into_iter().zip(refused) {
        let got = r.syscall(key)?;
        let want = if want_refused { EACCES } else { 0 };
        ensure!(
            got == want,
            "{op} value {value}{}: getpriority({which}) gave errno {got}, want {want}",
            value_two
                .map(|v| format!(" valueTwo {v}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn arg_op_ne(ctx: &mut Ctx) -> anyhow::Result<()> {
    arg_op(ctx, "SCMP_CMP_NE", 1, None, [true, false, true])
}

fn arg_op_lt(ctx: &mut Ctx) -> anyhow::Result<()> {
    arg_op(ctx, "SCMP_CMP_LT", 1, None, [true, false, false])
}

fn arg_op_le(ctx: &mut Ctx) -> anyhow::Result<()> {
    arg_op(ctx, "SCMP_CMP_LE", 1, None, [true, true, false])
}

fn arg_op_gt(ctx: &mut Ctx) -> anyhow::Result<()> {
    arg_op(ctx, "SCMP_CMP_GT", 1, None, [false, false, true])
}

fn arg_op_ge(ctx: &mut Ctx) -> anyhow::Result<()> {
    arg_op(ctx, "SCMP_CMP_GE", 1, None, [false, true, true])
}

fn arg_op_masked_eq(ctx: &mut Ctx) -> anyhow::Result<()> {
    // (which & 3) == 2 holds for PRIO_USER only. Swapping mask and datum (mask 2, datum 3)
    // matches nothing, and dropping valueTwo (datum 0) matches PRIO_PROCESS: both fail.
    arg_op(ctx, "SCMP_CMP_MASKED_EQ", 3, Some(2), [false, false, true])
}

fn trap_action(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_TRAP" }
    ]));
    // The probe's SIGSYS handler returns, so it finishes its report: under SCMP_ACT_KILL it
    // would not (seccomp.kill_action).
    let r = ctx.probe(&mut b, &[])?;
    let sigsys = &r.0["sigsys"];
    ensure!(
        sigsys["count"].as_u64().unwrap_or(0) >= 1,
        "getpgid under SCMP_ACT_TRAP raised no SIGSYS: {sigsys}"
    );
    ensure!(
        sigsys["code"] == SYS_SECCOMP && sigsys["syscall"] == NR_GETPGID,
        "the SIGSYS is not seccomp's for getpgid (want si_code {SYS_SECCOMP}, si_syscall \
         {NR_GETPGID}): {sigsys}"
    );
    Ok(())
}

fn log_action(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_LOG" }
    ]));
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.status("Seccomp")? == "2",
        "Seccomp mode is {}, want 2 (filter)",
        r.status("Seccomp")?
    );
    let got = r.syscall("getpgid")?;
    ensure!(
        got == 0,
        "getpgid under SCMP_ACT_LOG failed with errno {got}: LOG allows the call"
    );
    ensure!(
        r.0["sigsys"]["count"] == 0,
        "getpgid under SCMP_ACT_LOG raised SIGSYS"
    );
    Ok(())
}

fn default_errno_ret(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let names: Vec<&str> = ALLOW_LIST.split_whitespace().collect();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EDOM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [ { "names": names, "action": "SCMP_ACT_ALLOW" } ],
    });
    let r = ctx.probe(&mut b, &[])?;
    let got = r.syscall("getpgid")?;
    ensure!(
        got == EDOM,
        "getpgid (not in the allow list) failed with errno {got}, want defaultErrnoRet {EDOM}"
    );
    ensure!(
        r.syscall("getpriority_process")? == 0,
        "an allowed syscall (getpriority) failed"
    );
    Ok(())
}

fn flag_log(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let mut f = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": EDOM }
    ]));
    f["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"]);
    b.config["linux"]["seccomp"] = f;
    let r = ctx
        .probe(&mut b, &[])
        .context("a filter with flags [SECCOMP_FILTER_FLAG_LOG]")?;
    let got = r.syscall("getpgid")?;
    ensure!(
        got == EDOM,
        "getpgid failed with errno {got} under a filter with SECCOMP_FILTER_FLAG_LOG, want {EDOM}"
    );
    Ok(())
}

fn unknown_action_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["true"])?;
    b.config["linux"]["seccomp"] = filter(json!([
        { "names": ["getpgid"], "action": "SCMP_ACT_NO_SUCH_ACTION" }
    ]));
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    ensure_failed(&out, "create with seccomp action SCMP_ACT_NO_SUCH_ACTION")?;
    let state = ctx.rt.run(&["state", &id])?;
    ensure!(
        !state.success(),
        "a container exists after the refused create: {}",
        state.stdout.trim()
    );
    Ok(())
}
