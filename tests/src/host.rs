//! Host-side inspection through `/proc`: process liveness, namespaces, mounts, leftovers, and
//! bounded polling.
//!
//! Everything here reads the host's view (`/proc/self/...`, `/proc/<pid>/...`), which is the
//! "from outside" half of the integration tests; the "from inside" half runs busybox commands in
//! the container.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` until it returns true, backing off from 5 ms to 100 ms between tries.
///
/// # Panics
/// When `timeout` passes first, naming `what` was awaited.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// The one-letter state from `/proc/<pid>/stat`, or `None` if the process does not exist.
pub fn process_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field is in parentheses and may itself contain ") ", so split at the last one.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.chars().next()
}

/// True if `pid` exists and is not a zombie or dead.
///
/// Zombies count as gone: on these machines pid 1 reaps orphans only every few seconds, and a
/// zombie no longer runs anything or holds any resource a test cares about.
pub fn process_alive(pid: i32) -> bool {
    matches!(process_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// Waits up to `timeout` for `pid` to exit (or become a zombie).
#[track_caller]
pub fn wait_process_gone(pid: i32, timeout: Duration) {
    wait_until(timeout, &format!("process {pid} to exit"), || {
        !process_alive(pid)
    });
}

/// The namespace link (e.g. `net:[4026531840]`) of `/proc/<pid>/ns/<ns>`.
///
/// `ns` is the name under `/proc/<pid>/ns` (`mnt`, `net`, `pid`, `uts`, `ipc`, `cgroup`, `user`,
/// `time`), which differs from the OCI type names (`mount`, `network`).
///
/// # Panics
/// If the link cannot be read (the process is gone or the kernel lacks the namespace).
pub fn ns_link(pid: i32, ns: &str) -> String {
    let path = format!("/proc/{pid}/ns/{ns}");
    fs::read_link(&path)
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// The test process's own namespace link for `ns` (see [`ns_link`]).
pub fn host_ns_link(ns: &str) -> String {
    let path = format!("/proc/self/ns/{ns}");
    fs::read_link(&path)
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// A field of `/proc/<pid>/status` (e.g. `Uid`), without the key, trimmed.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_field(&status, field)
}

/// A field of a `/proc/*/status` text (e.g. `Uid`), without the key, trimmed.
pub fn parse_status_field(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == field).then(|| value.trim().to_string())
    })
}

