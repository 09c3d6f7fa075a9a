//! The OCI runtime spec of a container, built the way Docker builds it (moby `oci/defaults.go`,
//! `daemon/oci_linux.go`; `reference/docker-engine-api.md` §6). Pure: everything it needs from
//! the host or the rootfs (the resolved user, devices' numbers, arch, kernel, cgroup mode) is an
//! input, so every rule is unit-tested here.
//!
//! Rules, in docker's terms:
//! - 14 default capabilities in the bounding, effective and permitted sets; `--cap-add/--cap-drop`
//!   (with `ALL`) adjust them; `--privileged` gives every capability the kernel knows;
//! - mounts `/proc`, `/dev`, `/dev/pts`, `/sys`, `/sys/fs/cgroup`, `/dev/mqueue`, `/dev/shm`
//!   (size from `--shm-size`, default 64 MiB) with docker's options; `/etc/hosts`,
//!   `/etc/resolv.conf`, `/etc/hostname` bind-mounted from files in the container's directory;
//!   user mounts (`-v`, `--mount`, `--tmpfs`) replace defaults with the same destination;
//!   `--read-only` makes the root and the default mounts other than `/proc` and `/dev*` ro;
//! - masked and read-only paths (cleared by `--privileged`);
//! - device cgroup: deny all, allow the default character devices, deny fuse; `--device` adds
//!   nodes and rules; `--privileged` allows all;
//! - the default seccomp profile resolved against the bounding set, the arch and the kernel
//!   (`--security-opt seccomp=unconfined` and `--privileged` disable it; `seccomp=<json>` replaces
//!   it);
//! - namespaces pid, ipc, uts, mount, network (not with `--network host`), cgroup on a cgroup v2
//!   host only (docker's default `cgroupns` is `host` on v1);
//! - env: `PATH` (unless the image sets it), `HOSTNAME`, `TERM=xterm` with a tty, then the
//!   container's env replacing by key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::config::{ContainerConfig, HostConfig, argv};

/// Docker's default `PATH`.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every capability name by number (include/uapi/linux/capability.h); the host's
/// `/proc/sys/kernel/cap_last_cap` bounds what `--privileged` and `ALL` give.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths masked from the container (moby `oci/defaults.go`; GHSA-6fw5-f8r9-fgfm and
/// GHSA-jq35-85cj-fj4p for the last entries).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Errors of spec generation: all are the request's fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the request nor the image names a command.
    #[error("no command specified")]
    NoCommand,
    /// A capability name is unknown.
    #[error("unknown capability: {0:?}")]
    Capability(String),
    /// A `--security-opt` value is not understood.
    #[error("invalid --security-opt: {0:?}")]
    SecurityOpt(String),
    /// The seccomp profile cannot be parsed or resolved.
    #[error("seccomp profile")]
    Seccomp(#[from] skiff_seccomp_profiles::ProfileError),
    /// A `-v` value is malformed.
    #[error("invalid volume specification: {0:?}")]
    Bind(String),
    /// An `--ulimit` name is unknown.
    #[error("invalid ulimit: {0:?}")]
    Ulimit(String),
    /// `--init` without an init binary.
    #[error(
        "--init: no init binary ({INIT_BINARY} next to skiffd or on PATH, or skiffd --init-path)"
    )]
    NoInit,
}

/// Where `--init` puts the init in the container, as docker does with `docker-init`.
pub const INIT_PATH_IN_CONTAINER: &str = "/sbin/docker-init";
/// The init skiffd looks for (crate `init/`).
pub const INIT_BINARY: &str = "skiff-init";

/// The user the process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

/// A `--device` with the host node's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDevice {
    /// Path in the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// The node's permission bits.
    pub file_mode: u32,
    /// `rwm`.
    pub access: String,
}

/// What the host contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// `uname -m` / Go arch.
    pub arch: String,
    /// Kernel `(major, minor)`.
    pub kernel: Option<(u32, u32)>,
    /// `/sys/fs/cgroup` is cgroup2.
    pub cgroup2: bool,
    /// AppArmor is enabled.
    pub apparmor: bool,
    /// `/proc/sys/kernel/cap_last_cap`.
    pub last_cap: usize,
    /// The daemon's own bounding set (`CapBnd` of /proc/self/status): `--privileged` and
    /// `ALL` give what the kernel knows *and* we hold (a capability outside our bounding set
    /// cannot be granted: capset(2) fails with EPERM).
    pub bounding: u64,
}

