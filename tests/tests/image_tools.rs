//! The test images of `skiff_tests::image`, read by independent tools: skopeo (containers/image)
//! inspects the docker-archive and the OCI layout, umoci unpacks the OCI layout into a bundle.
//! A fixture that only our own code can read would prove nothing about the engines.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use skiff_tests::Image;
use skiff_tests::engines::require_binary;

fn tool(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn skopeo_reads_both_archives() {
    let skopeo = require_binary("/usr/bin/skopeo", "skopeo");
    let image = Image::busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let docker = dir.path().join("busybox.docker.tar");
    let oci = dir.path().join("busybox.oci.tar");
    image.write_docker_archive(&docker).expect("docker archive");
    image.write_oci_layout_tar(&oci).expect("oci tar");
    let layer = image.layers()[0].digest().to_string();

    let from_docker = json(&tool(
        &skopeo,
        &["inspect", &format!("docker-archive:{}", docker.display())],
    ));
    assert_eq!(from_docker["Layers"], serde_json::json!([layer]));
    assert_eq!(from_docker["Architecture"], "amd64");
    assert_eq!(from_docker["Os"], "linux");
    let config = json(&tool(
        &skopeo,
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", docker.display()),
        ],
    ));
    assert_eq!(&config, image.config());

    let oci_ref = format!("oci-archive:{}:{}", oci.display(), image.name());
    let from_oci = json(&tool(&skopeo, &["inspect", &oci_ref]));
    assert_eq!(from_oci["Digest"], image.manifest_digest());
    assert_eq!(from_oci["Layers"], serde_json::json!([layer]));
    let raw = tool(&skopeo, &["inspect", "--raw", &oci_ref]);
    assert_eq!(raw.as_bytes(), image.manifest_bytes());
}

#[test]
fn umoci_unpacks_the_oci_layout_into_a_runnable_bundle() {
    let umoci = require_binary("/usr/bin/umoci", "umoci");
    let image = Image::busybox();
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    image.write_oci_layout_dir(&layout).expect("oci dir");
    let tags = tool(&umoci, &["ls", "--layout", layout.to_str().expect("utf-8")]);
    assert_eq!(tags.trim(), image.name());
    let bundle = dir.path().join("bundle");
    tool(
        &umoci,
        &[
            "unpack",
            "--image",
            &format!("{}:{}", layout.display(), image.name()),
            bundle.to_str().expect("utf-8"),
        ],
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).expect("bin/sh is a symlink"),
        Path::new("busybox")
    );
    let config = json(&std::fs::read_to_string(bundle.join("config.json")).expect("config"));
    assert_eq!(config["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(config["process"]["cwd"], "/");
}
