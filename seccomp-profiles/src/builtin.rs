//! Skiff's default profile: the allowlist Docker applies when `docker run` is given no
//! `--security-opt seccomp=…` (moby/profiles v0.1.0 `default.json`, vendored by Docker 28.5).
//!
//! Same semantics, own layout: the syscalls every container may make are grouped by what they
//! touch, one rule per group with the group as its comment, and each conditional rule says why
//! it exists. The default action is `SCMP_ACT_ERRNO` with `EPERM`, so anything not listed
//! fails as if the container lacked a privilege.
//!
//! Not allowed by any rule, so failing with `EPERM`, among others: `keyctl`, `add_key` and
//! `request_key` (the kernel keyring is not namespaced); `io_uring_*` (its operations run without
//! passing through seccomp, and it has a long record of kernel bugs); `userfaultfd` (lets a
//! process stall the kernel at a chosen point, a common step in exploiting races);
//! `kexec_*`, `swapon`/`swapoff`, `pivot_root`, `move_pages`, and obsolete calls (`uselib`,
//! `ustat`, `sysfs`, `_sysctl`, `nfsservctl`, `vm86`). Mounts, namespaces, `open_by_handle_at`
//! (the 2014 "shocker" escape) and the other capability-gated calls are allowed only with the
//! capability, see [`capability_gated`].

use crate::kernel::KernelVersion;
use crate::profile::{ArchMapEntry, Arg, Filter, Profile, Rule};

const ALLOW: &str = "SCMP_ACT_ALLOW";
const ERRNO: &str = "SCMP_ACT_ERRNO";

/// errno values (include/uapi/asm-generic/errno-base.h, errno.h).
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Namespace flags of clone(2) (include/uapi/linux/sched.h). A container without
/// `CAP_SYS_ADMIN` may clone threads and processes, but not new namespaces: a user namespace
/// in particular would give it a full capability set over namespaced resources, the entry
/// point of many kernel exploits.
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
const CLONE_NEWUTS: u64 = 0x0400_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;
/// `CLONE_NEWTIME` (0x80) is not in the mask: it shares its bit with `CSIGNAL`, the exit
/// signal in clone's low byte, so clone(2) cannot take it (only clone3 and unshare can).
const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET;

/// `AF_VSOCK` (include/linux/socket.h): vsock is not network-namespaced, so a socket would
/// reach the host's (or the hypervisor's) vsock services. Only `socket` itself is checked:
/// 32-bit x86 programs can also create sockets through `socketcall`, whose arguments are in
/// memory, and Docker's profile allows `socketcall` unconditionally.
const AF_VSOCK: u64 = 40;

/// The personality(2) values a container may set: plain Linux (`PER_LINUX`), 32-bit
/// (`PER_LINUX32`), each with `UNAME26` (uname reports a 2.6 kernel, for old binaries), and
/// `0xffffffff`, which only queries. Others (`ADDR_NO_RANDOMIZE`, `READ_IMPLIES_EXEC`, …) weaken
/// exploit mitigations (include/uapi/linux/personality.h).
const PERSONALITIES: [(&str, u64); 5] = [
    ("PER_LINUX", 0x0),
    ("PER_LINUX32", 0x8),
    ("UNAME26", 0x0002_0000),
    ("PER_LINUX32 | UNAME26", 0x0002_0008),
    ("query", 0xffff_ffff),
];

