//! Test helpers: Docker's default capability set, and two independent ways to ask what a
//! resolved profile does with a syscall — by reading the OCI object, and by running the BPF
//! program the runtime compiles from it.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};

pub(crate) use crate::DOCKER_DEFAULT_CAPS;

pub(crate) fn caps(names: &[&str]) -> Vec<String> {
    names.iter().map(|&s| s.to_owned()).collect()
}

pub(crate) fn docker_caps() -> Vec<String> {
    caps(&DOCKER_DEFAULT_CAPS)
}

pub(crate) fn docker_caps_with(extra: &str) -> Vec<String> {
    let mut caps = docker_caps();
    caps.push(extra.to_owned());
    caps
}

/// What a filter does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allow,
    Errno(u32),
    /// Anything else (kill, trap, trace, log): the default profile uses none of them.
    Other,
}

/// What `seccomp` does with `name(args)`, read off the OCI object with the semantics the
/// runtime documents (runtime/src/seccomp.rs): entries with argument checks are tried before
/// unconditional ones, the most restrictive match wins, and no match means the default action.
pub(crate) fn evaluate(seccomp: &LinuxSeccomp, name: &str, args: [u64; 6]) -> Outcome {
    let entries: Vec<&LinuxSyscall> = seccomp
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.names().iter().any(|n| n == name))
        .collect();
    let matching = |conditional: bool| {
        entries
            .iter()
            .filter(|s| s.args().as_ref().is_some_and(|a| !a.is_empty()) == conditional)
            .filter(|s| arguments_match(s, &args))
            .map(|s| (s.action(), s.errno_ret()))
            .max_by_key(|(action, _)| restrictiveness(*action))
    };
    let (action, errno) = matching(true)
        .or_else(|| matching(false))
        .unwrap_or((seccomp.default_action(), seccomp.default_errno_ret()));
    match action {
        LinuxSeccompAction::ScmpActAllow => Outcome::Allow,
        LinuxSeccompAction::ScmpActErrno => Outcome::Errno(errno.unwrap_or(1)),
        _ => Outcome::Other,
    }
}

fn arguments_match(syscall: &LinuxSyscall, args: &[u64; 6]) -> bool {
    syscall.args().iter().flatten().all(|cmp| {
        let arg = args[cmp.index()];
        let value = cmp.value();
        match cmp.op() {
            LinuxSeccompOperator::ScmpCmpNe => arg != value,
            LinuxSeccompOperator::ScmpCmpLt => arg < value,
            LinuxSeccompOperator::ScmpCmpLe => arg <= value,
            LinuxSeccompOperator::ScmpCmpEq => arg == value,
            LinuxSeccompOperator::ScmpCmpGe => arg >= value,
            LinuxSeccompOperator::ScmpCmpGt => arg > value,
            LinuxSeccompOperator::ScmpCmpMaskedEq => arg & value == cmp.value_two().unwrap_or(0),
        }
    })
}

/// The kernel's precedence between results (`ACTION_ONLY()` in kernel/seccomp.c).
fn restrictiveness(action: LinuxSeccompAction) -> u8 {
    match action {
        LinuxSeccompAction::ScmpActKillProcess => 7,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 6,
        LinuxSeccompAction::ScmpActTrap => 5,
        LinuxSeccompAction::ScmpActErrno => 4,
        LinuxSeccompAction::ScmpActNotify => 3,
        LinuxSeccompAction::ScmpActTrace => 2,
        LinuxSeccompAction::ScmpActLog => 1,
        LinuxSeccompAction::ScmpActAllow => 0,
    }
}

/// `AUDIT_ARCH_*` (include/uapi/linux/audit.h), what the kernel puts in `seccomp_data.arch`.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(crate) const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

/// The classic-BPF instructions the runtime's generator emits (include/uapi/linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// One instruction, as `(code, jt, jf, k)`.
pub(crate) type Insn = (u16, u8, u8, u32);

/// Runs a seccomp program on `seccomp_data { nr, arch, instruction_pointer: 0, args }`
/// (include/uapi/linux/seccomp.h, little-endian as on x86_64 and aarch64) and returns what
/// the kernel would do. Panics on an instruction the generator is not known to emit, or on
/// a program that runs off its end (the kernel's verifier would reject both).
pub(crate) fn run_bpf(program: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> Outcome {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let (code, jt, jf, k) = program[pc];
        pc += 1;
        let jump = |taken: bool| {
            if taken {
                usize::from(jt)
            } else {
                usize::from(jf)
            }
        };
        match code {
            LD_W_ABS => {
                let at = k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            ALU_AND_K => acc &= k,
            JMP_JA => pc += k as usize,
            JMP_JEQ_K => pc += jump(acc == k),
            JMP_JGT_K => pc += jump(acc > k),
            JMP_JGE_K => pc += jump(acc >= k),
            JMP_JSET_K => pc += jump(acc & k != 0),
            RET_K => {
                return match k & 0xffff_0000 {
                    0x7fff_0000 => Outcome::Allow,
                    0x0005_0000 => Outcome::Errno(k & 0xffff),
                    _ => Outcome::Other,
                };
            }
            other => panic!("unexpected BPF instruction {other:#x} at {}", pc - 1),
        }
    }
}
