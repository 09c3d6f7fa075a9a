//! The shim driven directly, without containerd: `start` is run the way containerd runs it
//! (flags, BootstrapParams on stdin naming a private socket dir), then the task service is
//! called over ttrpc with the `containerd-shim-protos` client. For the bad input that ctr cannot
//! send (issue 6, "Bad input": a bundle without config.json).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use containerd_shim_protos::TaskClient;
use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, ShutdownRequest};
use containerd_shim_protos::bootstrap_api::BootstrapParams;
use containerd_shim_protos::protobuf::Message as _;
use containerd_shim_protos::ttrpc::{self, Code};
use skiff_tests::host::{process_alive, wait_until};
use skiff_tests::unique_id;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-skiff-v2");
const NAMESPACE: &str = "skiff-shim-test";

/// A serving shim started by `start`, shut down (or killed, by pid) on drop.
struct Shim {
    dir: PathBuf,
    address: String,
    pid: Option<i32>,
}

impl Shim {
    /// `start` for container `id` whose bundle is `bundle`, everything else under `dir`.
    fn start(dir: &Path, id: &str, bundle: &Path) -> Self {
        let mut params = BootstrapParams::new();
        params.instance_id = id.to_string();
        params.namespace = NAMESPACE.to_string();
        params.socket_dir = Some(dir.join("s").display().to_string());
        let mut child = Command::new(SHIM)
            .args(["-namespace", NAMESPACE, "-id", id])
            .args([
                "-address",
                &dir.join("containerd.sock").display().to_string(),
            ])
            .args(["-publish-binary", "/bin/false", "-bundle"])
            .arg(bundle)
            .arg("start")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the shim's start action");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&params.write_to_bytes().expect("encode"))
            .expect("write BootstrapParams");
        let out = child.wait_with_output().expect("start finishes");
        assert!(
            out.status.success(),
            "start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let address = String::from_utf8(out.stdout).expect("utf-8 address");
        assert!(address.starts_with("unix://"), "{address:?}");
        let mut shim = Self {
            dir: dir.to_path_buf(),
            address,
            pid: None,
        };
        let connected = shim
            .client()
            .connect(ctx(), &ConnectRequest::new())
            .expect("Connect");
        shim.pid = Some(i32::try_from(connected.shim_pid).expect("pid"));
        shim
    }

    fn client(&self) -> TaskClient {
        TaskClient::new(ttrpc::Client::connect(&self.address).expect("connect to the shim"))
    }

    fn socket(&self) -> &str {
        self.address.trim_start_matches("unix://")
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.filter(|&p| process_alive(p)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ctx() -> ttrpc::context::Context {
    let mut ctx = ttrpc::context::with_duration(Duration::from_secs(10));
    ctx.add(
        "containerd-namespace-ttrpc".to_string(),
        NAMESPACE.to_string(),
    );
    ctx
}

/// The ttrpc status of a failed call.
fn status<T: std::fmt::Debug>(result: ttrpc::Result<T>) -> (Code, String) {
    match result {
        Err(ttrpc::Error::RpcStatus(s)) => (s.code(), s.message),
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[test]
fn a_bundle_without_config_json_is_invalid_argument() {
    let dir = std::env::temp_dir().join(unique_id("shim-ttrpc"));
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    let id = unique_id("noconfig");
    let shim = Shim::start(&dir, &id, &bundle);
    let client = shim.client();
    let request = |bundle: &str| CreateTaskRequest {
        id: id.clone(),
        bundle: bundle.to_string(),
        ..Default::default()
    };
    let (code, message) = status(client.create(ctx(), &request(&bundle.display().to_string())));
    assert_eq!(code, Code::INVALID_ARGUMENT, "{message}");
    assert!(message.contains("config.json"), "{message}");
    let (code, message) = status(client.create(ctx(), &request("relative/bundle")));
    assert_eq!(code, Code::INVALID_ARGUMENT, "{message}");
    let (code, message) = status(client.create(
        ctx(),
        &CreateTaskRequest {
            bundle: bundle.display().to_string(),
            ..Default::default()
        },
    ));
    assert_eq!(code, Code::INVALID_ARGUMENT, "{message}");
    // Nothing was created: the shim has no task, the bundle only the address file `start` wrote.
    let left: Vec<_> = std::fs::read_dir(&bundle)
        .expect("bundle")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["address"], "{left:?}");
    // Shutdown with no task left ends the shim and removes its socket.
    client
        .shutdown(ctx(), &ShutdownRequest::new())
        .expect("Shutdown");
    let pid = shim.pid.expect("pid");
    wait_until(Duration::from_secs(10), "the shim to exit", || {
        !process_alive(pid)
    });
    assert!(!Path::new(shim.socket()).exists(), "the socket is left");
}

/// Delete answers only once the process's output is in the client's fifos (the Go shim waits
/// for its copies too): skiffd drains its fifos after Delete and must lose nothing. The
/// process writes 100 kB and exits; nobody reads the stdout fifo (64 kB), so the shim's copy
/// is stuck until the client reads — Delete must still be waiting then, and answer once the
/// client has read everything.
#[test]
fn delete_waits_for_the_output_copy() {
    use containerd_shim_protos::api::{DeleteRequest, StartRequest, WaitRequest};
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::shim::oci::Options;
    use skiff_tests::bundle::Bundle;
    use skiff_tests::runtime::Runtime;
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let rt = Runtime::new();
    let mut bundle = Bundle::new(&rt);
    bundle.set_args(&["dd", "if=/dev/zero", "bs=1000", "count=100"]);
    bundle.save();
    let dir = std::env::temp_dir().join(unique_id("shim-drain"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let stdout = dir.join("stdout");
    nix::unistd::mkfifo(&stdout, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let id = unique_id("drain");
    let shim = Shim::start(&dir, &id, bundle.path());
    let client = shim.client();
    let mut options = Options::new();
    options.binary_name = rt.bin().display().to_string();
    options.root = rt.root().display().to_string();
    let mut any = Any::new();
    any.type_url = "containerd.runc.v1.Options".into();
    any.value = options.write_to_bytes().expect("encode");
    client
        .create(
            ctx(),
            &CreateTaskRequest {
                id: id.clone(),
                bundle: bundle.path_str().to_string(),
                stdout: stdout.display().to_string(),
                options: MessageField::some(any),
                ..Default::default()
            },
        )
        .expect("Create");
    let start = StartRequest {
        id: id.clone(),
        ..Default::default()
    };
    client.start(ctx(), &start).expect("Start");
    let wait = WaitRequest {
        id: id.clone(),
        ..Default::default()
    };
    let exited = client.wait(ctx(), &wait).expect("Wait");
    assert_eq!(exited.exit_status, 0);

    let deleter = {
        let client = shim.client();
        let req = DeleteRequest {
            id: id.clone(),
            ..Default::default()
        };
        std::thread::spawn(move || client.delete(ctx(), &req))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !deleter.is_finished(),
        "Delete answered while the output was still being copied"
    );
    // The shim holds the fifo read-write, so this open does not block and EOF never comes.
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&stdout)
        .expect("open the stdout fifo");
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut read_all = |total: &mut usize| loop {
        match fifo.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => *total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("read the fifo: {e}"),
        }
    };
    wait_until(Duration::from_secs(10), "the whole output", || {
        read_all(&mut total);
        total >= 100_000
    });
    let deleted = deleter.join().expect("the Delete thread").expect("Delete");
    assert_eq!(deleted.exit_status, 0);
    read_all(&mut total);
    assert_eq!(total, 100_000);
    client
        .shutdown(ctx(), &ShutdownRequest::new())
        .expect("Shutdown");
}