/// The syscalls every container may make, whatever its capabilities, grouped by what they
/// touch. Privileged operations among them (`chown`, `setuid`, `kill` of another user's
/// process…) are still checked by the kernel against the container's capabilities; seccomp only
/// removes the syscalls whose capability check is too coarse or missing. Names from every ABI are
/// listed together (`fstat64`, `_llseek`, `*_time64` exist on 32-bit ABIs only); the runtime
/// resolves each for the ABIs it filters.
const ALWAYS_ALLOWED: &[(&str, &[&str])] = &[
    (
        "file descriptors and data I/O",
        &[
            "read",
            "readv",
            "pread64",
            "preadv",
            "preadv2",
            "write",
            "writev",
            "pwrite64",
            "pwritev",
            "pwritev2",
            "lseek",
            "_llseek",
            "close",
            "close_range",
            "dup",
            "dup2",
            "dup3",
            "fcntl",
            "fcntl64",
            "ioctl",
            "pipe",
            "pipe2",
            "splice",
            "tee",
            "vmsplice",
            "sendfile",
            "sendfile64",
            "copy_file_range",
            "readahead",
            "fadvise64",
            "fadvise64_64",
            "fallocate",
            "ftruncate",
            "ftruncate64",
            "truncate",
            "truncate64",
            "fsync",
            "fdatasync",
            "sync",
            "syncfs",
            "sync_file_range",
            "flock",
            "cachestat",
        ],
    ),
    (
        "paths, directories and file metadata",
        &[
            "open",
            "openat",
            "openat2",
            "creat",
            "access",
            "faccessat",
            "faccessat2",
            "stat",
            "stat64",
            "lstat",
            "lstat64",
            "fstat",
            "fstat64",
            "fstatat64",
            "newfstatat",
            "statx",
            "statfs",
            "statfs64",
            "fstatfs",
            "fstatfs64",
            "getdents",
            "getdents64",
            "chdir",
            "fchdir",
            "getcwd",
            "mkdir",
            "mkdirat",
            "mknod",
            "mknodat",
            "rmdir",
            "rename",
            "renameat",
            "renameat2",
            "link",
            "linkat",
            "symlink",
            "symlinkat",
            "unlink",
            "unlinkat",
            "readlink",
            "readlinkat",
            "chmod",
            "fchmod",
            "fchmodat",
            "fchmodat2",
            "chown",
            "chown32",
            "fchown",
            "fchown32",
            "fchownat",
            "lchown",
            "lchown32",
            "umask",
            "utime",
            "utimes",
            "utimensat",
            "utimensat_time64",
            "futimesat",
            "name_to_handle_at",
        ],
    ),
    (
        "extended attributes",
        &[
            "getxattr",
            "lgetxattr",
            "fgetxattr",
            "getxattrat",
            "listxattr",
            "llistxattr",
            "flistxattr",
            "listxattrat",
            "setxattr",
            "lsetxattr",
            "fsetxattr",
            "setxattrat",
            "removexattr",
            "lremovexattr",
            "fremovexattr",
            "removexattrat",
        ],
    ),
    ("mount information (read only)", &["statmount", "listmount"]),
    (
        "polling and event notification",
        &[
            "poll",
            "ppoll",
            "ppoll_time64",
            "select",
            "_newselect",
            "pselect6",
            "pselect6_time64",
            "epoll_create",
            "epoll_create1",
            "epoll_ctl",
            "epoll_ctl_old",
            "epoll_wait",
            "epoll_wait_old",
            "epoll_pwait",
            "epoll_pwait2",
            "eventfd",
            "eventfd2",
            "inotify_init",
            "inotify_init1",
            "inotify_add_watch",
            "inotify_rm_watch",
            "fanotify_mark",
        ],
    ),
    (
        "asynchronous I/O (the legacy AIO interface; io_uring is not allowed)",
        &[
            "io_setup",
            "io_destroy",
            "io_submit",
            "io_cancel",
            "io_getevents",
            "io_pgetevents",
            "io_pgetevents_time64",
        ],
    ),
    (
        "sockets (socket itself is allowed by a rule of its own)",
        &[
            "socketpair",
            "socketcall",
            "bind",
            "listen",
            "accept",
            "accept4",
            "connect",
            "getsockname",
            "getpeername",
            "getsockopt",
            "setsockopt",
            "send",
            "sendto",
            "sendmsg",
            "sendmmsg",
            "recv",
            "recvfrom",
            "recvmsg",
            "recvmmsg",
            "recvmmsg_time64",
            "shutdown",
        ],
    ),
    (
        "System V and POSIX IPC (namespaced by the IPC namespace)",
        &[
            "ipc",
            "msgget",
            "msgctl",
            "msgsnd",
            "msgrcv",
            "semget",
            "semctl",
            "semop",
            "semtimedop",
            "semtimedop_time64",
            "shmget",
            "shmctl",
            "shmat",
            "shmdt",
            "mq_open",
            "mq_unlink",
            "mq_getsetattr",
            "mq_notify",
            "mq_timedsend",
            "mq_timedsend_time64",
            "mq_timedreceive",
            "mq_timedreceive_time64",
        ],
    ),
    (
        "memory",
        &[
            "brk",
            "mmap",
            "mmap2",
            "munmap",
            "mremap",
            "mprotect",
            "madvise",
            "mincore",
            "msync",
            "mlock",
            "mlock2",
            "mlockall",
            "munlock",
            "munlockall",
            "remap_file_pages",
            "memfd_create",
            "memfd_secret",
            "map_shadow_stack",
            "mseal",
            "pkey_alloc",
            "pkey_free",
            "pkey_mprotect",
        ],
    ),
    (
        "processes: creation (clone is allowed by rules of its own), execution, exit, waiting",
        &[
            "fork",
            "vfork",
            "execve",
            "execveat",
            "exit",
            "exit_group",
            "wait4",
            "waitid",
            "waitpid",
            "getpid",
            "getppid",
            "gettid",
            "getpgid",
            "getpgrp",
            "setpgid",
            "getsid",
            "setsid",
            "pidfd_open",
            "pidfd_send_signal",
            "process_mrelease",
            "prctl",
            "restart_syscall",
        ],
    ),
    (
        "threads and their synchronisation",
        &[
            "set_tid_address",
            "set_robust_list",
            "get_robust_list",
            "set_thread_area",
            "get_thread_area",
            "futex",
            "futex_time64",
            "futex_wait",
            "futex_wake",
            "futex_waitv",
            "futex_requeue",
            "membarrier",
            "rseq",
        ],
    ),
    (
        "signals",
        &[
            "kill",
            "tkill",
            "tgkill",
            "rt_sigaction",
            "rt_sigprocmask",
            "rt_sigreturn",
            "rt_sigpending",
            "rt_sigsuspend",
            "rt_sigtimedwait",
            "rt_sigtimedwait_time64",
            "rt_sigqueueinfo",
            "rt_tgsigqueueinfo",
            "sigaltstack",
            "sigprocmask",
            "sigreturn",
            "signalfd",
            "signalfd4",
            "pause",
            "alarm",
        ],
    ),
    (
        "user and group IDs, capabilities (the kernel still checks CAP_SETUID and friends)",
        &[
            "getuid",
            "getuid32",
            "geteuid",
            "geteuid32",
            "getgid",
            "getgid32",
            "getegid",
            "getegid32",
            "getresuid",
            "getresuid32",
            "getresgid",
            "getresgid32",
            "getgroups",
            "getgroups32",
            "setuid",
            "setuid32",
            "setgid",
            "setgid32",
            "setreuid",
            "setreuid32",
            "setregid",
            "setregid32",
            "setresuid",
            "setresuid32",
            "setresgid",
            "setresgid32",
            "setfsuid",
            "setfsuid32",
            "setfsgid",
            "setfsgid32",
            "setgroups",
            "setgroups32",
            "capget",
            "capset",
        ],
    ),
    (
        "scheduling, priorities and resource limits",
        &[
            "sched_yield",
            "sched_getaffinity",
            "sched_setaffinity",
            "sched_getattr",
            "sched_setattr",
            "sched_getparam",
            "sched_setparam",
            "sched_getscheduler",
            "sched_setscheduler",
            "sched_get_priority_max",
            "sched_get_priority_min",
            "sched_rr_get_interval",
            "sched_rr_get_interval_time64",
            "getpriority",
            "setpriority",
            "ioprio_get",
            "ioprio_set",
            "getrlimit",
            "ugetrlimit",
            "setrlimit",
            "prlimit64",
            "getrusage",
            "times",
        ],
    ),
    (
        "clocks, sleeping and timers (setting the clock needs CAP_SYS_TIME, granted by a rule below)",
        &[
            "time",
            "gettimeofday",
            "clock_gettime",
            "clock_gettime64",
            "clock_getres",
            "clock_getres_time64",
            "clock_adjtime",
            "clock_adjtime64",
            "adjtimex",
            "nanosleep",
            "clock_nanosleep",
            "clock_nanosleep_time64",
            "getitimer",
            "setitimer",
            "timer_create",
            "timer_delete",
            "timer_getoverrun",
            "timer_gettime",
            "timer_gettime64",
            "timer_settime",
            "timer_settime64",
            "timerfd_create",
            "timerfd_gettime",
            "timerfd_gettime64",
            "timerfd_settime",
            "timerfd_settime64",
        ],
    ),
    (
        "system information and randomness",
        &["uname", "sysinfo", "getcpu", "getrandom", "riscv_hwprobe"],
    ),
    (
        "self-sandboxing: a process may always restrict itself further",
        &[
            "seccomp",
            "landlock_create_ruleset",
            "landlock_add_rule",
            "landlock_restrict_self",
        ],
    ),
    (
        "uprobe return trampoline (the kernel's own, entered from code it injected)",
        &["uretprobe"],
    ),
];

