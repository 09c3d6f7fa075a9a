//! Where a container's cgroup is: the host's hierarchies and runc's `cgroupsPath` rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CgroupError;

/// The v1 hierarchies a container joins, in runc's `subsystems` order (which is also the order
/// limits are written in: cpuset first, because a v1 cgroup cannot take tasks before its
/// `cpuset.cpus`/`cpuset.mems` are set). `name=systemd` and `misc` are joined without limits,
/// as runc's `NameGroup`s; arbitrary other `name=` hierarchies are left alone.
pub const V1_CONTROLLERS: [&str; 15] = [
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "name=systemd",
    "misc",
];

const MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_CGROUP: &str = "/proc/self/cgroup";
/// Where a pure-v2 host mounts cgroup2, and where runc's hybrid check looks for it.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";

/// The cgroup layout a container lives in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// cgroup v1, possibly hybrid (then [`Location::unified`] is set and joined too).
    V1,
    /// cgroup v2 only.
    V2,
}

/// The container's directory in a cgroup2 hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Unified {
    /// The cgroup2 mount point (`/sys/fs/cgroup` on v2 hosts, `/sys/fs/cgroup/unified` on
    /// hybrid ones, any directory in tests).
    pub mount: PathBuf,
    /// The cgroup below `mount`, relative (`default/ctr1`).
    pub path: PathBuf,
}

impl Unified {
    /// The container's cgroup directory.
    pub fn dir(&self) -> PathBuf {
        self.mount.join(&self.path)
    }
}

/// Where a container's cgroup is, resolved once by [`resolve`] and saved in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Location {
    pub mode: Mode,
    /// v1: the container's directory in each mounted hierarchy, by controller name (`cpu`,
    /// `cpuacct`, `name=systemd`, …). Co-mounted controllers map to the same directory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, PathBuf>,
    /// v2: the container's cgroup; v1 on a hybrid host: its directory in the cgroup2 mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<Unified>,
}

impl Location {
    /// A v2 location: cgroup `path` (relative) under the cgroup2 hierarchy mounted at `mount`.
    /// Lets tests (and callers that know the mount) skip [`resolve`].
    pub fn v2(mount: impl Into<PathBuf>, path: impl AsRef<Path>) -> Location {
        Location {
            mode: Mode::V2,
            v1: BTreeMap::new(),
            unified: Some(Unified {
                mount: mount.into(),
                path: strip_root(path.as_ref()),
            }),
        }
    }

    /// A v1 location from explicit directories (tests, or a caller that knows them).
    pub fn v1(dirs: BTreeMap<String, PathBuf>, unified: Option<Unified>) -> Location {
        Location {
            mode: Mode::V1,
            v1: dirs,
            unified,
        }
    }

    /// The v1 directory of `controller`, if that hierarchy is part of the location.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// Every distinct directory of the location in [`V1_CONTROLLERS`] order (co-mounted
    /// controllers share one), then the cgroup2 one.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        let ordered = V1_CONTROLLERS.iter().filter_map(|c| self.v1.get(*c)).chain(
            self.v1
                .iter()
                .filter(|(k, _)| !V1_CONTROLLERS.contains(&k.as_str()))
                .map(|(_, v)| v),
        );
        for d in ordered {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        if let Some(u) = &self.unified {
            out.push(u.dir());
        }
        out
    }

    /// The directory whose `cgroup.procs` lists the container's processes: v2's, or v1's
    /// `devices` one (runc's `GetAllPids` choice; devices is always present), or any.
    pub fn procs_dir(&self) -> Option<PathBuf> {
        match self.mode {
            Mode::V2 => self.unified.as_ref().map(Unified::dir),
            Mode::V1 => self
                .v1_dir("devices")
                .or_else(|| self.v1.values().next().map(PathBuf::as_path))
                .map(Path::to_path_buf),
        }
    }
}

/// One cgroup mount from the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The cgroup the mount shows at its mount point (4th mountinfo field; `/` normally).
    root: String,
    point: PathBuf,
    /// v1: the controllers (and `name=` option) of the hierarchy; empty for cgroup2.
    controllers: Vec<String>,
}

/// The host's cgroup mounts, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    v1: Vec<Mount>,
    v2: Vec<Mount>,
}

