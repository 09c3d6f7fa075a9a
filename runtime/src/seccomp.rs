//! Seccomp: the `linux.seccomp` section of `config.json` compiled into a classic-BPF program
//! for `seccomp(SECCOMP_SET_MODE_FILTER)` (seccomp(2)), and its installation.
//!
//! [`compile`] is a pure function from [`LinuxSeccomp`] and the target [`Arch`] to a
//! [`Compiled`] filter (program plus `SECCOMP_FILTER_FLAG_*` bits), meant to run in the runtime
//! before the init is cloned, so that profile errors surface there and the child does no
//! allocation-heavy work; [`install`] loads it into the calling thread with a raw `seccomp(2)`
//! call (`sys`), leaving `no_new_privs` to the caller. The init installs it right before `execve`
//! when `noNewPrivileges` is set, and otherwise just before it drops its capabilities (loading a
//! filter without no_new_privs needs CAP_SYS_ADMIN), as runc does.
//!
//! # Why a hand-written generator
//!
//! `seccompiler::SeccompFilter` gives every rule of a filter the same match action, while OCI
//! profiles mix actions (Docker's default: ALLOW for most syscalls, ERRNO(ENOSYS) for `clone3`,
//! default ERRNO(EPERM)). Chaining one seccompiler filter per action does not give the right
//! answer either: stacked filters all run and the kernel keeps the most restrictive result, so
//! the "ALLOW" filter's default would have to be ALLOW and the profile's default could no longer
//! be expressed. The program is therefore generated here; only seccompiler's `sock_filter` /
//! [`BpfProgram`] types are used.
//!
//! # Program shape
//!
//! ```text
//! ld  [4]                      ; seccomp_data.arch
//! jeq AUDIT_ARCH_<native>  -> native section
//! jeq AUDIT_ARCH_<compat>  -> compat section   (only if listed: SCMP_ARCH_X86 / SCMP_ARCH_ARM)
//! ret KILL_PROCESS             ; any other ABI
//! section:
//!   ld  [0]                    ; seccomp_data.nr
//!   jset __X32_SYSCALL_BIT -> x32 section or KILL_PROCESS      (x86_64 only)
//!   jgt <largest nr named> -> ret ERRNO(ENOSYS)                 (runc's stub, see below)
//!   jeq <nr> -> ret <action>   ; syscalls whose only rule is unconditional
//!   jeq <nr> -> rules...       ; argument checks, each ends in a `ret`
//!   ret <default>
//! ```
//!
//! Conditional jumps only reach 255 instructions; farther targets go through a `ja` trampoline
//! (32-bit offset). The program is emitted back to front so every jump target is already placed.
//! The kernel caps a program at 4096 instructions (`BPF_MAXINSNS`); [`compile`] refuses longer
//! ones. Docker's default profile takes about 1050 instructions for x86_64 + x86 + x32 and 670
//! for aarch64 + arm.
//!
//! # Semantics (runc + libseccomp, which is what profiles are written against)
//!
//! - **Actions**: `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD` (libseccomp's alias);
//!   `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` take `errnoRet` (default `EPERM`, as runc), and
//!   `errnoRet` on any other action is an error (runtime-spec: "the runtime MUST print an error
//!   and fail"). `SCMP_ACT_NOTIFY` and `listenerPath` are refused: skiff has no seccomp agent
//!   support, and a notify rule silently turned into anything else would change the profile.
//!   Unknown action, operator, architecture and flag strings are rejected by `oci-spec` while
//!   `config.json` is parsed, with the offending string in the message.
//! - **Architectures**: the native ABI is always filtered, whatever the list says (libseccomp's
//!   `seccomp_init` adds it). Listed compat ABIs get their own section: `SCMP_ARCH_X86` and
//!   `SCMP_ARCH_X32` on x86_64, `SCMP_ARCH_ARM` on aarch64. An x32 syscall (`nr` with
//!   `__X32_SYSCALL_BIT`, arch `AUDIT_ARCH_X86_64`) is filtered with x32 numbers when
//!   `SCMP_ARCH_X32` is listed and killed otherwise, as libseccomp does. Architectures that this
//!   kernel never reports (`SCMP_ARCH_S390X` on x86_64, …) are ignored. Every other ABI gets
//!   `SECCOMP_RET_KILL_PROCESS` (seccompiler's choice; libseccomp's default is kill-thread).
//! - **Names** are resolved per ABI with the tables at the end of this file. A name that exists
//!   on another supported ABI only is skipped for this one (`tracing::debug!`); a name known to
//!   no table is skipped with a warning, as runc does (it assumes the kernel lacks the call):
//!   real profiles — podman's `seccomp.json` among them — list names of architectures this
//!   runtime has no table for, and refusing them would refuse those profiles.
//! - **Arguments**: all of an entry's `args` must hold (AND), except that when one argument
//!   index appears more than once each comparison becomes its own rule (OR) — runc's
//!   `matchCall` does exactly this, and ANDing would silently weaken deny rules written for
//!   runc. Separate `syscalls[]` entries for one syscall are alternatives (OR). Comparisons are
//!   unsigned and on all 64 bits (high and low halves of `seccomp_data.args[i]` are compared in
//!   turn); for 32-bit tasks the kernel zero-extends the registers, so the high half is 0.
//!   `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`.
//! - **Several rules for one syscall**: rules with conditions are tried before unconditional
//!   ones (an unconditional rule is the syscall's fallback, libseccomp's shape); among rules of
//!   the same kind the most restrictive action wins, by the kernel's own precedence between
//!   filters (`ACTION_ONLY()` in kernel/seccomp.c: KILL_PROCESS > KILL_THREAD > TRAP > ERRNO >
//!   TRACE > LOG > ALLOW). Rules whose action equals the default action are dropped, as runc
//!   does (libseccomp refuses them).
//! - **ENOSYS stub** (runc's `patchbpf`): unless the default action is ALLOW, LOG or TRACE,
//!   a syscall numbered above every syscall the profile names gets `ERRNO(ENOSYS)` instead of the
//!   default, so that libc falls back from syscalls newer than the profile (`clone3` → `clone`,
//!   `fchmodat2` → `fchmodat`) instead of failing with EPERM. As in runc, this applies only to
//!   the ABIs listed in `architectures`, and x32 syscalls below 548 never get it (the x32-only
//!   calls are numbered 512–547).
//! - **Flags**: `SECCOMP_FILTER_FLAG_TSYNC`, `_LOG` and `_SPEC_ALLOW` end up in
//!   [`Compiled::flags`] (see [`install`] for which ones can be passed today);
//!   `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` only means something with a notify listener, which
//!   is refused, so it is ignored (libseccomp passes it only with a listener too).

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch as ScmpArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{BpfProgram, sock_filter};

/// The CPU architecture a filter is compiled for: the runtime's own (see [`Arch::native`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on, if skiff can filter syscalls there.
    pub const fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    fn native_abi(self) -> Abi {
        match self {
            Arch::X86_64 => Abi::X86_64,
            Arch::Aarch64 => Abi::Aarch64,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

/// A filter ready for [`install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    program: BpfProgram,
    flags: libc::c_ulong,
}

impl Compiled {
    /// The classic-BPF program.
    pub fn program(&self) -> &[sock_filter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits for the `flags` argument of `seccomp(2)`.
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}

/// Where in `linux.seccomp` a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `defaultAction` / `defaultErrnoRet`.
    Default,
    /// `syscalls[i]`.
    Syscall(usize),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Default => f.write_str("linux.seccomp.defaultAction"),
            Field::Syscall(i) => write!(f, "linux.seccomp.syscalls[{i}]"),
        }
    }
}

/// Why a seccomp profile cannot be compiled or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: SCMP_ACT_NOTIFY is not supported (skiff has no seccomp agent support)")]
    NotifyUnsupported { field: Field },
    #[error(
        "linux.seccomp.listenerPath {path:?} is not supported (it only serves SCMP_ACT_NOTIFY)"
    )]
    ListenerUnsupported { path: PathBuf },
    #[error("{field}: {action} takes no errnoRet (got {errno})")]
    ErrnoRetNotAllowed {
        field: Field,
        action: LinuxSeccompAction,
        errno: u32,
    },
    #[error("{field}: errnoRet {errno} does not fit in the 16 data bits of a seccomp return value")]
    ErrnoRetTooLarge { field: Field, errno: u32 },
    #[error("{field}: names is empty")]
    EmptyNames { field: Field },
    #[error("{field}: args[{arg}].index {index} is out of range (a syscall has 6 arguments)")]
    ArgIndexOutOfRange {
        field: Field,
        arg: usize,
        index: usize,
    },
    #[error("the seccomp filter for {arch} needs {len} instructions, over BPF_MAXINSNS (4096)")]
    ProgramTooLong { arch: Arch, len: usize },
    #[error("cannot install the seccomp filter")]
    Install {
        #[source]
        source: std::io::Error,
    },
}

/// Compiles `seccomp` into a filter for `arch`. Pure: no syscalls, no global state.
pub fn compile(seccomp: &LinuxSeccomp, arch: Arch) -> Result<Compiled, SeccompError> {
    if let Some(path) = seccomp.listener_path() {
        return Err(SeccompError::ListenerUnsupported { path: path.clone() });
    }
    let default = Ret::new(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        Field::Default,
    )?;
    let flags = filter_flags(seccomp.flags().as_deref().unwrap_or_default());
    let mut sections = sections(arch, seccomp.architectures().as_deref().unwrap_or_default());

    for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = Field::Syscall(i);
        let ret = Ret::new(call.action(), call.errno_ret(), field)?;
        let alternatives = alternatives(call, field)?;
        if call.names().is_empty() {
            return Err(SeccompError::EmptyNames { field });
        }
        for name in call.names() {
            if !known_anywhere(name) {
                tracing::warn!(%field, syscall = %name, "unknown syscall name, rule skipped");
                continue;
            }
            for section in &mut sections {
                let Some(nr) = section.abi.nr(name) else {
                    section.skipped.push(name);
                    continue;
                };
                section.largest_nr = section.largest_nr.max(Some(nr));
                // runc drops rules that repeat the default action (libseccomp refuses them).
                if ret == default {
                    continue;
                }
                let rules = section.rules.entry(nr).or_default();
                rules.extend(alternatives.iter().map(|conds| Rule {
                    ret,
                    conds: conds.clone(),
                }));
            }
        }
    }

    for section in &mut sections {
        if !section.skipped.is_empty() {
            tracing::debug!(
                abi = %section.abi,
                syscalls = ?section.skipped,
                "seccomp: syscalls that do not exist on this ABI skipped"
            );
        }
        for rules in section.rules.values_mut() {
            order_rules(rules);
        }
    }
    let program = generate(&sections, default);
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::ProgramTooLong {
            arch,
            len: program.len(),
        });
    }
    Ok(Compiled { program, flags })
}

/// Installs `compiled` with `seccomp(SECCOMP_SET_MODE_FILTER)`: on the calling thread, or on all
/// threads of the process with `SECCOMP_FILTER_FLAG_TSYNC`. The filter is inherited across
/// `fork`, `clone` and `execve` and can never be removed (seccomp(2)).
///
/// Without `no_new_privs` the kernel requires `CAP_SYS_ADMIN` in the caller's user namespace,
/// so a caller honouring `process.noNewPrivileges: false` must install before dropping
/// capabilities (runc's order).
///
/// `no_new_privs` is not touched here: the caller sets it (or not) as the process asks.
pub fn install(compiled: &Compiled) -> Result<(), SeccompError> {
    crate::sys::seccomp_set_mode_filter(compiled.flags, &compiled.program)
        .map_err(|source| SeccompError::Install { source })
}

/// The kernel's limit on a classic-BPF program (`BPF_MAXINSNS`, include/uapi/linux/bpf_common.h).
const BPF_MAXINSNS: usize = 4096;

/// `AUDIT_ARCH_*` (include/uapi/linux/audit.h): the ELF machine, `__AUDIT_ARCH_64BIT`
/// (0x8000_0000) for 64-bit ABIs and `__AUDIT_ARCH_LE` (0x4000_0000). The kernel puts the
/// caller's value in `seccomp_data.arch`.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;

/// Set in `seccomp_data.nr` for x32 syscalls, which otherwise look like x86_64 ones
/// (arch/x86/include/uapi/asm/unistd.h).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data` (include/uapi/linux/seccomp.h):
/// `{ int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

/// Classic-BPF opcodes (include/uapi/linux/bpf_common.h, filter.h), the only ones emitted.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JMP_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JMP_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JMP_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JMP_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JMP_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// A filter return value (seccomp(2), "Filter return values"): the action in the high 16 bits,
/// its data (errno, trace message) in the low 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ret(u32);

