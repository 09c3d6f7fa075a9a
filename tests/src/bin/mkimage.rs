//! `mkimage [--name REF] (--docker-archive PATH | --oci-archive PATH | --oci-dir DIR)...`:
//! writes the busybox test image of `skiff_tests::image` (`Image::busybox`, `Cmd ["sh"]`) for
//! scripts, in the same bytes the tests load: a docker-archive tar (`docker load`, `ctr images
//! import`), an OCI layout tar, or an OCI layout directory. `--name` renames it (default
//! `docker.io/library/busybox:latest`). Prints the image's full name.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use skiff_tests::Image;
use skiff_tests::image::BUSYBOX_IMAGE;

const USAGE: &str = "usage: mkimage [--name REF] (--docker-archive PATH | --oci-archive PATH | \
                     --oci-dir DIR)...";

/// One output to write.
enum Output {
    DockerArchive(PathBuf),
    OciArchive(PathBuf),
    OciDir(PathBuf),
}

fn run() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let mut name = BUSYBOX_IMAGE.to_string();
    let mut outputs = Vec::new();
    while let Some(arg) = argv.next() {
        let mut value = || {
            argv.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--name" => name = value()?,
            "--docker-archive" => outputs.push(Output::DockerArchive(value()?.into())),
            "--oci-archive" => outputs.push(Output::OciArchive(value()?.into())),
            "--oci-dir" => outputs.push(Output::OciDir(value()?.into())),
            "-h" | "--help" => bail!("{USAGE}"),
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    if outputs.is_empty() {
        bail!("nothing to write\n{USAGE}");
    }
    let image = Image::busybox_named(&name)?;
    for output in &outputs {
        match output {
            Output::DockerArchive(path) => image.write_docker_archive(path)?,
            Output::OciArchive(path) => image.write_oci_layout_tar(path)?,
            Output::OciDir(dir) => image.write_oci_layout_dir(dir)?,
        }
    }
    println!("{}", image.name());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkimage: {e:#}");
            ExitCode::FAILURE
        }
    }
}
