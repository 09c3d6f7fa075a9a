//! The cgroup v2 device filter: `linux.resources.devices` compiled into an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` and attached to the container's cgroup.
//!
//! cgroup v2 has no `devices.allow`/`devices.deny` files; the kernel instead runs every
//! `BPF_CGROUP_DEVICE` program attached to the cgroup of a task (and to its ancestors) when the
//! task opens or `mknod`s a block or character device, and refuses the access with `EPERM` when
//! one of them returns 0 (`__cgroup_bpf_check_dev_permission`, kernel/bpf/cgroup.c). The
//! program runs on the cgroup2 hierarchy even on a hybrid host whose other controllers are
//! bound to v1.
//!
//! [`program`] is the pure compiler (no helpers, no maps: a straight run of loads, ALU and
//! conditional jumps, so any license string passes the verifier); [`apply`] loads the program,
//! attaches it and detaches the filter an earlier [`apply`] attached, which is how `update`
//! replaces the rules.
//!
//! # Semantics
//!
//! Rules are taken in the runtime-spec's list order and **the last rule that matches decides,
//! access letter by access letter**; an access no rule allows is denied (so an empty list denies
//! everything, and the usual leading `{"allow": false, "access": "rwm"}` only documents it).
//!
//! - A rule matches a device when its type matches (`a` or no type: any; `c` and `u`: character;
//!   `b`: block; `p`: never, FIFOs do not reach the device hook) and its major and minor match
//!   (`None` or negative: any).
//! - `access` is a subset of `rwm` (`None`: all three); a rule only speaks for the letters it
//!   names. An open with `O_RDWR` asks for `r` and `w` at once, and is allowed only if the last
//!   matching rule naming `r` and the last matching rule naming `w` both allow.
//! - For the lists runtimes generate (a deny-all, then allows; or an allow-all, then denies)
//!   this is what the v1 controller does with the same writes: v1 merges the access of
//!   exceptions for the same device, and a deny exception refuses any access it overlaps
//!   (`security/device_cgroup.c`). Two deliberate differences elsewhere: v1 wants one allow
//!   exception to cover *all* requested letters, so `c 1:* r` plus `c 1:3 w` do not allow an
//!   `O_RDWR` open of 1:3 there, and here they do; and in v1 a deny after a *wildcard* allow
//!   under a default deny removes nothing (`dev_exception_rm` only drops an exception with the
//!   same type, major and minor), while here it denies, as "last match wins" says.
//! - Numbers that no device can have (above `i32::MAX`) make a rule that never matches.
//!
//! # Program shape
//!
//! ```text
//! ldxw r2, [r1+0]        ; ctx->access_type
//! mov32 r3, r2
//! and32 r3, 0xffff       ; device type (BPF_DEVCG_DEV_BLOCK / _CHAR)
//! rsh32 r2, 16           ; requested access (BPF_DEVCG_ACC_MKNOD / _READ / _WRITE)
//! ldxw r4, [r1+4]        ; ctx->major
//! ldxw r5, [r1+8]        ; ctx->minor
//! mov32 r0, 0            ; granted bits: nothing (or all, after a trailing allow-all)
//! per rule, in list order:
//!   jne r3, <type>, +n   ; only when the rule names a type
//!   jne r4, <major>, +n  ; only when the rule names a major
//!   jne r5, <minor>, +n  ; only when the rule names a minor
//!   or32 r0, <access>    ; allow  (and32 r0, ~<access> for deny)
//! xor32 r0, -1
//! and32 r0, r2           ; requested bits not granted
//! jne r0, 0, +2
//! mov32 r0, 1            ; none: allow
//! exit
//! mov32 r0, 0            ; some: deny (EPERM)
//! exit
//! ```
//!
//! Folding the rules forward into a granted-bits register gives the per-bit "last match wins"
//! without reversing the list; rules before the last unconditional `rwm` rule cannot change the
//! outcome and are not emitted.
//!
//! # Replacing a filter
//!
//! Programs are attached with `BPF_F_ALLOW_MULTI`, so a new one can join the old one before the
//! old one leaves and the cgroup is never unfiltered. A program is recognised as ours by its
//! name, [`PROGRAM_NAME`]; filters attached by someone else (systemd on a unit's cgroup, say)
//! are left alone, and the kernel runs them all, every one of them able to deny.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

pub use crate::sys::BpfInsn as Insn;
use crate::sys::{self, bpf_api};

/// The name our programs are loaded under (`bpf_prog_info.name`, at most 15 bytes), by which
/// [`apply`] finds the filter it replaces.
pub const PROGRAM_NAME: &str = "skiff_devices";

/// The program's license. The filter calls no helper at all, so no GPL-only one either, and the
/// kernel accepts any license string (verified by the root tests).
const LICENSE: &std::ffi::CStr = c"Apache-2.0";

/// Size of the buffer for the verifier's log when a load has failed. On kernels since 6.4 the
/// log is a rolling one, so a long log keeps its tail, which is where the error is.
const VERIFIER_LOG_SIZE: usize = 256 * 1024;

/// How many lines of the verifier's log an error carries: the last ones, which hold the reason.
const VERIFIER_LOG_LINES: usize = 30;

