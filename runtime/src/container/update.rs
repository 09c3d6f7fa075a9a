//! `update`: change a container's cgroup limits, from a `LinuxResources` JSON (`-r FILE`,
//! `--resources=-` for stdin, as containerd's shim sends it) and/or runc's per-field flags.
//! The new values are also written into the saved configuration, so `state` and later updates
//! start from them.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{Error, manager};
use crate::state::{StateDir, Status};

/// runc's per-field flags of `update` (all optional; given ones override the JSON's).
#[derive(Debug, Clone, Default)]
pub struct UpdateFlags {
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// The flags of `update`.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    pub root: PathBuf,
    pub id: String,
    /// `-r FILE`, or `-` for stdin.
    pub resources: Option<PathBuf>,
    pub flags: UpdateFlags,
}

pub fn update(opts: &UpdateOptions) -> Result<(), Error> {
    let dir = StateDir::open(&opts.root, &opts.id)?;
    let mut state = dir.load()?;
    if dir.status(&state) == Status::Stopped {
        return Err(Error::NotRunning);
    }
    let mut resources = match &opts.resources {
        Some(path) => read_resources(path)?,
        None => LinuxResources::default(),
    };
    apply_flags(&mut resources, &opts.flags);
    let old = state
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    // The update laid over the saved limits is what is written, as runc's `Set` does: a field
    // given alone (a swap limit without a memory limit) is computed against the others.
    let merged = merge(old.clone(), &resources);
    let cgroup = manager(&state)?;
    if let Err(e) = cgroup.update(&merged) {
        // Some limits may already be written: put the previous ones back so that the kernel and
        // the saved configuration agree (runc does the same). A failure of that is logged; the
        // caller sees the original error.
        if let Err(undo) = cgroup.update(&old) {
            tracing::warn!(error = %undo, "cannot restore the previous limits after a failed update");
        }
        return Err(e.into());
    }
    if let Some(linux) = state.config.linux_mut() {
        linux.set_resources(Some(merged));
    }
    dir.save(&state)?;
    Ok(())
}

fn read_resources(path: &Path) -> Result<LinuxResources, Error> {
    let mut text = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut text).map(drop)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut text).map(drop))
    };
    read.map_err(super::io_err("read resources from", path))?;
    serde_json::from_slice(&text).map_err(|e| Error::Resources {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn apply_flags(r: &mut LinuxResources, f: &UpdateFlags) {
    if f.blkio_weight.is_some() {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(f.blkio_weight);
        r.set_block_io(Some(b));
    }
    let cpu_given = f.cpu_period.is_some()
        || f.cpu_quota.is_some()
        || f.cpu_share.is_some()
        || f.cpu_rt_period.is_some()
        || f.cpu_rt_runtime.is_some()
        || f.cpuset_cpus.is_some()
        || f.cpuset_mems.is_some();
    if cpu_given {
        let mut c = r.cpu().clone().unwrap_or_default();
        if f.cpu_period.is_some() {
            c.set_period(f.cpu_period);
        }
        if f.cpu_quota.is_some() {
            c.set_quota(f.cpu_quota);
        }
        if f.cpu_share.is_some() {
            c.set_shares(f.cpu_share);
        }
        if f.cpu_rt_period.is_some() {
            c.set_realtime_period(f.cpu_rt_period);
        }
        if f.cpu_rt_runtime.is_some() {
            c.set_realtime_runtime(f.cpu_rt_runtime);
        }
        if f.cpuset_cpus.is_some() {
            c.set_cpus(f.cpuset_cpus.clone());
        }
        if f.cpuset_mems.is_some() {
            c.set_mems(f.cpuset_mems.clone());
        }
        r.set_cpu(Some(c));
    }
    if f.memory.is_some() || f.memory_reservation.is_some() || f.memory_swap.is_some() {
        let mut m = r.memory().unwrap_or_default();
        if f.memory.is_some() {
            m.set_limit(f.memory);
        }
        if f.memory_reservation.is_some() {
            m.set_reservation(f.memory_reservation);
        }
        if f.memory_swap.is_some() {
            m.set_swap(f.memory_swap);
        }
        r.set_memory(Some(m));
    }
    if let Some(limit) = f.pids_limit {
        let mut p = r.pids().unwrap_or_default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
}

/// The saved resources with the update laid over them field by field (what the update does not
/// mention is kept, as the cgroup files it does not write keep their values).
fn merge(old: LinuxResources, new: &LinuxResources) -> LinuxResources {
    fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
        match (base, top) {
            (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
                for (k, v) in t {
                    if v.is_null() {
                        continue;
                    }
                    overlay(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let (Ok(mut base), Ok(top)) = (serde_json::to_value(&old), serde_json::to_value(new)) else {
        return old;
    };
    overlay(&mut base, top);
    serde_json::from_value(base).unwrap_or(old)
}

/// Parse a byte count as runc's update flags do: a number with an optional k/m/g/t suffix
/// (binary units, any case, optional trailing `b`), or -1 for unlimited.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult): (&str, i64) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64m, 1g, 1048576 or -1)"))?;
    if n < 0.0 {
        return Err(format!("{s:?} must not be negative (only -1, unlimited)"));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("512kb"), Ok(512 << 10));
        assert_eq!(parse_bytes("-1"), Ok(-1));
        assert!(parse_bytes("-5").is_err());
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn flags_override_and_merge_keeps_other_sections() {
        let mut r: LinuxResources =
            serde_json::from_str(r#"{"memory": {"limit": 100}, "cpu": {"shares": 5}}"#)
                .expect("json");
        apply_flags(
            &mut r,
            &UpdateFlags {
                memory: Some(200),
                pids_limit: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(200));
        assert_eq!(r.cpu().as_ref().and_then(|c| c.shares()), Some(5));
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(10));

        let old: LinuxResources = serde_json::from_str(
            r#"{"blockIO": {"weight": 300}, "memory": {"limit": 1, "reservation": 7}}"#,
        )
        .expect("json");
        let merged = merge(old, &r);
        assert_eq!(merged.memory().as_ref().and_then(|m| m.limit()), Some(200));
        assert_eq!(
            merged.memory().as_ref().and_then(|m| m.reservation()),
            Some(7)
        );
        assert_eq!(
            merged.block_io().as_ref().and_then(|b| b.weight()),
            Some(300)
        );
    }
}
