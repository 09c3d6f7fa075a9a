//! Fixtures of the registry and crash tests: a skiffd that can be killed and restarted on its
//! data root, a real `docker-registry` on a free loopback port, and a loopback TCP proxy in
//! front of it that records request lines, can slow responses down and can kill the registry
//! once a response has passed a number of bytes.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_tests::image::{Image, ImageBuilder, LayerBuilder};

/// The docker CLI on PATH (28.x).
pub const DOCKER: &str = "docker";
/// Debian's docker.io client (20.10), when installed.
pub const DEBIAN_DOCKER: &str = "/usr/bin/docker";

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a daemon answers `GET /_ping` with OK on `sock`.
pub fn ping(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).is_ok() && out.ends_with("OK")
}

/// A skiffd on a data root in a temp dir; killed (by pid) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub client: PathBuf,
}

impl Daemon {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut d = Self {
            child: None,
            dir,
            client: PathBuf::from(DOCKER),
        };
        d.restart();
        d
    }

    /// Starts skiffd (again) on the same data root and socket.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "skiffd is still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("skiffd.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_skiffd"))
            .arg("--data-root")
            .arg(self.data())
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--log-level")
            .arg("debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn skiffd");
        self.child = Some(child);
        let sock = self.socket();
        wait_for(
            "skiffd",
            Duration::from_secs(30),
            || ping(&sock),
            || self.log(),
        );
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("skiffd.log")).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.client);
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run docker")
    }

    /// Runs docker, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}\n--- skiffd log (tail) ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 60)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs docker, asserts failure, returns stdout + stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Entries of a data-root directory.
    pub fn entries(&self, rel: &str) -> Vec<String> {
        std::fs::read_dir(self.data().join(rel))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes under `content/ingest`.
    pub fn ingest_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .map(|e| match e.file_type() {
                            Ok(t) if t.is_dir() => walk(&e.path()),
                            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.data().join("content/ingest"))
    }

    /// SIGKILL, and wait for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait (bounded); whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// With the daemon stopped: opens the stores through the library (as a restart would,
    /// recovery included) and runs the verify routine; the problems and the image names.
    pub fn verify_offline(&self) -> (Vec<String>, Vec<String>) {
        assert!(self.child.is_none(), "stop skiffd before verifying offline");
        let svc = skiffd::daemon::open_images(&self.data()).expect("open stores");
        let problems = svc.verify().expect("verify");
        let names = svc
            .list()
            .expect("list")
            .iter()
            .flat_map(|i| i.records.iter().map(|r| r.name.clone()))
            .collect();
        (problems, names)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A real `docker-registry` (distribution) on `127.0.0.1:<port>`, storage under its temp dir;
/// killed by pid on drop.
pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

impl Registry {
    pub fn start() -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing: install Debian's docker-registry package"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let r = Self {
            child: Some(child),
            port,
            dir,
        };
        wait_for(
            "docker-registry",
            Duration::from_secs(20),
            || http_status(port, "GET", "/v2/", b"", "").is_some_and(|s| s == 200),
            || r.log(),
        );
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.0 request to 127.0.0.1:port; the status.
pub fn http_status(port: u16, method: &str, path: &str, body: &[u8], ctype: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !ctype.is_empty() {
        req.push_str(&format!("Content-Type: {ctype}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1)?.parse().ok()
}

/// A loopback TCP proxy in front of a registry. The client makes one request per connection,
/// so the first line each connection carries is its request line.
pub struct Proxy {
    pub port: u16,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    requests: Mutex<Vec<String>>,
    /// Sleep per 64 KiB of response, in microseconds.
    throttle_us: AtomicU64,
    /// Once a response has passed this many bytes: kill `victim` and cut the connection.
    kill_after: AtomicU64,
    victim: Mutex<Option<u32>>,
    killed: AtomicBool,
}

impl Proxy {
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let st = st.clone();
                std::thread::spawn(move || serve(client, target, st));
            }
        });
        Self { port, state }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn throttle(&self, us_per_64k: u64) {
        self.state.throttle_us.store(us_per_64k, Ordering::SeqCst);
    }

    /// Kill process `pid` once a response passed `bytes` bytes.
    pub fn kill_after(&self, bytes: u64, pid: u32) {
        *self.state.victim.lock().unwrap() = Some(pid);
        self.state.kill_after.store(bytes, Ordering::SeqCst);
    }

    pub fn killed(&self) -> bool {
        self.state.killed.load(Ordering::SeqCst)
    }
}

fn serve(mut client: TcpStream, target: u16, st: Arc<ProxyState>) {
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    // client → registry, recording the request line.
    let st_up = st.clone();
    let up = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = true;
        let mut head = Vec::new();
        loop {
            let n = match c2.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if first {
                head.extend_from_slice(&buf[..n]);
                if let Some(i) = head.windows(2).position(|w| w == b"\r\n") {
                    first = false;
                    let line = String::from_utf8_lossy(&head[..i]).into_owned();
                    st_up.requests.lock().unwrap().push(line);
                }
            }
            if u2.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u2.shutdown(Shutdown::Write);
    });
    // registry → client, throttled, possibly killing the registry.
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed = 0u64;
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        passed += n as u64;
        let limit = st.kill_after.load(Ordering::SeqCst);
        if limit > 0 && passed > limit && !st.killed.swap(true, Ordering::SeqCst) {
            if let Some(pid) = *st.victim.lock().unwrap() {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            break;
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        let t = st.throttle_us.load(Ordering::SeqCst);
        if t > 0 {
            std::thread::sleep(Duration::from_micros(t * n as u64 / (64 * 1024) + 1));
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// Deterministic incompressible bytes (xorshift64*).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The busybox image plus `layers` layers of `layer_size` random bytes each.
pub fn big_image(name: &str, layers: usize, layer_size: usize, seed: u64) -> Image {
    let base = Image::busybox();
    let mut b: ImageBuilder = base.derive(name);
    for i in 0..layers {
        b = b.layer(
            LayerBuilder::new()
                .file(
                    &format!("data/blob{i}"),
                    0o644,
                    random_bytes(seed + i as u64, layer_size),
                )
                .build()
                .unwrap(),
        );
    }
    b.build().unwrap()
}

pub fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Builds `bin` of workspace package `package` into the target directory skiffd was built in
/// (same profile), so it lands next to skiffd where skiffd finds it; once per test process.
/// Returns its path.
pub fn build_next_to_skiffd(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let skiffd = Path::new(env!("CARGO_BIN_EXE_skiffd"));
    let out_dir = skiffd.parent().expect("skiffd's directory");
    let path = out_dir.join(bin);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if built.iter().any(|b| b == bin) {
        return path;
    }
    // target/<profile>/skiffd: the profile is the directory's name ("debug" is cargo's "dev").
    let target_dir = out_dir.parent().expect("target dir");
    let profile = match out_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(p) => p,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "-p",
            package,
            "--bin",
            bin,
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    assert!(path.is_file(), "{} missing after the build", path.display());
    built.push(bin.to_owned());
    path
}

/// `skiff-init` built static (glibc `crt-static`), as `scripts/build-static.sh` builds it and
/// into the same target directory (`target/crt-static`, cached; its own lock, so this does not
/// wait on the build that runs these tests). It runs in any rootfs. Once per test process.
pub fn static_init() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let vv = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&vv.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("the host triple");
    let target_dir = repo.join("target/crt-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            &host,
            "-p",
            "skiff-init",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(repo)
        .status()
        .expect("run cargo");
    assert!(status.success(), "the static build of skiff-init failed");
    let path = target_dir.join(&host).join("release/skiff-init");
    assert!(path.is_file(), "{} missing after the build", path.display());
    *built = Some(path.clone());
    path
}
