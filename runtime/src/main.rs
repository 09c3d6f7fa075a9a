//! `skiff`: parse the runc-compatible command line, set up logging, call the library, and turn
//! the outcome into an exit status.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod logging;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = logging::Logrus::install(
        cli.log.as_deref(),
        cli.log_format == cli::LogFormat::Json,
        cli.debug,
    ) {
        eprintln!("skiff: cannot open log file: {e}");
        std::process::exit(1);
    }
    match commands::dispatch(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            // The error goes to the log (where containerd looks for the last "error" line) and,
            // when the log is a file, to stderr too for a human caller.
            tracing::error!("{msg}");
            if cli.log.is_some() {
                eprintln!("{msg}");
            }
            std::process::exit(1);
        }
    }
}