/// Errors of [`apply`].
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("device rule {index}: access {access:?} is not a combination of \"rwm\"")]
    InvalidAccess { index: usize, access: String },
    #[error("open the cgroup directory {path}")]
    OpenCgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("list the device filters attached to {path}")]
    Query {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("load the device filter{}", verifier_suffix(.log))]
    Load {
        /// The tail of the verifier's log, empty if the kernel wrote none.
        log: String,
        #[source]
        source: io::Error,
    },
    #[error("attach the device filter to {path}")]
    Attach {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("detach the previous device filter (program {id}) from {path}")]
    Detach {
        path: PathBuf,
        id: u32,
        #[source]
        source: io::Error,
    },
}

fn verifier_suffix(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier: {log})")
    }
}

/// Replace the device filter of the cgroup v2 directory `cgroup_dir` with one built from
/// `rules` (see the module docs for their semantics).
///
/// The new program is attached before the previous one of ours is detached, so the cgroup is
/// never without a filter: if loading or attaching fails, the previous filter stays in force;
/// if detaching it fails ([`BpfError::Detach`]), both stay attached and an access must pass
/// both, until the next successful `apply` detaches every earlier filter of ours.
pub fn apply(cgroup_dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), BpfError> {
    for (index, rule) in rules.iter().enumerate() {
        if let Some(access) = rule.access()
            && parse_access(access).is_none()
        {
            return Err(BpfError::InvalidAccess {
                index,
                access: access.clone(),
            });
        }
    }
    let insns = program(rules);
    let path = || cgroup_dir.to_path_buf();

    // 1. BPF_PROG_ATTACH/QUERY/DETACH name the cgroup by a descriptor of its cgroup2
    //    directory (`target_fd`).
    let dir = nix::fcntl::open(
        cgroup_dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| BpfError::OpenCgroup {
        path: path(),
        source: e.into(),
    })?;

    // 2. The programs attached now, before ours joins them: what is ours among them is what
    //    step 5 detaches, and listing first keeps the new program out of that list.
    let old = attached_ids(dir.as_fd()).map_err(|source| BpfError::Query {
        path: path(),
        source,
    })?;

    // 3. Load, which runs the verifier.
    let prog = load(&insns)?;

    // 4. Attach with BPF_F_ALLOW_MULTI: the new program runs next to the old ones (all must
    //    allow) until they are gone. Without the flag, a second attach would replace a program
    //    attached without flags and fail with EPERM against one attached with it.
    sys::bpf_prog_attach(
        dir.as_fd(),
        prog.as_fd(),
        bpf_api::BPF_CGROUP_DEVICE,
        bpf_api::BPF_F_ALLOW_MULTI,
    )
    .map_err(|source| BpfError::Attach {
        path: path(),
        source,
    })?;

    // 5. Detach the previous filters of ours. A multi-attached program can only be detached by
    //    naming it, hence a descriptor from its id; ENOENT means it went away meanwhile (a
    //    concurrent apply, or the id was a program that has just been unloaded).
    for id in old {
        let old_prog = match sys::bpf_prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(source) => {
                return Err(BpfError::Detach {
                    path: path(),
                    id,
                    source,
                });
            }
        };
        if !is_ours(old_prog.as_fd()).map_err(|source| BpfError::Detach {
            path: path(),
            id,
            source,
        })? {
            tracing::debug!(
                id,
                path = %cgroup_dir.display(),
                "leaving a foreign device filter attached"
            );
            continue;
        }
        match sys::bpf_prog_detach(dir.as_fd(), old_prog.as_fd(), bpf_api::BPF_CGROUP_DEVICE) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => {
                return Err(BpfError::Detach {
                    path: path(),
                    id,
                    source,
                });
            }
        }
    }
    // The attachment holds its own reference to the program; our descriptor can go.
    drop(prog);
    Ok(())
}

/// Load `insns` as a device filter named [`PROGRAM_NAME`]. The first attempt passes no log
/// buffer (a buffer too small for the log would itself fail the load with ENOSPC); a failed
/// load is repeated with one to report why the verifier refused it.
fn load(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    let load_with = |log: &mut [u8]| {
        sys::bpf_prog_load(
            bpf_api::BPF_PROG_TYPE_CGROUP_DEVICE,
            insns,
            LICENSE,
            PROGRAM_NAME,
            log,
        )
    };
    let first = match load_with(&mut []) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    match load_with(&mut log) {
        Ok(fd) => Ok(fd),
        Err(_) => Err(BpfError::Load {
            log: log_tail(&log),
            source: first,
        }),
    }
}

/// The last [`VERIFIER_LOG_LINES`] non-empty lines of a NUL-terminated verifier log, joined
/// with "; " so that the error stays on one line.
fn log_tail(log: &[u8]) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(VERIFIER_LOG_LINES)..].join("; ")
}

/// The ids of the device programs attached directly to the cgroup `dir`.
fn attached_ids(dir: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    loop {
        let count = sys::bpf_prog_query(dir, bpf_api::BPF_CGROUP_DEVICE, &mut ids)?;
        if count <= ids.len() {
            ids.truncate(count);
            return Ok(ids);
        }
        // More programs than room (one was attached since the last call): ask again.
        ids.resize(count, 0);
    }
}