impl Ret {
    const KILL_PROCESS: Ret = Ret(libc::SECCOMP_RET_KILL_PROCESS);
    const ENOSYS: Ret = Ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);

    fn new(
        action: LinuxSeccompAction,
        errno_ret: Option<u32>,
        field: Field,
    ) -> Result<Ret, SeccompError> {
        let with_data = |base: u32| -> Result<Ret, SeccompError> {
            // runc's default for both ERRNO and TRACE.
            let errno = errno_ret.unwrap_or(libc::EPERM as u32);
            if errno > libc::SECCOMP_RET_DATA {
                return Err(SeccompError::ErrnoRetTooLarge { field, errno });
            }
            Ok(Ret(base | errno))
        };
        let plain = |value: u32| -> Result<Ret, SeccompError> {
            match errno_ret {
                Some(errno) => Err(SeccompError::ErrnoRetNotAllowed {
                    field,
                    action,
                    errno,
                }),
                None => Ok(Ret(value)),
            }
        };
        match action {
            LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
                plain(libc::SECCOMP_RET_KILL_THREAD)
            }
            LinuxSeccompAction::ScmpActKillProcess => plain(libc::SECCOMP_RET_KILL_PROCESS),
            LinuxSeccompAction::ScmpActTrap => plain(libc::SECCOMP_RET_TRAP),
            LinuxSeccompAction::ScmpActErrno => with_data(libc::SECCOMP_RET_ERRNO),
            LinuxSeccompAction::ScmpActTrace => with_data(libc::SECCOMP_RET_TRACE),
            LinuxSeccompAction::ScmpActLog => plain(libc::SECCOMP_RET_LOG),
            LinuxSeccompAction::ScmpActAllow => plain(libc::SECCOMP_RET_ALLOW),
            LinuxSeccompAction::ScmpActNotify => Err(SeccompError::NotifyUnsupported { field }),
        }
    }

    /// Lower is more restrictive: `ACTION_ONLY()` in kernel/seccomp.c, the order in which the
    /// kernel picks among the results of stacked filters.
    fn precedence(self) -> i32 {
        (self.0 & libc::SECCOMP_RET_ACTION_FULL) as i32
    }

    /// Whether the syscall runs (runc's `isAllowAction`: ALLOW, LOG, and TRACE, since a tracer
    /// is expected to deal with syscalls it does not know).
    fn lets_through(self) -> bool {
        matches!(
            self.0 & libc::SECCOMP_RET_ACTION_FULL,
            libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE
        )
    }
}

/// One comparison of a syscall argument.
#[derive(Debug, Clone, Copy)]
struct Cond {
    arg: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

/// A rule: if every condition holds, return `ret`.
#[derive(Debug, Clone)]
struct Rule {
    ret: Ret,
    conds: Vec<Cond>,
}

/// A syscall ABI that a filter section handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Abi {
    const ALL: [Abi; 5] = [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64, Abi::Arm];

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => X86_64,
            Abi::X32 => X32,
            Abi::X86 => X86,
            Abi::Aarch64 => AARCH64,
            Abi::Arm => ARM,
        }
    }

    /// The value of `seccomp_data.nr` for `name`.
    fn nr(self, name: &str) -> Option<u32> {
        let table = self.table();
        let i = table.binary_search_by(|&(n, _)| n.cmp(name)).ok()?;
        let nr = table[i].1;
        Some(if self == Abi::X32 {
            nr | X32_SYSCALL_BIT
        } else {
            nr
        })
    }

    /// The value of `seccomp_data.arch` for this ABI.
    fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// The ABI a config.json architecture names when the kernel runs on `arch`, or `None` when
    /// such a kernel never runs code of that architecture.
    fn from_scmp(scmp: ScmpArch, arch: Arch) -> Option<Abi> {
        match (scmp, arch) {
            (ScmpArch::ScmpArchNative, arch) => Some(arch.native_abi()),
            (ScmpArch::ScmpArchX86_64, Arch::X86_64) => Some(Abi::X86_64),
            (ScmpArch::ScmpArchX32, Arch::X86_64) => Some(Abi::X32),
            (ScmpArch::ScmpArchX86, Arch::X86_64) => Some(Abi::X86),
            (ScmpArch::ScmpArchAarch64, Arch::Aarch64) => Some(Abi::Aarch64),
            (ScmpArch::ScmpArchArm, Arch::Aarch64) => Some(Abi::Arm),
            _ => None,
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Abi::X86_64 => "x86_64",
            Abi::X32 => "x32",
            Abi::X86 => "x86",
            Abi::Aarch64 => "aarch64",
            Abi::Arm => "arm",
        })
    }
}

/// The rules of one ABI.
#[derive(Debug)]
struct Section<'a> {
    abi: Abi,
    /// Named in `architectures` (the ENOSYS stub is only added then, as in runc).
    listed: bool,
    /// Rules by syscall number, each list in evaluation order.
    rules: BTreeMap<u32, Vec<Rule>>,
    /// The largest number of any syscall the profile names on this ABI.
    largest_nr: Option<u32>,
    /// Names the profile uses that this ABI does not have.
    skipped: Vec<&'a str>,
}

/// The sections of a filter for `arch`: the native ABI first, then the listed compat ABIs.
fn sections<'a>(arch: Arch, listed: &[ScmpArch]) -> Vec<Section<'a>> {
    let native = arch.native_abi();
    let mut abis = vec![native];
    for &scmp in listed {
        match Abi::from_scmp(scmp, arch) {
            Some(abi) if !abis.contains(&abi) => abis.push(abi),
            Some(_) => {}
            None => {
                tracing::debug!(
                    architecture = %scmp,
                    %arch,
                    "seccomp: architecture never runs on this kernel, ignored"
                );
            }
        }
    }
    abis.into_iter()
        .map(|abi| Section {
            abi,
            listed: listed
                .iter()
                .any(|&scmp| Abi::from_scmp(scmp, arch) == Some(abi)),
            rules: BTreeMap::new(),
            largest_nr: None,
            skipped: Vec::new(),
        })
        .collect()
}

/// `SECCOMP_FILTER_FLAG_*` bits for the configured flags.
fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> libc::c_ulong {
    flags.iter().fold(0, |bits, flag| match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => bits | libc::SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => bits | libc::SECCOMP_FILTER_FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
            bits | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        }
        // Only valid together with SECCOMP_FILTER_FLAG_NEW_LISTENER (the kernel returns EINVAL
        // otherwise), i.e. with SCMP_ACT_NOTIFY, which is refused.
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            tracing::debug!(
                "seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored without a notify listener"
            );
            bits
        }
    })
}

/// The condition lists of one `syscalls[]` entry, each a separate rule (see the module docs on
/// repeated argument indexes).
fn alternatives(call: &LinuxSyscall, field: Field) -> Result<Vec<Vec<Cond>>, SeccompError> {
    let args: &[LinuxSeccompArg] = call.args().as_deref().unwrap_or_default();
    let mut conds = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let index = arg.index();
        let Some(arg_nr) = u32::try_from(index).ok().filter(|&n| n < 6) else {
            return Err(SeccompError::ArgIndexOutOfRange {
                field,
                arg: i,
                index,
            });
        };
        conds.push(Cond {
            arg: arg_nr,
            op: arg.op(),
            value: arg.value(),
            value_two: arg.value_two().unwrap_or(0),
        });
    }
    let repeated = conds
        .iter()
        .enumerate()
        .any(|(i, c)| conds[..i].iter().any(|d| d.arg == c.arg));
    Ok(if repeated {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

/// Puts the rules of one syscall in evaluation order: conditional before unconditional, then
/// most restrictive first (stable, so ties keep config order); rules after the first
/// unconditional one can never be reached and are dropped.
fn order_rules(rules: &mut Vec<Rule>) {
    rules.sort_by_key(|r| (r.conds.is_empty(), r.ret.precedence()));
    if let Some(first) = rules.iter().position(|r| r.conds.is_empty()) {
        rules.truncate(first + 1);
    }
}

fn known_anywhere(name: &str) -> bool {
    Abi::ALL.iter().any(|abi| abi.nr(name).is_some()) || OTHER_ARCH_ONLY.contains(&name)
}

/// A position in the program, counted in instructions from its end (the program is emitted
/// back to front, so positions of emitted code never change).
type Label = usize;

/// Back-to-front emitter of a classic-BPF program.
#[derive(Debug, Default)]
struct Emitter {
    /// The program, last instruction first.
    reversed: Vec<sock_filter>,
    /// The most recent `ret` of each value, for reuse.
    rets: HashMap<u32, Label>,
}

impl Emitter {
    /// Places `insn` before everything emitted so far; returns its label.
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
        self.reversed.push(sock_filter { code, jt, jf, k });
        self.reversed.len()
    }

    /// The offset from the instruction about to be pushed to `target`.
    fn distance(&self, target: Label) -> usize {
        self.reversed.len() - target
    }

    fn load(&mut self, offset: u32) -> Label {
        self.push(LD_W_ABS, 0, 0, offset)
    }

    fn and(&mut self, mask: u32) -> Label {
        self.push(ALU_AND_K, 0, 0, mask)
    }

    /// A `ret`, shared with an earlier identical one when that is close enough to be reached by
    /// a conditional jump.
    fn ret(&mut self, ret: Ret) -> Label {
        if let Some(&label) = self.rets.get(&ret.0) {
            if self.distance(label) <= JUMP_REACH {
                return label;
            }
        }
        let label = self.push(RET_K, 0, 0, ret.0);
        self.rets.insert(ret.0, label);
        label
    }

    /// `ja target`: unconditional, with a 32-bit offset.
    fn ja(&mut self, target: Label) -> Label {
        let offset = u32::try_from(self.distance(target)).unwrap_or(u32::MAX);
        self.push(JMP_JA, 0, 0, offset)
    }

    /// A conditional jump to `t` when `A <op> k` holds, else to `f`.
    fn jump(&mut self, code: u16, k: u32, t: Label, f: Label) -> Label {
        // jt and jf are 8 bits: a farther target is reached through a `ja` placed right after
        // this instruction. At most two such trampolines are added, so a target within
        // JUMP_REACH is still reachable directly afterwards.
        let f = if self.distance(f) > JUMP_REACH {
            self.ja(f)
        } else {
            f
        };
        let t = if self.distance(t) > JUMP_REACH + 1 {
            self.ja(t)
        } else {
            t
        };
        let jt = u8::try_from(self.distance(t)).expect("targets beyond 254 go through a ja");
        let jf = u8::try_from(self.distance(f)).expect("targets beyond 253 go through a ja");
        self.push(code, jt, jf, k)
    }

    /// Tests one argument comparison, continuing at `pass` or `fail`. 64-bit values are
    /// compared as two 32-bit words, high word first (classic BPF has a 32-bit accumulator).
    /// All ABIs handled here are little-endian: the low word comes first in `args[i]`.
    fn cond(&mut self, c: &Cond, pass: Label, fail: Label) -> Label {
        let lo = DATA_ARGS + 8 * c.arg;
        let hi = lo + 4;
        let (value_hi, value_lo) = split(c.value);
        match c.op {
            LinuxSeccompOperator::ScmpCmpEq => {
                self.jump(JMP_JEQ_K, value_lo, pass, fail);
                let low = self.load(lo);
                self.jump(JMP_JEQ_K, value_hi, low, fail);
                self.load(hi)
            }
            LinuxSeccompOperator::ScmpCmpNe => {
                self.jump(JMP_JEQ_K, value_lo, fail, pass);
                let low = self.load(lo);
                self.jump(JMP_JEQ_K, value_hi, low, pass);
                self.load(hi)
            }
            LinuxSeccompOperator::ScmpCmpGt => self.greater(c, JMP_JGT_K, pass, fail),
            LinuxSeccompOperator::ScmpCmpGe => self.greater(c, JMP_JGE_K, pass, fail),
            // a < v is !(a >= v); a <= v is !(a > v).
            LinuxSeccompOperator::ScmpCmpLt => self.greater(c, JMP_JGE_K, fail, pass),
            LinuxSeccompOperator::ScmpCmpLe => self.greater(c, JMP_JGT_K, fail, pass),
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                let (mask_hi, mask_lo) = split(c.value);
                let (datum_hi, datum_lo) = split(c.value_two);
                self.jump(JMP_JEQ_K, datum_lo, pass, fail);
                self.and(mask_lo);
                let low = self.load(lo);
                if mask_hi == 0 && datum_hi == 0 {
                    // (hi & 0) == 0 always holds.
                    return low;
                }
                self.jump(JMP_JEQ_K, datum_hi, low, fail);
                self.and(mask_hi);
                self.load(hi)
            }
        }
    }

    /// `a > v` (`low_op` JGT) or `a >= v` (JGE): decided by the high words unless they are
    /// equal, then by the low words.
    fn greater(&mut self, c: &Cond, low_op: u16, yes: Label, no: Label) -> Label {
        let lo = DATA_ARGS + 8 * c.arg;
        let (value_hi, value_lo) = split(c.value);
        self.jump(low_op, value_lo, yes, no);
        let low = self.load(lo);
        let equal = self.jump(JMP_JEQ_K, value_hi, low, no);
        self.jump(JMP_JGT_K, value_hi, yes, equal);
        self.load(lo + 4)
    }

    /// A rule: its conditions in order, then its `ret`; any failed condition goes to `fail`.
    fn rule(&mut self, rule: &Rule, fail: Label) -> Label {
        let mut next = self.ret(rule.ret);
        for cond in rule.conds.iter().rev() {
            next = self.cond(cond, next, fail);
        }
        next
    }

    /// The dispatch entry of one syscall (`A` holds `nr`); `next` is the following entry.
    fn syscall(&mut self, nr: u32, rules: &[Rule], default: Ret, next: Label) -> Label {
        let body = match rules {
            [only] if only.conds.is_empty() => self.ret(only.ret),
            _ => {
                let mut fail = self.ret(default);
                for rule in rules.iter().rev() {
                    fail = self.rule(rule, fail);
                }
                fail
            }
        };
        self.jump(JMP_JEQ_K, nr, body, next)
    }

    /// One ABI's section; `x32` is where x32 syscalls go from the x86_64 section.
    fn section(&mut self, section: &Section<'_>, default: Ret, x32: Option<Label>) -> Label {
        let mut next = self.ret(default);
        for (&nr, rules) in section.rules.iter().rev() {
            next = self.syscall(nr, rules, default, next);
        }
        let stub = section.listed && !default.lets_through();
        if let Some(largest) = section.largest_nr.filter(|_| stub) {
            let enosys = self.ret(Ret::ENOSYS);
            next = self.jump(JMP_JGT_K, largest, enosys, next);
        }
        if section.abi == Abi::X86_64 {
            let x32 = match x32 {
                Some(label) => label,
                None => self.ret(Ret::KILL_PROCESS),
            };
            self.jump(JMP_JSET_K, X32_SYSCALL_BIT, x32, next);
        }
        self.load(DATA_NR)
    }
}