/// Everything one container's spec is built from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// The container id.
    pub id: &'a str,
    /// The merged config.
    pub config: &'a ContainerConfig,
    /// The host config.
    pub host: &'a HostConfig,
    /// The resolved user.
    pub user: ResolvedUser,
    /// The hostname.
    pub hostname: String,
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname` sources on the host.
    pub etc_files: [(String, PathBuf); 3],
    /// `--device`s.
    pub devices: Vec<ResolvedDevice>,
    /// The host.
    pub host_info: HostInfo,
    /// The init binary on the host, for `--init`.
    pub init: Option<&'a Path>,
}

/// The capability set after `--privileged`, `--cap-add` and `--cap-drop` (moby
/// `caps.TweakCapabilities`).
pub fn capabilities(
    host: &HostConfig,
    last_cap: usize,
    bounding: u64,
) -> Result<Vec<String>, Error> {
    let all: Vec<String> = ALL_CAPS
        .iter()
        .enumerate()
        .take(last_cap.saturating_add(1).min(ALL_CAPS.len()))
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, s)| (*s).to_owned())
        .collect();
    if host.privileged {
        return Ok(all);
    }
    let norm = |c: &str| -> Result<String, Error> {
        let up = c.to_ascii_uppercase();
        if up == "ALL" {
            return Ok(up);
        }
        let n = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if ALL_CAPS.contains(&n.as_str()) {
            Ok(n)
        } else {
            Err(Error::Capability(c.to_owned()))
        }
    };
    let add = host
        .cap_add
        .iter()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = host
        .cap_drop
        .iter()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all.clone()
    } else {
        skiff_seccomp_profiles::DOCKER_DEFAULT_CAPS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    } else {
        caps.retain(|c| !drop.contains(c));
    }
    for c in add {
        if c != "ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// The security options, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityOpts {
    /// `seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `seccomp=<json>` (the CLI sends the file's contents).
    pub seccomp_profile: Option<String>,
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
    /// `apparmor=<profile>`.
    pub apparmor: Option<String>,
    /// `label=…` (SELinux; accepted and ignored: no SELinux here).
    pub labels: Vec<String>,
    /// `systempaths=unconfined`: no masked or read-only paths.
    pub systempaths_unconfined: bool,
}

/// Parses `--security-opt` values (`key=value` or the legacy `key:value`).
pub fn security_opts(opts: &[String]) -> Result<SecurityOpts, Error> {
    let mut out = SecurityOpts::default();
    for o in opts {
        if o == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        let (k, v) = o
            .split_once('=')
            .or_else(|| o.split_once(':'))
            .ok_or_else(|| Error::SecurityOpt(o.clone()))?;
        match k {
            "seccomp" if v == "unconfined" => out.seccomp_unconfined = true,
            "seccomp" => out.seccomp_profile = Some(v.to_owned()),
            "no-new-privileges" => {
                out.no_new_privileges = matches!(v, "true" | "1" | "");
            }
            "apparmor" => out.apparmor = Some(v.to_owned()),
            "label" => out.labels.push(v.to_owned()),
            "systempaths" if v == "unconfined" => out.systempaths_unconfined = true,
            _ => return Err(Error::SecurityOpt(o.clone())),
        }
    }
    Ok(out)
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": kind, "source": source, "options": options})
}

/// The user mounts (binds, `--mount`, `--tmpfs`), in order.
fn user_mounts(host: &HostConfig) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for b in &host.binds {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => return Err(Error::Bind(b.clone())),
        };
        if !src.starts_with('/') || !dst.starts_with('/') {
            // Named volumes come with the volumes issue.
            return Err(Error::Bind(b.clone()));
        }
        let mut o = vec!["rbind"];
        let mut propagation = "rprivate";
        for opt in opts.split(',').filter(|s| !s.is_empty()) {
            match opt {
                "ro" => o.push("ro"),
                "rw" | "z" | "Z" | "nocopy" => {}
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                    propagation = opt;
                }
                _ => return Err(Error::Bind(b.clone())),
            }
        }
        o.push(propagation);
        out.push(mount(dst, "bind", src, &o));
    }
    for m in &host.mounts {
        match m.kind.as_str() {
            "bind" => {
                if !m.source.starts_with('/') || !m.target.starts_with('/') {
                    return Err(Error::Bind(format!(
                        "invalid mount config for type \"bind\": mount paths must be absolute: {}:{}",
                        m.source, m.target
                    )));
                }
                let mut o = vec!["rbind", "rprivate"];
                if m.read_only {
                    o.push("ro");
                }
                out.push(mount(&m.target, "bind", &m.source, &o));
            }
            "tmpfs" => out.push(mount(
                &m.target,
                "tmpfs",
                "tmpfs",
                &["nosuid", "nodev", "noexec"],
            )),
            other => return Err(Error::Bind(format!("{other}:{}", m.target))),
        }
    }
    for (dst, opts) in &host.tmpfs {
        let mut o = vec!["nosuid", "nodev", "noexec"];
        o.extend(opts.split(',').filter(|s| !s.is_empty()));
        out.push(mount(dst, "tmpfs", "tmpfs", &o));
    }
    Ok(out)
}

