//! The in-container probe and the console-socket receiver: their C sources are embedded in
//! the suite and compiled once per run with `gcc -static -O2` into a cache directory keyed by
//! the source's hash.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The probe's source (see the comment at its top for what it prints).
pub const SOURCE: &str = include_str!("probe.c");

/// The console-socket receiver's source (see the comment at its top).
pub const CONSOLE_SOURCE: &str = include_str!("console.c");

/// FNV-1a, so the cache key is stable across Rust versions (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Compiles `source` (as program `name`) into `cache_dir` unless a binary of this source is
/// already there, and returns the binary's path.
pub fn build(cache_dir: &Path, name: &str, source_text: &str) -> anyhow::Result<PathBuf> {
    let key = format!("{:016x}", fnv1a(source_text.as_bytes()));
    let binary = cache_dir.join(format!("{name}-{key}"));
    if binary.is_file() {
        return Ok(binary);
    }
    fs::create_dir_all(cache_dir).with_context(|| format!("mkdir {}", cache_dir.display()))?;
    let source = cache_dir.join(format!("{name}-{key}.c"));
    fs::write(&source, source_text).with_context(|| format!("writing {}", source.display()))?;
    // Build under a temporary name and rename, so parallel suite runs never see half a file.
    let partial = cache_dir.join(format!("{name}-{key}.{}.tmp", std::process::id()));
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&partial)
        .arg(&source)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "gcc is not installed: the suite compiles its {name} (C, embedded) with \
             `gcc -static` (apt-get install gcc libc6-dev)"
        ),
        Err(e) => return Err(e).context("running gcc"),
    };
    if !out.status.success() {
        bail!(
            "compiling the {name} with `gcc -static -O2` failed ({}); a static libc \
             (libc6-dev) is needed:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::rename(&partial, &binary)
        .with_context(|| format!("renaming {} to {}", partial.display(), binary.display()))?;
    Ok(binary)
}

/// Parses the probe's output (one JSON object; anything before it, e.g. hook chatter, is
/// ignored).
pub fn parse(output: &str) -> anyhow::Result<Report> {
    let start = output
        .find("{\"args\"")
        .with_context(|| format!("the probe printed no report; output was {output:?}"))?;
    let line = output[start..].lines().next().unwrap_or_default();
    let value: Value = serde_json::from_str(line)
        .with_context(|| format!("the probe's report is not JSON: {line:?}"))?;
    Ok(Report(value))
}

/// What the probe saw, with accessors for the fields cases check.
#[derive(Debug, Clone)]
pub struct Report(pub Value);

impl Report {
    pub fn u64(&self, key: &str) -> anyhow::Result<u64> {
        self.0[key]
            .as_u64()
            .with_context(|| format!("probe report has no number {key:?}"))
    }

    pub fn str(&self, key: &str) -> anyhow::Result<&str> {
        self.0[key]
            .as_str()
            .with_context(|| format!("probe report has no string {key:?}"))
    }

    /// A field of /proc/self/status (`CapEff`, `NoNewPrivs`, `Seccomp`, ...).
    pub fn status(&self, key: &str) -> anyhow::Result<&str> {
        self.0["status"][key]
            .as_str()
            .with_context(|| format!("probe report has no status field {key:?}"))
    }

    /// A capability set from /proc/self/status as a bit mask.
    pub fn cap_mask(&self, key: &str) -> anyhow::Result<u64> {
        let hex = self.status(key)?;
        u64::from_str_radix(hex, 16).with_context(|| format!("{key} is not hex: {hex:?}"))
    }

    /// The namespace link target (`net:[4026531840]`) of `ns` (`/proc/self/ns` name).
    pub fn namespace(&self, ns: &str) -> Option<&str> {
        self.0["namespaces"][ns].as_str()
    }

    pub fn env(&self) -> Vec<&str> {
        self.strings("env")
    }

    pub fn mountinfo(&self) -> Vec<MountInfo> {
        self.strings("mountinfo")
            .into_iter()
            .filter_map(MountInfo::parse)
            .collect()
    }

    pub fn strings(&self, key: &str) -> Vec<&str> {
        self.0[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The report on `path` (one of the probe's arguments).
    pub fn path(&self, path: &str) -> anyhow::Result<&Value> {
        self.0["paths"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["path"] == path))
            .with_context(|| format!("probe report has no entry for path {path}"))
    }

    /// errno of a probed system call (0 = it succeeded).
    pub fn syscall(&self, name: &str) -> anyhow::Result<i64> {
        self.0["syscalls"][name]
            .as_i64()
            .with_context(|| format!("probe report has no syscall {name:?}"))
    }
}

/// One parsed `/proc/<pid>/mountinfo` line (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: String,
    pub mount_options: Vec<String>,
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Parses `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
    pub fn parse(line: &str) -> Option<Self> {
        let (left, right) = line.split_once(" - ")?;
        let mut l = left.split(' ');
        let _id = l.next()?;
        let _parent = l.next()?;
        let _dev = l.next()?;
        let _root = l.next()?;
        let mount_point = unescape(l.next()?);
        let mount_options = l.next()?.split(',').map(str::to_owned).collect();
        let optional = l.map(str::to_owned).collect();
        let mut r = right.split(' ');
        let fs_type = r.next()?.to_owned();
        let source = r.next()?.to_owned();
        let super_options = r
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        Some(Self {
            mount_point,
            mount_options,
            optional,
            fs_type,
            source,
            super_options,
        })
    }

    pub fn has_option(&self, opt: &str) -> bool {
        self.mount_options.iter().any(|o| o == opt)
    }

    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let m = MountInfo::parse(
            "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - tmpfs tmpfs rw,size=1024k",
        )
        .unwrap();
        assert_eq!(m.mount_point, "/mnt 2");
        assert!(m.has_option("noatime"));
        assert_eq!(m.optional, vec!["master:1"]);
        assert_eq!(m.fs_type, "tmpfs");
        assert!(m.has_super_option("size=1024k"));
    }

    #[test]
    fn parse_skips_leading_noise() {
        let r = parse("hello\n{\"args\":[\"probe\"],\"uid\":3}\n").unwrap();
        assert_eq!(r.u64("uid").unwrap(), 3);
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