impl Hierarchies {
    /// Parses mountinfo text (proc(5)): `id parent maj:min root point opts [tags…] - type src
    /// superopts`. Only `cgroup` and `cgroup2` lines are kept; for v1 the controllers come from
    /// the super options. The first mount of a hierarchy wins (runc's choice too).
    pub fn parse(mountinfo: &str) -> Hierarchies {
        let mut h = Hierarchies::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 5 || r.len() < 3 {
                continue;
            }
            let root = unescape(l[3]);
            let point = PathBuf::from(unescape(l[4]));
            match r[0] {
                "cgroup2" => h.v2.push(Mount {
                    root,
                    point,
                    controllers: Vec::new(),
                }),
                "cgroup" => {
                    let controllers: Vec<String> = r[2]
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    let seen =
                        h.v1.iter()
                            .any(|m| m.controllers.iter().any(|c| controllers.contains(c)));
                    if !seen {
                        h.v1.push(Mount {
                            root,
                            point,
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// Reads and parses `/proc/self/mountinfo`.
    pub fn read() -> Result<Hierarchies, CgroupError> {
        let text = std::fs::read_to_string(MOUNTINFO)
            .map_err(super::fsutil::io_err("read", PathBuf::from(MOUNTINFO)))?;
        Ok(Hierarchies::parse(&text))
    }

    /// The layout runc would pick: v2 when cgroup2 is mounted at `/sys/fs/cgroup` (runc's
    /// statfs check), v1 when any v1 hierarchy is mounted, else v2 on whatever cgroup2 mount
    /// exists.
    fn mode(&self) -> Option<Mode> {
        if self.v2.iter().any(|m| m.point == Path::new(CGROUP_ROOT)) {
            Some(Mode::V2)
        } else if !self.v1.is_empty() {
            Some(Mode::V1)
        } else if !self.v2.is_empty() {
            Some(Mode::V2)
        } else {
            None
        }
    }

    /// The cgroup2 mount to use: `/sys/fs/cgroup`, then the hybrid `unified` one, then any.
    fn unified_mount(&self) -> Option<&Mount> {
        self.v2
            .iter()
            .find(|m| m.point == Path::new(CGROUP_ROOT))
            .or_else(|| {
                self.v2
                    .iter()
                    .find(|m| m.point == Path::new(HYBRID_UNIFIED))
            })
            .or_else(|| self.v2.first())
    }
}

/// Decodes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b.get(i + 1..i + 4);
        if b[i] == b'\\' && digits.is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))) {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The runtime's own cgroups, from `/proc/self/cgroup` (`id:controllers:path` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnCgroups {
    /// v1 controller (or `name=…`) → cgroup path.
    v1: BTreeMap<String, String>,
    /// The `0::` line.
    v2: Option<String>,
}

impl OwnCgroups {
    pub fn parse(text: &str) -> OwnCgroups {
        let mut own = OwnCgroups::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own.v2 = Some(path.to_string());
            } else {
                for c in ctrls.split(',') {
                    own.v1.insert(c.to_string(), path.to_string());
                }
            }
        }
        own
    }

    pub fn read() -> Result<OwnCgroups, CgroupError> {
        let text = std::fs::read_to_string(PROC_CGROUP)
            .map_err(super::fsutil::io_err("read", PathBuf::from(PROC_CGROUP)))?;
        Ok(OwnCgroups::parse(&text))
    }
}

/// runc's `utils.CleanPath`: lexically clean `path`; a relative path cannot climb out with
/// `..` (it is cleaned as if rooted, then made relative again). `""` stays `""`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn strip_root(p: &Path) -> PathBuf {
    p.strip_prefix("/").unwrap_or(p).to_path_buf()
}

/// Joins cgroup paths `a/b` (both cgroup-absolute or relative strings) without `Path::join`'s
/// "absolute replaces" rule.
fn join_cg(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    let rel = rel.trim_start_matches('/');
    match (base.is_empty(), rel.is_empty()) {
        (_, true) => {
            if base.is_empty() {
                "/".into()
            } else {
                base.into()
            }
        }
        (true, false) => format!("/{rel}"),
        (false, false) => format!("{base}/{rel}"),
    }
}

