//! End-to-end: the real `docker` CLI against a skiffd started by the test on a socket in a
//! temp dir. Images come from `skiff_tests::image` (built from the host's static busybox).
//!
//! Every scenario runs twice: with the `docker` on PATH (28.x, negotiates down to 1.44) and
//! with Debian's 20.10 client at `/usr/bin/docker` (API 1.41). The 20.10 runs are skipped, with
//! a note on stderr, on a machine without Debian's `docker.io` package.

// The scenarios are test bodies called from the per-client `#[test]` wrappers at the end,
// which clippy's allow-unwrap-in-tests does not see through.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::image::{Image, LayerBuilder};

/// A skiffd on a private data root and socket; killed (by pid) and removed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    client: PathBuf,
}

/// Debian's docker.io client.
const DEBIAN_DOCKER: &str = "/usr/bin/docker";

/// The client binary for a flavour, or `None` (with a note) when it is not installed.
fn client(flavour: &str) -> Option<PathBuf> {
    let path = match flavour {
        "path" => PathBuf::from("docker"),
        _ => PathBuf::from(DEBIAN_DOCKER),
    };
    let out = Command::new(&path)
        .args(["version", "--format", "{{.Client.Version}}"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if flavour == "debian" && !version.starts_with("20.10") {
        eprintln!(
            "skipping: Debian's docker 20.10 client is not installed at {DEBIAN_DOCKER} (found {version:?})"
        );
        return None;
    }
    assert!(!version.is_empty(), "no docker client on PATH");
    Some(path)
}

impl Daemon {
    fn start(client: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(env!("CARGO_BIN_EXE_skiffd"))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .arg("--log-level")
            .arg("debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("skiffd.log")).expect("log file"))
            .spawn()
            .expect("spawn skiffd");
        let d = Self { child, dir, client };
        let deadline = Instant::now() + Duration::from_secs(20);
        while raw_request(&d.socket(), "GET /_ping HTTP/1.0\r\n\r\n").is_err() {
            assert!(
                Instant::now() < deadline,
                "skiffd did not come up: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("skiffd.log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.client)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// Runs docker, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n--- skiffd log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs docker, asserts failure, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {args:?} unexpectedly succeeded"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Entries of a data-root directory.
    fn entries(&self, rel: &str) -> Vec<String> {
        std::fs::read_dir(self.data().join(rel))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM and waits (bounded); returns whether it exited cleanly.
    fn stop(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a raw HTTP/1.0 request over the socket; returns the whole response.
fn raw_request(sock: &Path, req: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:")[..12].to_owned()
}

fn version_info_ping_and_unknown_endpoints(client: PathBuf) {
    let d = Daemon::start(client);
    let client = d.ok(&["version", "--format", "{{.Client.Version}}"]);
    assert!(!client.trim().is_empty());
    assert_eq!(
        d.ok(&["version", "--format", "{{.Server.APIVersion}}"])
            .trim(),
        "1.44"
    );
    assert_eq!(
        d.ok(&["info", "--format", "{{.Images}} {{.OSType}}"])
            .trim(),
        "0 linux"
    );
    let full = d.ok(&["info"]);
    assert!(full.contains("Docker Root Dir: "), "{full}");

    let head = raw_request(&d.socket(), "HEAD /_ping HTTP/1.0\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    for h in [
        "api-version: 1.44",
        "ostype: linux",
        "docker-experimental: false",
    ] {
        assert!(lower.contains(h), "{h} missing in {head}");
    }
    let get = raw_request(&d.socket(), "GET /v1.24/_ping HTTP/1.0\r\n\r\n").unwrap();
    assert!(get.ends_with("OK"), "{get}");
    let missing = raw_request(
        &d.socket(),
        "GET /v1.44/containers/json/nope HTTP/1.0\r\n\r\n",
    )
    .unwrap();
    assert!(missing.contains(" 404 "), "{missing}");
    assert!(missing.contains("{\"message\":"), "{missing}");
    let too_new = raw_request(&d.socket(), "GET /v1.99/version HTTP/1.0\r\n\r\n").unwrap();
    assert!(
        too_new.contains(" 400 ") && too_new.contains("too new"),
        "{too_new}"
    );
}

fn load_list_inspect_history_tag_rmi(client: PathBuf) {
    let d = Daemon::start(client);
    let img = Image::busybox();
    let archive = d.file("busybox.tar");
    img.write_docker_archive(&archive).unwrap();
    let out = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    let id = img.id().to_owned();

    // docker images, its formats and filters.
    let table = d.ok(&["images"]);
    assert!(
        table.contains("busybox") && table.contains(&short(&id)),
        "{table}"
    );
    assert_eq!(lines(&d.ok(&["images", "-q"])), vec![short(&id)]);
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
            .trim(),
        format!("busybox:latest {}", short(&id))
    );
    let digests = d.ok(&["images", "--digests", "--format", "{{.Digest}}"]);
    assert!(digests.trim().starts_with("sha256:"), "{digests}");
    assert_eq!(
        lines(&d.ok(&["images", "--filter", "reference=busy*", "-q"])).len(),
        1
    );
    assert!(lines(&d.ok(&["images", "--filter", "reference=alpine*", "-q"])).is_empty());
    assert!(lines(&d.ok(&["images", "--filter", "dangling=true", "-q"])).is_empty());

    // inspect and history.
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", "busybox"])
            .trim(),
        id
    );
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            &short(&id)
        ])
        .trim(),
        "linux/amd64"
    );
    let cmd = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        "docker.io/library/busybox:latest",
    ]);
    assert_eq!(cmd.trim(), "[\"sh\"]");
    let layers = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "busybox",
    ]);
    assert_eq!(layers.trim(), "1");
    let missing = d.fails(&["image", "inspect", "nosuchimage"]);
    assert!(
        missing.to_lowercase().contains("no such image"),
        "{missing}"
    );
    let hist = d.ok(&["history", "--format", "{{.ID}} {{.Size}}", "busybox"]);
    assert!(hist.starts_with(&short(&id)), "{hist}");

    // tag, then rmi by name (untag only), by id (needs -f with two names), by id.
    d.ok(&["tag", "busybox", "example.com/team/bb:v1"]);
    d.ok(&["tag", &short(&id), "bb2"]);
    let names = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names = lines(&names);
    names.sort();
    assert_eq!(
        names,
        vec!["bb2:latest", "busybox:latest", "example.com/team/bb:v1"]
    );
    let untag = d.ok(&["rmi", "bb2"]);
    assert_eq!(untag.trim(), "Untagged: bb2:latest");
    let conflict = d.fails(&["rmi", &short(&id)]);
    assert!(conflict.contains("must be forced"), "{conflict}");
    d.ok(&["rmi", "example.com/team/bb:v1"]);
    let gone = d.ok(&["rmi", &id]);
    assert!(
        gone.contains("Untagged: busybox:latest") && gone.contains(&format!("Deleted: {id}")),
        "{gone}"
    );
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());
    // Nothing is left on disk once the last image is gone.
    assert!(
        d.entries("content/blobs/sha256").is_empty(),
        "{:?}",
        d.entries("content/blobs/sha256")
    );
    assert!(d.entries("snapshots/overlay").is_empty());
}

