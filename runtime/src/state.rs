//! The runtime's on-disk state: one directory per container under `--root` (default `/run/skiff`).
//!
//! ```text
//! <root>/<id>/            mode 0711, as runc's (the init itself reaches exec.fifo through an
//!                         O_PATH descriptor it inherited, not through the directory)
//!   state.json            [`State`], written atomically (temp file + rename)
//!   exec.fifo             exists from create until start; the init blocks opening it for writing
//! ```
//!
//! `state.json` carries a format `version` (currently 1). A runtime that finds a newer version
//! refuses to act on the container rather than guess; older versions are read as they are (there
//! are none yet). The status is never stored: it is derived from the init process (alive, and the
//! same process by its start time) and the fifo, so a crash can never leave a stale status.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// The version of the `state.json` layout this runtime writes.
pub const STATE_VERSION: u32 = 1;
/// Name of the fifo the init blocks on between `create` and `start`.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

/// Failures reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container with given ID already exists")]
    AlreadyExists,
    #[error("container does not exist")]
    NotExist,
    #[error(
        "invalid container id format {0:?}: it must be non-empty and use only letters, digits, '_', '+', '-' and '.'"
    )]
    InvalidId(String),
    #[error("state of container {id} was written by a newer runtime (format {version})")]
    NewerFormat { id: String, version: u32 },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError + use<> {
    let path = path.to_path_buf();
    move |source| StateError::Io { op, path, source }
}

/// A container's status, as the OCI runtime spec names them (`runtime.md`, "State").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// The init's start time (field 22 of `/proc/<pid>/stat`), to tell it from a reused pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The configuration the container was created from (hooks run at start and delete;
    /// `update` writes the new resources into it).
    pub config: Spec,
    /// Where the container's cgroup is (absent in states written before cgroup support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::cgroups::Location>,
}

/// The state JSON that `skiff state` and `skiff list --format json` print (runc's shape).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    pub annotations: &'a HashMap<String, String>,
}

impl State {
    /// The runtime-spec state of this container as `state` prints it. Stopped containers report
    /// pid 0, as runc does.
    pub fn report(&self, status: Status) -> Report<'_> {
        Report {
            oci_version: self.config.version(),
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }

    /// Is the container's cgroup frozen (`pause`)?
    pub fn frozen(&self) -> bool {
        self.cgroup
            .as_ref()
            .and_then(|l| crate::cgroups::Manager::open(l).ok())
            .is_some_and(|m| m.is_frozen().unwrap_or(false))
    }

    /// Does the pid still name the process this container started?
    pub fn init_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.pid_start && state != 'Z' && state != 'X')
    }
}

/// Check a container id the way runc does: letters, digits and `_+-.`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// Process state letter and start time (clock ticks since boot) from `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3, so field 22 is the 20th after it.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The state directory of one container.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Create the directory for a new container; fails with the runc error if it exists.
    pub fn create(root: &Path, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(io_err("create runtime root", root))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::AlreadyExists);
            }
            Err(e) => return Err(io_err("create state directory", &path)(e)),
        }
        // The umask may have narrowed the mode; the init needs to traverse the directory.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o711))
            .map_err(io_err("set mode of", &path))?;
        Ok(StateDir { path })
    }

    /// Open the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() {
            return Err(StateError::NotExist);
        }
        Ok(StateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<State, StateError> {
        let path = self.path.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StateError::NotExist),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let state: State = serde_json::from_slice(&bytes)
            .map_err(|source| StateError::Corrupt { path, source })?;
        if state.version > STATE_VERSION {
            return Err(StateError::NewerFormat {
                id: state.id,
                version: state.version,
            });
        }
        Ok(state)
    }

    /// Write `state.json` so that readers see either the old or the new file, never half of one.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            path: self.path.join(STATE_FILE),
            source,
        })?;
        write_atomic(&self.path.join(STATE_FILE), &bytes)
    }

    /// Derive the status from the init process, the fifo and the cgroup's freezer.
    pub fn status(&self, state: &State) -> Status {
        if !state.init_alive() {
            Status::Stopped
        } else if state.frozen() {
            Status::Paused
        } else if self.fifo_path().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// Remove the whole directory.
    pub fn remove(self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove state directory", &self.path)(e)),
        }
    }
}

/// Write `bytes` to `path` atomically: a new file `.<name>` created with `O_EXCL`, then renamed
/// over `path`, so a reader (containerd reads the pid file) never sees a partial file. No
/// `O_SYNC`: the rename is what readers depend on, and a synchronous write costs a journal
/// commit (milliseconds on ext4) for durability that a pid or a state under /run never needs.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}"));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))
}

/// Remove `<root>/<id>` if it exists without a state file (what a killed `create` leaves).
pub fn remove_leftover(root: &Path, id: &str) -> Result<(), StateError> {
    validate_id(id)?;
    let path = root.join(id);
    if path.is_dir() && !path.join(STATE_FILE).exists() {
        fs::remove_dir_all(&path).map_err(io_err("remove leftover state directory", &path))?;
    }
    Ok(())
}

/// Names of the containers under `root` (directories holding a state file), sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read runtime root", root)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Host pid of a process as the `nix` type.
pub fn pid(state: &State) -> Pid {
    Pid::from_raw(state.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-123", "x_y.z+1", "..a"] {
            validate_id(ok).expect(ok);
        }
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn own_stat_parses() {
        let (state, start) = proc_stat(std::process::id() as i32).expect("own stat");
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(start > 0);
        assert_eq!(proc_stat(0), None);
    }

    #[test]
    fn create_twice_is_already_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::create(dir.path(), "c1").expect("first");
        assert!(matches!(
            StateDir::create(dir.path(), "c1"),
            Err(StateError::AlreadyExists)
        ));
        assert!(matches!(
            StateDir::open(dir.path(), "c1"),
            Err(StateError::NotExist)
        ));
        sd.remove().expect("remove");
        assert!(matches!(
            StateDir::open(dir.path(), "nope"),
            Err(StateError::NotExist)
        ));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pid");
        write_atomic(&p, b"1").expect("first");
        write_atomic(&p, b"22").expect("second");
        assert_eq!(fs::read(&p).expect("read"), b"22");
        assert!(!dir.path().join(".pid").exists());
    }
}