/// Replaces or appends `KEY=value`s (moby `ReplaceOrAppendEnvValues`).
fn replace_or_append(base: &mut Vec<String>, more: &[String]) {
    for e in more {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        match base
            .iter_mut()
            .find(|b| b.split_once('=').map_or(b.as_str(), |(k, _)| k) == key)
        {
            Some(b) => b.clone_from(e),
            None => base.push(e.clone()),
        }
    }
}

/// The process env.
pub fn environment(config: &ContainerConfig, hostname: &str) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH.to_owned(), format!("HOSTNAME={hostname}")];
    if config.tty {
        env.push("TERM=xterm".to_owned());
    }
    replace_or_append(&mut env, &config.env);
    env
}

/// The OCI `linux.resources` of a host config (also what `docker update` sends).
pub fn resources(host: &HostConfig) -> Value {
    let mut r = serde_json::Map::new();
    let mut mem = serde_json::Map::new();
    if host.memory > 0 {
        mem.insert("limit".into(), json!(host.memory));
        let swap = match host.memory_swap {
            0 => host.memory.saturating_mul(2),
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    } else if host.memory_swap != 0 {
        mem.insert("swap".into(), json!(host.memory_swap));
    }
    if !mem.is_empty() {
        r.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = serde_json::Map::new();
    if host.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(host.cpu_shares));
    }
    if host.nano_cpus > 0 {
        // docker: period 100ms, quota = cpus × period.
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert(
            "quota".into(),
            json!(host.nano_cpus * period / 1_000_000_000),
        );
    } else {
        if host.cpu_period > 0 {
            cpu.insert("period".into(), json!(host.cpu_period));
        }
        if host.cpu_quota != 0 {
            cpu.insert("quota".into(), json!(host.cpu_quota));
        }
    }
    if !host.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(host.cpuset_cpus));
    }
    if !host.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(host.cpuset_mems));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = host.pids_limit.filter(|p| *p > 0) {
        r.insert("pids".into(), json!({ "limit": p }));
    }
    Value::Object(r)
}

fn device_rules(host: &HostConfig, devices: &[ResolvedDevice]) -> Vec<Value> {
    if host.privileged {
        return vec![json!({"allow": true, "access": "rwm"})];
    }
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    // null, zero, full, random, urandom, tty, console, ptmx (moby `oci/defaults.go`).
    for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
        rules.push(
            json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}),
        );
    }
    // fuse stays denied unless asked for (moby: "ensure /dev/fuse is not allowed").
    rules.push(json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
    for d in devices {
        rules.push(
            json!({"allow": true, "type": d.kind.to_string(), "major": d.major,
            "minor": d.minor, "access": d.access}),
        );
    }
    rules
}

fn rlimits(host: &HostConfig) -> Result<Vec<Value>, Error> {
    const NAMES: [&str; 16] = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    host.ulimits
        .iter()
        .map(|u| {
            let n = u.name.to_ascii_lowercase();
            if !NAMES.contains(&n.as_str()) {
                return Err(Error::Ulimit(u.name.clone()));
            }
            Ok(json!({"type": format!("RLIMIT_{}", n.to_ascii_uppercase()),
                "soft": u.soft.max(0), "hard": u.hard.max(0)}))
        })
        .collect()
}

