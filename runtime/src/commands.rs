//! One function per subcommand: turn flags into library calls and print results.

use std::io::Write;

use anyhow::{Context, Result, bail};
use skiff::container::{self, CreateOptions, ExecOptions, RunOptions};

use crate::cli::{Cli, Command, CreateArgs, ListFormat, UpdateArgs};

/// The version lines in runc's layout (go-runc parses `<name> version X`, `commit:`, `spec:`).
fn version() -> String {
    format!(
        "skiff version {}\ncommit: {}\nspec: 1.2.0\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("SKIFF_COMMIT").unwrap_or("unknown")
    )
}

/// Run the command; the result is the process's exit code.
pub fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.version {
        print!("{}", version());
        return Ok(0);
    }
    let Some(command) = &cli.command else {
        bail!("no command given (see skiff --help)");
    };
    let root = &cli.root;
    let span = tracing::debug_span!("skiff", command = ?std::mem::discriminant(command));
    let _enter = span.enter();
    match command {
        Command::Create { args, id, .. } => {
            skiff::exe::ensure_protected()?;
            container::create(&create_options(cli, args, id))
                .with_context(|| format!("create container {id}"))?;
        }
        Command::Start { id } => container::start(root, id)?,
        Command::State { id } => {
            let (state, status) = container::state(root, id)?;
            println!("{}", serde_json::to_string_pretty(&state.report(status))?);
        }
        Command::Kill { all, id, signal } => {
            let sig = container::parse_signal(signal)?;
            container::kill(root, id, sig, *all)?;
        }
        Command::Delete { force, id } => match container::delete(root, id, *force) {
            Ok(()) => {}
            // runc: deleting a container that is already gone with --force is not an error.
            Err(container::Error::State(skiff::state::StateError::NotExist)) if *force => {}
            Err(e) => return Err(e.into()),
        },
        Command::Run {
            args,
            detach,
            keep,
            no_subreaper,
            id,
        } => {
            skiff::exe::ensure_protected()?;
            let opts = RunOptions {
                create: create_options(cli, args, id),
                detach: *detach,
                keep: *keep,
                no_subreaper: *no_subreaper,
            };
            return container::run(&opts).with_context(|| format!("run container {id}"));
        }
        Command::Exec { args, id, command } => {
            skiff::exe::ensure_protected()?;
            let opts = ExecOptions {
                root: root.clone(),
                id: id.clone(),
                process: args.process.clone(),
                args: command.clone(),
                tty: args.tty,
                console_socket: args.console_socket.clone(),
                detach: args.detach,
                pid_file: args.pid_file.clone(),
                cwd: args.cwd.clone(),
                env: args.env.clone(),
                user: args.user.clone(),
                additional_gids: args.additional_gids.clone(),
                caps: args.cap.clone(),
                no_new_privs: args.no_new_privs,
                preserve_fds: args.preserve_fds,
                apparmor: args.apparmor.clone(),
                process_label: args.process_label.clone(),
                ignore_paused: args.ignore_paused,
                pidfd_socket: args.pidfd_socket.clone(),
            };
            return container::exec(&opts).with_context(|| format!("exec in container {id}"));
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(root, id, *format, ps_args)?,
        Command::Pause { id } => container::pause(root, id)?,
        Command::Resume { id } => container::resume(root, id)?,
        Command::Update { args, id } => container::update(&update_options(root, args, id)?)?,
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let interval = container::parse_interval(interval)
                .map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
            container::events(root, id, *stats, interval, &mut std::io::stdout().lock())?;
        }
        Command::List { format, quiet } => list(cli, *format, *quiet)?,
        Command::Features => println!("{}", serde_json::to_string_pretty(&container::features())?),
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("file {} exists. Remove it first", path.display());
            }
            let mut text = serde_json::to_string_pretty(&container::default_spec(*rootless))?;
            text.push('\n');
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(0)
}

fn create_options(cli: &Cli, args: &CreateArgs, id: &str) -> CreateOptions {
    CreateOptions {
        root: cli.root.clone(),
        id: id.to_string(),
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
        pidfd_socket: args.pidfd_socket.clone(),
    }
}

fn update_options(
    root: &std::path::Path,
    args: &UpdateArgs,
    id: &str,
) -> Result<container::UpdateOptions> {
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| container::parse_bytes(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
    };
    Ok(container::UpdateOptions {
        root: root.to_path_buf(),
        id: id.to_string(),
        resources: args.resources.clone(),
        flags: container::UpdateFlags {
            blkio_weight: args.blkio_weight,
            cpu_period: args.cpu_period,
            cpu_quota: args.cpu_quota,
            cpu_share: args.cpu_share,
            cpu_rt_period: args.cpu_rt_period,
            cpu_rt_runtime: args.cpu_rt_runtime,
            cpuset_cpus: args.cpuset_cpus.clone(),
            cpuset_mems: args.cpuset_mems.clone(),
            memory: bytes("memory", &args.memory)?,
            memory_reservation: bytes("memory-reservation", &args.memory_reservation)?,
            memory_swap: bytes("memory-swap", &args.memory_swap)?,
            pids_limit: args.pids_limit,
        },
    })
}

/// `ps`: JSON is the array of host pids (what containerd reads); the table has ps -ef's
/// columns, read from /proc.
fn ps(root: &std::path::Path, id: &str, format: ListFormat, ps_args: &[String]) -> Result<()> {
    let pids = container::pids(root, id)?;
    let mut out = std::io::stdout().lock();
    if format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&pids)?)?;
        return Ok(());
    }
    if !ps_args.is_empty() {
        bail!(
            "ps options ({}) are not supported: skiff reads /proc itself; use --format json for the pids",
            ps_args.join(" ")
        );
    }
    writeln!(
        out,
        "{:>8} {:>8} {:>8} {:>9}  CMD",
        "UID", "PID", "PPID", "TIME"
    )?;
    for row in pids.iter().filter_map(|p| container::ProcessRow::read(*p)) {
        let t = row.cpu_secs;
        writeln!(
            out,
            "{:>8} {:>8} {:>8} {:>3}:{:02}:{:02}  {}",
            row.uid,
            row.pid,
            row.ppid,
            t / 3600,
            t / 60 % 60,
            t % 60,
            row.cmd
        )?;
    }
    Ok(())
}

fn list(cli: &Cli, format: ListFormat, quiet: bool) -> Result<()> {
    let containers = container::list(&cli.root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for (s, _) in &containers {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => {
            let reports: Vec<_> = containers.iter().map(|(s, st)| s.report(*st)).collect();
            writeln!(out, "{}", serde_json::to_string(&reports)?)?;
        }
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = containers
                .iter()
                .map(|(s, st)| {
                    let r = s.report(*st);
                    [
                        r.id.to_string(),
                        r.pid.to_string(),
                        r.status.to_string(),
                        r.bundle.display().to_string(),
                        r.created.to_string(),
                        r.owner.to_string(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = header.clone().map(|h| h.len());
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let line: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end())?;
            }
        }
    }
    Ok(())
}