/// The default profile, in Docker's format. Resolve it for a container with [`crate::resolve`].
pub fn default_profile() -> Profile {
    let mut syscalls: Vec<Rule> = ALWAYS_ALLOWED
        .iter()
        .map(|(group, names)| allow(group, names))
        .collect();
    syscalls.extend(kernel_gated());
    syscalls.extend(argument_checked());
    syscalls.extend(arch_specific());
    syscalls.extend(capability_gated());

    Profile {
        default_action: ERRNO.into(),
        default_errno_ret: Some(EPERM),
        arch_map: arch_map(),
        syscalls,
        ..Profile::default()
    }
}

/// Which compat ABIs are filtered along with each native one: the ABIs a process on that
/// architecture can enter (32-bit x86 and x32 on x86_64 through `int 0x80` and the x32 bit,
/// AArch32 on arm64, o32/n32 on MIPS64, 31-bit on s390x). Filtering only the native ABI would
/// leave the others to the runtime's catch-all.
fn arch_map() -> Vec<ArchMapEntry> {
    let entry = |arch: &str, subs: &[&str]| ArchMapEntry {
        architecture: format!("SCMP_ARCH_{arch}"),
        sub_architectures: subs.iter().map(|s| format!("SCMP_ARCH_{s}")).collect(),
    };
    vec![
        entry("X86_64", &["X86", "X32"]),
        entry("AARCH64", &["ARM"]),
        entry("MIPS64", &["MIPS", "MIPS64N32"]),
        entry("MIPS64N32", &["MIPS", "MIPS64"]),
        entry("MIPSEL64", &["MIPSEL", "MIPSEL64N32"]),
        entry("MIPSEL64N32", &["MIPSEL", "MIPSEL64"]),
        entry("S390X", &["S390"]),
        entry("RISCV64", &[]),
    ]
}

/// Before Linux 4.8 the seccomp check ran before ptrace could change a syscall, so a tracer
/// could turn an allowed syscall into any other ("x86/ptrace: run seccomp after ptrace" and the
/// same change on the other architectures, Linux 4.8). On newer kernels tracing and reading
/// another process's memory is as safe as the kernel's own ptrace access checks.
fn kernel_gated() -> Vec<Rule> {
    vec![Rule {
        includes: Filter {
            min_kernel: Some(KernelVersion { major: 4, minor: 8 }),
            ..Filter::default()
        },
        ..allow(
            "ptrace bypasses seccomp before Linux 4.8",
            &["process_vm_readv", "process_vm_writev", "ptrace"],
        )
    }]
}

