//! The runc command-line contract (`reference/oci-runtimes.md` §5): the only way the shim
//! touches a container.
//!
//! Every call is `<binary> --root <root>/<namespace> --log <bundle>/log.json --log-format json
//! <subcommand> …` with the bundle as working directory and `NOTIFY_SOCKET` removed, as go-runc
//! does. The binary is `skiff` from `PATH` unless the runtime options name another one
//! (`BinaryName`), so runc and crun work too. On failure the error is the runtime's last
//! `"level":"error"` message written to the log during this call (runc's contract, read the way
//! `[CD]/cmd/containerd-shim-runc-v2/process/utils.go` does), else its stderr.
//!
//! `options.json` in the bundle records the binary and root chosen at Create (the Go runc shim
//! writes the same file, same field names), so the `delete` action, which gets no options,
//! cleans up with the same runtime. Version 1 of the format: `{"binary_name": …, "root": …}`;
//! unknown fields are ignored, missing ones take the defaults.

use std::ffi::OsString;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reaper::Reaper;

/// The runtime binary when the options name none.
pub const DEFAULT_BINARY: &str = "skiff";
/// The parent of the runtime's `--root` when the options name none: `<this>/<runtime>/<ns>`,
/// like the runc shim's `/run/containerd/runc/<ns>`.
pub const DEFAULT_ROOT_PARENT: &str = "/run/containerd";
/// How long one runtime CLI call may take before the shim kills it.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime choice stored in `<bundle>/options.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeOptions {
    /// `BinaryName`: the runtime binary (name on `PATH` or absolute path).
    #[serde(default)]
    pub binary_name: String,
    /// `Root`: the parent of the per-namespace `--root`.
    #[serde(default)]
    pub root: String,
}

impl RuntimeOptions {
    /// The binary to run.
    pub fn binary(&self) -> &str {
        if self.binary_name.is_empty() {
            DEFAULT_BINARY
        } else {
            &self.binary_name
        }
    }