/// Builds the `config.json` of a container.
pub fn generate(input: &SpecInput<'_>) -> Result<Value, Error> {
    let host = input.host;
    let mut args = argv(input.config);
    if args.is_empty() {
        return Err(Error::NoCommand);
    }
    // `--init` (moby `WithCommonOptions`): the init as pid 1, the command its child.
    let init = if host.init == Some(true) {
        let path = input.init.ok_or(Error::NoInit)?;
        args.splice(0..0, [INIT_PATH_IN_CONTAINER.to_owned(), "--".to_owned()]);
        Some(path)
    } else {
        None
    };
    let caps = capabilities(host, input.host_info.last_cap, input.host_info.bounding)?;
    let sec = security_opts(&host.security_opt)?;
    let privileged = host.privileged;

    // Default mounts (moby `oci/defaults.go`, `WithMounts`).
    let shm_size = format!("size={}k", host.shm_bytes() / 1024);
    let sys_ro = if privileged { "rw" } else { "ro" };
    let mut defaults = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ];
    let users = user_mounts(host)?;
    let user_dests: Vec<String> = users
        .iter()
        .filter_map(|m| m["destination"].as_str().map(str::to_owned))
        .collect();
    let user_has_dev = user_dests.iter().any(|d| d == "/dev");
    defaults.retain(|m| {
        let d = m["destination"].as_str().unwrap_or("");
        let replaced = user_dests.iter().any(|u| u == d);
        let under_user_dev = user_has_dev && d.starts_with("/dev/");
        !replaced && !under_user_dev
    });
    if host.readonly_rootfs {
        for m in &mut defaults {
            let d = m["destination"].as_str().unwrap_or("").to_owned();
            if matches!(
                d.as_str(),
                "/proc" | "/dev" | "/dev/pts" | "/dev/shm" | "/dev/mqueue"
            ) {
                continue;
            }
            if let Some(o) = m["options"].as_array_mut() {
                if !o.iter().any(|x| x == "ro") {
                    o.push(json!("ro"));
                }
            }
        }
    }
    let mut mounts = defaults;
    for (dest, src) in &input.etc_files {
        if !user_dests.iter().any(|u| u == dest) {
            mounts.push(mount(
                dest,
                "bind",
                &src.display().to_string(),
                &["rbind", "rprivate"],
            ));
        }
    }
    mounts.extend(users);
    if let Some(path) = init {
        mounts.push(mount(
            INIT_PATH_IN_CONTAINER,
            "bind",
            &path.display().to_string(),
            &["bind", "ro"],
        ));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if !host.host_network() {
        namespaces.push(json!({"type": "network"}));
    }
    if input.host_info.cgroup2 {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = resources(host);
    resources["devices"] = json!(device_rules(host, &input.devices));

    let mut sysctl: BTreeMap<String, String> = BTreeMap::new();
    if !host.host_network() {
        // moby `daemon/oci_linux.go`: unprivileged ping and low ports in a private netns.
        sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        sysctl.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
    }
    sysctl.extend(host.sysctls.clone());

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("/skiff/{}", input.id),
        "sysctl": sysctl,
        "devices": input.devices.iter().map(|d| json!({
            "path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
            "fileMode": d.file_mode, "uid": 0, "gid": 0,
        })).collect::<Vec<_>>(),
    });
    if !privileged && !sec.systempaths_unconfined {
        linux["maskedPaths"] = match &host.masked_paths {
            Some(p) => json!(p),
            None => json!(MASKED_PATHS),
        };
        linux["readonlyPaths"] = match &host.readonly_paths {
            Some(p) => json!(p),
            None => json!(READONLY_PATHS),
        };
    }
    if !privileged && !sec.seccomp_unconfined {
        let profile = match &sec.seccomp_profile {
            Some(j) => skiff_seccomp_profiles::Profile::from_json(j)?,
            None => skiff_seccomp_profiles::default_profile(),
        };
        let resolved = skiff_seccomp_profiles::resolve(
            &profile,
            &caps,
            &input.host_info.arch,
            input.host_info.kernel,
        )?;
        let v = serde_json::to_value(&resolved).unwrap_or(Value::Null);
        // An empty profile means "no seccomp" in docker.
        let has_rules = v["syscalls"].as_array().is_some_and(|a| !a.is_empty());
        if has_rules || v["defaultAction"] != json!("SCMP_ACT_ALLOW") {
            linux["seccomp"] = v;
        }
    }

    let mut process = json!({
        "terminal": input.config.tty,
        "user": {"uid": input.user.uid, "gid": input.user.gid},
        "args": args,
        "env": environment(input.config, &input.hostname),
        "cwd": if input.config.working_dir.is_empty() { "/" } else { input.config.working_dir.as_str() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": sec.no_new_privileges,
    });
    if !input.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(input.user.additional_gids);
    }
    let rl = rlimits(host)?;
    if !rl.is_empty() {
        process["rlimits"] = json!(rl);
    }
    if host.oom_score_adj != 0 {
        process["oomScoreAdj"] = json!(host.oom_score_adj);
    }
    if input.host_info.apparmor && !privileged {
        match sec.apparmor.as_deref() {
            Some("unconfined") => {}
            Some(p) => process["apparmorProfile"] = json!(p),
            None => {}
        }
    }

    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": host.readonly_rootfs},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// Resolves `-u` against the rootfs's `/etc/passwd` and `/etc/group` contents (libcontainer
