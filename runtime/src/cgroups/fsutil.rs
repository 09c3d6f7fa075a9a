//! Small helpers over cgroupfs files: every write names the spec field it serves.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::CgroupError;

/// Writes `value` to `dir/file` in one `write(2)` (cgroupfs parses each write on its own).
/// Opened `O_WRONLY|O_TRUNC` like runc's `WriteFile` (cgroupfs ignores the truncation; a fake
/// tree in a temp dir needs it), without `O_CREAT`: on cgroupfs that turns a missing file into
/// EPERM/EACCES instead of the telling ENOENT.
pub(super) fn write_raw(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.join(file))?;
    f.write_all(value.as_bytes())
}

/// [`write_raw`], with a failure reported against the spec field `field`.
pub(super) fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<(), CgroupError> {
    write_raw(dir, file, value).map_err(|source| CgroupError::Write {
        field: field.to_string(),
        value: value.to_string(),
        path: dir.join(file),
        source,
    })
}

pub(super) fn io_err(op: &'static str, path: PathBuf) -> impl FnOnce(io::Error) -> CgroupError {
    move |source| CgroupError::Io { op, path, source }
}

/// Reads `dir/file` whole.
pub(super) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(io_err("read", path))
}

/// Reads `dir/file` if it exists (`Ok(None)` when it does not).
pub(super) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::Io {
            op: "read",
            path,
            source: e,
        }),
    }
}

/// Parses a single-number cgroup file; `max` (v2) is `u64::MAX`, and v1's `-1` too.
pub(super) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let t = s.trim();
    if t == "max" || t == "-1" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: s.to_string(),
    })
}

pub(super) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let s = read(dir, file)?;
    parse_u64(&dir.join(file), &s)
}

/// Like [`read_u64`], `Ok(None)` when the file does not exist (optional kernel features:
/// swap accounting, kmem, `memory.peak`).
pub(super) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// The value of `key` in a flat-keyed file (`key value` per line: `memory.stat`,
/// `memory.events`, `cpu.stat`, `memory.oom_control`).
pub(super) fn keyed(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Every `key value` pair of a flat-keyed file, skipping lines that are not numeric.
pub(super) fn keyed_all(content: &str) -> impl Iterator<Item = (&str, u64)> {
    content.lines().filter_map(|l| {
        let (k, v) = l.split_once(' ')?;
        Some((k, v.trim().parse().ok()?))
    })
}

/// The pids listed in `dir/cgroup.procs`.
pub(super) fn procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let s = read(dir, "cgroup.procs")?;
    s.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim().parse().map_err(|_| CgroupError::Parse {
                path: dir.join("cgroup.procs"),
                content: l.to_string(),
            })
        })
        .collect()
}

/// The pids of `dir` and of every cgroup below it (depth first). A sub-cgroup that vanishes
/// while we walk is skipped: its processes are gone or have moved.
pub(super) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    out.extend(procs(dir)?);
    let entries = fs::read_dir(dir).map_err(io_err("read directory", dir.to_path_buf()))?;
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", dir.to_path_buf()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            match procs_recursive(&entry.path(), out) {
                Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                }
                r => r?,
            }
        }
    }
    Ok(())
}

/// `rmdir` of a cgroup directory and, first, every cgroup below it. A directory that is
/// already gone is success. cgroupfs directories contain only control files, which `rmdir`
/// ignores, so no file is ever unlinked (and must not be: cgroupfs refuses `unlink`).
pub(super) fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
