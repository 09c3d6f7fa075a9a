//! `oci-conformance`: runs the OCI runtime conformance suite against a runtime binary.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use oci_conformance::cgroup2_ns;
use oci_conformance::suite::{self, Format, Options};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Tap,
    Json,
}

/// Black-box OCI runtime conformance suite: drives a runc-compatible runtime through its CLI.
#[derive(Debug, Parser)]
#[command(name = "oci-conformance", version)]
struct Args {
    /// The runtime binary to test (skiff, runc, crun, ...).
    #[arg(long, required_unless_present = "list")]
    runtime: Option<PathBuf>,
    /// Only cases whose name contains PATTERN (comma-separated; `*` globs over the whole name).
    #[arg(long, value_name = "PATTERN")]
    filter: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "tap")]
    format: FormatArg,
    /// Keep the directories (bundles, runtime state, output) of failed cases.
    #[arg(long)]
    keep_failed: bool,
    /// Cases run at the same time [default: twice the CPUs, at most 8].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Expected results (`xfail NAME` / `skip NAME` lines): exit non-zero on any difference
    /// (a regression, or an expected failure that now passes) instead of on any failure.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Before running, mount the hugetlb controller as a cgroup v1 hierarchy at
    /// /sys/fs/cgroup/hugetlb (crun refuses hybrid hosts whose cgroup2 has controllers).
    /// This changes the host and is not undone.
    #[arg(long)]
    hugetlb_v1: bool,
    /// Run every runtime invocation in a private mount namespace where /sys/fs/cgroup is the
    /// host's cgroup2 hierarchy, so the runtime takes its cgroup v2 paths on a hybrid host.
    /// Cases needing a controller that hierarchy lacks skip.
    #[arg(long)]
    cgroup2_ns: bool,
    /// List the cases (name, spec section, quote) and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    // `--exec-in-cgroup2-ns -- RUNTIME ARGS...`: the suite re-executing itself around a
    // runtime invocation (see `cgroup2_ns`); not a suite run.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(code) = cgroup2_ns::exec_if_wrapper(&argv) {
        return code;
    }
    let args = Args::parse();
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(2)
            .min(8)
    });
    let opts = Options {
        runtime: args.runtime.unwrap_or_default(),
        filter: args.filter,
        format: match args.format {
            FormatArg::Tap => Format::Tap,
            FormatArg::Json => Format::Json,
        },
        keep_failed: args.keep_failed,
        jobs,
        expect: args.expect,
        hugetlb_v1: args.hugetlb_v1,
        cgroup2_ns: args.cgroup2_ns,
        list: args.list,
    };
    match suite::run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("oci-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}