fn load_oci_layout_and_rmi_by_digest(client: PathBuf) {
    let d = Daemon::start(client);
    let img = Image::busybox_named("localhost:5000/tools/busybox:1.0").unwrap();
    let archive = d.file("oci.tar");
    img.write_oci_layout_tar(&archive).unwrap();
    let out = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        out.contains("Loaded image: localhost:5000/tools/busybox:1.0"),
        "{out}"
    );
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost:5000/tools/busybox:1.0"
        ])
        .trim(),
        img.id()
    );
    let digest = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        img.id(),
    ]);
    assert_eq!(
        digest.trim(),
        format!("localhost:5000/tools/busybox@{}", img.manifest_digest())
    );
    let out = d.ok(&["rmi", digest.trim()]);
    assert!(out.contains(&format!("Deleted: {}", img.id())), "{out}");
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());
}

fn save_round_trip(client: PathBuf) {
    let d = Daemon::start(client);
    let img = Image::busybox();
    let archive = d.file("in.tar");
    img.write_docker_archive(&archive).unwrap();
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    d.ok(&["tag", "busybox", "copy:two"]);
    let saved = d.file("saved.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "busybox", "copy:two"]);
    d.ok(&["rmi", "-f", img.id()]);
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());
    let out = d.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(
        out.contains("Loaded image: busybox:latest") && out.contains("Loaded image: copy:two"),
        "{out}"
    );
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", "copy:two"])
            .trim(),
        img.id()
    );
    // The single-image form, /images/{name}/get, via `docker image save` of one name.
    let one = d.file("one.tar");
    d.ok(&["image", "save", "-o", one.to_str().unwrap(), "busybox"]);
    assert!(std::fs::metadata(&one).unwrap().len() > 100_000);
}