/// Syscalls allowed for some argument values only.
fn argument_checked() -> Vec<Rule> {
    let mut rules = vec![Rule {
        args: vec![arg(0, "SCMP_CMP_NE", AF_VSOCK, 0)],
        ..allow("socket: any address family but AF_VSOCK", &["socket"])
    }];
    rules.extend(PERSONALITIES.iter().map(|&(what, value)| Rule {
        args: vec![arg(0, "SCMP_CMP_EQ", value, 0)],
        ..allow(&format!("personality: {what}"), &["personality"])
    }));
    rules
}

/// Syscalls that exist on one family of architectures only. Docker lists them per native
/// architecture, so with an `archMap` entry they are allowed for its compat ABIs too.
fn arch_specific() -> Vec<Rule> {
    let only_on = |arches: &[&str], comment: &str, names: &[&str]| Rule {
        includes: Filter {
            arches: strings(arches),
            ..Filter::default()
        },
        ..allow(comment, names)
    };
    vec![
        only_on(
            &["ppc64le"],
            "powerpc: argument-reordered sync_file_range, user context switch",
            &["sync_file_range2", "swapcontext"],
        ),
        only_on(
            &["arm", "arm64"],
            "arm: argument-reordered fadvise and sync_file_range, debug breakpoint, cache \
             flush for JITs, TLS register",
            &[
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ],
        ),
        only_on(
            &["amd64", "x32"],
            "x86_64: setting the FS/GS base for thread-local storage",
            &["arch_prctl"],
        ),
        only_on(
            &["amd64", "x32", "x86"],
            "x86: the per-process LDT (Wine, old threading libraries)",
            &["modify_ldt"],
        ),
        only_on(
            &["s390", "s390x"],
            "s390: PCI MMIO from user space, runtime instrumentation",
            &[
                "s390_pci_mmio_read",
                "s390_pci_mmio_write",
                "s390_runtime_instr",
            ],
        ),
        only_on(
            &["riscv64"],
            "riscv: instruction cache flush for JITs",
            &["riscv_flush_icache"],
        ),
    ]
}

/// Syscalls whose in-kernel check is a single coarse capability: allowed when the container has
/// that capability in its bounding set, so that `--cap-add` works without a custom profile.
fn capability_gated() -> Vec<Rule> {
    let with = |cap: &str, comment: &str, names: &[&str]| Rule {
        includes: Filter {
            caps: strings(&[cap]),
            ..Filter::default()
        },
        ..allow(comment, names)
    };
    let without_sys_admin = Filter {
        caps: strings(&["CAP_SYS_ADMIN"]),
        ..Filter::default()
    };
    vec![
        with(
            "CAP_DAC_READ_SEARCH",
            "file handles open any inode of the file system, outside the container's root",
            &["open_by_handle_at"],
        ),
        with(
            "CAP_SYS_ADMIN",
            "mounts, namespaces, eBPF, perf, quotas, host names, the kernel log",
            &[
                "bpf",
                "clone",
                "clone3",
                "fanotify_init",
                "fsconfig",
                "fsmount",
                "fsopen",
                "fspick",
                "lookup_dcookie",
                "lsm_get_self_attr",
                "lsm_list_modules",
                "lsm_set_self_attr",
                "mount",
                "mount_setattr",
                "move_mount",
                "open_tree",
                "perf_event_open",
                "quotactl",
                "quotactl_fd",
                "setdomainname",
                "sethostname",
                "setns",
                "syslog",
                "umount",
                "umount2",
                "unshare",
            ],
        ),
        Rule {
            args: vec![arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)],
            excludes: Filter {
                arches: strings(&["s390", "s390x"]),
                ..without_sys_admin.clone()
            },
            ..allow(
                "clone without CAP_SYS_ADMIN: no namespace flags (flags are argument 0)",
                &["clone"],
            )
        },
        Rule {
            args: vec![arg(1, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)],
            includes: Filter {
                arches: strings(&["s390", "s390x"]),
                ..Filter::default()
            },
            excludes: without_sys_admin.clone(),
            ..allow(
                "clone without CAP_SYS_ADMIN on s390: flags are argument 1 there (the stack \
                 pointer comes first)",
                &["clone"],
            )
        },
        Rule {
            action: ERRNO.into(),
            errno_ret: Some(ENOSYS),
            excludes: without_sys_admin,
            ..allow(
                "clone3 without CAP_SYS_ADMIN: its flags are in memory, out of seccomp's reach, \
                 so fail with ENOSYS and let libc fall back to clone",
                &["clone3"],
            )
        },
        with("CAP_SYS_BOOT", "reboot", &["reboot"]),
        with("CAP_SYS_CHROOT", "chroot", &["chroot"]),
        with(
            "CAP_SYS_MODULE",
            "kernel modules",
            &["delete_module", "init_module", "finit_module"],
        ),
        with("CAP_SYS_PACCT", "process accounting", &["acct"]),
        with(
            "CAP_SYS_PTRACE",
            "inspecting other processes, on any kernel",
            &[
                "kcmp",
                "pidfd_getfd",
                "process_madvise",
                "process_vm_readv",
                "process_vm_writev",
                "ptrace",
            ],
        ),
        with("CAP_SYS_RAWIO", "I/O port access", &["iopl", "ioperm"]),
        with(
            "CAP_SYS_TIME",
            "setting the system clock (not namespaced)",
            &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        ),
        with(
            "CAP_SYS_TTY_CONFIG",
            "hanging up the terminal",
            &["vhangup"],
        ),
        with(
            "CAP_SYS_NICE",
            "NUMA memory policy",
            &[
                "get_mempolicy",
                "mbind",
                "set_mempolicy",
                "set_mempolicy_home_node",
            ],
        ),
        with("CAP_SYSLOG", "the kernel log", &["syslog"]),
        with("CAP_BPF", "eBPF", &["bpf"]),
        with(
            "CAP_PERFMON",
            "performance monitoring",
            &["perf_event_open"],
        ),
    ]
}