/// Whether systemd is the init (runc's `IsRunningSystemd`: `/run/systemd/system` exists).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Resolves `linux.cgroupsPath` on this host (reads mountinfo and `/proc/self/cgroup` once).
///
/// runc's rules (`libcontainer/cgroups/fs/paths.go`, `fs2/defaultpath.go`):
/// - absolute: that path below the root of every hierarchy;
/// - relative: below the runtime's *own* cgroup (`/proc/self/cgroup`) in each v1 hierarchy
///   (and in the hybrid cgroup2 one); on v2 below the *parent* of the own cgroup (the own one
///   usually has processes, so it cannot have controllers enabled for children);
/// - empty or absent: the relative path `<id>`.
///
/// Paths are cleaned first (no escaping with `..`). A path naming the hierarchy root or the
/// runtime's own cgroup is refused: `destroy` would otherwise try to remove it.
/// `systemd` (`--systemd-cgroup`) fails: with [`CgroupError::SystemdUnavailable`] where
/// systemd is not the init (these machines), else [`CgroupError::SystemdNotImplemented`].
pub fn resolve(
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
) -> Result<Location, CgroupError> {
    if systemd {
        // Check the flag before touching the mount table: it fails either way.
        return resolve_in(
            &Hierarchies::default(),
            &OwnCgroups::default(),
            cgroups_path,
            id,
            Some(systemd_running()),
        );
    }
    resolve_in(
        &Hierarchies::read()?,
        &OwnCgroups::read()?,
        cgroups_path,
        id,
        None,
    )
}

/// A container's cgroup must not be the runtime's own cgroup or one of its ancestors: `delete`
/// and `kill --all` would kill the caller (a shim, a shell) with it, and `destroy` would try to
/// remove it.
fn refuse_own(raw: &str, cg: &str, own: Option<&str>) -> Result<(), CgroupError> {
    let Some(own) = own else {
        return Ok(());
    };
    let cg = cg.trim_end_matches('/');
    let inside = own == cg || own.starts_with(&format!("{cg}/")) || cg.is_empty();
    if inside {
        return Err(CgroupError::InvalidPath {
            path: raw.to_string(),
            reason: "it names the runtime's own cgroup or one of its parents, which a container cannot own",
        });
    }
    Ok(())
}

