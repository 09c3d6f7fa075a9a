//! Pull and push against a real `docker-registry` on 127.0.0.1, driven by the real docker CLI
//! through skiffd; skopeo as an independent producer and consumer; a registry killed mid-pull;
//! concurrent pulls sharing layers (request lines counted by a loopback proxy of the test's
//! own); `docker events` over all of it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Daemon, Proxy, Registry, big_image, http_status, lines};
use skiff_tests::image::{Image, LayerBuilder};

fn load(d: &Daemon, img: &Image, file: &str) {
    let archive = d.file(file);
    img.write_docker_archive(&archive).unwrap();
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn push_rmi_pull_with(d: &Daemon, reg: &Registry, repo: &str) {
    let img = Image::busybox();
    load(d, &img, "bb.tar");
    let name = format!("{}/{repo}", reg.host());
    d.ok(&["tag", "busybox", &name]);
    let out = d.ok(&["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    assert!(
        out.contains(&format!("The push refers to repository [{name}]")),
        "{out}"
    );
    let digest_line = out
        .lines()
        .find(|l| l.starts_with("latest: digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line in {out}"));
    assert!(digest_line.contains(" size: "), "{digest_line}");
    // Pushing again: every blob exists already.
    let again = d.ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");

    d.ok(&["rmi", &name, "busybox"]);
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());
    let out = d.ok(&["pull", &name]);
    for want in [
        "latest: Pulling from",
        "Pulling fs layer",
        "Download complete",
        "Pull complete",
        "Digest: sha256:",
        &format!("Status: Downloaded newer image for {name}:latest"),
    ] {
        assert!(out.contains(want), "{want:?} missing in {out}");
    }
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &name])
            .trim(),
        img.id()
    );
    let digests = d.ok(&["images", "--digests", "--format", "{{.Digest}}"]);
    assert!(
        digest_line.contains(digests.trim()),
        "{digests} vs {digest_line}"
    );
    let up_to_date = d.ok(&["pull", &name]);
    assert!(up_to_date.contains("Image is up to date"), "{up_to_date}");
    assert!(up_to_date.contains("Already exists"), "{up_to_date}");
    let missing = d.fails(&["pull", &format!("{}/no/such:thing", reg.host())]);
    assert!(missing.contains("not found"), "{missing}");
}

#[test]
fn docker_push_rmi_pull_and_events() {
    let reg = Registry::start();
    let d = Daemon::start();
    let since = unix_now() - 1;
    push_rmi_pull_with(&d, &reg, "test/busybox");
    let name = format!("{}/test/busybox", reg.host());

    // A second repository on the same registry: the layer is mounted, not uploaded.
    let other = format!("{}/other/bb:v2", reg.host());
    d.ok(&["tag", &name, &other]);
    let out = d.ok(&["push", &other]);
    assert!(out.contains("Mounted from test/busybox"), "{out}");
    let mounts = reg.log();
    assert!(
        mounts.contains("mount=sha256"),
        "no mount request in the registry log"
    );

    // The events of all that, replayed with --since/--until.
    let until = unix_now() + 1;
    let events = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    let actions: Vec<&str> = events.lines().filter_map(|l| l.split(' ').next()).collect();
    for want in ["load", "tag", "push", "untag", "delete", "pull"] {
        assert!(actions.contains(&want), "{want} missing in {events}");
    }
    assert!(events.contains(&format!("pull {name}:latest")), "{events}");
    let pulls = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "event=push",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        lines(&pulls).iter().all(|a| a == "push") && lines(&pulls).len() >= 3,
        "{pulls}"
    );
    // `docker save` emits one too.
    let saved = d.file("s.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), &other]);
    let events = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(unix_now() + 1).to_string(),
        "--filter",
        "event=save",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(lines(&events), vec!["save"]);
}

#[test]
fn docker_20_10_push_and_pull() {
    if !Path::new(common::DEBIAN_DOCKER).exists() {
        eprintln!("skipping: Debian's docker 20.10 client is not installed");
        return;
    }
    let reg = Registry::start();
    let mut d = Daemon::start();
    d.client = common::DEBIAN_DOCKER.into();
    push_rmi_pull_with(&d, &reg, "old/busybox");
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo (Debian package skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_interop_and_manifest_lists() {
    let reg = Registry::start();
    let d = Daemon::start();
    let img = Image::busybox();

    // skopeo reads what skiffd pushed.
    load(&d, &img, "bb.tar");
    let pushed = format!("{}/bypush/busybox:1", reg.host());
    d.ok(&["tag", "busybox", &pushed]);
    d.ok(&["push", &pushed]);
    let layout = d.file("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{pushed}"),
        &format!("oci:{}:one", layout.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    // The `oci:` copy converts to OCI media types; `dir:` keeps the bytes as pushed.
    let exact = d.file("exact");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{pushed}"),
        &format!("dir:{}", exact.display()),
    ]);
    let manifest_bytes = std::fs::read(exact.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["config"]["digest"], img.id());
    assert_eq!(
        manifest["layers"][0]["digest"].as_str().unwrap(),
        img.layers()[0].digest()
    );
    let inspect = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{pushed}"),
    ]);
    let local = d.ok(&["images", "--digests", "--format", "{{.Digest}}", &pushed]);
    assert_eq!(inspect.trim(), local.trim());

    // skiffd pulls what skopeo pushed from an OCI layout archive.
    let derived = img
        .derive("docker.io/library/derived:latest")
        .layer(
            LayerBuilder::new()
                .file("etc/motd", 0o644, "from skopeo\n")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let oci = d.file("derived.oci.tar");
    derived.write_oci_layout_tar(&oci).unwrap();
    let by_skopeo = format!("{}/byskopeo/derived:v1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", oci.display()),
        &format!("docker://{by_skopeo}"),
    ]);
    let out = d.ok(&["pull", &by_skopeo]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &by_skopeo])
            .trim(),
        derived.id()
    );

    // A manifest list: arm64 → the derived image, amd64 → busybox. skiffd picks amd64.
    let skopeo_digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{by_skopeo}"),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{by_skopeo}"),
    ]);
    let mt = serde_json::from_str::<serde_json::Value>(&raw).unwrap()["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_owned();
    // Both manifests must live in the list's repository.
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{pushed}"),
        &format!("docker://{}/multi/img:amd", reg.host()),
    ]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{by_skopeo}"),
        &format!("docker://{}/multi/img:arm", reg.host()),
    ]);
    let amd = inspect.trim();
    let entry = |digest: &str, arch: &str, size: usize| {
        serde_json::json!({"mediaType": mt, "digest": digest, "size": size,
            "platform": {"os": "linux", "architecture": arch}})
    };
    let amd_size = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{pushed}"),
    ])
    .len();
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(skopeo_digest.trim(), "arm64", raw.len()), entry(amd, "amd64", amd_size)],
    });
    let status = http_status(
        reg.port,
        "PUT",
        "/v2/multi/img/manifests/list",
        list.to_string().as_bytes(),
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(status, Some(201), "{}", common::tail(&reg.log(), 20));
    let multi = format!("{}/multi/img:list", reg.host());
    d.ok(&["pull", &multi]);
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &multi])
            .trim(),
        img.id()
    );
}

