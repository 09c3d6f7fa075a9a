//! `containerd-shim-skiff-v2`: parse containerd's flags, run the action, map errors to the
//! exit code (see the library docs).

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use containerd_shim_skiff::args::{Action, Args};
use containerd_shim_skiff::{delete, info, serve, start};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("containerd-shim-skiff-v2: {e}");
            return ExitCode::from(2);
        }
    };
    let level = if args.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let result = match args.action {
        Action::Version => {
            print!("{}", info::version_text());
            Ok(())
        }
        Action::Info => info::info().and_then(|b| write_stdout(&b)),
        Action::Start => start::start(&args).and_then(|a| Ok(start::print_address(&a)?)),
        Action::Delete => delete::delete(&args).and_then(|b| write_stdout(&b)),
        Action::Serve => serve::serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd-shim-skiff-v2: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