/// [`resolve`] over given mount table and own-cgroup contents (pure; for tests).
/// `systemd` is `None` for the cgroupfs driver, `Some(systemd_is_running)` for
/// `--systemd-cgroup`.
pub fn resolve_in(
    hier: &Hierarchies,
    own: &OwnCgroups,
    cgroups_path: Option<&str>,
    id: &str,
    systemd: Option<bool>,
) -> Result<Location, CgroupError> {
    let raw = cgroups_path.unwrap_or("");
    if let Some(running) = systemd {
        // runc: "slice:prefix:name" (an empty path means system.slice:runc:<id>).
        if !raw.is_empty() && raw.split(':').count() != 3 {
            return Err(CgroupError::InvalidPath {
                path: raw.to_string(),
                reason: "with --systemd-cgroup it must have the form \"slice:prefix:name\"",
            });
        }
        return Err(if running {
            CgroupError::SystemdNotImplemented
        } else {
            CgroupError::SystemdUnavailable
        });
    }
    let inner = if raw.is_empty() {
        clean_path(id)
    } else {
        clean_path(raw)
    };
    if inner == "/" || inner == "." {
        return Err(CgroupError::InvalidPath {
            path: raw.to_string(),
            reason: "it names the root of the hierarchy or the runtime's own cgroup, which a container cannot own",
        });
    }
    let absolute = inner.starts_with('/');
    let mode = hier.mode().ok_or_else(|| CgroupError::NotMounted {
        path: PathBuf::from(MOUNTINFO),
    })?;

    // The directory of cgroup `cg` (as /proc/self/cgroup spells it) in mount `m`.
    let dir_in = |m: &Mount, cg: &str| -> PathBuf {
        let below_root = if m.root == "/" {
            cg
        } else {
            cg.strip_prefix(m.root.as_str()).unwrap_or(cg)
        };
        m.point.join(below_root.trim_start_matches('/'))
    };

    match mode {
        Mode::V2 => {
            let m = hier
                .unified_mount()
                .ok_or_else(|| CgroupError::NotMounted {
                    path: PathBuf::from(MOUNTINFO),
                })?;
            let cg = if absolute {
                inner.clone()
            } else {
                let own = own.v2.as_deref().unwrap_or("/");
                let parent = Path::new(own)
                    .parent()
                    .and_then(Path::to_str)
                    .unwrap_or("/");
                join_cg(parent, &inner)
            };
            refuse_own(raw, &cg, own.v2.as_deref())?;
            let dir = dir_in(m, &cg);
            let path = dir
                .strip_prefix(&m.point)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            Ok(Location::v2(m.point.clone(), path))
        }
        Mode::V1 => {
            let mut v1 = BTreeMap::new();
            for m in &hier.v1 {
                for c in &m.controllers {
                    if !V1_CONTROLLERS.contains(&c.as_str()) {
                        continue;
                    }
                    let cg = if absolute {
                        // runc joins the path to the mount point, not to the mount's root.
                        inner.clone()
                    } else {
                        join_cg(own.v1.get(c).map(String::as_str).unwrap_or("/"), &inner)
                    };
                    refuse_own(raw, &cg, own.v1.get(c).map(String::as_str))?;
                    let dir = if absolute {
                        m.point.join(cg.trim_start_matches('/'))
                    } else {
                        dir_in(m, &cg)
                    };
                    v1.insert(c.clone(), dir);
                }
            }
            // Hybrid: join the cgroup2 hierarchy as well (runc's `NameGroup{""}`), which is
            // what makes `cgroup.kill` available for v1 containers.
            let unified = hier.unified_mount().map(|m| {
                let cg = if absolute {
                    inner.clone()
                } else {
                    join_cg(own.v2.as_deref().unwrap_or("/"), &inner)
                };
                let dir = if absolute {
                    m.point.join(cg.trim_start_matches('/'))
                } else {
                    dir_in(m, &cg)
                };
                Unified {
                    mount: m.point.clone(),
                    path: dir
                        .strip_prefix(&m.point)
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                }
            });
            Ok(Location::v1(v1, unified))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
42 31 0:39 / /sys/fs/cgroup/odd rw,relatime - cgroup cgroup rw,name=odd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:35 / /mnt/memory\\040again rw,relatime - cgroup cgroup rw,memory
";

    const HYBRID_SELF: &str = "\
9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
2:cpu,cpuacct:/user.slice
1:devices:/
0::/
";

    fn hybrid() -> (Hierarchies, OwnCgroups) {
        (
            Hierarchies::parse(HYBRID_MOUNTINFO),
            OwnCgroups::parse(HYBRID_SELF),
        )
    }

    #[test]
    fn parses_v1_controllers_and_skips_duplicates_and_foreign_names() {
        let (h, own) = hybrid();
        let names: Vec<_> = h.v1.iter().map(|m| m.controllers.join(",")).collect();
        assert_eq!(
            names,
            [
                "cpu,cpuacct",
                "cpuset",
                "memory",
                "devices",
                "freezer",
                "name=systemd",
                "name=odd"
            ]
        );
        assert_eq!(h.v2.len(), 1);
        assert_eq!(h.mode(), Some(Mode::V1));
        assert_eq!(own.v1["cpuacct"], "/user.slice");
        assert_eq!(own.v2.as_deref(), Some("/"));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trail\\04"), "/trail\\04");
    }

    #[test]
    fn clean_path_matches_runc() {
        assert_eq!(clean_path(""), "");
        assert_eq!(clean_path("/a/../../b/./c/"), "/b/c");
        assert_eq!(clean_path("../../x/y"), "x/y");
        assert_eq!(clean_path("a/.."), ".");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn absolute_path_is_below_each_mount_point() {
        let (h, own) = hybrid();
        let loc = resolve_in(&h, &own, Some("/default/c1"), "c1", None).unwrap();
        assert_eq!(loc.mode, Mode::V1);
        assert_eq!(
            loc.v1_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/default/c1")
        );
        assert_eq!(
            loc.v1_dir("cpuacct").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/default/c1")
        );
        assert_eq!(
            loc.v1_dir("name=systemd").unwrap(),
            Path::new("/sys/fs/cgroup/systemd/default/c1")
        );
        assert!(loc.v1_dir("name=odd").is_none());
        let u = loc.unified.as_ref().unwrap();
        assert_eq!(u.dir(), Path::new("/sys/fs/cgroup/unified/default/c1"));
        // cpu and cpuacct share a directory: listed once.
        assert_eq!(loc.dirs().len(), 6 + 1);
    }

    #[test]
    fn relative_and_default_paths_are_below_own_cgroup() {
        let (h, own) = hybrid();
        let loc = resolve_in(&h, &own, Some("../../x"), "c1", None).unwrap();
        assert_eq!(
            loc.v1_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc/x")
        );
        assert_eq!(
            loc.v1_dir("cpu").unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/user.slice/x")
        );
        let loc = resolve_in(&h, &own, None, "c1", None).unwrap();
        assert_eq!(
            loc.v1_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc/c1")
        );
        assert_eq!(loc.unified.unwrap().path, Path::new("c1"));
        let loc2 = resolve_in(&h, &own, Some(""), "c1", None).unwrap();
        assert_eq!(
            loc2.v1_dir("devices").unwrap(),
            Path::new("/sys/fs/cgroup/devices/c1")
        );
    }

    #[test]
    fn v2_relative_is_below_parent_of_own_cgroup() {
        let h =
            Hierarchies::parse("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        let own = OwnCgroups::parse("0::/user.slice/user-0.slice/session-1.scope\n");
        let loc = resolve_in(&h, &own, Some("ctr"), "c1", None).unwrap();
        assert_eq!(loc.mode, Mode::V2);
        let u = loc.unified.unwrap();
        assert_eq!(u.mount, Path::new("/sys/fs/cgroup"));
        assert_eq!(u.path, Path::new("user.slice/user-0.slice/ctr"));
        let loc = resolve_in(&h, &own, Some("/machine/ctr"), "c1", None).unwrap();
        assert_eq!(
            loc.unified.unwrap().dir(),
            Path::new("/sys/fs/cgroup/machine/ctr")
        );
    }

    #[test]
    fn mount_root_is_subtracted_for_relative_paths() {
        // Inside a cgroup namespace-less container: the mount shows /docker/abc as its root.
        let h = Hierarchies::parse(
            "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n",
        );
        let own = OwnCgroups::parse("4:memory:/docker/abc/sub\n1:devices:/\n");
        let loc = resolve_in(&h, &own, Some("x"), "c1", None).unwrap();
        assert_eq!(
            loc.v1_dir("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/sub/x")
        );
    }

    #[test]
    fn root_and_own_cgroup_are_refused() {
        let (h, own) = hybrid();
        for p in ["/", "/..", ".", "a/.."] {
            assert!(
                matches!(
                    resolve_in(&h, &own, Some(p), "c1", None),
                    Err(CgroupError::InvalidPath { .. })
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn the_runtimes_own_cgroup_and_its_parents_are_refused() {
        let h =
            Hierarchies::parse("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        let own = OwnCgroups::parse("0::/user.slice/user-0.slice/session-1.scope\n");
        for p in [
            "session-1.scope",
            "/user.slice/user-0.slice/session-1.scope",
            "/user.slice",
        ] {
            let err = resolve_in(&h, &own, Some(p), "c1", None).expect_err(p);
            assert!(err.to_string().contains("own cgroup"), "{p}: {err}");
        }
        // A sibling, or a name that only shares a prefix, is fine.
        for p in ["session-1.scopex", "/user.slice/user-0.slice/other"] {
            assert!(resolve_in(&h, &own, Some(p), "c1", None).is_ok(), "{p}");
        }
        let h = Hierarchies::parse(
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n",
        );
        let own = OwnCgroups::parse("4:memory:/process_api/abc\n1:devices:/\n");
        assert!(resolve_in(&h, &own, Some("/process_api"), "c1", None).is_err());
    }

    #[test]
    fn systemd_flag_errors_name_the_problem() {
        let (h, own) = hybrid();
        let e = resolve_in(&h, &own, Some("system.slice:skiff:c1"), "c1", Some(false)).unwrap_err();
        assert!(matches!(e, CgroupError::SystemdUnavailable));
        assert!(e.to_string().contains("systemd is not running"));
        let e = resolve_in(&h, &own, None, "c1", Some(true)).unwrap_err();
        assert!(matches!(e, CgroupError::SystemdNotImplemented));
        let e = resolve_in(&h, &own, Some("/abs/path"), "c1", Some(false)).unwrap_err();
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let e = resolve_in(
            &Hierarchies::default(),
            &OwnCgroups::default(),
            None,
            "c",
            None,
        )
        .unwrap_err();
        assert!(matches!(e, CgroupError::NotMounted { .. }));
    }

    #[test]
    fn location_round_trips_through_json() {
        let (h, own) = hybrid();
        let loc = resolve_in(&h, &own, Some("/a"), "c1", None).unwrap();
        let json = serde_json::to_string(&loc).unwrap();
        assert!(json.contains("\"mode\":\"v1\""), "{json}");
        let back: Location = serde_json::from_str(&json).unwrap();
        assert_eq!(back, loc);
    }

    #[test]
    fn resolve_on_this_host() {
        // Whatever the host layout, resolving must not fail and must yield absolute dirs.
        let loc = resolve(Some("/skiff-resolve-test"), "x", false).unwrap();
        for d in loc.dirs() {
            assert!(d.is_absolute());
            assert!(d.ends_with("skiff-resolve-test"), "{}", d.display());
        }
    }
}