#[test]
fn registry_killed_mid_pull_leaves_nothing() {
    let mut reg = Registry::start();
    let proxy = Proxy::start(reg.port);
    let d = Daemon::start();
    // One large (incompressible, 48 MiB) layer over busybox.
    let img = big_image("docker.io/library/big:latest", 1, 48 << 20, 7);
    load(&d, &img, "big.tar");
    let name = format!("{}/test/big", proxy.host());
    d.ok(&["tag", "big", &name]);
    d.ok(&["push", &name]);
    d.ok(&["rmi", &name, "big"]);
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());

    proxy.throttle(2_000);
    proxy.kill_after(8 << 20, reg.pid().unwrap());
    let err = d.fails(&["pull", &name]);
    assert!(proxy.killed(), "the registry was not killed: {err}");
    assert!(
        err.contains("fetch blob") || err.contains("read blob") || err.contains("connect"),
        "unclear error: {err}"
    );
    reg.kill();
    assert!(lines(&d.ok(&["images", "-a", "-q"])).is_empty());
    assert!(
        d.entries("content/ingest").is_empty(),
        "ingest left: {:?}",
        d.entries("content/ingest")
    );
    // Only what no image references could have been collected: nothing is left at all.
    assert!(
        d.entries("content/blobs/sha256").is_empty(),
        "{:?}",
        d.entries("content/blobs/sha256")
    );
    assert!(d.entries("snapshots/overlay").is_empty());
}

#[test]
fn concurrent_pulls_fetch_shared_layers_once() {
    let reg = Registry::start();
    let proxy = Proxy::start(reg.port);
    let d = Daemon::start();
    // Two images sharing busybox and a 16 MiB layer; each has one layer of its own.
    let base = big_image("docker.io/library/shared:latest", 1, 16 << 20, 11);
    let a = base
        .derive("docker.io/library/a:latest")
        .layer(LayerBuilder::new().file("a", 0o644, "a").build().unwrap())
        .build()
        .unwrap();
    let b = base
        .derive("docker.io/library/b:latest")
        .layer(LayerBuilder::new().file("b", 0o644, "b").build().unwrap())
        .build()
        .unwrap();
    load(&d, &a, "a.tar");
    load(&d, &b, "b.tar");
    let ra = format!("{}/shared/img:a", proxy.host());
    let rb = format!("{}/shared/img:b", proxy.host());
    d.ok(&["tag", "a", &ra]);
    d.ok(&["tag", "b", &rb]);
    d.ok(&["push", &ra]);
    d.ok(&["push", &rb]);
    d.ok(&["rmi", "-f", a.id(), b.id()]);
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());

    // Slow enough that the two pulls overlap on the shared layers.
    proxy.throttle(20_000);
    let before = proxy.requests().len();
    let mut ca = d.command(&["pull", &ra]);
    let mut cb = d.command(&["pull", &rb]);
    let ha = std::thread::spawn(move || ca.output());
    let hb = std::thread::spawn(move || cb.output());
    let pa = ha.join().unwrap().unwrap();
    let pb = hb.join().unwrap().unwrap();
    assert!(
        pa.status.success(),
        "{}",
        String::from_utf8_lossy(&pa.stderr)
    );
    assert!(
        pb.status.success(),
        "{}",
        String::from_utf8_lossy(&pb.stderr)
    );
    let requests: Vec<String> = proxy.requests()[before..].to_vec();
    for layer in a.layers().iter().chain(b.layers()) {
        let n = requests
            .iter()
            .filter(|l| l.starts_with("GET ") && l.contains(&format!("/blobs/{}", layer.digest())))
            .count();
        assert_eq!(
            n,
            1,
            "layer {} fetched {n} times: {requests:#?}",
            layer.digest()
        );
    }
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &ra])
            .trim(),
        a.id()
    );
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &rb])
            .trim(),
        b.id()
    );
}