/// Whether a loaded program is one of our device filters, by its name.
fn is_ours(prog: BorrowedFd<'_>) -> io::Result<bool> {
    let info = sys::bpf_prog_info(prog)?;
    let end = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.name.len());
    Ok(info.prog_type == bpf_api::BPF_PROG_TYPE_CGROUP_DEVICE
        && &info.name[..end] == PROGRAM_NAME.as_bytes())
}

// Context and access encoding of the device hook (include/uapi/linux/bpf.h).
const BPF_DEVCG_ACC_MKNOD: u32 = 1 << 0;
const BPF_DEVCG_ACC_READ: u32 = 1 << 1;
const BPF_DEVCG_ACC_WRITE: u32 = 1 << 2;
const ACC_ALL: u32 = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;
const BPF_DEVCG_DEV_BLOCK: i32 = 1 << 0;
const BPF_DEVCG_DEV_CHAR: i32 = 1 << 1;
/// Offsets in `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;

/// The `BPF_DEVCG_ACC_*` bit of an access letter.
fn access_bit(letter: char) -> Option<u32> {
    match letter {
        'r' => Some(BPF_DEVCG_ACC_READ),
        'w' => Some(BPF_DEVCG_ACC_WRITE),
        'm' => Some(BPF_DEVCG_ACC_MKNOD),
        _ => None,
    }
}

/// `rwm` letters as `BPF_DEVCG_ACC_*` bits; `None` if there is any other letter.
fn parse_access(access: &str) -> Option<u32> {
    access
        .chars()
        .try_fold(0, |bits, c| access_bit(c).map(|bit| bits | bit))
}

/// A rule reduced to what the program checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    /// `BPF_DEVCG_DEV_*`, or `None` for any type.
    dev_type: Option<i32>,
    major: Option<i32>,
    minor: Option<i32>,
    access: u32,
    allow: bool,
}

impl Check {
    /// `None` for a rule that can never match a device (FIFO type, impossible numbers) or that
    /// names no access, so that it cannot change any outcome.
    fn from_rule(rule: &LinuxDeviceCgroup) -> Option<Check> {
        let dev_type = match rule.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(BPF_DEVCG_DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(BPF_DEVCG_DEV_BLOCK),
            Some(LinuxDeviceType::P) => return None,
        };
        // Negative is the wildcard (-1 in runc's and the v1 files' notation); a number that
        // does not fit the non-negative half of the signed immediate cannot be a device number
        // (majors have 12 bits, minors 20).
        let number = |n: Option<i64>| match n {
            None => Some(None),
            Some(n) if n < 0 => Some(None),
            Some(n) => i32::try_from(n).ok().map(Some),
        };
        let access = match rule.access() {
            None => ACC_ALL,
            // Unknown letters are refused by `apply` before it compiles; here they are ignored.
            Some(s) => s
                .chars()
                .filter_map(access_bit)
                .fold(0, |bits, bit| bits | bit),
        };
        if access == 0 {
            return None;
        }
        Some(Check {
            dev_type,
            major: number(rule.major())?,
            minor: number(rule.minor())?,
            access,
            allow: rule.allow(),
        })
    }

    fn is_unconditional(&self) -> bool {
        self.dev_type.is_none() && self.major.is_none() && self.minor.is_none()
    }
}

/// Compile `rules` into the device filter's instructions (see the module docs for the shape and
/// the semantics). Access letters other than `rwm` are ignored here; [`apply`] refuses them.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let checks: Vec<Check> = rules.iter().filter_map(Check::from_rule).collect();
    // Everything before the last unconditional rwm rule is overwritten by it.
    let reset = checks
        .iter()
        .rposition(|c| c.is_unconditional() && c.access == ACC_ALL);
    let (initial, checks) = match reset {
        Some(i) => (if checks[i].allow { ACC_ALL } else { 0 }, &checks[i + 1..]),
        None => (0, &checks[..]),
    };

    let mut p = vec![
        asm::ldx_w(R2, R1, CTX_ACCESS_TYPE),
        asm::mov32_reg(R3, R2),
        asm::alu32_imm(asm::AND, R3, 0xffff),
        asm::alu32_imm(asm::RSH, R2, 16),
        asm::ldx_w(R4, R1, CTX_MAJOR),
        asm::ldx_w(R5, R1, CTX_MINOR),
        asm::mov32_imm(R0, initial as i32),
    ];
    for check in checks {
        let tests: Vec<(u8, i32)> = [(R3, check.dev_type), (R4, check.major), (R5, check.minor)]
            .into_iter()
            .filter_map(|(reg, value)| value.map(|v| (reg, v)))
            .collect();
        let n = tests.len();
        for (i, (reg, value)) in tests.into_iter().enumerate() {
            // Skip the remaining tests and the rule's one ALU instruction.
            let skip = (n - i) as i16;
            p.push(asm::jmp_imm(asm::JNE, reg, value, skip));
        }
        p.push(if check.allow {
            asm::alu32_imm(asm::OR, R0, check.access as i32)
        } else {
            asm::alu32_imm(asm::AND, R0, !check.access as i32)
        });
    }
    p.extend([
        asm::alu32_imm(asm::XOR, R0, -1),
        asm::alu32_reg(asm::AND, R0, R2),
        asm::jmp_imm(asm::JNE, R0, 0, 2),
        asm::mov32_imm(R0, 1),
        asm::exit(),
        asm::mov32_imm(R0, 0),
        asm::exit(),
    ]);
    p
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// The instruction encodings the filter uses (include/uapi/linux/bpf_common.h and bpf.h).
mod asm {
    use super::Insn;