/// The farthest a conditional jump is emitted directly; see [`Emitter::jump`].
const JUMP_REACH: usize = 253;

fn split(value: u64) -> (u32, u32) {
    ((value >> 32) as u32, value as u32)
}

/// The whole program; `sections[0]` is the native ABI.
fn generate(sections: &[Section<'_>], default: Ret) -> BpfProgram {
    let mut e = Emitter::default();
    // x32 first: the x86_64 section jumps to it.
    let x32 = sections
        .iter()
        .find(|s| s.abi == Abi::X32)
        .map(|s| e.section(s, default, None));
    let mut entries = Vec::new();
    for section in sections.iter().rev().filter(|s| s.abi != Abi::X32) {
        let label = e.section(section, default, x32);
        entries.push((section.abi.audit_arch(), label));
    }
    let mut next = e.ret(Ret::KILL_PROCESS);
    // `entries` runs from the last section to the native one, so the native check comes first.
    for (audit_arch, label) in entries {
        next = e.jump(JMP_JEQ_K, audit_arch, label, next);
    }
    e.load(DATA_ARCH);
    e.reversed.reverse();
    e.reversed
}

// Syscall tables.
//
// Name → number for each ABI, sorted by name, as the kernel's tables define them for Linux 6.17
// (syscall numbers are never reused, so newer kernels only add entries):
// - x86_64: arch/x86/entry/syscalls/syscall_64.tbl, ABIs `common` and `64`;
// - x32: the same table, ABIs `common` and `x32`, without `__X32_SYSCALL_BIT` (added on lookup);
// - x86: arch/x86/entry/syscalls/syscall_32.tbl;
// - aarch64: scripts/syscall.tbl, ABIs `common`, `64`, `renameat`, `rlimit`, `memfd_secret`
//   (arch/arm64/kernel/Makefile.syscalls);
// - arm: arch/arm/tools/syscall.tbl, ABIs `common` and `eabi` (no OABI), plus the ARM-private
//   calls at `__ARM_NR_BASE` (0x0f0000, arch/arm/include/uapi/asm/unistd.h) and libseccomp's
//   alias `sync_file_range2` for `arm_sync_file_range`.
// Every number was cross-checked against the `SYS_*` constants of the `libc` crate (0.2.191),
// which its CI checks against glibc's headers; libc lacks some recent entries, never disagrees.
// To add a syscall: append it to each table it exists in, keeping the name order (a test checks).

/// `name nr, …` into a `&[(&str, u32)]`; a macro so that the tables stay dense.
macro_rules! syscalls {
    ($($name:tt $nr:literal),* $(,)?) => {
        &[$((stringify!($name), $nr)),*]
    };
}

static X86_64: &[(&str, u32)] = syscalls! {
    _sysctl 156, accept 43, accept4 288, access 21, acct 163, add_key 248, adjtimex 159,
    afs_syscall 183, alarm 37, arch_prctl 158, bind 49, bpf 321, brk 12, cachestat 451, capget 125,
    capset 126, chdir 80, chmod 90, chown 92, chroot 161, clock_adjtime 305, clock_getres 229,
    clock_gettime 228, clock_nanosleep 230, clock_settime 227, clone 56, clone3 435, close 3,
    close_range 436, connect 42, copy_file_range 326, creat 85, create_module 174,
    delete_module 176, dup 32, dup2 33, dup3 292, epoll_create 213, epoll_create1 291,
    epoll_ctl 233, epoll_ctl_old 214, epoll_pwait 281, epoll_pwait2 441, epoll_wait 232,
    epoll_wait_old 215, eventfd 284, eventfd2 290, execve 59, execveat 322, exit 60,
    exit_group 231, faccessat 269, faccessat2 439, fadvise64 221, fallocate 285, fanotify_init 300,
    fanotify_mark 301, fchdir 81, fchmod 91, fchmodat 268, fchmodat2 452, fchown 93, fchownat 260,
    fcntl 72, fdatasync 75, fgetxattr 193, file_getattr 468, file_setattr 469, finit_module 313,
    flistxattr 196, flock 73, fork 57, fremovexattr 199, fsconfig 431, fsetxattr 190, fsmount 432,
    fsopen 430, fspick 433, fstat 5, fstatfs 138, fsync 74, ftruncate 77, futex 202,
    futex_requeue 456, futex_wait 455, futex_waitv 449, futex_wake 454, futimesat 261,
    get_kernel_syms 177, get_mempolicy 239, get_robust_list 274, get_thread_area 211, getcpu 309,
    getcwd 79, getdents 78, getdents64 217, getegid 108, geteuid 107, getgid 104, getgroups 115,
    getitimer 36, getpeername 52, getpgid 121, getpgrp 111, getpid 39, getpmsg 181, getppid 110,
    getpriority 140, getrandom 318, getresgid 120, getresuid 118, getrlimit 97, getrusage 98,
    getsid 124, getsockname 51, getsockopt 55, gettid 186, gettimeofday 96, getuid 102,
    getxattr 191, getxattrat 464, init_module 175, inotify_add_watch 254, inotify_init 253,
    inotify_init1 294, inotify_rm_watch 255, io_cancel 210, io_destroy 207, io_getevents 208,
    io_pgetevents 333, io_setup 206, io_submit 209, io_uring_enter 426, io_uring_register 427,
    io_uring_setup 425, ioctl 16, ioperm 173, iopl 172, ioprio_get 252, ioprio_set 251, kcmp 312,
    kexec_file_load 320, kexec_load 246, keyctl 250, kill 62, landlock_add_rule 445,
    landlock_create_ruleset 444, landlock_restrict_self 446, lchown 94, lgetxattr 192, link 86,
    linkat 265, listen 50, listmount 458, listxattr 194, listxattrat 465, llistxattr 195,
    lookup_dcookie 212, lremovexattr 198, lseek 8, lsetxattr 189, lsm_get_self_attr 459,
    lsm_list_modules 461, lsm_set_self_attr 460, lstat 6, madvise 28, map_shadow_stack 453,
    mbind 237, membarrier 324, memfd_create 319, memfd_secret 447, migrate_pages 256, mincore 27,
    mkdir 83, mkdirat 258, mknod 133, mknodat 259, mlock 149, mlock2 325, mlockall 151, mmap 9,
    modify_ldt 154, mount 165, mount_setattr 442, move_mount 429, move_pages 279, mprotect 10,
    mq_getsetattr 245, mq_notify 244, mq_open 240, mq_timedreceive 243, mq_timedsend 242,
    mq_unlink 241, mremap 25, mseal 462, msgctl 71, msgget 68, msgrcv 70, msgsnd 69, msync 26,
    munlock 150, munlockall 152, munmap 11, name_to_handle_at 303, nanosleep 35, newfstatat 262,
    nfsservctl 180, open 2, open_by_handle_at 304, open_tree 428, open_tree_attr 467, openat 257,
    openat2 437, pause 34, perf_event_open 298, personality 135, pidfd_getfd 438, pidfd_open 434,
    pidfd_send_signal 424, pipe 22, pipe2 293, pivot_root 155, pkey_alloc 330, pkey_free 331,
    pkey_mprotect 329, poll 7, ppoll 271, prctl 157, pread64 17, preadv 295, preadv2 327,
    prlimit64 302, process_madvise 440, process_mrelease 448, process_vm_readv 310,
    process_vm_writev 311, pselect6 270, ptrace 101, putpmsg 182, pwrite64 18, pwritev 296,
    pwritev2 328, query_module 178, quotactl 179, quotactl_fd 443, read 0, readahead 187,
    readlink 89, readlinkat 267, readv 19, reboot 169, recvfrom 45, recvmmsg 299, recvmsg 47,
    remap_file_pages 216, removexattr 197, removexattrat 466, rename 82, renameat 264,
    renameat2 316, request_key 249, restart_syscall 219, rmdir 84, rseq 334, rt_sigaction 13,
    rt_sigpending 127, rt_sigprocmask 14, rt_sigqueueinfo 129, rt_sigreturn 15, rt_sigsuspend 130,
    rt_sigtimedwait 128, rt_tgsigqueueinfo 297, sched_get_priority_max 146,
    sched_get_priority_min 147, sched_getaffinity 204, sched_getattr 315, sched_getparam 143,
    sched_getscheduler 145, sched_rr_get_interval 148, sched_setaffinity 203, sched_setattr 314,
    sched_setparam 142, sched_setscheduler 144, sched_yield 24, seccomp 317, security 185,
    select 23, semctl 66, semget 64, semop 65, semtimedop 220, sendfile 40, sendmmsg 307,
    sendmsg 46, sendto 44, set_mempolicy 238, set_mempolicy_home_node 450, set_robust_list 273,
    set_thread_area 205, set_tid_address 218, setdomainname 171, setfsgid 123, setfsuid 122,
    setgid 106, setgroups 116, sethostname 170, setitimer 38, setns 308, setpgid 109,
    setpriority 141, setregid 114, setresgid 119, setresuid 117, setreuid 113, setrlimit 160,
    setsid 112, setsockopt 54, settimeofday 164, setuid 105, setxattr 188, setxattrat 463,
    shmat 30, shmctl 31, shmdt 67, shmget 29, shutdown 48, sigaltstack 131, signalfd 282,
    signalfd4 289, socket 41, socketpair 53, splice 275, stat 4, statfs 137, statmount 457,
    statx 332, swapoff 168, swapon 167, symlink 88, symlinkat 266, sync 162, sync_file_range 277,
    syncfs 306, sysfs 139, sysinfo 99, syslog 103, tee 276, tgkill 234, time 201, timer_create 222,
    timer_delete 226, timer_getoverrun 225, timer_gettime 224, timer_settime 223,
    timerfd_create 283, timerfd_gettime 287, timerfd_settime 286, times 100, tkill 200,
    truncate 76, tuxcall 184, umask 95, umount2 166, uname 63, unlink 87, unlinkat 263,
    unshare 272, uretprobe 335, uselib 134, userfaultfd 323, ustat 136, utime 132, utimensat 280,
    utimes 235, vfork 58, vhangup 153, vmsplice 278, vserver 236, wait4 61, waitid 247, write 1,
    writev 20,
};

static X32: &[(&str, u32)] = syscalls! {
    accept 43, accept4 288, access 21, acct 163, add_key 248, adjtimex 159, afs_syscall 183,
    alarm 37, arch_prctl 158, bind 49, bpf 321, brk 12, cachestat 451, capget 125, capset 126,
    chdir 80, chmod 90, chown 92, chroot 161, clock_adjtime 305, clock_getres 229,
    clock_gettime 228, clock_nanosleep 230, clock_settime 227, clone 56, clone3 435, close 3,
    close_range 436, connect 42, copy_file_range 326, creat 85, delete_module 176, dup 32, dup2 33,
    dup3 292, epoll_create 213, epoll_create1 291, epoll_ctl 233, epoll_pwait 281,
    epoll_pwait2 441, epoll_wait 232, eventfd 284, eventfd2 290, execve 520, execveat 545, exit 60,
    exit_group 231, faccessat 269, faccessat2 439, fadvise64 221, fallocate 285, fanotify_init 300,
    fanotify_mark 301, fchdir 81, fchmod 91, fchmodat 268, fchmodat2 452, fchown 93, fchownat 260,
    fcntl 72, fdatasync 75, fgetxattr 193, file_getattr 468, file_setattr 469, finit_module 313,
    flistxattr 196, flock 73, fork 57, fremovexattr 199, fsconfig 431, fsetxattr 190, fsmount 432,
    fsopen 430, fspick 433, fstat 5, fstatfs 138, fsync 74, ftruncate 77, futex 202,
    futex_requeue 456, futex_wait 455, futex_waitv 449, futex_wake 454, futimesat 261,
    get_mempolicy 239, get_robust_list 531, getcpu 309, getcwd 79, getdents 78, getdents64 217,
    getegid 108, geteuid 107, getgid 104, getgroups 115, getitimer 36, getpeername 52, getpgid 121,
    getpgrp 111, getpid 39, getpmsg 181, getppid 110, getpriority 140, getrandom 318,
    getresgid 120, getresuid 118, getrlimit 97, getrusage 98, getsid 124, getsockname 51,
    getsockopt 542, gettid 186, gettimeofday 96, getuid 102, getxattr 191, getxattrat 464,
    init_module 175, inotify_add_watch 254, inotify_init 253, inotify_init1 294,
    inotify_rm_watch 255, io_cancel 210, io_destroy 207, io_getevents 208, io_pgetevents 333,
    io_setup 543, io_submit 544, io_uring_enter 426, io_uring_register 427, io_uring_setup 425,
    ioctl 514, ioperm 173, iopl 172, ioprio_get 252, ioprio_set 251, kcmp 312, kexec_file_load 320,
    kexec_load 528, keyctl 250, kill 62, landlock_add_rule 445, landlock_create_ruleset 444,
    landlock_restrict_self 446, lchown 94, lgetxattr 192, link 86, linkat 265, listen 50,
    listmount 458, listxattr 194, listxattrat 465, llistxattr 195, lookup_dcookie 212,
    lremovexattr 198, lseek 8, lsetxattr 189, lsm_get_self_attr 459, lsm_list_modules 461,
    lsm_set_self_attr 460, lstat 6, madvise 28, map_shadow_stack 453, mbind 237, membarrier 324,
    memfd_create 319, memfd_secret 447, migrate_pages 256, mincore 27, mkdir 83, mkdirat 258,
    mknod 133, mknodat 259, mlock 149, mlock2 325, mlockall 151, mmap 9, modify_ldt 154, mount 165,
    mount_setattr 442, move_mount 429, move_pages 533, mprotect 10, mq_getsetattr 245,
    mq_notify 527, mq_open 240, mq_timedreceive 243, mq_timedsend 242, mq_unlink 241, mremap 25,
    mseal 462, msgctl 71, msgget 68, msgrcv 70, msgsnd 69, msync 26, munlock 150, munlockall 152,
    munmap 11, name_to_handle_at 303, nanosleep 35, newfstatat 262, open 2, open_by_handle_at 304,
    open_tree 428, open_tree_attr 467, openat 257, openat2 437, pause 34, perf_event_open 298,
    personality 135, pidfd_getfd 438, pidfd_open 434, pidfd_send_signal 424, pipe 22, pipe2 293,
    pivot_root 155, pkey_alloc 330, pkey_free 331, pkey_mprotect 329, poll 7, ppoll 271, prctl 157,
    pread64 17, preadv 534, preadv2 546, prlimit64 302, process_madvise 440, process_mrelease 448,
    process_vm_readv 539, process_vm_writev 540, pselect6 270, ptrace 521, putpmsg 182,
    pwrite64 18, pwritev 535, pwritev2 547, quotactl 179, quotactl_fd 443, read 0, readahead 187,
    readlink 89, readlinkat 267, readv 515, reboot 169, recvfrom 517, recvmmsg 537, recvmsg 519,
    remap_file_pages 216, removexattr 197, removexattrat 466, rename 82, renameat 264,
    renameat2 316, request_key 249, restart_syscall 219, rmdir 84, rseq 334, rt_sigaction 512,
    rt_sigpending 522, rt_sigprocmask 14, rt_sigqueueinfo 524, rt_sigreturn 513, rt_sigsuspend 130,
    rt_sigtimedwait 523, rt_tgsigqueueinfo 536, sched_get_priority_max 146,
    sched_get_priority_min 147, sched_getaffinity 204, sched_getattr 315, sched_getparam 143,
    sched_getscheduler 145, sched_rr_get_interval 148, sched_setaffinity 203, sched_setattr 314,
    sched_setparam 142, sched_setscheduler 144, sched_yield 24, seccomp 317, security 185,
    select 23, semctl 66, semget 64, semop 65, semtimedop 220, sendfile 40, sendmmsg 538,
    sendmsg 518, sendto 44, set_mempolicy 238, set_mempolicy_home_node 450, set_robust_list 530,
    set_tid_address 218, setdomainname 171, setfsgid 123, setfsuid 122, setgid 106, setgroups 116,
    sethostname 170, setitimer 38, setns 308, setpgid 109, setpriority 141, setregid 114,
    setresgid 119, setresuid 117, setreuid 113, setrlimit 160, setsid 112, setsockopt 541,
    settimeofday 164, setuid 105, setxattr 188, setxattrat 463, shmat 30, shmctl 31, shmdt 67,
    shmget 29, shutdown 48, sigaltstack 525, signalfd 282, signalfd4 289, socket 41, socketpair 53,
    splice 275, stat 4, statfs 137, statmount 457, statx 332, swapoff 168, swapon 167, symlink 88,
    symlinkat 266, sync 162, sync_file_range 277, syncfs 306, sysfs 139, sysinfo 99, syslog 103,
    tee 276, tgkill 234, time 201, timer_create 526, timer_delete 226, timer_getoverrun 225,
    timer_gettime 224, timer_settime 223, timerfd_create 283, timerfd_gettime 287,
    timerfd_settime 286, times 100, tkill 200, truncate 76, tuxcall 184, umask 95, umount2 166,
    uname 63, unlink 87, unlinkat 263, unshare 272, userfaultfd 323, ustat 136, utime 132,
    utimensat 280, utimes 235, vfork 58, vhangup 153, vmsplice 532, wait4 61, waitid 529, write 1,
    writev 516,
};

static X86: &[(&str, u32)] = syscalls! {
    _llseek 140, _newselect 142, _sysctl 149, accept4 364, access 33, acct 51, add_key 286,
    adjtimex 124, afs_syscall 137, alarm 27, arch_prctl 384, bdflush 134, bind 361, bpf 357,
    break 17, brk 45, cachestat 451, capget 184, capset 185, chdir 12, chmod 15, chown 182,
    chown32 212, chroot 61, clock_adjtime 343, clock_adjtime64 405, clock_getres 266,
    clock_getres_time64 406, clock_gettime 265, clock_gettime64 403, clock_nanosleep 267,
    clock_nanosleep_time64 407, clock_settime 264, clock_settime64 404, clone 120, clone3 435,
    close 6, close_range 436, connect 362, copy_file_range 377, creat 8, create_module 127,
    delete_module 129, dup 41, dup2 63, dup3 330, epoll_create 254, epoll_create1 329,
    epoll_ctl 255, epoll_pwait 319, epoll_pwait2 441, epoll_wait 256, eventfd 323, eventfd2 328,
    execve 11, execveat 358, exit 1, exit_group 252, faccessat 307, faccessat2 439, fadvise64 250,
    fadvise64_64 272, fallocate 324, fanotify_init 338, fanotify_mark 339, fchdir 133, fchmod 94,
    fchmodat 306, fchmodat2 452, fchown 95, fchown32 207, fchownat 298, fcntl 55, fcntl64 221,
    fdatasync 148, fgetxattr 231, file_getattr 468, file_setattr 469, finit_module 350,
    flistxattr 234, flock 143, fork 2, fremovexattr 237, fsconfig 431, fsetxattr 228, fsmount 432,
    fsopen 430, fspick 433, fstat 108, fstat64 197, fstatat64 300, fstatfs 100, fstatfs64 269,
    fsync 118, ftime 35, ftruncate 93, ftruncate64 194, futex 240, futex_requeue 456,
    futex_time64 422, futex_wait 455, futex_waitv 449, futex_wake 454, futimesat 299,
    get_kernel_syms 130, get_mempolicy 275, get_robust_list 312, get_thread_area 244, getcpu 318,
    getcwd 183, getdents 141, getdents64 220, getegid 50, getegid32 202, geteuid 49, geteuid32 201,
    getgid 47, getgid32 200, getgroups 80, getgroups32 205, getitimer 105, getpeername 368,
    getpgid 132, getpgrp 65, getpid 20, getpmsg 188, getppid 64, getpriority 96, getrandom 355,
    getresgid 171, getresgid32 211, getresuid 165, getresuid32 209, getrlimit 76, getrusage 77,
    getsid 147, getsockname 367, getsockopt 365, gettid 224, gettimeofday 78, getuid 24,
    getuid32 199, getxattr 229, getxattrat 464, gtty 32, idle 112, init_module 128,
    inotify_add_watch 292, inotify_init 291, inotify_init1 332, inotify_rm_watch 293,
    io_cancel 249, io_destroy 246, io_getevents 247, io_pgetevents 385, io_pgetevents_time64 416,
    io_setup 245, io_submit 248, io_uring_enter 426, io_uring_register 427, io_uring_setup 425,
    ioctl 54, ioperm 101, iopl 110, ioprio_get 290, ioprio_set 289, ipc 117, kcmp 349,
    kexec_load 283, keyctl 288, kill 37, landlock_add_rule 445, landlock_create_ruleset 444,
    landlock_restrict_self 446, lchown 16, lchown32 198, lgetxattr 230, link 9, linkat 303,
    listen 363, listmount 458, listxattr 232, listxattrat 465, llistxattr 233, lock 53,
    lookup_dcookie 253, lremovexattr 236, lseek 19, lsetxattr 227, lsm_get_self_attr 459,
    lsm_list_modules 461, lsm_set_self_attr 460, lstat 107, lstat64 196, madvise 219,
    map_shadow_stack 453, mbind 274, membarrier 375, memfd_create 356, memfd_secret 447,
    migrate_pages 294, mincore 218, mkdir 39, mkdirat 296, mknod 14, mknodat 297, mlock 150,
    mlock2 376, mlockall 152, mmap 90, mmap2 192, modify_ldt 123, mount 21, mount_setattr 442,
    move_mount 429, move_pages 317, mprotect 125, mpx 56, mq_getsetattr 282, mq_notify 281,
    mq_open 277, mq_timedreceive 280, mq_timedreceive_time64 419, mq_timedsend 279,
    mq_timedsend_time64 418, mq_unlink 278, mremap 163, mseal 462, msgctl 402, msgget 399,
    msgrcv 401, msgsnd 400, msync 144, munlock 151, munlockall 153, munmap 91,
    name_to_handle_at 341, nanosleep 162, nfsservctl 169, nice 34, oldfstat 28, oldlstat 84,
    oldolduname 59, oldstat 18, olduname 109, open 5, open_by_handle_at 342, open_tree 428,
    open_tree_attr 467, openat 295, openat2 437, pause 29, perf_event_open 336, personality 136,
    pidfd_getfd 438, pidfd_open 434, pidfd_send_signal 424, pipe 42, pipe2 331, pivot_root 217,
    pkey_alloc 381, pkey_free 382, pkey_mprotect 380, poll 168, ppoll 309, ppoll_time64 414,
    prctl 172, pread64 180, preadv 333, preadv2 378, prlimit64 340, process_madvise 440,
    process_mrelease 448, process_vm_readv 347, process_vm_writev 348, prof 44, profil 98,
    pselect6 308, pselect6_time64 413, ptrace 26, putpmsg 189, pwrite64 181, pwritev 334,
    pwritev2 379, query_module 167, quotactl 131, quotactl_fd 443, read 3, readahead 225,
    readdir 89, readlink 85, readlinkat 305, readv 145, reboot 88, recvfrom 371, recvmmsg 337,
    recvmmsg_time64 417, recvmsg 372, remap_file_pages 257, removexattr 235, removexattrat 466,
    rename 38, renameat 302, renameat2 353, request_key 287, restart_syscall 0, rmdir 40, rseq 386,
    rt_sigaction 174, rt_sigpending 176, rt_sigprocmask 175, rt_sigqueueinfo 178, rt_sigreturn 173,
    rt_sigsuspend 179, rt_sigtimedwait 177, rt_sigtimedwait_time64 421, rt_tgsigqueueinfo 335,
    sched_get_priority_max 159, sched_get_priority_min 160, sched_getaffinity 242,
    sched_getattr 352, sched_getparam 155, sched_getscheduler 157, sched_rr_get_interval 161,
    sched_rr_get_interval_time64 423, sched_setaffinity 241, sched_setattr 351, sched_setparam 154,
    sched_setscheduler 156, sched_yield 158, seccomp 354, select 82, semctl 394, semget 393,
    semtimedop_time64 420, sendfile 187, sendfile64 239, sendmmsg 345, sendmsg 370, sendto 369,
    set_mempolicy 276, set_mempolicy_home_node 450, set_robust_list 311, set_thread_area 243,
    set_tid_address 258, setdomainname 121, setfsgid 139, setfsgid32 216, setfsuid 138,
    setfsuid32 215, setgid 46, setgid32 214, setgroups 81, setgroups32 206, sethostname 74,
    setitimer 104, setns 346, setpgid 57, setpriority 97, setregid 71, setregid32 204,
    setresgid 170, setresgid32 210, setresuid 164, setresuid32 208, setreuid 70, setreuid32 203,
    setrlimit 75, setsid 66, setsockopt 366, settimeofday 79, setuid 23, setuid32 213,
    setxattr 226, setxattrat 463, sgetmask 68, shmat 397, shmctl 396, shmdt 398, shmget 395,
    shutdown 373, sigaction 67, sigaltstack 186, signal 48, signalfd 321, signalfd4 327,
    sigpending 73, sigprocmask 126, sigreturn 119, sigsuspend 72, socket 359, socketcall 102,
    socketpair 360, splice 313, ssetmask 69, stat 106, stat64 195, statfs 99, statfs64 268,
    statmount 457, statx 383, stime 25, stty 31, swapoff 115, swapon 87, symlink 83, symlinkat 304,
    sync 36, sync_file_range 314, syncfs 344, sysfs 135, sysinfo 116, syslog 103, tee 315,
    tgkill 270, time 13, timer_create 259, timer_delete 263, timer_getoverrun 262,
    timer_gettime 261, timer_gettime64 408, timer_settime 260, timer_settime64 409,
    timerfd_create 322, timerfd_gettime 326, timerfd_gettime64 410, timerfd_settime 325,
    timerfd_settime64 411, times 43, tkill 238, truncate 92, truncate64 193, ugetrlimit 191,
    ulimit 58, umask 60, umount 22, umount2 52, uname 122, unlink 10, unlinkat 301, unshare 310,
    uselib 86, userfaultfd 374, ustat 62, utime 30, utimensat 320, utimensat_time64 412,
    utimes 271, vfork 190, vhangup 111, vm86 166, vm86old 113, vmsplice 316, vserver 273,
    wait4 114, waitid 284, waitpid 7, write 4, writev 146,
};

static AARCH64: &[(&str, u32)] = syscalls! {
    accept 202, accept4 242, acct 89, add_key 217, adjtimex 171, bind 200, bpf 280, brk 214,
    cachestat 451, capget 90, capset 91, chdir 49, chroot 51, clock_adjtime 266, clock_getres 114,
    clock_gettime 113, clock_nanosleep 115, clock_settime 112, clone 220, clone3 435, close 57,
    close_range 436, connect 203, copy_file_range 285, delete_module 106, dup 23, dup3 24,
    epoll_create1 20, epoll_ctl 21, epoll_pwait 22, epoll_pwait2 441, eventfd2 19, execve 221,
    execveat 281, exit 93, exit_group 94, faccessat 48, faccessat2 439, fadvise64 223,
    fallocate 47, fanotify_init 262, fanotify_mark 263, fchdir 50, fchmod 52, fchmodat 53,
    fchmodat2 452, fchown 55, fchownat 54, fcntl 25, fdatasync 83, fgetxattr 10, file_getattr 468,
    file_setattr 469, finit_module 273, flistxattr 13, flock 32, fremovexattr 16, fsconfig 431,
    fsetxattr 7, fsmount 432, fsopen 430, fspick 433, fstat 80, fstatfs 44, fsync 82, ftruncate 46,
    futex 98, futex_requeue 456, futex_wait 455, futex_waitv 449, futex_wake 454,
    get_mempolicy 236, get_robust_list 100, getcpu 168, getcwd 17, getdents64 61, getegid 177,
    geteuid 175, getgid 176, getgroups 158, getitimer 102, getpeername 205, getpgid 155,
    getpid 172, getppid 173, getpriority 141, getrandom 278, getresgid 150, getresuid 148,
    getrlimit 163, getrusage 165, getsid 156, getsockname 204, getsockopt 209, gettid 178,
    gettimeofday 169, getuid 174, getxattr 8, getxattrat 464, init_module 105,
    inotify_add_watch 27, inotify_init1 26, inotify_rm_watch 28, io_cancel 3, io_destroy 1,
    io_getevents 4, io_pgetevents 292, io_setup 0, io_submit 2, io_uring_enter 426,
    io_uring_register 427, io_uring_setup 425, ioctl 29, ioprio_get 31, ioprio_set 30, kcmp 272,
    kexec_file_load 294, kexec_load 104, keyctl 219, kill 129, landlock_add_rule 445,
    landlock_create_ruleset 444, landlock_restrict_self 446, lgetxattr 9, linkat 37, listen 201,
    listmount 458, listxattr 11, listxattrat 465, llistxattr 12, lookup_dcookie 18,
    lremovexattr 15, lseek 62, lsetxattr 6, lsm_get_self_attr 459, lsm_list_modules 461,
    lsm_set_self_attr 460, madvise 233, map_shadow_stack 453, mbind 235, membarrier 283,
    memfd_create 279, memfd_secret 447, migrate_pages 238, mincore 232, mkdirat 34, mknodat 33,
    mlock 228, mlock2 284, mlockall 230, mmap 222, mount 40, mount_setattr 442, move_mount 429,
    move_pages 239, mprotect 226, mq_getsetattr 185, mq_notify 184, mq_open 180,
    mq_timedreceive 183, mq_timedsend 182, mq_unlink 181, mremap 216, mseal 462, msgctl 187,
    msgget 186, msgrcv 188, msgsnd 189, msync 227, munlock 229, munlockall 231, munmap 215,
    name_to_handle_at 264, nanosleep 101, newfstatat 79, nfsservctl 42, open_by_handle_at 265,
    open_tree 428, open_tree_attr 467, openat 56, openat2 437, perf_event_open 241, personality 92,
    pidfd_getfd 438, pidfd_open 434, pidfd_send_signal 424, pipe2 59, pivot_root 41,
    pkey_alloc 289, pkey_free 290, pkey_mprotect 288, ppoll 73, prctl 167, pread64 67, preadv 69,
    preadv2 286, prlimit64 261, process_madvise 440, process_mrelease 448, process_vm_readv 270,
    process_vm_writev 271, pselect6 72, ptrace 117, pwrite64 68, pwritev 70, pwritev2 287,
    quotactl 60, quotactl_fd 443, read 63, readahead 213, readlinkat 78, readv 65, reboot 142,
    recvfrom 207, recvmmsg 243, recvmsg 212, remap_file_pages 234, removexattr 14,
    removexattrat 466, renameat 38, renameat2 276, request_key 218, restart_syscall 128, rseq 293,
    rt_sigaction 134, rt_sigpending 136, rt_sigprocmask 135, rt_sigqueueinfo 138, rt_sigreturn 139,
    rt_sigsuspend 133, rt_sigtimedwait 137, rt_tgsigqueueinfo 240, sched_get_priority_max 125,
    sched_get_priority_min 126, sched_getaffinity 123, sched_getattr 275, sched_getparam 121,
    sched_getscheduler 120, sched_rr_get_interval 127, sched_setaffinity 122, sched_setattr 274,
    sched_setparam 118, sched_setscheduler 119, sched_yield 124, seccomp 277, semctl 191,
    semget 190, semop 193, semtimedop 192, sendfile 71, sendmmsg 269, sendmsg 211, sendto 206,
    set_mempolicy 237, set_mempolicy_home_node 450, set_robust_list 99, set_tid_address 96,
    setdomainname 162, setfsgid 152, setfsuid 151, setgid 144, setgroups 159, sethostname 161,
    setitimer 103, setns 268, setpgid 154, setpriority 140, setregid 143, setresgid 149,
    setresuid 147, setreuid 145, setrlimit 164, setsid 157, setsockopt 208, settimeofday 170,
    setuid 146, setxattr 5, setxattrat 463, shmat 196, shmctl 195, shmdt 197, shmget 194,
    shutdown 210, sigaltstack 132, signalfd4 74, socket 198, socketpair 199, splice 76, statfs 43,
    statmount 457, statx 291, swapoff 225, swapon 224, symlinkat 36, sync 81, sync_file_range 84,
    syncfs 267, sysinfo 179, syslog 116, tee 77, tgkill 131, timer_create 107, timer_delete 111,
    timer_getoverrun 109, timer_gettime 108, timer_settime 110, timerfd_create 85,
    timerfd_gettime 87, timerfd_settime 86, times 153, tkill 130, truncate 45, umask 166,
    umount2 39, uname 160, unlinkat 35, unshare 97, userfaultfd 282, utimensat 88, vhangup 58,
    vmsplice 75, wait4 260, waitid 95, write 64, writev 66,
};

static ARM: &[(&str, u32)] = syscalls! {
    _llseek 140, _newselect 142, _sysctl 149, accept 285, accept4 366, access 33, acct 51,
    add_key 309, adjtimex 124, arm_fadvise64_64 270, arm_sync_file_range 341, bdflush 134,
    bind 282, bpf 386, breakpoint 0xf0001, brk 45, cacheflush 0xf0002, cachestat 451, capget 184,
    capset 185, chdir 12, chmod 15, chown 182, chown32 212, chroot 61, clock_adjtime 372,
    clock_adjtime64 405, clock_getres 264, clock_getres_time64 406, clock_gettime 263,
    clock_gettime64 403, clock_nanosleep 265, clock_nanosleep_time64 407, clock_settime 262,
    clock_settime64 404, clone 120, clone3 435, close 6, close_range 436, connect 283,
    copy_file_range 391, creat 8, delete_module 129, dup 41, dup2 63, dup3 358, epoll_create 250,
    epoll_create1 357, epoll_ctl 251, epoll_pwait 346, epoll_pwait2 441, epoll_wait 252,
    eventfd 351, eventfd2 356, execve 11, execveat 387, exit 1, exit_group 248, faccessat 334,
    faccessat2 439, fallocate 352, fanotify_init 367, fanotify_mark 368, fchdir 133, fchmod 94,
    fchmodat 333, fchmodat2 452, fchown 95, fchown32 207, fchownat 325, fcntl 55, fcntl64 221,
    fdatasync 148, fgetxattr 231, file_getattr 468, file_setattr 469, finit_module 379,
    flistxattr 234, flock 143, fork 2, fremovexattr 237, fsconfig 431, fsetxattr 228, fsmount 432,
    fsopen 430, fspick 433, fstat 108, fstat64 197, fstatat64 327, fstatfs 100, fstatfs64 267,
    fsync 118, ftruncate 93, ftruncate64 194, futex 240, futex_requeue 456, futex_time64 422,
    futex_wait 455, futex_waitv 449, futex_wake 454, futimesat 326, get_mempolicy 320,
    get_robust_list 339, get_tls 0xf0006, getcpu 345, getcwd 183, getdents 141, getdents64 217,
    getegid 50, getegid32 202, geteuid 49, geteuid32 201, getgid 47, getgid32 200, getgroups 80,
    getgroups32 205, getitimer 105, getpeername 287, getpgid 132, getpgrp 65, getpid 20,
    getppid 64, getpriority 96, getrandom 384, getresgid 171, getresgid32 211, getresuid 165,
    getresuid32 209, getrusage 77, getsid 147, getsockname 286, getsockopt 295, gettid 224,
    gettimeofday 78, getuid 24, getuid32 199, getxattr 229, getxattrat 464, init_module 128,
    inotify_add_watch 317, inotify_init 316, inotify_init1 360, inotify_rm_watch 318,
    io_cancel 247, io_destroy 244, io_getevents 245, io_pgetevents 399, io_pgetevents_time64 416,
    io_setup 243, io_submit 246, io_uring_enter 426, io_uring_register 427, io_uring_setup 425,
    ioctl 54, ioprio_get 315, ioprio_set 314, kcmp 378, kexec_file_load 401, kexec_load 347,
    keyctl 311, kill 37, landlock_add_rule 445, landlock_create_ruleset 444,
    landlock_restrict_self 446, lchown 16, lchown32 198, lgetxattr 230, link 9, linkat 330,
    listen 284, listmount 458, listxattr 232, listxattrat 465, llistxattr 233, lookup_dcookie 249,
    lremovexattr 236, lseek 19, lsetxattr 227, lsm_get_self_attr 459, lsm_list_modules 461,
    lsm_set_self_attr 460, lstat 107, lstat64 196, madvise 220, map_shadow_stack 453, mbind 319,
    membarrier 389, memfd_create 385, migrate_pages 400, mincore 219, mkdir 39, mkdirat 323,
    mknod 14, mknodat 324, mlock 150, mlock2 390, mlockall 152, mmap2 192, mount 21,
    mount_setattr 442, move_mount 429, move_pages 344, mprotect 125, mq_getsetattr 279,
    mq_notify 278, mq_open 274, mq_timedreceive 277, mq_timedreceive_time64 419, mq_timedsend 276,
    mq_timedsend_time64 418, mq_unlink 275, mremap 163, mseal 462, msgctl 304, msgget 303,
    msgrcv 302, msgsnd 301, msync 144, munlock 151, munlockall 153, munmap 91,
    name_to_handle_at 370, nanosleep 162, nfsservctl 169, nice 34, open 5, open_by_handle_at 371,
    open_tree 428, open_tree_attr 467, openat 322, openat2 437, pause 29, pciconfig_iobase 271,
    pciconfig_read 272, pciconfig_write 273, perf_event_open 364, personality 136, pidfd_getfd 438,
    pidfd_open 434, pidfd_send_signal 424, pipe 42, pipe2 359, pivot_root 218, pkey_alloc 395,
    pkey_free 396, pkey_mprotect 394, poll 168, ppoll 336, ppoll_time64 414, prctl 172,
    pread64 180, preadv 361, preadv2 392, prlimit64 369, process_madvise 440, process_mrelease 448,
    process_vm_readv 376, process_vm_writev 377, pselect6 335, pselect6_time64 413, ptrace 26,
    pwrite64 181, pwritev 362, pwritev2 393, quotactl 131, quotactl_fd 443, read 3, readahead 225,
    readlink 85, readlinkat 332, readv 145, reboot 88, recv 291, recvfrom 292, recvmmsg 365,
    recvmmsg_time64 417, recvmsg 297, remap_file_pages 253, removexattr 235, removexattrat 466,
    rename 38, renameat 329, renameat2 382, request_key 310, restart_syscall 0, rmdir 40, rseq 398,
    rt_sigaction 174, rt_sigpending 176, rt_sigprocmask 175, rt_sigqueueinfo 178, rt_sigreturn 173,
    rt_sigsuspend 179, rt_sigtimedwait 177, rt_sigtimedwait_time64 421, rt_tgsigqueueinfo 363,
    sched_get_priority_max 159, sched_get_priority_min 160, sched_getaffinity 242,
    sched_getattr 381, sched_getparam 155, sched_getscheduler 157, sched_rr_get_interval 161,
    sched_rr_get_interval_time64 423, sched_setaffinity 241, sched_setattr 380, sched_setparam 154,
    sched_setscheduler 156, sched_yield 158, seccomp 383, semctl 300, semget 299, semop 298,
    semtimedop 312, semtimedop_time64 420, send 289, sendfile 187, sendfile64 239, sendmmsg 374,
    sendmsg 296, sendto 290, set_mempolicy 321, set_mempolicy_home_node 450, set_robust_list 338,
    set_tid_address 256, set_tls 0xf0005, setdomainname 121, setfsgid 139, setfsgid32 216,
    setfsuid 138, setfsuid32 215, setgid 46, setgid32 214, setgroups 81, setgroups32 206,
    sethostname 74, setitimer 104, setns 375, setpgid 57, setpriority 97, setregid 71,
    setregid32 204, setresgid 170, setresgid32 210, setresuid 164, setresuid32 208, setreuid 70,
    setreuid32 203, setrlimit 75, setsid 66, setsockopt 294, settimeofday 79, setuid 23,
    setuid32 213, setxattr 226, setxattrat 463, shmat 305, shmctl 308, shmdt 306, shmget 307,
    shutdown 293, sigaction 67, sigaltstack 186, signalfd 349, signalfd4 355, sigpending 73,
    sigprocmask 126, sigreturn 119, sigsuspend 72, socket 281, socketpair 288, splice 340,
    stat 106, stat64 195, statfs 99, statfs64 266, statmount 457, statx 397, swapoff 115,
    swapon 87, symlink 83, symlinkat 331, sync 36, sync_file_range2 341, syncfs 373, sysfs 135,
    sysinfo 116, syslog 103, tee 342, tgkill 268, timer_create 257, timer_delete 261,
    timer_getoverrun 260, timer_gettime 259, timer_gettime64 408, timer_settime 258,
    timer_settime64 409, timerfd_create 350, timerfd_gettime 354, timerfd_gettime64 410,
    timerfd_settime 353, timerfd_settime64 411, times 43, tkill 238, truncate 92, truncate64 193,
    ugetrlimit 191, umask 60, umount2 52, uname 122, unlink 10, unlinkat 328, unshare 337,
    uselib 86, userfaultfd 388, usr26 0xf0003, usr32 0xf0004, ustat 62, utimensat 348,
    utimensat_time64 412, utimes 269, vfork 190, vhangup 111, vmsplice 343, vserver 313, wait4 114,
    waitid 280, write 4, writev 146,
};

/// Syscalls that exist only on architectures skiff has no table for; profiles written for
/// several architectures (Docker's, containers-common's) name them, and they are skipped like
/// any syscall of another ABI.
const OTHER_ARCH_ONLY: &[&str] = &[
    "atomic_barrier",
    "atomic_cmpxchg_32",
    "cachectl",
    "multiplexer",
    "riscv_flush_icache",
    "riscv_hwprobe",
    "rtas",
    "s390_guarded_storage",
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
    "s390_runtime_instr",
    "s390_sthyi",
    "spu_create",
    "spu_run",
    "subpage_prot",
    "swapcontext",
    "switch_endian",
    "sys_debug_setcontext",
    "sysmips",
];

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output};

    use nix::errno::Errno;
    use serde_json::{Value, json};

    use super::*;

    // ---- A classic-BPF interpreter for the instructions the generator emits ----

    /// `struct seccomp_data` as the kernel fills it (instruction_pointer is always 0 here).
    #[derive(Debug, Clone, Copy)]
    struct Data {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    impl Data {
        fn word(&self, offset: u32) -> u32 {
            match offset {
                DATA_NR => self.nr,
                DATA_ARCH => self.arch,
                8 | 12 => 0,
                16..=60 if offset % 4 == 0 => {
                    let arg = self.args[((offset - DATA_ARGS) / 8) as usize];
                    // Little-endian: the low word first.
                    if offset % 8 == 0 {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                _ => panic!("load from offset {offset}, outside struct seccomp_data"),
            }
        }
    }

    /// What the kernel checks before accepting a filter (`bpf_check_classic` and
    /// `seccomp_check_filter`), for the instructions the generator emits.
    fn check(program: &[sock_filter]) {
        assert!(
            !program.is_empty() && program.len() <= BPF_MAXINSNS,
            "program length {}",
            program.len()
        );
        for (pc, insn) in program.iter().enumerate() {
            let next = pc + 1;
            match insn.code {
                LD_W_ABS => assert!(insn.k % 4 == 0 && insn.k < 64, "pc {pc}: load {}", insn.k),
                ALU_AND_K | RET_K => {}
                JMP_JA => assert!(next + (insn.k as usize) < program.len(), "pc {pc}: ja"),
                JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => assert!(
                    next + usize::from(insn.jt.max(insn.jf)) < program.len(),
                    "pc {pc}: jump out of the program"
                ),
                code => panic!("pc {pc}: unexpected opcode {code:#x}"),
            }
        }
        assert_eq!(
            program.last().map(|i| i.code),
            Some(RET_K),
            "must end in a ret"
        );
    }

    /// The filter's verdict on `data`. Classic BPF only jumps forward, so this terminates.
    fn run(program: &[sock_filter], data: &Data) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = &program[pc];
            pc += 1;
            let taken = match insn.code {
                LD_W_ABS => {
                    acc = data.word(insn.k);
                    continue;
                }
                ALU_AND_K => {
                    acc &= insn.k;
                    continue;
                }
                RET_K => return insn.k,
                JMP_JA => {
                    pc += insn.k as usize;
                    continue;
                }
                JMP_JEQ_K => acc == insn.k,
                JMP_JGT_K => acc > insn.k,
                JMP_JGE_K => acc >= insn.k,
                JMP_JSET_K => acc & insn.k != 0,
                code => panic!("unexpected opcode {code:#x}"),
            };
            pc += usize::from(if taken { insn.jt } else { insn.jf });
        }
    }

    #[test]
    fn seccomp_interpreter_follows_bpf_semantics() {
        let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
        let program = [
            insn(LD_W_ABS, 0, 0, DATA_ARGS + 4),
            insn(JMP_JSET_K, 0, 2, 0x8000_0000),
            insn(ALU_AND_K, 0, 0, 0xff),
            insn(JMP_JA, 0, 0, 1),
            insn(RET_K, 0, 0, 1),
            insn(RET_K, 0, 0, 2),
        ];
        check(&program);
        let data = |a0: u64| Data {
            nr: 0,
            arch: 0,
            args: [a0, 0, 0, 0, 0, 0],
        };
        assert_eq!(run(&program, &data(0x8000_0001_0000_0000)), 2);
        assert_eq!(run(&program, &data(0x7fff_ffff_0000_0000)), 1);
    }

    // ---- Helpers ----

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    fn profile(json: Value) -> LinuxSeccomp {
        serde_json::from_value(json).expect("a valid linux.seccomp")
    }

    fn compiled_for(json: Value, arch: Arch) -> Compiled {
        let compiled = compile(&profile(json), arch).expect("the profile compiles");
        check(compiled.program());
        compiled
    }

    fn compiled(json: Value) -> Compiled {
        compiled_for(json, Arch::X86_64)
    }

    fn compile_err(json: Value) -> SeccompError {
        compile(&profile(json), Arch::X86_64).expect_err("the profile is refused")
    }

    fn raw(c: &Compiled, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        run(c.program(), &Data { nr, arch, args })
    }

    /// The verdict on syscall `name` of `abi` called with `args`.
    fn verdict_args(c: &Compiled, abi: Abi, name: &str, args: [u64; 6]) -> u32 {
        let nr = abi
            .nr(name)
            .unwrap_or_else(|| panic!("{name} is not an {abi} syscall"));
        raw(c, abi.audit_arch(), nr, args)
    }

    fn verdict(c: &Compiled, abi: Abi, name: &str) -> u32 {
        verdict_args(c, abi, name, [0; 6])
    }

    fn x86_64(c: &Compiled, name: &str) -> u32 {
        verdict(c, Abi::X86_64, name)
    }

    /// A profile with default ERRNO(EPERM) and one ALLOW rule for `getppid` with `args`.
    fn getppid_if(args: Value) -> Compiled {
        compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": args}],
        }))
    }

    // ---- Actions ----

    #[test]
    fn seccomp_default_action_and_errno() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": libc::EACCES,
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}],
        }));
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
        assert_eq!(x86_64(&c, "mkdir"), errno(libc::EACCES));
        assert_eq!(
            raw(&c, AUDIT_ARCH_X86_64, 1000, [0; 6]),
            errno(libc::EACCES)
        );

        let c = compiled(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
        assert_eq!(
            x86_64(&c, "getppid"),
            errno(libc::EPERM),
            "runc's default errno"
        );
        let c = compiled(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
    }

    #[test]
    fn seccomp_every_action_has_its_return_value() {
        let cases: [(&str, Option<u32>, u32); 10] = [
            ("SCMP_ACT_ALLOW", None, ALLOW),
            ("SCMP_ACT_ERRNO", None, errno(libc::EPERM)),
            ("SCMP_ACT_ERRNO", Some(38), errno(38)),
            ("SCMP_ACT_KILL", None, libc::SECCOMP_RET_KILL_THREAD),
            ("SCMP_ACT_KILL_THREAD", None, libc::SECCOMP_RET_KILL_THREAD),
            ("SCMP_ACT_KILL_PROCESS", None, KILL_PROCESS),
            ("SCMP_ACT_TRAP", None, libc::SECCOMP_RET_TRAP),
            (
                "SCMP_ACT_TRACE",
                None,
                libc::SECCOMP_RET_TRACE | libc::EPERM as u32,
            ),
            ("SCMP_ACT_TRACE", Some(7), libc::SECCOMP_RET_TRACE | 7),
            ("SCMP_ACT_LOG", None, libc::SECCOMP_RET_LOG),
        ];
        for (action, errno_ret, expected) in cases {
            // As a rule's action.
            let mut rule = json!({"names": ["getppid"], "action": action});
            if let Some(e) = errno_ret {
                rule["errnoRet"] = json!(e);
            }
            let c = compiled(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 99,
                "syscalls": [rule],
            }));
            assert_eq!(
                x86_64(&c, "getppid"),
                expected,
                "rule {action} {errno_ret:?}"
            );
            assert_eq!(
                x86_64(&c, "getpid"),
                errno(99),
                "rule {action} {errno_ret:?}"
            );

            // As the default action.
            let mut seccomp = json!({"defaultAction": action});
            if let Some(e) = errno_ret {
                seccomp["defaultErrnoRet"] = json!(e);
            }
            let c = compiled(seccomp);
            assert_eq!(
                x86_64(&c, "getpid"),
                expected,
                "default {action} {errno_ret:?}"
            );
        }
    }

    #[test]
    fn seccomp_mixed_actions() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "getppid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS},
                {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES,
                 "args": [{"index": 1, "value": libc::SIGKILL, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 1, "value": libc::SIGSTOP, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 1, "value": libc::SIGSTOP, "op": "SCMP_CMP_EQ"}]},
            ],
        }));
        assert_eq!(x86_64(&c, "read"), ALLOW);
        assert_eq!(x86_64(&c, "write"), ALLOW);
        assert_eq!(x86_64(&c, "clone3"), errno(libc::ENOSYS));
        assert_eq!(x86_64(&c, "ptrace"), KILL_PROCESS);
        assert_eq!(x86_64(&c, "mkdir"), errno(libc::EPERM));
        let kill = |sig: i32| verdict_args(&c, Abi::X86_64, "kill", [1, sig as u64, 0, 0, 0, 0]);
        assert_eq!(kill(libc::SIGKILL), errno(libc::EACCES));
        // LOG and TRAP both match: the more restrictive wins, whatever the order.
        assert_eq!(kill(libc::SIGSTOP), libc::SECCOMP_RET_TRAP);
        assert_eq!(
            kill(libc::SIGTERM),
            ALLOW,
            "the unconditional rule is the fallback"
        );
    }

    #[test]
    fn seccomp_conditional_rules_come_before_unconditional_ones() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES},
                {"names": ["personality"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
            ],
        }));
        let personality = |p: u64| verdict_args(&c, Abi::X86_64, "personality", [p, 0, 0, 0, 0, 0]);
        assert_eq!(personality(0), libc::SECCOMP_RET_LOG);
        assert_eq!(personality(8), errno(libc::EACCES));
        // Two unconditional rules: the more restrictive wins.
        assert_eq!(x86_64(&c, "getppid"), KILL_PROCESS);
    }

    #[test]
    fn seccomp_rules_repeating_the_default_action_are_dropped() {
        // runc skips them (libseccomp refuses them), so the ALLOW rule decides.
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            ],
        }));
        assert_eq!(
            verdict_args(&c, Abi::X86_64, "personality", [5, 0, 0, 0, 0, 0]),
            ALLOW
        );
    }

    // ---- Arguments ----

    const VALUES: [u64; 11] = [
        0,
        1,
        5,
        0x7fff_ffff,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0005,
        0x2_0000_0004,
        0xffff_ffff_0000_0005,
        0x8000_0000_0000_0000,
        u64::MAX,
    ];

    #[test]
    fn seccomp_comparisons_use_all_64_bits() {
        type Holds = fn(u64, u64) -> bool;
        let ops: [(&str, Holds); 6] = [
            ("SCMP_CMP_EQ", |a, v| a == v),
            ("SCMP_CMP_NE", |a, v| a != v),
            ("SCMP_CMP_LT", |a, v| a < v),
            ("SCMP_CMP_LE", |a, v| a <= v),
            ("SCMP_CMP_GT", |a, v| a > v),
            ("SCMP_CMP_GE", |a, v| a >= v),
        ];
        for (op, holds) in ops {
            for value in VALUES {
                let c = getppid_if(json!([{"index": 2, "value": value, "op": op}]));
                for arg in VALUES {
                    // The other arguments hold values that would change the answer if they were
                    // read instead of args[2].
                    let args = [!arg, arg ^ 1, arg, !arg, value, !value];
                    let expected = if holds(arg, value) {
                        ALLOW
                    } else {
                        errno(libc::EPERM)
                    };
                    assert_eq!(
                        verdict_args(&c, Abi::X86_64, "getppid", args),
                        expected,
                        "{arg:#x} {op} {value:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn seccomp_masked_eq_masks_both_halves() {
        let masks = [
            0,
            0xff,
            0x7e02_0000,
            0xffff_ffff,
            0xffff_ffff_0000_0000,
            0x1_0000_00ff,
            u64::MAX,
        ];
        for mask in masks {
            for datum in VALUES.iter().map(|v| v & mask).chain([1, 0x1_0000_0000]) {
                let c = getppid_if(json!([
                    {"index": 5, "value": mask, "valueTwo": datum, "op": "SCMP_CMP_MASKED_EQ"}
                ]));
                for arg in VALUES {
                    let args = [!arg, !arg, !arg, !arg, !arg, arg];
                    let expected = if arg & mask == datum {
                        ALLOW
                    } else {
                        errno(libc::EPERM)
                    };
                    assert_eq!(
                        verdict_args(&c, Abi::X86_64, "getppid", args),
                        expected,
                        "({arg:#x} & {mask:#x}) == {datum:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn seccomp_args_of_one_entry_are_anded() {
        let c = getppid_if(json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 0x1_0000_0002u64, "op": "SCMP_CMP_EQ"},
        ]));
        let call = |a: u64, b: u64| verdict_args(&c, Abi::X86_64, "getppid", [a, b, 0, 0, 0, 0]);
        assert_eq!(call(1, 0x1_0000_0002), ALLOW);
        assert_eq!(call(1, 2), errno(libc::EPERM));
        assert_eq!(call(0, 0x1_0000_0002), errno(libc::EPERM));
    }

    #[test]
    fn seccomp_repeated_arg_index_is_ored_like_runc() {
        let c = getppid_if(json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"},
        ]));
        let call = |a: u64, b: u64| verdict_args(&c, Abi::X86_64, "getppid", [a, b, 0, 0, 0, 0]);
        assert_eq!(call(1, 0), ALLOW);
        assert_eq!(call(2, 0), ALLOW);
        assert_eq!(call(3, 7), ALLOW);
        assert_eq!(call(3, 0), errno(libc::EPERM));
    }

    #[test]
    fn seccomp_entries_for_one_syscall_are_ored() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getpid", "getppid"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            ],
        }));
        let call = |a: u64, b: u64| verdict_args(&c, Abi::X86_64, "getppid", [a, b, 0, 0, 0, 0]);
        assert_eq!(call(1, 0), ALLOW);
        assert_eq!(call(0, 2), ALLOW);
        assert_eq!(call(0, 0), errno(libc::EPERM));
        assert_eq!(
            verdict_args(&c, Abi::X86_64, "getpid", [1, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
    }

    #[test]
    fn seccomp_far_jumps_go_through_trampolines() {
        // 150 alternatives for personality (a repeated index) make its rules far longer than
        // the 255 instructions a conditional jump can skip.
        let values: Vec<Value> = (0..150u64)
            .map(|v| json!({"index": 0, "value": v * 3, "op": "SCMP_CMP_EQ"}))
            .collect();
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "getppid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": values},
                {"names": ["prctl", "ptrace"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": libc::EACCES},
            ],
        }));
        assert!(
            c.program().len() > 600,
            "{} instructions",
            c.program().len()
        );
        assert!(
            c.program().iter().any(|i| i.code == JMP_JA),
            "no trampoline emitted"
        );
        for p in 0..460 {
            let expected = if p % 3 == 0 && p < 450 {
                ALLOW
            } else {
                errno(libc::EPERM)
            };
            let got = verdict_args(&c, Abi::X86_64, "personality", [p, 0, 0, 0, 0, 0]);
            assert_eq!(got, expected, "personality({p})");
        }
        assert_eq!(x86_64(&c, "read"), ALLOW);
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
        assert_eq!(x86_64(&c, "prctl"), errno(libc::EACCES));
        assert_eq!(x86_64(&c, "ptrace"), errno(libc::EACCES));
        assert_eq!(x86_64(&c, "mkdir"), errno(libc::EPERM));
        assert_eq!(
            x86_64(&c, "clone3"),
            errno(libc::ENOSYS),
            "above every named syscall"
        );
    }

    // ---- Architectures ----

    #[test]
    fn seccomp_other_abis_are_killed() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
        }));
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
        assert_eq!(raw(&c, AUDIT_ARCH_I386, 64, [0; 6]), KILL_PROCESS);
        assert_eq!(raw(&c, AUDIT_ARCH_AARCH64, 173, [0; 6]), KILL_PROCESS);
        assert_eq!(raw(&c, 0, 0, [0; 6]), KILL_PROCESS);
        assert_eq!(
            verdict(&c, Abi::X32, "read"),
            KILL_PROCESS,
            "x32 is not listed"
        );
    }

    #[test]
    fn seccomp_native_arch_is_filtered_even_when_not_listed() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}],
        }));
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
        assert_eq!(x86_64(&c, "getpid"), errno(libc::EPERM));
        assert_eq!(verdict(&c, Abi::X86, "getppid"), ALLOW);
        // SCMP_ARCH_NATIVE names the native ABI.
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_NATIVE"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL"}],
        }));
        assert_eq!(x86_64(&c, "getppid"), libc::SECCOMP_RET_KILL_THREAD);
        assert_eq!(raw(&c, AUDIT_ARCH_I386, 64, [0; 6]), KILL_PROCESS);
    }

    #[test]
    fn seccomp_compat_abis_use_their_own_numbers() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["getppid", "waitpid", "rt_sigaction"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
            ],
        }));
        // getppid is 110 on x86_64 and x32 (plus the x32 bit) and 64 on x86, where 64 on x86_64
        // is semget.
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
        assert_eq!(verdict(&c, Abi::X86, "getppid"), ALLOW);
        assert_eq!(verdict(&c, Abi::X32, "getppid"), ALLOW);
        assert_eq!(x86_64(&c, "semget"), errno(libc::EPERM));
        // waitpid exists on x86 only.
        assert_eq!(verdict(&c, Abi::X86, "waitpid"), ALLOW);
        // rt_sigaction is 13 on x86_64 but 512 on x32.
        assert_eq!(verdict(&c, Abi::X32, "rt_sigaction"), ALLOW);
        assert_eq!(
            raw(&c, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 13, [0; 6]),
            errno(libc::EPERM)
        );
        let socket =
            |abi: Abi, family: u64| verdict_args(&c, abi, "socket", [family, 0, 0, 0, 0, 0]);
        for abi in [Abi::X86_64, Abi::X86, Abi::X32] {
            assert_eq!(socket(abi, 2), ALLOW, "{abi}");
            assert_eq!(socket(abi, 40), errno(libc::EPERM), "{abi}");
        }
    }

    #[test]
    fn seccomp_aarch64_and_arm() {
        let c = compiled_for(
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                "syscalls": [{"names": ["getppid", "mkdir", "set_tls", "arch_prctl"],
                              "action": "SCMP_ACT_ALLOW"}],
            }),
            Arch::Aarch64,
        );
        assert_eq!(verdict(&c, Abi::Aarch64, "getppid"), ALLOW);
        assert_eq!(verdict(&c, Abi::Aarch64, "getpid"), errno(libc::EPERM));
        // mkdir and set_tls exist on arm only, arch_prctl on x86 only: skipped where missing.
        assert_eq!(verdict(&c, Abi::Arm, "getppid"), ALLOW);
        assert_eq!(verdict(&c, Abi::Arm, "mkdir"), ALLOW);
        assert_eq!(verdict(&c, Abi::Arm, "set_tls"), ALLOW);
        assert_eq!(verdict(&c, Abi::X86_64, "getppid"), KILL_PROCESS);
        // aarch64 has no x32-style bit: a large number is just an unknown syscall.
        assert_eq!(
            raw(&c, AUDIT_ARCH_AARCH64, X32_SYSCALL_BIT | 173, [0; 6]),
            errno(libc::ENOSYS)
        );
    }

    #[test]
    fn seccomp_architectures_this_kernel_never_runs_are_ignored() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
                              "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}],
        }));
        assert_eq!(x86_64(&c, "getppid"), KILL_PROCESS);
        assert_eq!(raw(&c, AUDIT_ARCH_AARCH64, 1, [0; 6]), KILL_PROCESS);
        assert_eq!(raw(&c, AUDIT_ARCH_ARM, 1, [0; 6]), KILL_PROCESS);
    }

    // ---- The ENOSYS stub ----

    #[test]
    fn seccomp_syscalls_newer_than_the_profile_get_enosys() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"},
                // Counts for the stub even though it repeats the default action.
                {"names": ["pidfd_open"], "action": "SCMP_ACT_ERRNO"},
            ],
        }));
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
        assert_eq!(x86_64(&c, "mkdir"), errno(libc::EPERM));
        assert_eq!(x86_64(&c, "pidfd_open"), errno(libc::EPERM));
        assert_eq!(x86_64(&c, "clone3"), errno(libc::ENOSYS));
        assert_eq!(x86_64(&c, "mseal"), errno(libc::ENOSYS));

        // Not when the default action lets syscalls through.
        for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            let c = compiled(json!({
                "defaultAction": default,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL"}],
            }));
            assert_ne!(x86_64(&c, "clone3"), errno(libc::ENOSYS), "{default}");
        }
        // Kill and trap defaults get it too (runc).
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}],
        }));
        assert_eq!(x86_64(&c, "clone3"), errno(libc::ENOSYS));
        assert_eq!(x86_64(&c, "mkdir"), KILL_PROCESS);
        // Only for listed architectures, as in runc.
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}],
        }));
        assert_eq!(x86_64(&c, "clone3"), errno(libc::EPERM));
    }

    // ---- Names ----

    #[test]
    fn seccomp_unknown_syscall_is_skipped() {
        // As runc: a name no table knows is left out, the rest of the entry still applies.
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["no_such_syscall_either"], "action": "SCMP_ACT_ALLOW"},
            ],
        }));
        assert_eq!(verdict(&c, Abi::X86_64, "read"), ALLOW);
        assert_eq!(verdict(&c, Abi::X86_64, "write"), errno(libc::EPERM));
    }

    #[test]
    fn seccomp_syscalls_of_other_architectures_are_skipped() {
        let c = compiled(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getppid", "arm_fadvise64_64", "breakpoint", "waitpid",
                                    "s390_runtime_instr", "riscv_flush_icache", "swapcontext"],
                          "action": "SCMP_ACT_ALLOW"}],
        }));
        assert_eq!(x86_64(&c, "getppid"), ALLOW);
    }

    // ---- Refusals ----

    #[test]
    fn seccomp_notify_is_refused() {
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            ],
        }));
        assert!(
            matches!(
                err,
                SeccompError::NotifyUnsupported {
                    field: Field::Syscall(1)
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");
        let err = compile_err(json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert!(
            matches!(
                err,
                SeccompError::NotifyUnsupported {
                    field: Field::Default
                }
            ),
            "{err:?}"
        );
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
        }));
        assert!(
            matches!(err, SeccompError::ListenerUnsupported { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn seccomp_errno_ret_only_with_errno_and_trace() {
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}],
        }));
        assert!(
            matches!(
                err,
                SeccompError::ErrnoRetNotAllowed {
                    field: Field::Syscall(0),
                    action: LinuxSeccompAction::ScmpActAllow,
                    errno: 1,
                }
            ),
            "{err:?}"
        );
        let err = compile_err(json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}));
        assert!(
            matches!(
                err,
                SeccompError::ErrnoRetNotAllowed {
                    field: Field::Default,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65536}],
        }));
        assert!(
            matches!(err, SeccompError::ErrnoRetTooLarge { errno: 65536, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn seccomp_malformed_entries_are_refused() {
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}],
        }));
        assert!(
            matches!(
                err,
                SeccompError::ArgIndexOutOfRange {
                    arg: 0,
                    index: 6,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}],
        }));
        assert!(
            matches!(
                err,
                SeccompError::EmptyNames {
                    field: Field::Syscall(0)
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn seccomp_unknown_strings_fail_to_parse_naming_them() {
        for (seccomp, bad) in [
            (json!({"defaultAction": "SCMP_ACT_BOGUS"}), "SCMP_ACT_BOGUS"),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                     "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_BOGUS"}]}]}),
                "SCMP_CMP_BOGUS",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_BOGUS"]}),
                "SCMP_ARCH_BOGUS",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
                "SECCOMP_FILTER_FLAG_BOGUS",
            ),
        ] {
            let err = serde_json::from_value::<LinuxSeccomp>(seccomp).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    // ---- Flags ----

    #[test]
    fn seccomp_flags() {
        let flags = |names: Value| {
            compiled(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": names})).flags()
        };
        assert_eq!(flags(json!([])), 0);
        assert_eq!(
            flags(json!([
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "SECCOMP_FILTER_FLAG_TSYNC"
            ])),
            libc::SECCOMP_FILTER_FLAG_LOG
                | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                | libc::SECCOMP_FILTER_FLAG_TSYNC
        );
        assert_eq!(flags(json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])), 0);
        assert_eq!(
            compiled(json!({"defaultAction": "SCMP_ACT_ALLOW"})).flags(),
            0
        );
    }

    // ---- Docker's default profile ----

    /// The unconditional ALLOW list of moby's profiles/seccomp/default.json.
    const DOCKER_ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk capget capset \
        chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 \
        clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range \
        connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl \
        epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve \
        execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate \
        fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync \
        fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs \
        fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu \
        getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups \
        getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
        getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid \
        getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr \
        inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy \
        io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit \
        io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule \
        landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat \
        listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise \
        membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 \
        mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
        mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget \
        msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat \
        _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc \
        pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 \
        process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead \
        readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg \
        remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq \
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend \
        rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity \
        sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min \
        sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 \
        sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp \
        select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 \
        sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 \
        setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid \
        setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid \
        setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt \
        shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall \
        socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync \
        sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete \
        timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 \
        timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 \
        times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat \
        utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev \
        process_vm_readv process_vm_writev ptrace";

    /// Docker's default profile as dockerd writes it into config.json for a container with the
    /// default capabilities on `architectures`, plus the syscalls of `arch_specific`.
    fn docker_profile(architectures: &[&str], arch_specific: &[&str]) -> Value {
        let allowed: Vec<&str> = DOCKER_ALLOWED
            .split_whitespace()
            .chain(arch_specific.iter().copied())
            .collect();
        let personality = |p: u64| {
            json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]})
        };
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": architectures,
            "syscalls": [
                {"names": allowed, "action": "SCMP_ACT_ALLOW"},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
                personality(0), personality(8), personality(131072), personality(131080),
                personality(4294967295),
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ],
        })
    }

    #[test]
    fn seccomp_docker_default_profile_x86_64() {
        let c = compiled(docker_profile(
            &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            &["arch_prctl", "modify_ldt"],
        ));
        assert!(
            c.program().len() < 2000,
            "{} instructions",
            c.program().len()
        );
        for abi in [Abi::X86_64, Abi::X86, Abi::X32] {
            let call = |name: &str, a0: u64| verdict_args(&c, abi, name, [a0, 0, 0, 0, 0, 0]);
            assert_eq!(call("read", 0), ALLOW, "{abi}");
            assert_eq!(call("mount", 0), errno(libc::EPERM), "{abi}");
            assert_eq!(call("unshare", 0), errno(libc::EPERM), "{abi}");
            assert_eq!(call("socket", 2), ALLOW, "{abi}");
            assert_eq!(call("socket", 40), errno(libc::EPERM), "{abi}");
            assert_eq!(call("personality", 0xffff_ffff), ALLOW, "{abi}");
            assert_eq!(call("personality", 1), errno(libc::EPERM), "{abi}");
            assert_eq!(
                call("clone", libc::SIGCHLD as u64 | 0x0001_0f00),
                ALLOW,
                "{abi}"
            );
            assert_eq!(
                call("clone", libc::CLONE_NEWUSER as u64),
                errno(libc::EPERM),
                "{abi}"
            );
            assert_eq!(call("clone3", 0), errno(libc::ENOSYS), "{abi}");
            // listmount is newer than anything the profile names, except on x32, whose own
            // syscalls are numbered 512-547 (runc's stub has the same blind spot).
            let newer = if abi == Abi::X32 {
                errno(libc::EPERM)
            } else {
                errno(libc::ENOSYS)
            };
            assert_eq!(call("listmount", 0), newer, "{abi}");
        }
        assert_eq!(verdict(&c, Abi::X86, "socketcall"), ALLOW);
        assert_eq!(verdict(&c, Abi::X86_64, "arch_prctl"), ALLOW);
    }

    #[test]
    fn seccomp_docker_default_profile_aarch64() {
        let c = compiled_for(
            docker_profile(
                &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                &[
                    "arm_fadvise64_64",
                    "arm_sync_file_range",
                    "sync_file_range2",
                    "breakpoint",
                    "cacheflush",
                    "set_tls",
                ],
            ),
            Arch::Aarch64,
        );
        assert!(
            c.program().len() < 2000,
            "{} instructions",
            c.program().len()
        );
        for abi in [Abi::Aarch64, Abi::Arm] {
            assert_eq!(verdict(&c, abi, "read"), ALLOW, "{abi}");
            assert_eq!(verdict(&c, abi, "mount"), errno(libc::EPERM), "{abi}");
            assert_eq!(verdict(&c, abi, "clone3"), errno(libc::ENOSYS), "{abi}");
        }
        assert_eq!(verdict(&c, Abi::Arm, "set_tls"), ALLOW);
        assert_eq!(verdict(&c, Abi::Arm, "cacheflush"), ALLOW);
    }

    #[test]
    fn seccomp_too_long_programs_are_refused() {
        // 1100 alternatives of four instructions each.
        let values: Vec<Value> = (0..1100u64)
            .map(|v| json!({"index": 0, "value": v, "op": "SCMP_CMP_EQ"}))
            .collect();
        let err = compile_err(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": values}],
        }));
        assert!(
            matches!(err, SeccompError::ProgramTooLong { arch: Arch::X86_64, len } if len > 4096),
            "{err:?}"
        );
    }

    // ---- Tables ----

    #[test]
    fn seccomp_tables_are_sorted_and_consistent() {
        for abi in Abi::ALL {
            let table = abi.table();
            for pair in table.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{abi}: {} before {}",
                    pair[0].0,
                    pair[1].0
                );
            }
            let mut numbers: Vec<u32> = table.iter().map(|&(_, nr)| nr).collect();
            numbers.sort_unstable();
            numbers.dedup();
            // arm: sync_file_range2 is libseccomp's alias of arm_sync_file_range.
            let aliases = usize::from(abi == Abi::Arm);
            assert_eq!(
                numbers.len() + aliases,
                table.len(),
                "{abi}: duplicate numbers"
            );
            // Numbers that only ever grew since Linux 5.1 unified new syscalls across ABIs.
            assert_eq!(
                abi.nr("pidfd_send_signal").map(|n| n & !X32_SYSCALL_BIT),
                Some(424),
                "{abi}"
            );
            assert_eq!(
                abi.nr("file_setattr").map(|n| n & !X32_SYSCALL_BIT),
                Some(469),
                "{abi}"
            );
        }
        assert_eq!(Abi::X32.nr("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Abi::X32.nr("rt_sigaction"), Some(X32_SYSCALL_BIT | 512));
        assert_eq!(Abi::Arm.nr("set_tls"), Some(0x0f_0005));
        assert_eq!(Abi::X86_64.nr("no_such_syscall"), None);
    }

    #[test]
    fn seccomp_native_table_agrees_with_libc() {
        #[cfg(target_arch = "x86_64")]
        let (abi, pairs) = (
            Abi::X86_64,
            [
                ("read", libc::SYS_read),
                ("open", libc::SYS_open),
                ("mkdir", libc::SYS_mkdir),
                ("getpgrp", libc::SYS_getpgrp),
                ("arch_prctl", libc::SYS_arch_prctl),
                ("epoll_wait_old", libc::SYS_epoll_wait_old),
                ("getppid", libc::SYS_getppid),
                ("lseek", libc::SYS_lseek),
                ("personality", libc::SYS_personality),
                ("clone3", libc::SYS_clone3),
                ("mseal", libc::SYS_mseal),
            ],
        );
        #[cfg(target_arch = "aarch64")]
        let (abi, pairs) = (
            Abi::Aarch64,
            [
                ("read", libc::SYS_read),
                ("openat", libc::SYS_openat),
                ("mkdirat", libc::SYS_mkdirat),
                ("getpgid", libc::SYS_getpgid),
                ("renameat", libc::SYS_renameat),
                ("memfd_secret", libc::SYS_memfd_secret),
                ("getppid", libc::SYS_getppid),
                ("lseek", libc::SYS_lseek),
                ("personality", libc::SYS_personality),
                ("clone3", libc::SYS_clone3),
                ("mseal", libc::SYS_mseal),
            ],
        );
        for (name, nr) in pairs {
            assert_eq!(abi.nr(name).map(i64::from), Some(nr), "{name}");
        }
    }

    // ---- Installation, each in a child process ----

    const CHILD_ENV: &str = "SKIFF_SECCOMP_TEST_CHILD";
    const CHILD_DONE: &str = "skiff-seccomp-child-done";

    fn native() -> Arch {
        Arch::native().expect("tests run on x86_64 or aarch64")
    }

    /// Runs `body` in a fresh copy of this test binary that runs only the test `name`, so the
    /// filter it installs (which cannot be removed) stays in that process. Returns `None` in the
    /// child, the child's output in the parent.
    fn in_child(name: &str, body: impl FnOnce()) -> Option<Output> {
        if std::env::var_os(CHILD_ENV).is_some() {
            body();
            println!("{CHILD_DONE}");
            return None;
        }
        // Test names do not include the crate name that module_path! starts with.
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let exe = std::env::current_exe().expect("the test binary has a path");
        let output = Command::new(exe)
            .args([
                "--exact",
                &format!("{module}::{name}"),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .expect("re-run the test binary");
        Some(output)
    }

    fn assert_child_passed(output: &Output) {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(CHILD_DONE),
            "child: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn seccomp_install_returns_the_configured_errno() {
        let Some(output) = in_child("seccomp_install_returns_the_configured_errno", || {
            let dir = tempfile::tempdir().expect("a scratch directory");
            let c = compiled_for(
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": libc::EROFS},
                        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                    ],
                }),
                native(),
            );
            install(&c).expect("install");
            let err = std::fs::create_dir(dir.path().join("denied")).expect_err("mkdir is denied");
            assert_eq!(err.raw_os_error(), Some(libc::EROFS));
            // -EPERM, whether or not libc's wrapper turns it into -1 and errno.
            assert_eq!(nix::unistd::getppid().as_raw(), -1);
            // Allowed syscalls still work.
            assert_eq!(std::fs::read_dir(dir.path()).expect("readdir").count(), 0);
            assert_eq!(
                nix::unistd::getpid().as_raw().unsigned_abs(),
                std::process::id()
            );
        }) else {
            return;
        };
        assert_child_passed(&output);
    }

    #[test]
    fn seccomp_install_compares_64_bit_arguments_in_the_kernel() {
        let Some(output) = in_child(
            "seccomp_install_compares_64_bit_arguments_in_the_kernel",
            || {
                use nix::unistd::{Whence, lseek};
                let file = tempfile::tempfile().expect("a scratch file");
                let c = compiled_for(
                    json!({
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [
                            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": libc::EMLINK,
                             "args": [{"index": 1, "value": 0xffff_ffff_0000_0000u64,
                                       "valueTwo": 0x1_0000_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]},
                            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": libc::EXDEV,
                             "args": [{"index": 1, "value": 0x2_0000_0005u64, "op": "SCMP_CMP_EQ"},
                                      {"index": 2, "value": libc::SEEK_SET, "op": "SCMP_CMP_EQ"}]},
                        ],
                    }),
                    native(),
                );
                install(&c).expect("install");
                assert_eq!(
                    lseek(&file, 0x1_0000_0005, Whence::SeekSet),
                    Err(Errno::EMLINK)
                );
                assert_eq!(
                    lseek(&file, 0x1_ffff_ffff, Whence::SeekSet),
                    Err(Errno::EMLINK)
                );
                assert_eq!(lseek(&file, 5, Whence::SeekSet), Ok(5));
                assert_eq!(
                    lseek(&file, 0x2_0000_0005, Whence::SeekSet),
                    Err(Errno::EXDEV)
                );
                assert_eq!(
                    lseek(&file, 0x3_0000_0005, Whence::SeekSet),
                    Ok(0x3_0000_0005)
                );
                assert_eq!(
                    lseek(&file, 0x2_0000_0005, Whence::SeekCur),
                    Ok(0x5_0000_000a),
                    "SEEK_CUR fails the second condition"
                );
            },
        ) else {
            return;
        };
        assert_child_passed(&output);
    }

    #[test]
    fn seccomp_install_kill_process_ends_the_child_with_sigsys() {
        let Some(output) = in_child(
            "seccomp_install_kill_process_ends_the_child_with_sigsys",
            || {
                // No core dump for the expected SIGSYS.
                nix::sys::prctl::set_dumpable(false).expect("PR_SET_DUMPABLE");
                let c = compiled_for(
                    json!({
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["getpgrp", "getpgid"],
                                      "action": "SCMP_ACT_KILL_PROCESS"}],
                    }),
                    native(),
                );
                install(&c).expect("install");
                let _ = nix::unistd::getpgrp();
                println!("getpgrp returned");
            },
        ) else {
            return;
        };
        assert_eq!(output.status.signal(), Some(libc::SIGSYS), "{output:?}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("getpgrp returned"));
    }

    #[test]
    fn seccomp_install_tsync_covers_other_threads() {
        let Some(output) = in_child("seccomp_install_tsync_covers_other_threads", || {
            let dir = tempfile::tempdir().expect("a scratch directory");
            let target = dir.path().join("from-thread");
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let worker = std::thread::spawn(move || {
                wait.recv().expect("the go signal");
                std::fs::create_dir(target)
            });
            let c = compiled_for(
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                  "errnoRet": libc::EXDEV}],
                }),
                native(),
            );
            install(&c).expect("install");
            go.send(()).expect("the worker waits");
            let result = worker.join().expect("the worker does not panic");
            assert_eq!(
                result.expect_err("denied").raw_os_error(),
                Some(libc::EXDEV)
            );
        }) else {
            return;
        };
        assert_child_passed(&output);
    }
}