/// `user.GetExecUser`): `name|uid[:group|gid]`; a numeric uid not in passwd gets gid 0; a
/// user's supplementary groups come from `/etc/group`; `--group-add` adds more.
pub fn resolve_user(
    spec: &str,
    passwd: &str,
    group: &str,
    group_add: &[String],
) -> Result<ResolvedUser, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    let mut out = ResolvedUser::default();
    let mut name = None;
    if !u.is_empty() {
        let entry = users.iter().find(|f| f[0] == u).or_else(|| {
            u.parse::<u32>()
                .ok()
                .and_then(|n| users.iter().find(|f| f[2].parse::<u32>().ok() == Some(n)))
        });
        match (entry, u.parse::<u32>()) {
            (Some(f), _) => {
                out.uid = f[2].parse().unwrap_or(0);
                out.gid = f[3].parse().unwrap_or(0);
                name = Some(f[0]);
            }
            (None, Ok(n)) => out.uid = n,
            (None, Err(_)) => {
                return Err(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                ));
            }
        }
    }
    let find_group = |g: &str| -> Result<u32, String> {
        if let Some(f) = groups.iter().find(|f| f[0] == g) {
            return Ok(f[2].parse().unwrap_or(0));
        }
        g.parse::<u32>()
            .map_err(|_| format!("unable to find group {g}: no matching entries in group file"))
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        out.gid = find_group(g)?;
    } else if let Some(n) = name {
        for f in &groups {
            if f.len() >= 4 && f[3].split(',').any(|m| m == n) {
                if let Ok(gid) = f[2].parse::<u32>() {
                    if gid != out.gid && !out.additional_gids.contains(&gid) {
                        out.additional_gids.push(gid);
                    }
                }
            }
        }
    }
    for g in group_add {
        let gid = find_group(g)?;
        if !out.additional_gids.contains(&gid) {
            out.additional_gids.push(gid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::config::{ContainerConfig, HostConfig};

    fn host_info() -> HostInfo {
        HostInfo {
            arch: "x86_64".into(),
            kernel: Some((6, 1)),
            cgroup2: false,
            apparmor: false,
            last_cap: 40,
            bounding: u64::MAX,
        }
    }

    fn spec_of(config: serde_json::Value, host: serde_json::Value) -> Result<Value, Error> {
        let config: ContainerConfig = serde_json::from_value(config).unwrap();
        let host: HostConfig = serde_json::from_value(host).unwrap();
        let input = SpecInput {
            id: "abc",
            config: &config,
            host: &host,
            user: ResolvedUser::default(),
            hostname: "abc".into(),
            etc_files: [
                ("/etc/hosts".into(), "/c/hosts".into()),
                ("/etc/resolv.conf".into(), "/c/resolv.conf".into()),
                ("/etc/hostname".into(), "/c/hostname".into()),
            ],
            devices: vec![],
            host_info: host_info(),
            init: Some(Path::new("/usr/libexec/skiff-init")),
        };
        generate(&input)
    }

    #[test]
    fn init_is_pid_1_bind_mounted_read_only() {
        let s = spec_of(json!({"Cmd": ["sleep", "1"]}), json!({"Init": true})).unwrap();
        assert_eq!(
            s["process"]["args"],
            json!(["/sbin/docker-init", "--", "sleep", "1"])
        );
        let m = mount_of(&s, "/sbin/docker-init");
        assert_eq!(m["source"], "/usr/libexec/skiff-init");
        assert_eq!(m["options"], json!(["bind", "ro"]));
        let s = spec_of(json!({"Cmd": ["sleep", "1"]}), json!({"Init": false})).unwrap();
        assert_eq!(s["process"]["args"], json!(["sleep", "1"]));
        assert!(!dests(&s).iter().any(|d| d == "/sbin/docker-init"));
    }

    fn dests(spec: &Value) -> Vec<String> {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap().to_owned())
            .collect()
    }

    fn mount_of<'a>(spec: &'a Value, dest: &str) -> &'a Value {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == dest)
            .unwrap()
    }

    #[test]
    fn docker_defaults() {
        let s = spec_of(json!({"Cmd": ["echo", "hi"], "Env": ["A=1"]}), json!({})).unwrap();
        assert_eq!(s["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(
            s["process"]["env"],
            json!([DEFAULT_PATH, "HOSTNAME=abc", "A=1"])
        );
        assert_eq!(s["process"]["cwd"], "/");
        let caps = s["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert_eq!(
            dests(&s),
            vec![
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname"
            ]
        );
        assert!(
            mount_of(&s, "/dev/shm")["options"]
                .as_array()
                .unwrap()
                .contains(&json!("size=65536k"))
        );
        assert_eq!(s["linux"]["maskedPaths"].as_array().unwrap().len(), 12);
        assert_eq!(s["linux"]["readonlyPaths"].as_array().unwrap().len(), 5);
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, vec!["pid", "ipc", "uts", "mount", "network"]);
        let devs = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(devs[0], json!({"allow": false, "access": "rwm"}));
        assert_eq!(devs.last().unwrap()["minor"], 229);
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["root"], json!({"path": "rootfs", "readonly": false}));
        assert_eq!(
            s["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
            "0"
        );
        assert_eq!(s["linux"]["cgroupsPath"], "/skiff/abc");
    }

    #[test]
    fn no_command_is_an_error() {
        assert!(matches!(
            spec_of(json!({}), json!({})),
            Err(Error::NoCommand)
        ));
    }

    #[test]
    fn tty_env_and_workdir() {
        let s = spec_of(
            json!({"Cmd": ["sh"], "Tty": true, "Env": ["PATH=/x", "HOSTNAME=mine"], "WorkingDir": "/w"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            s["process"]["env"],
            json!(["PATH=/x", "HOSTNAME=mine", "TERM=xterm"])
        );
        assert_eq!(s["process"]["terminal"], true);
        assert_eq!(s["process"]["cwd"], "/w");
    }

    #[test]
    fn caps_add_drop_all_and_privileged() {
        let h = |v| serde_json::from_value::<HostConfig>(v).unwrap();
        let c = capabilities(
            &h(json!({"CapAdd": ["CAP_SYS_ADMIN"], "CapDrop": ["CAP_NET_RAW"]})),
            40,
            u64::MAX,
        )
        .unwrap();
        assert!(c.contains(&"CAP_SYS_ADMIN".to_owned()));
        assert!(!c.contains(&"CAP_NET_RAW".to_owned()));
        assert_eq!(c.len(), 14);
        let c = capabilities(
            &h(json!({"CapDrop": ["ALL"], "CapAdd": ["chown"]})),
            40,
            u64::MAX,
        )
        .unwrap();
        assert_eq!(c, vec!["CAP_CHOWN"]);
        let c = capabilities(&h(json!({"CapAdd": ["ALL"]})), 37, u64::MAX).unwrap();
        assert_eq!(c.len(), 38);
        let c = capabilities(&h(json!({"Privileged": true})), 40, u64::MAX).unwrap();
        assert_eq!(c.len(), 41);
        // Not more than the daemon holds (CAP_SYS_RESOURCE = 24 missing here).
        let c = capabilities(&h(json!({"Privileged": true})), 40, !(1u64 << 24)).unwrap();
        assert_eq!(c.len(), 40);
        assert!(!c.contains(&"CAP_SYS_RESOURCE".to_owned()));
        assert!(capabilities(&h(json!({"CapAdd": ["CAP_NOPE"]})), 40, u64::MAX).is_err());
    }

    #[test]
    fn seccomp_follows_caps_and_opts() {
        let allowed = |s: &Value, name: &str| {
            s["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| {
                    r["action"] == "SCMP_ACT_ALLOW"
                        && r["names"].as_array().unwrap().iter().any(|n| n == name)
                })
        };
        let s = spec_of(json!({"Cmd": ["sh"]}), json!({})).unwrap();
        assert!(!allowed(&s, "unshare"));
        let s = spec_of(json!({"Cmd": ["sh"]}), json!({"CapAdd": ["CAP_SYS_ADMIN"]})).unwrap();
        assert!(allowed(&s, "unshare"));
        let s = spec_of(
            json!({"Cmd": ["sh"]}),
            json!({"SecurityOpt": ["seccomp=unconfined", "no-new-privileges"]}),
        )
        .unwrap();
        assert!(s["linux"].get("seccomp").is_none());
        assert_eq!(s["process"]["noNewPrivileges"], true);
        let custom = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        let s = spec_of(
            json!({"Cmd": ["sh"]}),
            json!({ "SecurityOpt": [format!("seccomp={custom}")] }),
        )
        .unwrap();
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(spec_of(json!({"Cmd": ["sh"]}), json!({"SecurityOpt": ["bogus"]})).is_err());
    }

    #[test]
    fn privileged_clears_confinement() {
        let s = spec_of(json!({"Cmd": ["sh"]}), json!({"Privileged": true})).unwrap();
        assert!(s["linux"].get("maskedPaths").is_none());
        assert!(s["linux"].get("seccomp").is_none());
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert!(
            mount_of(&s, "/sys")["options"]
                .as_array()
                .unwrap()
                .contains(&json!("rw"))
        );
    }

    #[test]
    fn resources_from_flags() {
        let s = spec_of(
            json!({"Cmd": ["sh"]}),
            json!({"Memory": 67108864, "NanoCpus": 1500000000, "CpuShares": 512,
                "CpusetCpus": "0", "PidsLimit": 20, "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}],
                "Sysctls": {"net.ipv4.ip_forward": "1"}}),
        )
        .unwrap();
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"], json!({"limit": 67108864, "swap": 134217728}));
        assert_eq!(r["cpu"]["quota"], 150000);
        assert_eq!(r["cpu"]["period"], 100000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["cpus"], "0");
        assert_eq!(r["pids"]["limit"], 20);
        assert_eq!(
            s["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}])
        );
        assert_eq!(s["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
        let r =
            resources(&serde_json::from_value(json!({"Memory": 100, "MemorySwap": -1})).unwrap());
        assert_eq!(r["memory"]["swap"], -1);
    }

    #[test]
    fn user_mounts_replace_defaults_and_read_only() {
        let s = spec_of(
            json!({"Cmd": ["sh"]}),
            json!({"Binds": ["/host:/data:ro", "/h2:/dev/shm"], "Tmpfs": {"/run": "size=1m"},
                "ReadonlyRootfs": true, "ShmSize": 1048576}),
        )
        .unwrap();
        let d = dests(&s);
        assert_eq!(d.iter().filter(|x| *x == "/dev/shm").count(), 1);
        assert_eq!(mount_of(&s, "/dev/shm")["type"], "bind");
        assert_eq!(
            mount_of(&s, "/data")["options"],
            json!(["rbind", "ro", "rprivate"])
        );
        assert_eq!(
            mount_of(&s, "/run")["options"],
            json!(["nosuid", "nodev", "noexec", "size=1m"])
        );
        assert_eq!(s["root"]["readonly"], true);
        assert!(
            mount_of(&s, "/sys/fs/cgroup")["options"]
                .as_array()
                .unwrap()
                .contains(&json!("ro"))
        );
        assert!(
            !mount_of(&s, "/proc")["options"]
                .as_array()
                .unwrap()
                .contains(&json!("ro"))
        );
        assert!(spec_of(json!({"Cmd": ["sh"]}), json!({"Binds": ["vol:/data"]})).is_err());
    }

    #[test]
    fn host_network_keeps_the_host_netns() {
        let s = spec_of(json!({"Cmd": ["sh"]}), json!({"NetworkMode": "host"})).unwrap();
        assert!(
            !s["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        );
        assert!(s["linux"]["sysctl"].as_object().unwrap().is_empty());
    }

    #[test]
    fn resolves_users() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n";
        let group = "root:x:0:\nwww:x:33:\nstaff:x:50:www\n";
        let u = resolve_user("", passwd, group, &[]).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        let u = resolve_user("www", passwd, group, &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (33, 33, vec![50])
        );
        let u = resolve_user("1000", passwd, group, &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 0));
        let u = resolve_user("1000:staff", passwd, group, &["7".into()]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 50, vec![7]));
        assert!(resolve_user("nobody", passwd, group, &[]).is_err());
    }
}