/// One line of `/proc/<pid>/mountinfo` (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount point relative to the process's root.
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,...`).
    pub mount_options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...).
    pub optional: Vec<String>,
    /// Filesystem type (`proc`, `tmpfs`, ...).
    pub fs_type: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// True if `opt` is among the per-mount options.
    pub fn has_option(&self, opt: &str) -> bool {
        self.mount_options.iter().any(|o| o == opt)
    }
}

/// Parses a `mountinfo` text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            if left.len() < 6 || right.len() < 3 {
                return None;
            }
            Some(MountInfo {
                mount_point: unescape_octal(left[4]),
                mount_options: left[5].split(',').map(str::to_string).collect(),
                optional: left[6..].iter().map(|s| s.to_string()).collect(),
                fs_type: right[0].to_string(),
                source: unescape_octal(right[1]),
                super_options: right[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Undoes the kernel's `\NNN` octal escaping of spaces, tabs, newlines and backslashes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            match u8::try_from(value) {
                Ok(byte) => {
                    out.push(byte);
                    i += 4;
                }
                Err(_) => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lines of the host's `/proc/self/mountinfo` and `/proc/mounts` that mention `path`.
pub fn mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy();
    ["/proc/self/mountinfo", "/proc/mounts"]
        .iter()
        .filter_map(|file| fs::read_to_string(file).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|line| line.contains(needle.as_ref()))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Live processes (not zombies, not this one) that still refer to a container in bundle `dir`:
/// their root directory is the bundle's `rootfs` (same device and inode, however it was
/// reached: pivot_root, chroot, a bind mount), their cwd, root or executable path lies under
/// `dir`, or their command line, environment or cgroup mentions `dir` or `marker` (a container
/// id).
///
/// This is a heuristic for "the failed create left a process behind": a runtime's init process
/// starts with the bundle as cwd (the runtime runs there, like runc under containerd) and ends
/// with the rootfs as its root, runtimes name cgroups and state directories after the id, and a
/// hook gets the bundle and id on stdin and usually in its arguments.
pub fn processes_referencing(dir: &Path, marker: &str) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id().to_string();
    let dir_str = dir.to_string_lossy().into_owned();
    let rootfs = fs::metadata(dir.join("rootfs"))
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if name == me || !process_alive(pid) {
            continue;
        }
        let base = entry.path();
        let mut reasons = Vec::new();
        // stat follows the magic link to the process's root directory without resolving a path.
        if let Ok(root) = fs::metadata(base.join("root")) {
            if Some((root.dev(), root.ino())) == rootfs {
                reasons.push("root is the bundle's rootfs".to_string());
            }
        }
        for link in ["cwd", "root", "exe"] {
            if let Ok(target) = fs::read_link(base.join(link)) {
                if target.starts_with(dir) {
                    reasons.push(format!("{link} -> {}", target.display()));
                }
            }
        }
        for file in ["cmdline", "environ", "cgroup"] {
            if let Ok(bytes) = fs::read(base.join(file)) {
                let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
                if text.contains(&dir_str) || (!marker.is_empty() && text.contains(marker)) {
                    reasons.push(format!("{file}: {}", text.trim()));
                }
            }
        }
        // The process may have exited while we looked; only report it if it is still there.
        if !reasons.is_empty() && process_alive(pid) {
            found.push(format!("pid {pid}: {}", reasons.join("; ")));
        }
    }
    found
}

/// True if `s` is an RFC 3339 date-time (`2006-01-02T15:04:05.999999999Z07:00` and the like).
pub fn is_rfc3339(s: &str) -> bool {
    fn num(b: &[u8], range: std::ops::Range<usize>, max: u32) -> bool {
        b.get(range).is_some_and(|digits| {
            digits.iter().all(u8::is_ascii_digit)
                && digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
                    <= max
        })
    }
    let b = s.as_bytes();
    let date_time = num(b, 0..4, 9999)
        && b.get(4) == Some(&b'-')
        && num(b, 5..7, 12)
        && b.get(7) == Some(&b'-')
        && num(b, 8..10, 31)
        && matches!(b.get(10), Some(b'T' | b't'))
        && num(b, 11..13, 23)
        && b.get(13) == Some(&b':')
        && num(b, 14..16, 59)
        && b.get(16) == Some(&b':')
        && num(b, 17..19, 60);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            num(b, i + 1..i + 3, 23)
                && b.get(i + 3) == Some(&b':')
                && num(b, i + 4..i + 6, 59)
                && i + 6 == b.len()
        }
        _ => false,
    }
}

/// The directory of `pid`'s cgroup in the hierarchy that holds `controller` (`memory`, `pids`…;
/// `""` for the cgroup2 hierarchy), from `/proc/<pid>/cgroup`, for a host whose v1 hierarchies
/// are mounted at `/sys/fs/cgroup/<controller>` and whose cgroup2 is at
/// `/sys/fs/cgroup/unified` (hybrid) or `/sys/fs/cgroup` (pure v2).
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controller.is_empty() && ctrls.is_empty() {
            let unified = Path::new("/sys/fs/cgroup/unified");
            let base = if unified.join("cgroup.procs").exists() {
                unified
            } else {
                Path::new("/sys/fs/cgroup")
            };
            return Some(base.join(rel));
        }
        if !controller.is_empty() && ctrls.split(',').any(|c| c == controller) {
            return Some(Path::new("/sys/fs/cgroup").join(ctrls).join(rel));
        }
    }
    None
}

/// Cgroup directories anywhere under `/sys/fs/cgroup` whose name contains `needle` (a container
/// id): what a container must not leave behind.
pub fn cgroup_dirs_named(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let path = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(path.clone());
            }
            if depth > 0 {
                walk(&path, needle, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 8, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_accepts_go_and_chrono_shapes() {
        assert!(is_rfc3339("2024-01-02T03:04:05Z"));
        assert!(is_rfc3339("2024-01-02T03:04:05.123456789Z"));
        assert!(is_rfc3339("2024-01-02T03:04:05+01:00"));
        assert!(is_rfc3339("2024-01-02T03:04:05.5-07:30"));
    }

    #[test]
    fn rfc3339_rejects_other_shapes() {
        for bad in [
            "",
            "2024-01-02",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+0100",
            "1700000000",
            "2024-01-02T03:04:05Zjunk",
        ] {
            assert!(!is_rfc3339(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn mountinfo_parses_optional_fields_and_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt\\040dir rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                    22 27 0:21 / /proc rw,relatime - proc proc rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].mount_point, "/mnt dir");
        assert_eq!(mounts[0].optional, ["master:1", "shared:2"]);
        assert_eq!(mounts[0].fs_type, "ext3");
        assert!(mounts[0].has_option("noatime"));
        assert_eq!(mounts[1].mount_point, "/proc");
        assert!(mounts[1].optional.is_empty());
    }

    #[test]
    fn status_field_is_found_by_exact_key() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nUmask:\t0022\n";
        assert_eq!(
            parse_status_field(status, "Uid").as_deref(),
            Some("1000\t1000\t1000\t1000")
        );
        assert_eq!(parse_status_field(status, "Gid"), None);
    }
}
