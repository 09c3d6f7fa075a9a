//! Prints the OCI `linux.seccomp` object a Docker-format profile resolves to, ready to paste
//! into a bundle's `config.json`.
//!
//! ```text
//! oci-seccomp [--profile FILE] [--arch ARCH] [--kernel MAJOR.MINOR] [--default-caps] [--cap CAP]...
//! oci-seccomp --docker-format      # the built-in profile itself, in Docker's format
//! ```
//!
//! Without `--profile`, the built-in default profile; without `--arch`, the architecture this
//! example was built for; without `--kernel`, the running kernel's version. `--default-caps`
//! adds Docker's 14 default capabilities to the `--cap` ones.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;

use skiff_seccomp_profiles::{
    DOCKER_DEFAULT_CAPS, KernelVersion, Profile, default_profile, host_kernel_version, resolve,
};

fn main() -> ExitCode {
    match run() {
        Ok(json) => match writeln!(std::io::stdout().lock(), "{json}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("oci-seccomp: cannot write the profile: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            let mut message = format!("oci-seccomp: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, Box<dyn Error>> {
    let mut profile = None;
    let mut arch = std::env::consts::ARCH.to_owned();
    let mut kernel = None;
    let mut caps = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--docker-format" => return Ok(default_profile().to_json()),
            "--profile" => profile = Some(Profile::from_json(&std::fs::read_to_string(value()?)?)?),
            "--arch" => arch = value()?,
            "--kernel" => {
                let text = value()?;
                let version = KernelVersion::from_release(&text)
                    .ok_or(format!("--kernel {text:?}: expected MAJOR.MINOR"))?;
                kernel = Some((version.major, version.minor));
            }
            "--cap" => caps.push(value()?),
            "--default-caps" => caps.extend(DOCKER_DEFAULT_CAPS.map(String::from)),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let kernel = match kernel {
        Some(kernel) => kernel,
        None => host_kernel_version()?,
    };
    let profile = profile.unwrap_or_else(default_profile);
    let seccomp = resolve(&profile, &caps, &arch, Some(kernel))?;
    Ok(serde_json::to_string_pretty(&seccomp)?)
}
