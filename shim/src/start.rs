//! The `start` action: find or launch the serving shim for this container's group and print
//! its address.
//!
//! Address (`reference/containerd-shim-and-store.md` §1.5): `unix://<socket dir>/<hex sha256 of
//! join(containerd address, namespace, group)>`, socket dir `/run/containerd/s` (or
//! BootstrapParams' `socket_dir`, containerd 2.3+). The group is the annotation
//! `io.containerd.runc.v2.group`, else `io.kubernetes.cri.sandbox-id`, else the container id,
//! so a Kubernetes pod shares one shim. If a shim already answers on that socket, its address
//! is printed and nothing is started.
//!
//! Daemonisation: `start` re-execs this binary (`-socket <address>`, no action = serve) as a new
//! process with stdin `/dev/null`, stderr on the bundle's `log` fifo (containerd holds its read
//! end) and stdout a pipe. The child calls `setsid(2)` (so it leaves the process group
//! containerd made with `Setpgid` and survives a restart of containerd), binds the socket,
//! starts serving, then writes `ok` and closes its stdout: the parent waits for that EOF before
//! printing the address, so containerd never connects to a socket that is not there yet (the
//! readiness handshake of rust-extensions' `spawn`). The parent then writes `<bundle>/address`
//! (containerd 1.6/1.7 read it on restart) and prints the bare address, the form every
//! containerd from 1.6 to 2.4 accepts.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use containerd_shim_protos::bootstrap_api::BootstrapParams;
use containerd_shim_protos::protobuf::Message as _;
use sha2::{Digest as _, Sha256};

use crate::args::Args;

/// Where containerd (before 2.3) expects shim sockets.
pub const DEFAULT_SOCKET_DIR: &str = "/run/containerd/s";
/// Annotations that group containers into one shim, in precedence order (runc shim's
/// `groupLabels`).
pub const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];
/// glibc's tunable for the number of malloc arenas, set for the serving shim.
pub const MALLOC_ARENA_ENV: &str = "MALLOC_ARENA_MAX";
/// What the serving shim writes on stdout once it serves.
pub const READY: &str = "ok";

/// The socket address for `group`.
pub fn socket_address(containerd_address: &str, namespace: &str, group: &str, dir: &str) -> String {
    // Go's filepath.Join: one separator between the parts.
    let joined = format!(
        "{}/{}/{}",
        containerd_address.trim_end_matches('/'),
        namespace,
        group
    );
    let digest = Sha256::digest(joined.as_bytes());
    format!("unix://{}/{}", dir.trim_end_matches('/'), hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The group of the container whose `config.json` is in `bundle`.
pub fn group_id(bundle: &Path, id: &str) -> String {
    let spec: serde_json::Value = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|key| {
            spec.get("annotations")
                .and_then(|a| a.get(key))
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
        })
        .unwrap_or(id)
        .to_string()
}

/// The socket dir from containerd 2.3's BootstrapParams on stdin, when it is one for us (its
/// instance id and namespace match the flags; a legacy options `Any` can decode too).
fn socket_dir(stdin: &[u8], args: &Args) -> String {
    BootstrapParams::parse_from_bytes(stdin)
        .ok()
        .filter(|p| p.instance_id == args.id && p.namespace == args.namespace)
        .and_then(|p| p.socket_dir)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_string())
}

/// Runs `start`; returns the address to print.
pub fn start(args: &Args) -> anyhow::Result<String> {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let bundle = if args.bundle.is_empty() {
        std::env::current_dir().context("getting the bundle (working directory)")?
    } else {
        PathBuf::from(&args.bundle)
    };
    let dir = socket_dir(&stdin, args);
    let group = group_id(&bundle, &args.id);
    let address = socket_address(&args.address, &args.namespace, &group, &dir);
    let path = address.trim_start_matches("unix://");
    if UnixStream::connect(path).is_err() {
        // Nobody answers: a leftover socket file of a dead shim, or nothing.
        let _ = std::fs::remove_file(path);
        launch(args, &bundle, &address, &dir)?;
    }
    let address_file = bundle.join("address");
    std::fs::write(&address_file, &address)
        .with_context(|| format!("writing {}", address_file.display()))?;
    Ok(address)
}

fn launch(args: &Args, bundle: &Path, address: &str, dir: &str) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {dir}"))?;
    let exe = std::env::current_exe().context("finding the shim's own executable")?;
    let stderr = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(bundle.join("log"))
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let mut command = Command::new(&exe);
    command
        .args(["-namespace", &args.namespace, "-id", &args.id])
        .args(["-address", &args.address])
        .args(["-publish-binary", &args.publish_binary])
        .args(["-socket", address]);
    if args.debug {
        command.arg("-debug");
    }
    // glibc gives every thread that allocates its own malloc arena; the shim's threads mostly
    // block, and one arena keeps each shim's private memory small (the Go shim caps its
    // runtime the same way with GOMAXPROCS). The runtime CLI does not inherit it
    // (`runtime::Runtime::command`).
    command.env(MALLOC_ARENA_ENV, "1");
    let mut child = command
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let mut ready = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut ready);
    }
    if ready.trim() != READY {
        let status = child.wait().context("waiting for the failed shim")?;
        bail!("the shim did not start serving on {address} ({status})");
    }
    // The serving shim runs on; `start` exits without waiting (it is reparented).
    Ok(())
}

/// Prints the address the way containerd reads it: bare, flushed.
pub fn print_address(address: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(address.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_containerds_hash() {
        // echo -n /run/containerd/containerd.sock/default/c1 | sha256sum
        let a = socket_address(
            "/run/containerd/containerd.sock",
            "default",
            "c1",
            "/run/containerd/s",
        );
        let expected = hex(&Sha256::digest(
            b"/run/containerd/containerd.sock/default/c1",
        ));
        assert_eq!(a, format!("unix:///run/containerd/s/{expected}"));
        assert!(a.len() - "unix://".len() < 108, "fits sun_path");
    }

    #[test]
    fn groups_come_from_annotations() {
        let dir = std::env::temp_dir().join(format!("skiff-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(group_id(&dir, "c1"), "c1", "no config.json: the id");
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .expect("write");
        assert_eq!(group_id(&dir, "c1"), "pod1");
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1","io.containerd.runc.v2.group":"g"}}"#,
        )
        .expect("write");
        assert_eq!(group_id(&dir, "c1"), "g");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn bootstrap_params_give_the_socket_dir_only_when_they_match() {
        let args = Args::parse(["-namespace", "ns", "-id", "c1", "start"]).expect("args");
        let mut p = BootstrapParams::new();
        p.instance_id = "c1".into();
        p.namespace = "ns".into();
        p.socket_dir = Some("/run/user/1000/containerd/s".into());
        let bytes = p.write_to_bytes().expect("encode");
        assert_eq!(socket_dir(&bytes, &args), "/run/user/1000/containerd/s");
        p.instance_id = "other".into();
        let bytes = p.write_to_bytes().expect("encode");
        assert_eq!(socket_dir(&bytes, &args), DEFAULT_SOCKET_DIR);
        assert_eq!(socket_dir(b"", &args), DEFAULT_SOCKET_DIR);
        assert_eq!(socket_dir(b"unix:///garbage", &args), DEFAULT_SOCKET_DIR);
    }
}