fn dangling_prune_and_system_df(client: PathBuf) {
    let d = Daemon::start(client);
    let base = Image::busybox();
    let a = d.file("a.tar");
    base.write_docker_archive(&a).unwrap();
    d.ok(&["load", "-i", a.to_str().unwrap()]);
    // A second image under the same name: the first loses its tag and dangles.
    let derived = base
        .derive("docker.io/library/busybox:latest")
        .layer(
            LayerBuilder::new()
                .file("etc/motd", 0o644, "second\n")
                .whiteout("bin/true")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let b = d.file("b.tar");
    derived.write_docker_archive(&b).unwrap();
    d.ok(&["load", "-i", b.to_str().unwrap()]);
    assert_eq!(lines(&d.ok(&["images", "-q"])).len(), 2);
    assert_eq!(
        lines(&d.ok(&["images", "--filter", "dangling=true", "-q"])),
        vec![short(base.id())]
    );
    let none = d.ok(&[
        "images",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(none.trim(), "<none>:<none>");
    let df = d.ok(&["system", "df"]);
    assert!(df.contains("Images") && df.contains("2 "), "{df}");
    let pruned = d.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains(&format!("deleted: {}", base.id())),
        "{pruned}"
    );
    assert_eq!(lines(&d.ok(&["images", "-q"])), vec![short(derived.id())]);
    // The shared base layer survives; only what the dangling image alone held went.
    assert_eq!(d.entries("snapshots/overlay").len(), 2);
    assert_eq!(
        d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
            .lines()
            .next()
            .unwrap(),
        "Images 1"
    );
}

/// After a failed load nothing may be visible or left behind.
fn assert_clean(d: &Daemon) {
    assert!(lines(&d.ok(&["images", "-a", "-q"])).is_empty());
    assert!(
        d.entries("content/ingest").is_empty(),
        "ingest left: {:?}",
        d.entries("content/ingest")
    );
    assert!(
        d.entries("content/blobs/sha256").is_empty(),
        "blobs left: {:?}",
        d.entries("content/blobs/sha256")
    );
    assert!(
        d.entries("snapshots/overlay").is_empty(),
        "snapshots left: {:?}",
        d.entries("snapshots/overlay")
    );
}

fn write_tar(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).expect("create tar"));
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).expect("append");
    }
    b.finish().expect("finish tar");
}

fn bad_archives_fail_cleanly(client: PathBuf) {
    let d = Daemon::start(client);
    let img = Image::busybox();

    // Truncated in the middle of the layer.
    let good = d.file("good.tar");
    img.write_docker_archive(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.file("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = d.fails(&["load", "-i", truncated.to_str().unwrap()]);
    assert!(
        err.contains("invalid archive") || err.contains("unexpected"),
        "{err}"
    );
    assert_clean(&d);

    // OCI layout whose layer bytes do not match their blob name.
    let mut entries = img.oci_layout_entries().unwrap();
    let layer = format!(
        "blobs/sha256/{}",
        img.layers()[0].digest().trim_start_matches("sha256:")
    );
    let e = entries
        .iter_mut()
        .find(|(n, _)| *n == layer)
        .expect("layer entry");
    let last = e.1.len() - 600;
    e.1[last] ^= 0xff;
    let bad_oci = d.file("bad-oci.tar");
    write_tar(&bad_oci, &entries);
    let err = d.fails(&["load", "-i", bad_oci.to_str().unwrap()]);
    assert!(err.contains("unexpected commit digest"), "{err}");
    assert_clean(&d);

    // docker-archive whose layer.tar does not match the config's diff id.
    let mut entries = img.docker_archive_entries().unwrap();
    let e = entries
        .iter_mut()
        .find(|(n, _)| n.ends_with("layer.tar"))
        .expect("layer.tar");
    e.1 = LayerBuilder::new()
        .file("etc/other", 0o644, "x")
        .build()
        .unwrap()
        .tar()
        .to_vec();
    let bad_docker = d.file("bad-docker.tar");
    write_tar(&bad_docker, &entries);
    let err = d.fails(&["load", "-i", bad_docker.to_str().unwrap()]);
    assert!(err.contains("wrong diff id"), "{err}");
    assert_clean(&d);

    // Not an archive at all.
    let junk = d.file("junk.tar");
    std::fs::write(&junk, b"this is not a tar file at all, not even close").unwrap();
    d.fails(&["load", "-i", junk.to_str().unwrap()]);
    assert_clean(&d);

    // And the good one still loads afterwards.
    d.ok(&["load", "-i", good.to_str().unwrap()]);
    assert_eq!(lines(&d.ok(&["images", "-q"])).len(), 1);
}

fn second_daemon_on_one_root_refuses_and_sigterm_is_clean(client: PathBuf) {
    let mut d = Daemon::start(client);
    let out = Command::new(env!("CARGO_BIN_EXE_skiffd"))
        .arg("--data-root")
        .arg(d.data())
        .arg("-H")
        .arg(format!("unix://{}", d.file("other.sock").display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another skiffd"), "{err}");
    assert!(
        d.stop(),
        "skiffd did not exit cleanly on SIGTERM: {}",
        d.log()
    );
    assert!(!d.socket().exists(), "socket left behind");
}

/// One `#[test]` per scenario and client.
macro_rules! per_client {
    ($($name:ident),* $(,)?) => {
        mod docker_28 {
            $(#[test]
            fn $name() {
                if let Some(c) = super::client("path") {
                    super::$name(c);
                }
            })*
        }
        mod docker_20_10 {
            $(#[test]
            fn $name() {
                if let Some(c) = super::client("debian") {
                    super::$name(c);
                }
            })*
        }
    };
}

per_client!(
    version_info_ping_and_unknown_endpoints,
    load_list_inspect_history_tag_rmi,
    load_oci_layout_and_rmi_by_digest,
    save_round_trip,
    dangling_prune_and_system_df,
    bad_archives_fail_cleanly,
    second_daemon_on_one_root_refuses_and_sigterm_is_clean
);