    /// `--root` for `namespace`.
    pub fn root_for(&self, namespace: &str) -> PathBuf {
        let parent = if self.root.is_empty() {
            let name = Path::new(self.binary())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| DEFAULT_BINARY.to_string());
            Path::new(DEFAULT_ROOT_PARENT).join(name)
        } else {
            PathBuf::from(&self.root)
        };
        parent.join(namespace)
    }

    /// Reads `<bundle>/options.json`; a missing file means the defaults.
    pub fn load(bundle: &Path) -> Self {
        std::fs::read(bundle.join("options.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes `<bundle>/options.json`.
    pub fn store(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join("options.json");
        let json = serde_json::to_vec(self).unwrap_or_default();
        std::fs::write(&path, json).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }
}

/// How a CLI's exit is collected: by the serving shim's reaper, or directly (the short-lived
/// `start`/`delete`/`-info` actions, which are not subreapers and reap only their own child).
#[derive(Debug, Clone)]
pub enum Waiter {
    /// Through the reaper thread.
    Reaper(Arc<Reaper>),
    /// With `Child::wait`.
    Direct,
}

/// One container's runtime: binary, root, bundle and log.
#[derive(Debug, Clone)]
pub struct Runtime {
    binary: String,
    root: PathBuf,
    bundle: PathBuf,
    waiter: Waiter,
}

/// What a successful CLI call printed.
#[derive(Debug)]
struct Outcome {
    stdout: Vec<u8>,
}

/// The stdio a create/exec CLI hands to the container process.
#[derive(Debug)]
pub struct ChildStdio {
    /// Becomes the process's stdin.
    pub stdin: Stdio,
    /// Becomes the process's stdout.
    pub stdout: Stdio,
    /// Becomes the process's stderr.
    pub stderr: Stdio,
}

impl ChildStdio {
    /// `/dev/null` for all three (terminal processes, `--null-io`).
    pub fn null() -> Self {
        Self {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

impl Runtime {
    /// The runtime for a container in `bundle`.
    pub fn new(options: &RuntimeOptions, namespace: &str, bundle: &Path, waiter: Waiter) -> Self {
        Self {
            binary: options.binary().to_string(),
            root: options.root_for(namespace),
            bundle: bundle.to_path_buf(),
            waiter,
        }
    }

    /// The binary's name, for messages (`skiff`, `runc`).
    pub fn name(&self) -> String {
        Path::new(&self.binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.binary.clone())
    }

    /// `<bundle>/log.json`.
    pub fn log_path(&self) -> PathBuf {
        self.bundle.join("log.json")
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.log_path())
            .arg("--log-format")
            .arg("json")
            .args(args)
            .current_dir(&self.bundle)
            .env_remove("NOTIFY_SOCKET")
            .env_remove(crate::start::MALLOC_ARENA_ENV);
        command
    }

    /// Runs one CLI call to completion.
    fn call(
        &self,
        args: &[OsString],
        stdio: Option<ChildStdio>,
        input: Option<&[u8]>,
    ) -> Result<Outcome> {
        let op = format!(
            "{} {}",
            self.name(),
            args.first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let log_offset = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        let mut command = self.command(args);
        let capture = stdio.is_none();
        match stdio {
            Some(s) => {
                command.stdin(s.stdin).stdout(s.stdout).stderr(s.stderr);
            }
            None => {
                command
                    .stdin(if input.is_some() {
                        Stdio::piped()
                    } else {
                        Stdio::null()
                    })
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
            }
        }
        let spawned = match &self.waiter {
            Waiter::Reaper(reaper) => reaper.spawn(&mut command).map(|(c, rx)| (c, Some(rx))),
            Waiter::Direct => command.spawn().map(|c| (c, None)),
        };
        // The command owns the parent's copies of the container's stdio: close them now so the
        // copy threads see EOF when the container's ends close.
        drop(command);
        let (mut child, rx) = spawned.map_err(|e| Error::Runtime {
            op: op.clone(),
            message: format!("starting {}: {e}", self.binary),
        })?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(data);
        }
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if capture {
            // Runtime CLIs write little to stderr; stdout first cannot deadlock in practice,
            // and the CLIs called with captured output do not leave children holding it.
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_end(&mut stdout);
            }
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_end(&mut stderr);
            }
        }
        let status = match rx {
            Some(rx) => match rx.recv_timeout(CLI_TIMEOUT) {
                Ok(exit) => exit.status,
                Err(_) => {
                    // Still registered and unreaped, so the pid is still this child's.
                    let _ = child.kill();
                    let _ = rx.recv_timeout(Duration::from_secs(5));
                    return Err(Error::Runtime {
                        op,
                        message: format!("did not finish within {CLI_TIMEOUT:?}; killed it"),
                    });
                }
            },
            None => child
                .wait()
                .map(|s| {
                    use std::os::unix::process::ExitStatusExt as _;
                    s.code()
                        .map(|c| u32::try_from(c).unwrap_or(255))
                        .or_else(|| s.signal().map(|sig| 128 + sig.unsigned_abs()))
                        .unwrap_or(255)
                })
                .map_err(|e| Error::io(format!("waiting for {op}"), e))?,
        };
        if status != 0 {
            let message = last_error(&self.log_path(), log_offset)
                .or_else(|| {
                    let text = String::from_utf8_lossy(&stderr).trim().to_string();
                    (!text.is_empty()).then_some(text)
                })
                .unwrap_or_else(|| format!("exit status {status}"));
            return Err(Error::Runtime { op, message });
        }
        Ok(Outcome { stdout })
    }

    fn args<const N: usize>(items: [&dyn AsRef<std::ffi::OsStr>; N]) -> Vec<OsString> {
        items.iter().map(|a| a.as_ref().to_os_string()).collect()
    }

    /// `create --bundle <bundle> --pid-file <pid_file> [--console-socket <s>] <id>`.
    pub fn create(
        &self,
        id: &str,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<()> {
        let mut args = Self::args([
            &"create",
            &"--bundle",
            &self.bundle,
            &"--pid-file",
            &pid_file,
        ]);
        if let Some(socket) = console_socket {
            args.extend(Self::args([&"--console-socket", &socket]));
        }
        args.push(id.into());
        self.call(&args, Some(stdio), None).map(drop)
    }

    /// `start <id>`.
    pub fn start(&self, id: &str) -> Result<()> {
        self.call(&Self::args([&"start", &id]), None, None)
            .map(drop)
    }

    /// `exec --process <file> --detach --pid-file <f> [--console-socket <s>] <id>`.
    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<()> {
        let mut args = Self::args([
            &"exec",
            &"--process",
            &process,
            &"--detach",
            &"--pid-file",
            &pid_file,
        ]);
        if let Some(socket) = console_socket {
            args.extend(Self::args([&"--console-socket", &socket]));
        }
        args.push(id.into());
        self.call(&args, Some(stdio), None).map(drop)
    }

    /// `kill [--all] <id> <signal>` (numeric signal, as go-runc sends it).
    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let mut args = Self::args([&"kill"]);
        if all {
            args.push("--all".into());
        }
        args.extend(Self::args([&id, &signal.to_string()]));
        self.call(&args, None, None).map(drop)
    }

    /// `delete [--force] <id>`; "does not exist" counts as done, as in the Go shim.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = Self::args([&"delete"]);
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        match self.call(&args, None, None) {
            Ok(_) => Ok(()),
            Err(Error::Runtime { message, .. }) if message.contains("does not exist") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `ps --format json <id>`: the container's host pids.
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.call(&Self::args([&"ps", &"--format", &"json", &id]), None, None)?;
        serde_json::from_slice::<Option<Vec<u32>>>(&out.stdout)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Runtime {
                op: format!("{} ps", self.name()),
                message: format!(
                    "parsing its output {:?}: {e}",
                    String::from_utf8_lossy(&out.stdout)
                ),
            })
    }

    /// `pause <id>`.
    pub fn pause(&self, id: &str) -> Result<()> {
        self.call(&Self::args([&"pause", &id]), None, None)
            .map(drop)
    }

    /// `resume <id>`.
    pub fn resume(&self, id: &str) -> Result<()> {
        self.call(&Self::args([&"resume", &id]), None, None)
            .map(drop)
    }

    /// `update --resources=- <id>` with the `LinuxResources` JSON on stdin.
    pub fn update(&self, id: &str, resources: &[u8]) -> Result<()> {
        self.call(
            &Self::args([&"update", &"--resources=-", &id]),
            None,
            Some(resources),
        )
        .map(drop)
    }

    /// `<binary> features` (no global flags), for `-info`.
    pub fn features(binary: &str) -> Result<Vec<u8>> {
        let op = format!("{binary} features");
        let out = Command::new(binary)
            .arg("features")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Runtime {
                op: op.clone(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Runtime {
                op,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }
}

/// The last `"level":"error"` `msg` of the runtime's JSON log written after `offset`.
pub fn last_error(log: &Path, offset: u64) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    last_error_in(&text)
}

fn last_error_in(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .filter_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_the_last_error_line() {
        let log = concat!(
            r#"{"level":"error","msg":"first","time":"2026-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"level":"warning","msg":"warn","time":"2026-01-01T00:00:00Z"}"#,
            "\n",
            "not json\n",
            r#"{"level":"error","msg":"container does not exist","time":"2026-01-01T00:00:00Z"}"#,
            "\n",
            r#"{"level":"info","msg":"later","time":"2026-01-01T00:00:00Z"}"#,
            "\n",
        );
        assert_eq!(
            last_error_in(log).as_deref(),
            Some("container does not exist")
        );
        assert_eq!(last_error_in("{\"level\":\"info\",\"msg\":\"x\"}"), None);
    }

    #[test]
    fn options_default_to_skiff_under_run_containerd() {
        let o = RuntimeOptions::default();
        assert_eq!(o.binary(), "skiff");
        assert_eq!(o.root_for("ns"), PathBuf::from("/run/containerd/skiff/ns"));
        let runc = RuntimeOptions {
            binary_name: "/usr/sbin/runc".into(),
            root: String::new(),
        };
        assert_eq!(
            runc.root_for("ns"),
            PathBuf::from("/run/containerd/runc/ns")
        );
        let rooted = RuntimeOptions {
            binary_name: "crun".into(),
            root: "/tmp/r".into(),
        };
        assert_eq!(rooted.root_for("default"), PathBuf::from("/tmp/r/default"));
    }

    #[test]
    fn options_json_round_trips_and_tolerates_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("skiff-shim-opt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let o = RuntimeOptions {
            binary_name: "runc".into(),
            root: "/r".into(),
        };
        o.store(&dir).expect("store");
        assert_eq!(RuntimeOptions::load(&dir), o);
        std::fs::write(
            dir.join("options.json"),
            r#"{"binary_name":"crun","systemd_cgroup":true}"#,
        )
        .expect("write");
        assert_eq!(RuntimeOptions::load(&dir).binary(), "crun");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