    // Instruction classes.
    pub const LDX: u8 = 0x01;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    // Load size and mode.
    pub const W: u8 = 0x00;
    pub const MEM: u8 = 0x60;
    // ALU operations.
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const RSH: u8 = 0x70;
    pub const XOR: u8 = 0xa0;
    pub const MOV: u8 = 0xb0;
    // Jump operations.
    pub const JNE: u8 = 0x50;
    pub const EXIT: u8 = 0x90;
    // Operand source: the immediate or the source register.
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;

    const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// `dst = *(u32 *)(src + off)`.
    pub const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        insn(LDX | MEM | W, dst, src, off, 0)
    }

    /// `dst = (u32) imm`.
    pub const fn mov32_imm(dst: u8, imm: i32) -> Insn {
        insn(ALU | MOV | K, dst, 0, 0, imm)
    }

    /// `dst = (u32) src`.
    pub const fn mov32_reg(dst: u8, src: u8) -> Insn {
        insn(ALU | MOV | X, dst, src, 0, 0)
    }

    /// `dst = (u32) (dst <op> imm)`.
    pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        insn(ALU | op | K, dst, 0, 0, imm)
    }

    /// `dst = (u32) (dst <op> src)`.
    pub const fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
        insn(ALU | op | X, dst, src, 0, 0)
    }

    /// `if dst <op> imm: pc += off` (64-bit compare, immediate sign-extended).
    pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        insn(JMP | op | K, dst, 0, off, imm)
    }

    /// `return r0`.
    pub const fn exit() -> Insn {
        insn(JMP | EXIT, 0, 0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule in the v1 files' notation: `allow c 1:3 rwm`, `deny a`, `allow - *:5` (type `-`:
    /// none given; `*`: wildcard; no access: none given).
    fn rule(text: &str) -> LinuxDeviceCgroup {
        let mut words = text.split_whitespace();
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(match words.next() {
            Some("allow") => true,
            Some("deny") => false,
            other => panic!("bad verdict {other:?} in {text:?}"),
        });
        r.set_typ(match words.next() {
            Some("a") => Some(LinuxDeviceType::A),
            Some("b") => Some(LinuxDeviceType::B),
            Some("c") => Some(LinuxDeviceType::C),
            Some("u") => Some(LinuxDeviceType::U),
            Some("p") => Some(LinuxDeviceType::P),
            Some("-") => None,
            other => panic!("bad type {other:?} in {text:?}"),
        });
        if let Some(numbers) = words.next() {
            let (major, minor) = numbers.split_once(':').expect("major:minor");
            let number = |s: &str| (s != "*").then(|| s.parse().expect("a number"));
            r.set_major(number(major));
            r.set_minor(number(minor));
        }
        r.set_access(words.next().map(str::to_owned));
        r
    }

    fn rules(texts: &[&str]) -> Vec<LinuxDeviceCgroup> {
        texts.iter().map(|t| rule(t)).collect()
    }

    /// A device access `c 1:3 rw` as the hook's context words.
    fn request(text: &str) -> [u32; 3] {
        let mut words = text.split_whitespace();
        let dev_type = match words.next() {
            Some("b") => BPF_DEVCG_DEV_BLOCK as u32,
            Some("c") => BPF_DEVCG_DEV_CHAR as u32,
            other => panic!("bad type {other:?} in {text:?}"),
        };
        let (major, minor) = words
            .next()
            .and_then(|n| n.split_once(':'))
            .expect("major:minor");
        let access = parse_access(words.next().expect("access")).expect("rwm letters");
        [
            (access << 16) | dev_type,
            major.parse().expect("major"),
            minor.parse().expect("minor"),
        ]
    }

    /// Runs a program of the instruction subset `program` emits on one context and returns r0.
    /// Like the verifier, it refuses to read a register nothing has written.
    fn run(insns: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut regs = [0u64; 11];
        let mut written = [false; 11];
        written[1] = true; // the context pointer
        written[10] = true; // the frame pointer
        let mut pc = 0usize;
        for _ in 0..100_000 {
            let insn = insns.get(pc).copied().expect("pc inside the program");
            pc += 1;
            let dst = usize::from(insn.regs & 0x0f);
            let src = usize::from(insn.regs >> 4);
            let class = insn.code & 0x07;
            let read = |r: usize| {
                assert!(written[r], "r{r} read before written at pc {}", pc - 1);
                regs[r]
            };
            match class {
                asm::LDX => {
                    assert_eq!(insn.code, asm::LDX | asm::MEM | asm::W, "only 32-bit loads");
                    assert_eq!(src, 1, "loads only from the context");
                    let off = usize::try_from(insn.off).expect("non-negative offset");
                    assert_eq!(off % 4, 0, "aligned context load");
                    regs[dst] = u64::from(ctx[off / 4]);
                    written[dst] = true;
                }
                asm::ALU => {
                    let operand = if insn.code & asm::X != 0 {
                        read(src) as u32
                    } else {
                        insn.imm as u32
                    };
                    let op = insn.code & 0xf0;
                    let value = if op == asm::MOV {
                        operand
                    } else {
                        let d = read(dst) as u32;
                        match op {
                            asm::AND => d & operand,
                            asm::OR => d | operand,
                            asm::XOR => d ^ operand,
                            asm::RSH => d >> operand,
                            _ => panic!("unexpected ALU op {op:#x}"),
                        }
                    };
                    // 32-bit ALU results are zero-extended into the 64-bit register.
                    regs[dst] = u64::from(value);
                    written[dst] = true;
                }
                asm::JMP => {
                    let op = insn.code & 0xf0;
                    if op == asm::EXIT {
                        return read(0);
                    }
                    assert_eq!(insn.code & asm::X, asm::K, "jumps compare with immediates");
                    // A 64-bit compare with the immediate sign-extended.
                    let operand = i64::from(insn.imm) as u64;
                    let taken = match op {
                        asm::JNE => read(dst) != operand,
                        _ => panic!("unexpected jump op {op:#x}"),
                    };
                    if taken {
                        pc = pc
                            .checked_add_signed(isize::from(insn.off))
                            .expect("jump inside the program");
                    }
                }
                _ => panic!("unexpected instruction class in {insn:?}"),
            }
        }
        panic!("the program does not terminate")
    }

    fn allowed(rules: &[LinuxDeviceCgroup], req: &str) -> bool {
        match run(&program(rules), request(req)) {
            0 => false,
            1 => true,
            other => panic!("r0 = {other}"),
        }
    }

    /// Rules, and requests with the verdict expected for each.
    type GoldenCase = (&'static [&'static str], &'static [(&'static str, bool)]);

    /// The expected verdicts, written out by hand.
    const GOLDEN: &[GoldenCase] = &[
        // An empty list denies everything.
        (
            &[],
            &[("c 1:3 r", false), ("b 8:0 w", false), ("c 1:3 m", false)],
        ),
        // The runtime-spec default shape: deny all, then allow /dev/null.
        (
            &["deny a *:* rwm", "allow c 1:3 rwm"],
            &[
                ("c 1:3 r", true),
                ("c 1:3 rw", true),
                ("c 1:3 m", true),
                ("c 1:5 r", false),
                ("b 1:3 r", false),
            ],
        ),
        // Wildcard minor and wildcard major.
        (
            &["deny a", "allow c 136:* rwm", "allow c *:3 r"],
            &[
                ("c 136:0 rw", true),
                ("c 136:99 rw", true),
                ("c 137:0 r", false),
                ("c 5:3 r", true),
                ("c 5:3 w", false),
                ("b 5:3 r", false),
            ],
        ),
        // Last match wins: a deny after an allow-all...
        (
            &["allow a", "deny c 1:3 rwm"],
            &[("c 1:3 r", false), ("c 1:5 r", true), ("b 8:0 rw", true)],
        ),
        // ...and an allow-all after a deny.
        (
            &["deny c 1:3 rwm", "allow a"],
            &[("c 1:3 r", true), ("c 1:3 rwm", true)],
        ),
        // A later deny under a wildcard allow wins over it.
        (
            &["deny a", "allow c *:* rwm", "deny c 1:3 w"],
            &[("c 1:3 r", true), ("c 1:3 w", false), ("c 1:5 w", true)],
        ),
        // Access subsets: a rule speaks only for the letters it names.
        (
            &["deny a", "allow c 1:3 r"],
            &[
                ("c 1:3 r", true),
                ("c 1:3 w", false),
                ("c 1:3 rw", false),
                ("c 1:3 m", false),
            ],
        ),
        (
            &["allow c 1:3 rwm", "deny c 1:3 w"],
            &[
                ("c 1:3 r", true),
                ("c 1:3 w", false),
                ("c 1:3 rw", false),
                ("c 1:3 m", true),
            ],
        ),
        // Rules for one device add up, as v1 merges their access.
        (
            &["allow c 1:3 r", "allow c 1:3 w"],
            &[("c 1:3 rw", true), ("c 1:3 rwm", false)],
        ),
        // mknod of anything, the Docker default's first allow rules.
        (
            &["deny a", "allow c *:* m", "allow b *:* m"],
            &[("c 4:1 m", true), ("b 8:0 m", true), ("c 4:1 r", false)],
        ),
        // Block versus character.
        (
            &["allow b 8:* rwm"],
            &[("b 8:1 rw", true), ("c 8:1 rw", false)],
        ),
        // Type `a` (or none) with numbers matches both kinds.
        (
            &["allow a 1:3 r", "allow - 7:* w"],
            &[
                ("c 1:3 r", true),
                ("b 1:3 r", true),
                ("c 7:1 w", true),
                ("b 7:2 w", true),
                ("b 7:2 r", false),
            ],
        ),
        // `u` is a character device, `p` never matches, no access means rwm (and "" none:
        // `empty_access_string_is_a_noop`).
        (
            &["allow u 4:1 rw", "allow p 4:2 rwm", "allow c 4:3"],
            &[
                ("c 4:1 rw", true),
                ("b 4:1 r", false),
                ("c 4:2 r", false),
                ("c 4:3 rwm", true),
            ],
        ),
        // Negative numbers are wildcards; impossible numbers never match.
        (
            &[
                "allow c -1:-1 r",
                "deny c 4294967296:* r",
                "deny c 1:2147483648 r",
            ],
            &[("c 1:3 r", true), ("c 0:0 r", true)],
        ),
    ];

    #[test]
    fn golden_table() {
        for (list, cases) in GOLDEN {
            let list_rules = rules(list);
            for (req, expected) in *cases {
                assert_eq!(
                    allowed(&list_rules, req),
                    *expected,
                    "rules {list:?}, request {req:?}"
                );
            }
        }
    }

    #[test]
    fn empty_access_string_is_a_noop() {
        let mut r = rule("allow c 1:3");
        r.set_access(Some(String::new()));
        assert!(!allowed(&[r], "c 1:3 r"));
    }

    /// "Last match wins, bit by bit", evaluated the other way round from `program` (scanning
    /// back from the end for each requested bit) as an independent model.
    fn model(rules: &[LinuxDeviceCgroup], ctx: [u32; 3]) -> bool {
        let dev_type = ctx[0] & 0xffff;
        let access = ctx[0] >> 16;
        let matches = |r: &LinuxDeviceCgroup, bit: u32| {
            let type_ok = match r.typ() {
                None | Some(LinuxDeviceType::A) => true,
                Some(LinuxDeviceType::B) => dev_type == BPF_DEVCG_DEV_BLOCK as u32,
                Some(LinuxDeviceType::C | LinuxDeviceType::U) => {
                    dev_type == BPF_DEVCG_DEV_CHAR as u32
                }
                Some(LinuxDeviceType::P) => false,
            };
            let number_ok =
                |n: Option<i64>, actual: u32| n.is_none_or(|n| n < 0 || n == i64::from(actual));
            let bits = r
                .access()
                .as_deref()
                .map_or(ACC_ALL, |a| parse_access(a).expect("rwm"));
            type_ok
                && number_ok(r.major(), ctx[1])
                && number_ok(r.minor(), ctx[2])
                && bits & bit != 0
        };
        [BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE]
            .into_iter()
            .filter(|bit| access & bit != 0)
            .all(|bit| {
                rules
                    .iter()
                    .rev()
                    .find(|r| matches(r, bit))
                    .is_some_and(|r| r.allow())
            })
    }

    #[test]
    fn program_agrees_with_the_model_on_all_short_lists() {
        let pool = rules(&[
            "allow a *:* rwm",
            "deny a *:* rwm",
            "allow c 1:3 rw",
            "deny c 1:3 w",
            "allow c 1:* m",
            "deny b *:3 r",
            "allow b 8:0 rwm",
            "deny - *:4 rm",
        ]);
        let mut requests = Vec::new();
        for t in ["b", "c"] {
            for major in [1, 8] {
                for minor in [0, 3, 4] {
                    for access in ["m", "r", "w", "rm", "rw", "wm", "rwm"] {
                        requests.push(request(&format!("{t} {major}:{minor} {access}")));
                    }
                }
            }
        }
        let n = pool.len();
        let mut lists: Vec<Vec<LinuxDeviceCgroup>> = vec![vec![]];
        for a in 0..n {
            lists.push(vec![pool[a].clone()]);
            for b in 0..n {
                lists.push(vec![pool[a].clone(), pool[b].clone()]);
                for c in 0..n {
                    lists.push(vec![pool[a].clone(), pool[b].clone(), pool[c].clone()]);
                }
            }
        }
        for list in &lists {
            let insns = program(list);
            for ctx in &requests {
                assert_eq!(
                    run(&insns, *ctx) == 1,
                    model(list, *ctx),
                    "rules {:?}, context {ctx:?}",
                    list.iter().map(ToString::to_string).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn encoding_matches_the_uapi() {
        let p = program(&rules(&["deny a", "allow c 1:3 rw"]));
        let bytes = |i: Insn| {
            let mut b = [i.code, i.regs, 0, 0, 0, 0, 0, 0];
            b[2..4].copy_from_slice(&i.off.to_le_bytes());
            b[4..].copy_from_slice(&i.imm.to_le_bytes());
            b
        };
        let expected: [[u8; 8]; 18] = [
            [0x61, 0x12, 0, 0, 0, 0, 0, 0],             // ldxw r2, [r1+0]
            [0xbc, 0x23, 0, 0, 0, 0, 0, 0],             // mov32 r3, r2
            [0x54, 0x03, 0, 0, 0xff, 0xff, 0, 0],       // and32 r3, 0xffff
            [0x74, 0x02, 0, 0, 16, 0, 0, 0],            // rsh32 r2, 16
            [0x61, 0x14, 4, 0, 0, 0, 0, 0],             // ldxw r4, [r1+4]
            [0x61, 0x15, 8, 0, 0, 0, 0, 0],             // ldxw r5, [r1+8]
            [0xb4, 0x00, 0, 0, 0, 0, 0, 0],             // mov32 r0, 0 (after "deny a")
            [0x55, 0x03, 3, 0, 2, 0, 0, 0],             // jne r3, CHAR, +3
            [0x55, 0x04, 2, 0, 1, 0, 0, 0],             // jne r4, 1, +2
            [0x55, 0x05, 1, 0, 3, 0, 0, 0],             // jne r5, 3, +1
            [0x44, 0x00, 0, 0, 6, 0, 0, 0],             // or32 r0, READ|WRITE
            [0xa4, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff], // xor32 r0, -1
            [0x5c, 0x20, 0, 0, 0, 0, 0, 0],             // and32 r0, r2
            [0x55, 0x00, 2, 0, 0, 0, 0, 0],             // jne r0, 0, +2
            [0xb4, 0x00, 0, 0, 1, 0, 0, 0],             // mov32 r0, 1
            [0x95, 0x00, 0, 0, 0, 0, 0, 0],             // exit
            [0xb4, 0x00, 0, 0, 0, 0, 0, 0],             // mov32 r0, 0
            [0x95, 0x00, 0, 0, 0, 0, 0, 0],             // exit
        ];
        let got: Vec<[u8; 8]> = p.into_iter().map(bytes).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn rules_before_a_reset_are_not_emitted() {
        let short = program(&rules(&["allow a"]));
        let long = program(&rules(&[
            "allow c 1:3 r",
            "deny b 8:* w",
            "allow a *:* rwm",
        ]));
        assert_eq!(short, long);
    }

    #[test]
    fn apply_refuses_unknown_access_letters() {
        let err = apply(
            Path::new("/nonexistent"),
            &rules(&["deny a", "allow c 1:3 rwx"]),
        )
        .expect_err("x is not an access letter");
        assert!(
            matches!(err, BpfError::InvalidAccess { index: 1, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "device rule 1: access \"rwx\" is not a combination of \"rwm\""
        );
    }

    #[test]
    fn load_error_carries_the_log_tail() {
        let err = BpfError::Load {
            log: log_tail(b"0: (95) exit\nR0 !read_ok\n\0garbage"),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            err.to_string(),
            "load the device filter (verifier: 0: (95) exit; R0 !read_ok)"
        );
        let quiet = BpfError::Load {
            log: log_tail(b"\0"),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert_eq!(quiet.to_string(), "load the device filter");
    }

    // Root tests: real cgroups under the cgroup2 mount.

    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (it creates cgroups and loads BPF programs)"
        );
    }

    /// A cgroup2 directory of this test, removed with every program attached to it on drop.
    struct TestCgroup {
        path: PathBuf,
    }

    impl TestCgroup {
        fn new() -> TestCgroup {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                Path::new(CGROUP2_ROOT).join(format!("skiff-bpf-test-{}-{n}", std::process::id()));
            std::fs::create_dir(&path).expect("create the test cgroup");
            TestCgroup { path }
        }

        fn dir(&self) -> OwnedFd {
            nix::fcntl::open(
                &self.path,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .expect("open the test cgroup")
        }

        /// (id, ours) for every device program attached to the cgroup.
        fn attached(&self) -> Vec<(u32, bool)> {
            let dir = self.dir();
            attached_ids(dir.as_fd())
                .expect("query the attached programs")
                .into_iter()
                .map(|id| {
                    let prog = sys::bpf_prog_get_fd_by_id(id).expect("program by id");
                    (id, is_ours(prog.as_fd()).expect("program info"))
                })
                .collect()
        }

        /// Runs `script` in a shell that first moves itself into the cgroup; `$1` is the cgroup
        /// directory and `$2` a scratch directory. Returns its stdout.
        fn run(&self, script: &str) -> String {
            let scratch = tempfile::tempdir().expect("scratch directory");
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!(
                    "echo $$ > \"$1/cgroup.procs\" || exit 100\n{script}"
                ))
                .arg("sh")
                .arg(&self.path)
                .arg(scratch.path())
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .output()
                .expect("run the shell");
            assert!(
                out.status.success(),
                "shell failed: {:?}, stderr {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            // Detach explicitly (rmdir would release them too, but only once it succeeds).
            if let Ok(dir) = nix::fcntl::open(
                &self.path,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            ) {
                for id in attached_ids(dir.as_fd()).unwrap_or_default() {
                    if let Ok(prog) = sys::bpf_prog_get_fd_by_id(id) {
                        let _ = sys::bpf_prog_detach(
                            dir.as_fd(),
                            prog.as_fd(),
                            bpf_api::BPF_CGROUP_DEVICE,
                        );
                    }
                }
            }
            // The shells have been reaped, but the kernel may take a moment to mark the cgroup
            // unpopulated.
            for _ in 0..100 {
                match std::fs::remove_dir(&self.path) {
                    Ok(()) => return,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
            eprintln!("could not remove the test cgroup {}", self.path.display());
        }
    }

    /// Prints one `<label> ok` or `<label> <error>` line per device operation.
    const PROBE: &str = r#"
probe() {
    label=$1; shift
    if out=$( ("$@") 2>&1 ); then echo "$label ok"; else echo "$label $out"; fi
}
open_r() { exec 3< "$1"; }
open_w() { exec 3> "$1"; }
probe read-null open_r /dev/null
probe write-null open_w /dev/null
probe read-zero open_r /dev/zero
probe write-zero open_w /dev/zero
probe mknod-null mknod "$2/null" c 1 3
probe mknod-zero mknod "$2/zero" c 1 5
"#;

    /// The probe's verdict per label: true for allowed, false for EPERM (anything else fails).
    fn verdicts(output: &str) -> Vec<(String, bool)> {
        output
            .lines()
            .map(|line| {
                let (label, result) = line.split_once(' ').expect("label and result");
                let allowed = match result {
                    "ok" => true,
                    r if r.contains("Operation not permitted") => false,
                    r => panic!("{label}: unexpected failure {r:?}"),
                };
                (label.to_owned(), allowed)
            })
            .collect()
    }

    fn expect(output: &str, expected: &[(&str, bool)]) {
        let got = verdicts(output);
        let want: Vec<(String, bool)> = expected
            .iter()
            .map(|(l, a)| ((*l).to_owned(), *a))
            .collect();
        assert_eq!(got, want, "probe output:\n{output}");
    }

    #[test]
    fn root_filter_enforces_rules_and_update_replaces_it() {
        require_root();
        let cg = TestCgroup::new();

        apply(&cg.path, &rules(&["deny a *:* rwm", "allow c 1:3 rwm"])).expect("first apply");
        assert_eq!(cg.attached().iter().filter(|(_, ours)| *ours).count(), 1);
        expect(
            &cg.run(PROBE),
            &[
                ("read-null", true),
                ("write-null", true),
                ("read-zero", false),
                ("write-zero", false),
                ("mknod-null", true),
                ("mknod-zero", false),
            ],
        );

        // The update: /dev/zero allowed, /dev/null no longer mknod-able.
        let before = cg.attached();
        apply(
            &cg.path,
            &rules(&["deny a *:* rwm", "allow c 1:3 rw", "allow c 1:5 rwm"]),
        )
        .expect("second apply");
        let after = cg.attached();
        assert_eq!(after.len(), 1, "exactly one program attached: {after:?}");
        assert!(after[0].1, "and it is ours");
        assert_ne!(after[0].0, before[0].0, "and it is the new one");
        expect(
            &cg.run(PROBE),
            &[
                ("read-null", true),
                ("write-null", true),
                ("read-zero", true),
                ("write-zero", true),
                ("mknod-null", false),
                ("mknod-zero", true),
            ],
        );
    }

    #[test]
    fn root_apply_leaves_foreign_filters_attached() {
        require_root();
        let cg = TestCgroup::new();
        // Someone else's filter: allow everything, under another name.
        let foreign = sys::bpf_prog_load(
            bpf_api::BPF_PROG_TYPE_CGROUP_DEVICE,
            &[asm::mov32_imm(R0, 1), asm::exit()],
            LICENSE,
            "other_filter",
            &mut [],
        )
        .expect("load the foreign filter");
        let dir = cg.dir();
        sys::bpf_prog_attach(
            dir.as_fd(),
            foreign.as_fd(),
            bpf_api::BPF_CGROUP_DEVICE,
            bpf_api::BPF_F_ALLOW_MULTI,
        )
        .expect("attach the foreign filter");

        for _ in 0..3 {
            apply(&cg.path, &rules(&["allow a"])).expect("apply");
        }
        let attached = cg.attached();
        assert_eq!(attached.len(), 2, "{attached:?}");
        assert_eq!(
            attached.iter().filter(|(_, ours)| *ours).count(),
            1,
            "{attached:?}"
        );
        expect(
            &cg.run("probe() { :; }\nexec 3< /dev/zero && echo read-zero ok"),
            &[("read-zero", true)],
        );
    }

    #[test]
    fn root_verifier_rejection_reports_its_log() {
        require_root();
        // r0 is never written: the verifier refuses the exit.
        let err = load(&[asm::exit()]).expect_err("the verifier refuses this");
        let message = err.to_string();
        assert!(
            message.starts_with("load the device filter (verifier: "),
            "{message}"
        );
        assert!(message.contains("R0 !read_ok"), "{message}");
    }

    #[test]
    fn root_missing_cgroup_is_reported_with_its_path() {
        require_root();
        let path =
            Path::new(CGROUP2_ROOT).join(format!("skiff-bpf-test-{}-missing", std::process::id()));
        let err = apply(&path, &[]).expect_err("no such cgroup");
        assert_eq!(
            err.to_string(),
            format!("open the cgroup directory {}", path.display())
        );
    }
}
