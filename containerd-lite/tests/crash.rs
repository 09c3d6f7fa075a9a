//! Crash consistency: `kill -9` of skiffd in the middle of a `docker load` of a ~100 MB
//! multi-layer archive and in the middle of a pull, then a restart on the same data root. The
//! store must verify (every blob's digest, every image's closure), no partial image may be
//! visible, and the operation must succeed when repeated. The verify routine itself is checked
//! against a blob corrupted on disk.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Proxy, Registry, big_image, lines};

/// Polls until `cond` holds (bounded).
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill9_during_load_then_restart_verifies_and_load_repeats() {
    let mut d = Daemon::start();
    // 4 incompressible layers of 25 MiB over busybox: ~100 MB.
    let img = big_image("docker.io/library/crash:latest", 4, 25 << 20, 3);
    let archive = d.file("crash.tar");
    img.write_docker_archive(&archive).unwrap();

    let load = d
        .command(&["load", "-i", archive.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill once a layer has been committed and the next one is being ingested.
    wait_until("the load to be under way", Duration::from_secs(60), || {
        d.entries("content/blobs/sha256").len() >= 2 && d.ingest_bytes() > (4 << 20)
    });
    d.kill9();
    let out = load.wait_with_output().unwrap();
    assert!(!out.status.success(), "the load finished before the kill");

    let (problems, names) = d.verify_offline();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(names.is_empty(), "partial image visible: {names:?}");

    d.restart();
    assert!(lines(&d.ok(&["images", "-a", "-q"])).is_empty());
    assert!(d.entries("content/ingest").is_empty());
    assert!(d.entries("content/blobs/sha256").is_empty());
    let out = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: crash:latest"), "{out}");
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", "crash"])
            .trim(),
        img.id()
    );
    assert!(d.stop(), "skiffd did not stop cleanly");
    let (problems, names) = d.verify_offline();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(names, vec!["docker.io/library/crash:latest"]);

    // verify itself: a layer blob flipped on disk is reported.
    let layer = img.layers()[2]
        .digest()
        .trim_start_matches("sha256:")
        .to_owned();
    let path = d.data().join("content/blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (problems, _) = d.verify_offline();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&layer) && p.contains("does not match its digest")),
        "{problems:?}"
    );
    // And a missing one too.
    std::fs::remove_file(&path).unwrap();
    let (problems, _) = d.verify_offline();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&layer) && p.contains("missing")),
        "{problems:?}"
    );
}

#[test]
fn kill9_during_pull_then_restart_verifies_and_pull_repeats() {
    let reg = Registry::start();
    let proxy = Proxy::start(reg.port);
    let mut d = Daemon::start();
    let img = big_image("docker.io/library/pullcrash:latest", 2, 24 << 20, 5);
    let archive = d.file("pc.tar");
    img.write_docker_archive(&archive).unwrap();
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    let name = format!("{}/crash/pull:1", proxy.host());
    d.ok(&["tag", "pullcrash", &name]);
    d.ok(&["push", &name]);
    d.ok(&["rmi", &name, "pullcrash"]);
    assert!(lines(&d.ok(&["images", "-q"])).is_empty());

    proxy.throttle(5_000);
    let pull = d
        .command(&["pull", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the pull to be under way", Duration::from_secs(60), || {
        d.ingest_bytes() > (4 << 20)
    });
    d.kill9();
    let out = pull.wait_with_output().unwrap();
    assert!(!out.status.success(), "the pull finished before the kill");

    let (problems, names) = d.verify_offline();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(names.is_empty(), "partial image visible: {names:?}");

    d.restart();
    assert!(lines(&d.ok(&["images", "-a", "-q"])).is_empty());
    assert!(d.entries("content/ingest").is_empty());
    proxy.throttle(0);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        d.ok(&["image", "inspect", "--format", "{{.Id}}", &name])
            .trim(),
        img.id()
    );
    assert!(d.stop(), "skiffd did not stop cleanly");
    let (problems, names) = d.verify_offline();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(names.len(), 1, "{names:?}");
}