/// An unconditional `SCMP_ACT_ALLOW` rule.
fn allow(comment: &str, names: &[&str]) -> Rule {
    Rule {
        names: strings(names),
        action: ALLOW.into(),
        comment: comment.into(),
        ..Rule::default()
    }
}

fn arg(index: u32, op: &str, value: u64, value_two: u64) -> Arg {
    Arg {
        index,
        value,
        value_two,
        op: op.into(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|&s| s.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{Arch as ScmpArch, LinuxSeccomp, LinuxSyscall};
    use skiff::seccomp::{Arch, compile};

    use super::*;
    use crate::resolve::convert;
    use crate::testutil::{
        AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, Insn, Outcome, caps, docker_caps,
        docker_caps_with, evaluate, run_bpf,
    };
    use crate::{Profile, resolve};

    /// A current kernel (Debian 12's), above every `minKernel` of the profile.
    const KERNEL: Option<(u32, u32)> = Some((6, 1));

    const NO_ARGS: [u64; 6] = [0; 6];
    const SIGCHLD: u64 = 17;
    /// What glibc's pthread_create passes to clone.
    const THREAD_FLAGS: u64 = 0x003d_0f00;
    const AF_UNIX: u64 = 1;
    const AF_INET: u64 = 2;
    const AF_INET6: u64 = 10;
    const AF_NETLINK: u64 = 16;

    fn amd64(caps: &[String]) -> LinuxSeccomp {
        resolve(&default_profile(), caps, "amd64", KERNEL).unwrap()
    }

    fn names(seccomp: &LinuxSeccomp) -> Vec<&str> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect()
    }

    fn args0(first: u64) -> [u64; 6] {
        [first, 0, 0, 0, 0, 0]
    }

    fn compiled(seccomp: &LinuxSeccomp, arch: Arch) -> Vec<Insn> {
        let compiled = compile(seccomp, arch)
            .unwrap_or_else(|err| panic!("the runtime cannot compile it for {arch}: {err}"));
        compiled
            .program()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    #[test]
    fn embedded_profile_parses_back_from_docker_json() {
        let profile = default_profile();
        let json = profile.to_json();
        assert_eq!(Profile::from_json(&json).unwrap(), profile);
        // And it is Docker's format, field for field.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(value["defaultErrnoRet"], 1);
        assert_eq!(value["archMap"][0]["architecture"], "SCMP_ARCH_X86_64");
        assert_eq!(value["archMap"][0]["subArchitectures"][1], "SCMP_ARCH_X32");
    }

    #[test]
    fn embedded_profile_has_dockers_shape() {
        let profile = default_profile();
        assert_eq!(profile.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(profile.default_errno_ret, Some(EPERM));
        assert_eq!(profile.arch_map.len(), 8);

        let rules = &profile.syscalls;
        let conditional = rules.iter().filter(|r| r.is_conditional()).count();
        let with_args = rules.iter().filter(|r| !r.args.is_empty()).count();
        let plain = rules
            .iter()
            .filter(|r| !r.is_conditional() && r.args.is_empty())
            .count();
        assert_eq!(plain, ALWAYS_ALLOWED.len());
        assert_eq!((rules.len(), conditional, with_args), (48, 24, 8));

        // Docker 28.5's profile: 440 name entries, 426 distinct syscalls, 361 always allowed.
        let entries: Vec<&str> = rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        let mut distinct = entries.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!((entries.len(), distinct.len()), (440, 426));
        let mut always: Vec<&str> = ALWAYS_ALLOWED
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect();
        let listed = always.len();
        always.sort_unstable();
        always.dedup();
        assert_eq!((listed, always.len()), (361, 361), "a name in two groups");

        for (i, rule) in rules.iter().enumerate() {
            assert!(!rule.comment.is_empty(), "syscalls[{i}] has no comment");
            convert(i, rule).unwrap();
        }
    }

    #[test]
    fn constants_are_the_kernel_values() {
        assert_eq!(CLONE_NAMESPACES, 0x7e02_0000);
        assert_eq!(CLONE_NAMESPACES, 2_114_060_288);
    }

    #[test]
    fn resolves_and_compiles_for_amd64_and_arm64() {
        for arch in ["amd64", "arm64", "x86_64", "aarch64"] {
            for caps in [docker_caps(), docker_caps_with("CAP_SYS_ADMIN")] {
                let seccomp = resolve(&default_profile(), &caps, arch, KERNEL).unwrap();
                // Every profile compiles for both architectures the runtime supports: the
                // compat ABI lists of the other one are ignored there.
                for target in [Arch::X86_64, Arch::Aarch64] {
                    let program = compiled(&seccomp, target);
                    assert!(program.len() < 4096);
                }
            }
        }
    }

    #[test]
    fn architectures_follow_the_arch_map() {
        let arches = |arch: &str| {
            resolve(&default_profile(), &docker_caps(), arch, KERNEL)
                .unwrap()
                .architectures()
                .clone()
        };
        assert_eq!(
            arches("amd64"),
            Some(vec![
                ScmpArch::ScmpArchX86_64,
                ScmpArch::ScmpArchX86,
                ScmpArch::ScmpArchX32
            ])
        );
        assert_eq!(
            arches("arm64"),
            Some(vec![ScmpArch::ScmpArchAarch64, ScmpArch::ScmpArchArm])
        );
        assert_eq!(
            arches("s390x"),
            Some(vec![ScmpArch::ScmpArchS390x, ScmpArch::ScmpArchS390])
        );
        assert_eq!(arches("riscv64"), Some(vec![ScmpArch::ScmpArchRiscv64]));
        // Docker's profile has no entry for ppc64le: the runtime filters the native ABI alone.
        assert_eq!(arches("ppc64le"), None);
    }

    /// For every rule with conditions: a container and host where all of them hold and the rule
    /// is there, and for each single condition turned the other way, a container or host
    /// without the rule. Generated from the profile, so a rule added later is covered too.
    #[test]
    fn every_conditional_rule_follows_its_conditions() {
        /// Native architectures to pick from; `amd64` and `arm64` first, so that most cases
        /// also go through the runtime's compiler.
        const ARCHES: [&str; 8] = [
            "amd64", "arm64", "s390x", "ppc64le", "riscv64", "x86", "arm", "x32",
        ];
        let profile = default_profile();
        let same = |a: &str, b: &str| {
            crate::arch::Machine::from_name(a).unwrap()
                == crate::arch::Machine::from_name(b).unwrap()
        };
        let listed = |list: &[String], arch: &str| list.iter().any(|a| same(a, arch));
        let present =
            |caps: &[String], arch: &str, kernel: Option<(u32, u32)>, entry: &LinuxSyscall| {
                let seccomp = resolve(&profile, caps, arch, kernel).unwrap();
                if arch == "amd64" || arch == "arm64" {
                    compiled(&seccomp, Arch::X86_64);
                    compiled(&seccomp, Arch::Aarch64);
                }
                seccomp.syscalls().iter().flatten().any(|s| s == entry)
            };

        let (mut rules, mut flips) = (0, 0);
        for (i, rule) in profile.syscalls.iter().enumerate() {
            if !rule.is_conditional() {
                continue;
            }
            rules += 1;
            let entry = &convert(i, rule).unwrap();
            let (inc, exc) = (&rule.includes, &rule.excludes);

            // Where every condition is met.
            let caps = inc.caps.clone();
            let arch = ARCHES
                .into_iter()
                .find(|a| {
                    (inc.arches.is_empty() || listed(&inc.arches, a)) && !listed(&exc.arches, a)
                })
                .unwrap();
            let kernel = inc.min_kernel.map_or((6, 1), |v| (v.major, v.minor));
            if let Some(max) = exc.min_kernel {
                assert!(
                    kernel < (max.major, max.minor),
                    "syscalls[{i}] can never apply"
                );
            }
            assert!(
                present(&caps, arch, Some(kernel), entry),
                "syscalls[{i}] {:?} missing for {caps:?} on {arch} {kernel:?}",
                rule.names
            );

            // Each condition the other way.
            let mut absent = |caps: &[String], arch: &str, kernel, what: &str| {
                assert!(
                    !present(caps, arch, kernel, entry),
                    "syscalls[{i}] {:?} present {what}",
                    rule.names
                );
                flips += 1;
            };
            for cap in &inc.caps {
                let without: Vec<String> = caps.iter().filter(|c| *c != cap).cloned().collect();
                absent(&without, arch, Some(kernel), &format!("without {cap}"));
            }
            if !inc.arches.is_empty() {
                let other = ARCHES
                    .into_iter()
                    .find(|a| !listed(&inc.arches, a))
                    .unwrap();
                absent(&caps, other, Some(kernel), &format!("on {other}"));
            }
            if let Some(min) = inc.min_kernel {
                let older = if min.minor > 0 {
                    (min.major, min.minor - 1)
                } else {
                    (min.major - 1, 99)
                };
                absent(&caps, arch, Some(older), &format!("on {older:?}"));
                absent(&caps, arch, None, "on an unknown kernel");
            }
            for cap in &exc.caps {
                let mut with = caps.clone();
                with.push(cap.clone());
                absent(&with, arch, Some(kernel), &format!("with {cap}"));
            }
            for excluded in &exc.arches {
                absent(&caps, excluded, Some(kernel), &format!("on {excluded}"));
            }
            if let Some(max) = exc.min_kernel {
                absent(
                    &caps,
                    arch,
                    Some((max.major, max.minor)),
                    &format!("on {max}"),
                );
            }
        }
        assert_eq!((rules, flips), (24, 28));
    }

    #[test]
    fn docker_default_caps_on_amd64_deny_the_dangerous_calls() {
        let seccomp = amd64(&docker_caps());
        for name in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "fsopen",
            "open_tree",
            "pivot_root",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "reboot",
            "swapon",
            "io_uring_setup",
            "userfaultfd",
            "open_by_handle_at",
            "settimeofday",
            "sethostname",
        ] {
            assert_eq!(
                evaluate(&seccomp, name, NO_ARGS),
                Outcome::Errno(EPERM),
                "{name}"
            );
            assert!(!names(&seccomp).contains(&name), "{name}");
        }
    }

    #[test]
    fn docker_default_caps_deny_clone_into_new_namespaces() {
        let seccomp = amd64(&docker_caps());
        for flag in [
            CLONE_NEWNS,
            CLONE_NEWCGROUP,
            CLONE_NEWUTS,
            CLONE_NEWIPC,
            CLONE_NEWUSER,
            CLONE_NEWPID,
            CLONE_NEWNET,
        ] {
            let outcome = evaluate(&seccomp, "clone", args0(flag | SIGCHLD));
            assert_eq!(outcome, Outcome::Errno(EPERM), "clone({flag:#x})");
        }
        assert_eq!(
            evaluate(&seccomp, "clone", args0(CLONE_NAMESPACES)),
            Outcome::Errno(EPERM)
        );
        // fork-style and pthread-style clones are fine.
        assert_eq!(evaluate(&seccomp, "clone", args0(SIGCHLD)), Outcome::Allow);
        assert_eq!(
            evaluate(&seccomp, "clone", args0(THREAD_FLAGS)),
            Outcome::Allow
        );
        // clone3 cannot be checked, so it reports ENOSYS and libc falls back to clone.
        assert_eq!(
            evaluate(&seccomp, "clone3", NO_ARGS),
            Outcome::Errno(ENOSYS)
        );
    }

    #[test]
    fn docker_default_caps_allow_what_busybox_needs() {
        let seccomp = amd64(&docker_caps());
        for name in [
            "read",
            "write",
            "readv",
            "writev",
            "open",
            "openat",
            "close",
            "lseek",
            "execve",
            "fork",
            "vfork",
            "wait4",
            "waitid",
            "exit",
            "exit_group",
            "brk",
            "mmap",
            "munmap",
            "mprotect",
            "arch_prctl",
            "set_tid_address",
            "rt_sigaction",
            "rt_sigprocmask",
            "rt_sigreturn",
            "ioctl",
            "fcntl",
            "dup2",
            "dup3",
            "pipe",
            "pipe2",
            "getdents64",
            "stat",
            "lstat",
            "fstat",
            "newfstatat",
            "statx",
            "readlink",
            "readlinkat",
            "access",
            "faccessat2",
            "getcwd",
            "chdir",
            "mkdir",
            "mkdirat",
            "rmdir",
            "unlink",
            "unlinkat",
            "rename",
            "renameat2",
            "symlink",
            "link",
            "chmod",
            "fchmodat",
            "chown",
            "fchownat",
            "utimensat",
            "umask",
            "getpid",
            "getppid",
            "gettid",
            "getuid",
            "geteuid",
            "getgid",
            "getegid",
            "setuid",
            "setgid",
            "setgroups",
            "kill",
            "tgkill",
            "uname",
            "sysinfo",
            "nanosleep",
            "clock_nanosleep",
            "clock_gettime",
            "gettimeofday",
            "poll",
            "ppoll",
            "select",
            "pselect6",
            "connect",
            "sendto",
            "recvfrom",
            "bind",
            "setsockopt",
            "getrandom",
            "prlimit64",
            "futex",
            "chroot",
            "mknod",
        ] {
            assert_eq!(evaluate(&seccomp, name, NO_ARGS), Outcome::Allow, "{name}");
        }
        for family in [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK] {
            assert_eq!(evaluate(&seccomp, "socket", args0(family)), Outcome::Allow);
        }
        assert_eq!(
            evaluate(&seccomp, "socket", args0(AF_VSOCK)),
            Outcome::Errno(EPERM)
        );
        for (_, value) in PERSONALITIES {
            assert_eq!(
                evaluate(&seccomp, "personality", args0(value)),
                Outcome::Allow
            );
        }
        let addr_no_randomize = 0x0004_0000;
        assert_eq!(
            evaluate(&seccomp, "personality", args0(addr_no_randomize)),
            Outcome::Errno(EPERM)
        );
    }

    /// What the profile says about ptrace: allowed to everyone from Linux 4.8 (the kernel then
    /// re-checks seccomp after a tracer changes a syscall), before that only with
    /// CAP_SYS_PTRACE.
    #[test]
    fn ptrace_depends_on_the_kernel_and_cap_sys_ptrace() {
        let ptrace = |caps: &[String], kernel| {
            let seccomp = resolve(&default_profile(), caps, "amd64", kernel).unwrap();
            ["ptrace", "process_vm_readv", "process_vm_writev"]
                .map(|name| evaluate(&seccomp, name, NO_ARGS))
        };
        let allowed = [Outcome::Allow; 3];
        let denied = [Outcome::Errno(EPERM); 3];
        assert_eq!(ptrace(&docker_caps(), Some((4, 7))), denied);
        assert_eq!(ptrace(&docker_caps(), Some((3, 10))), denied);
        assert_eq!(ptrace(&docker_caps(), None), denied);
        assert_eq!(ptrace(&docker_caps(), Some((4, 8))), allowed);
        assert_eq!(ptrace(&docker_caps(), KERNEL), allowed);
        let with_ptrace = docker_caps_with("CAP_SYS_PTRACE");
        assert_eq!(ptrace(&with_ptrace, Some((4, 7))), allowed);
        assert_eq!(ptrace(&with_ptrace, None), allowed);
        // kcmp and pidfd_getfd come with the capability only, on any kernel.
        let seccomp = amd64(&docker_caps());
        assert_eq!(evaluate(&seccomp, "kcmp", NO_ARGS), Outcome::Errno(EPERM));
        let seccomp = amd64(&with_ptrace);
        assert_eq!(evaluate(&seccomp, "pidfd_getfd", NO_ARGS), Outcome::Allow);
    }

    #[test]
    fn cap_sys_admin_unlocks_mounts_and_namespaces() {
        let seccomp = amd64(&docker_caps_with("CAP_SYS_ADMIN"));
        for name in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "fsopen",
            "sethostname",
            "clone3",
        ] {
            assert_eq!(evaluate(&seccomp, name, NO_ARGS), Outcome::Allow, "{name}");
        }
        assert_eq!(
            evaluate(
                &seccomp,
                "clone",
                args0(CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD)
            ),
            Outcome::Allow
        );
        // Still not: the keyring and the others no capability unlocks.
        for name in ["keyctl", "kexec_load", "io_uring_setup", "pivot_root"] {
            assert_eq!(
                evaluate(&seccomp, name, NO_ARGS),
                Outcome::Errno(EPERM),
                "{name}"
            );
        }
        // With CAP_SYS_ADMIN the clone3 ENOSYS rule is gone, not just outvoted.
        assert!(
            seccomp
                .syscalls()
                .iter()
                .flatten()
                .all(|s| s.errno_ret().is_none())
        );
    }

    #[test]
    fn arm64_gets_the_arm_calls_and_not_the_x86_ones() {
        let seccomp = resolve(&default_profile(), &docker_caps(), "arm64", KERNEL).unwrap();
        for name in ["set_tls", "cacheflush", "breakpoint", "arm_fadvise64_64"] {
            assert_eq!(evaluate(&seccomp, name, NO_ARGS), Outcome::Allow, "{name}");
        }
        for name in ["arch_prctl", "modify_ldt", "s390_runtime_instr", "unshare"] {
            assert_eq!(
                evaluate(&seccomp, name, NO_ARGS),
                Outcome::Errno(EPERM),
                "{name}"
            );
        }
        assert_eq!(evaluate(&seccomp, "clone", args0(SIGCHLD)), Outcome::Allow);
        assert_eq!(
            evaluate(&seccomp, "clone", args0(CLONE_NEWNET)),
            Outcome::Errno(EPERM)
        );
    }

    /// Syscall numbers for the BPF checks (arch/x86/entry/syscalls/syscall_64.tbl and
    /// syscall_32.tbl, include/uapi/asm-generic/unistd.h for arm64): name, x86_64, i386, arm64.
    const NUMBERS: [(&str, u32, u32, u32); 11] = [
        ("read", 0, 3, 63),
        ("write", 1, 4, 64),
        ("clone", 56, 120, 220),
        ("ptrace", 101, 26, 117),
        ("mount", 165, 21, 40),
        ("umount2", 166, 52, 39),
        ("keyctl", 250, 288, 219),
        ("unshare", 272, 310, 97),
        ("setns", 308, 346, 268),
        ("bpf", 321, 357, 280),
        ("clone3", 435, 435, 435),
    ];

    /// The runtime's BPF program and the OCI object agree: the same calls get the same answer
    /// on every ABI the filter covers.
    #[test]
    fn compiled_filter_does_what_the_resolved_profile_says() {
        let calls = [
            NO_ARGS,
            args0(SIGCHLD),
            args0(THREAD_FLAGS),
            args0(CLONE_NEWUSER | SIGCHLD),
            args0(CLONE_NEWNS),
        ];
        for extra in ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF"] {
            let caps = docker_caps_with(extra);
            for (arch, kernel, target, abis) in [
                (
                    "amd64",
                    KERNEL,
                    Arch::X86_64,
                    &[AUDIT_ARCH_X86_64, AUDIT_ARCH_I386][..],
                ),
                (
                    "amd64",
                    Some((4, 4)),
                    Arch::X86_64,
                    &[AUDIT_ARCH_X86_64][..],
                ),
                ("arm64", KERNEL, Arch::Aarch64, &[AUDIT_ARCH_AARCH64][..]),
            ] {
                let seccomp = resolve(&default_profile(), &caps, arch, kernel).unwrap();
                let program = compiled(&seccomp, target);
                for &(name, x86_64, i386, arm64) in &NUMBERS {
                    for &abi in abis {
                        let nr = match abi {
                            AUDIT_ARCH_X86_64 => x86_64,
                            AUDIT_ARCH_I386 => i386,
                            _ => arm64,
                        };
                        for args in calls {
                            assert_eq!(
                                run_bpf(&program, abi, nr, args),
                                evaluate(&seccomp, name, args),
                                "{name}{args:x?} on {abi:#x}, {arch} {kernel:?} with {extra}"
                            );
                        }
                    }
                }
            }
        }
        // A spot check that the comparison is not vacuous.
        let program = compiled(&amd64(&caps(&[])), Arch::X86_64);
        assert_eq!(
            run_bpf(&program, AUDIT_ARCH_X86_64, 272, NO_ARGS),
            Outcome::Errno(EPERM)
        );
        assert_eq!(
            run_bpf(&program, AUDIT_ARCH_X86_64, 0, NO_ARGS),
            Outcome::Allow
        );
    }
}
