//! `mkbundle [--runtime PATH] DIR [-- ARGS...]`: builds a persistent busybox OCI bundle at DIR
//! (see `skiff_tests::bundle` for the layout) whose `config.json` comes from the runtime's
//! `spec` command, with `process.args` set to ARGS (default `sh`) and `process.terminal` false.
//!
//! The runtime defaults to `$SKIFF_RUNTIME`, else the workspace's `target/{release,debug}/skiff`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;
use skiff_tests::Bundle;

const USAGE: &str = "usage: mkbundle [--runtime PATH] DIR [-- ARGS...]";

/// Parsed command line.
struct Options {
    runtime: Option<PathBuf>,
    dir: PathBuf,
    args: Vec<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut runtime = None;
    let mut dir = None;
    let mut args = Vec::new();
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--runtime" => {
                runtime = Some(PathBuf::from(
                    argv.next().context("--runtime needs a path")?,
                ));
            }
            "--" => {
                args.extend(argv.by_ref());
            }
            "-h" | "--help" => bail!("{USAGE}"),
            flag if flag.starts_with('-') => bail!("unknown flag {flag}\n{USAGE}"),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => bail!("unexpected argument {arg} (process args go after `--`)\n{USAGE}"),
        }
    }
    let dir = dir.with_context(|| format!("missing DIR\n{USAGE}"))?;
    if args.is_empty() {
        args.push("sh".to_string());
    }
    Ok(Options { runtime, dir, args })
}

fn run() -> anyhow::Result<()> {
    let options = parse(std::env::args().skip(1))?;
    let runtime = match options.runtime {
        Some(path) => path,
        None => skiff_tests::find_runtime()
            .map_err(|e| anyhow::anyhow!("{e}, or pass --runtime PATH"))?,
    };
    let mut bundle = Bundle::create_at(&options.dir, &runtime)
        .with_context(|| format!("building a bundle in {}", options.dir.display()))?;
    bundle.try_update(|c| c["process"]["args"] = json!(options.args))?;
    println!("{}", bundle.path().display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkbundle: {e:#}");
            ExitCode::FAILURE
        }
    }
}
