//! The container's file system: root (config.md#root), mounts (config.md#mounts), devices
//! (config-linux.md#devices, runtime-linux.md), masked and read-only paths, and sysctl.

use std::fs;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::case;
use crate::case::{Case, skip};
use crate::ctx::Ctx;
use crate::host::{self, HostMount};
use crate::probe::{MountInfo, Report};

const EROFS: i64 = 30;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "root.readonly",
            "config.md#root",
            "readonly (bool, OPTIONAL) If true then the root filesystem MUST be read-only inside the container, defaults to false.",
            root_readonly
        ),
        case!(
            "root.readwrite",
            "config.md#root",
            "readonly (bool, OPTIONAL) If true then the root filesystem MUST be read-only inside the container, defaults to false.",
            root_readwrite
        ),
        case!(
            "mounts.tmpfs_options",
            "config.md#mounts",
            "type (string, OPTIONAL) The type of the filesystem to be mounted. ... options (array of strings, OPTIONAL) Mount options of the filesystem to be used.",
            mounts_tmpfs_options
        ),
        case!(
            "mounts.bind_readonly",
            "config.md#mounts",
            "source (string, OPTIONAL) A device name, but can also be a file or directory name for bind mounts ... options ... Mount options of the filesystem to be used.",
            mounts_bind_readonly
        ),
        case!(
            "mounts.order",
            "config.md#mounts",
            "The runtime MUST mount entries in the listed order.",
            mounts_order
        ),
        case!(
            "mounts.rootfs_propagation",
            "config-linux.md#rootfs-mount-propagation",
            "rootfsPropagation (string, OPTIONAL) sets the rootfs's mount propagation. Its value is either shared, slave, private or unbindable.",
            mounts_rootfs_propagation
        ),
        case!(
            "mounts.bind_propagation",
            "config.md#linux-mount-options",
            "rshared | MUST | Bind mount propagation; rslave | MUST | Bind mount propagation; rprivate | MUST | Bind mount propagation",
            mounts_bind_propagation
        ),
        case!(
            "mounts.recursive_readonly",
            "config.md#linux-mount-options",
            "rro | SHOULD | Recursive ro. These AT_RECURSIVE options need kernel 5.12 or later. See mount_setattr(2)",
            mounts_recursive_readonly
        ),
        case!(
            "mounts.bind_file",
            "config.md#mounts",
            "source (string, OPTIONAL) A device name, but can also be a file or directory name for bind mounts or a dummy. ... A mount is a bind mount if it has either bind or rbind in the options.",
            mounts_bind_file
        ),
        case!(
            "mounts.bind_flags",
            "config.md#linux-mount-options",
            "nosuid | MUST; nodev | MUST; noexec | MUST (mount(8) filesystem-independent options)",
            mounts_bind_flags
        ),
        case!(
            "devices.defaults",
            "config-linux.md#default-devices",
            "the runtime MUST also supply: /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty, ... /dev/ptmx. A bind-mount or symlink of the container's /dev/pts/ptmx.",
            devices_defaults
        ),
        case!(
            "devices.dev_symlinks",
            "runtime-linux.md#dev-symbolic-links",
            "runtimes MUST create the following symlinks if the source file exists after processing mounts: /proc/self/fd -> /dev/fd, /proc/self/fd/0 -> /dev/stdin, /proc/self/fd/1 -> /dev/stdout, /proc/self/fd/2 -> /dev/stderr",
            devices_dev_symlinks
        ),
        case!(
            "devices.linux_devices",
            "config-linux.md#devices",
            "devices (array of objects, OPTIONAL) lists devices that MUST be available in the container. ... fileMode (uint32, OPTIONAL) - file mode for the device.",
            devices_linux_devices
        ),
        case!(
            "paths.masked",
            "config-linux.md#masked-paths",
            "maskedPaths (array of strings, OPTIONAL) will mask over the provided paths inside the container so that they cannot be read.",
            paths_masked
        ),
        case!(
            "paths.readonly",
            "config-linux.md#readonly-paths",
            "readonlyPaths (array of strings, OPTIONAL) will set the provided paths as readonly inside the container.",
            paths_readonly
        ),
        case!(
            "sysctl.namespaced",
            "config-linux.md#sysctl",
            "sysctl (object, OPTIONAL) allows kernel parameters to be modified at runtime for the container.",
            sysctl_namespaced
        ),
    ]
}

/// Looks up a path entry, requiring it to exist.
fn existing<'r>(r: &'r Report, path: &str) -> anyhow::Result<&'r Value> {
    let p = r.path(path)?;
    ensure!(
        p["exists"] == true,
        "{path} does not exist in the container: {p}"
    );
    Ok(p)
}

fn root_readonly(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["root"]["readonly"] = json!(true);
    let r = ctx.probe(&mut b, &["/", "/bin/busybox"])?;
    let root = existing(&r, "/")?;
    ensure!(
        root["readonly_fs"] == true,
        "/ is not on a read-only mount: {root}"
    );
    ensure!(
        root["create_errno"] == EROFS,
        "creating a file in / did not fail with EROFS: {root}"
    );
    let bb = existing(&r, "/bin/busybox")?;
    ensure!(
        bb["write_errno"] == EROFS,
        "opening /bin/busybox for writing did not fail with EROFS: {bb}"
    );
    Ok(())
}

fn root_readwrite(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["root"]["readonly"] = json!(false);
    let r = ctx.probe(&mut b, &["/"])?;
    let root = existing(&r, "/")?;
    ensure!(root["readonly_fs"] == false, "/ is read-only: {root}");
    ensure!(
        root["create_errno"] == 0,
        "cannot create a file in /: {root}"
    );
    Ok(())
}

fn mounts_tmpfs_options(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.mkdir_in_rootfs("/mnt/t")?;
    b.mount(
        "/mnt/t",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "noexec", "size=1m", "mode=750"],
    );
    let r = ctx.probe(&mut b, &["/mnt/t"])?;
    let m = r
        .mountinfo()
        .into_iter()
        .rfind(|m| m.mount_point == "/mnt/t")
        .context("no mount at /mnt/t in the container's mountinfo")?;
    ensure!(m.fs_type == "tmpfs", "/mnt/t is {}, not tmpfs", m.fs_type);
    for opt in ["nosuid", "nodev", "noexec"] {
        ensure!(
            m.has_option(opt),
            "/mnt/t lacks {opt}: {:?}",
            m.mount_options
        );
    }
    // The file system's own options, as the kernel reports them. (Not the directory's mode
    // from stat: runc chmods a tmpfs to the mode of the directory it covers.)
    for opt in ["size=1024k", "mode=750"] {
        ensure!(
            m.has_super_option(opt),
            "/mnt/t lacks {opt}: {:?}",
            m.super_options
        );
    }
    Ok(())
}

fn mounts_bind_readonly(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let share = ctx.dir().join("share");
    fs::create_dir_all(&share)?;
    fs::write(share.join("hello"), "hi from the host")?;
    b.mkdir_in_rootfs("/mnt/b")?;
    let src = share.to_str().context("utf-8")?.to_owned();
    b.mount("/mnt/b", "bind", &src, &["rbind", "ro"]);
    let r = ctx.probe(&mut b, &["/mnt/b/hello"])?;
    let f = existing(&r, "/mnt/b/hello")?;
    ensure!(
        f["content"] == "hi from the host",
        "bind-mounted file reads {}",
        f["content"]
    );
    ensure!(
        f["write_errno"] == EROFS,
        "the ro bind mount is writable: {f}"
    );
    let m = r
        .mountinfo()
        .into_iter()
        .rfind(|m| m.mount_point == "/mnt/b")
        .context("no mount at /mnt/b")?;
    ensure!(
        m.has_option("ro"),
        "/mnt/b is not ro: {:?}",
        m.mount_options
    );
    ensure!(
        fs::read_to_string(share.join("hello"))? == "hi from the host",
        "the host file changed"
    );
    Ok(())
}

fn mounts_order(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.mkdir_in_rootfs("/mnt/o")?;
    b.mount("/mnt/o", "tmpfs", "tmpfs", &["size=1m"]);
    b.mount("/mnt/o", "tmpfs", "tmpfs", &["size=2m"]);
    let r = ctx.probe(&mut b, &[])?;
    let at: Vec<_> = r
        .mountinfo()
        .into_iter()
        .filter(|m| m.mount_point == "/mnt/o")
        .collect();
    ensure!(
        at.len() == 2,
        "want two mounts at /mnt/o, mountinfo has {}",
        at.len()
    );
    ensure!(
        at[0].has_super_option("size=1024k") && at[1].has_super_option("size=2048k"),
        "mounts at /mnt/o are not in the listed order (size=1m then size=2m on top): {:?} then {:?}",
        at[0].super_options,
        at[1].super_options
    );
    Ok(())
}

fn mounts_rootfs_propagation(ctx: &mut Ctx) -> anyhow::Result<()> {
    for (propagation, want) in [("shared", Some("shared:")), ("private", None)] {
        let mut b = ctx.bundle(&[])?;
        b.config["linux"]["rootfsPropagation"] = json!(propagation);
        let r = ctx.probe(&mut b, &[])?;
        let root = r
            .mountinfo()
            .into_iter()
            .rfind(|m| m.mount_point == "/")
            .context("no mount at / in the container's mountinfo")?;
        let peers: Vec<&String> = root
            .optional
            .iter()
            .filter(|o| o.starts_with("shared:") || o.starts_with("master:"))
            .collect();
        match want {
            Some(prefix) => ensure!(
                root.optional.iter().any(|o| o.starts_with(prefix)),
                "rootfsPropagation {propagation}: / has propagation fields {:?}",
                root.optional
            ),
            None => ensure!(
                peers.is_empty(),
                "rootfsPropagation {propagation}: / still has peers {peers:?}"
            ),
        }
    }
    Ok(())
}

fn devices_defaults(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let devices = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let mut paths: Vec<&str> = devices.iter().map(|d| d.0).collect();
    paths.push("/dev/ptmx");
    let r = ctx.probe(&mut b, &paths)?;
    for (path, major, minor) in devices {
        let p = existing(&r, path)?;
        ensure!(
            p["type"] == "char" && p["major"] == major && p["minor"] == minor,
            "{path} is not the character device {major}:{minor}: {p}"
        );
        let mode = p["mode"].as_u64().unwrap_or_default();
        ensure!(
            mode & 0o666 == 0o666,
            "{path} has mode {mode:o}: not read-write for everyone"
        );
    }
    let ptmx = existing(&r, "/dev/ptmx")?;
    let ok = (ptmx["type"] == "symlink"
        && ptmx["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("pts/ptmx")))
        || (ptmx["type"] == "char" && ptmx["major"] == 5 && ptmx["minor"] == 2);
    ensure!(
        ok,
        "/dev/ptmx is neither a symlink to pts/ptmx nor a bind of it: {ptmx}"
    );
    Ok(())
}

fn devices_dev_symlinks(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    let links = [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    let paths: Vec<&str> = links.iter().map(|l| l.0).collect();
    let r = ctx.probe(&mut b, &paths)?;
    for (path, target) in links {
        let p = existing(&r, path)?;
        ensure!(
            p["type"] == "symlink" && p["target"] == target,
            "{path} is not a symlink to {target}: {p}"
        );
    }
    Ok(())
}

fn devices_linux_devices(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/oc-null", "type": "c", "major": 1, "minor": 3,
          "fileMode": 0o640, "uid": 0, "gid": 0 },
        { "path": "/dev/oc-fifo", "type": "p", "fileMode": 0o600, "uid": 0, "gid": 0 },
    ]);
    let r = ctx.probe(&mut b, &["/dev/oc-null", "/dev/oc-fifo"])?;
    let null = existing(&r, "/dev/oc-null")?;
    ensure!(
        null["type"] == "char" && null["major"] == 1 && null["minor"] == 3,
        "/dev/oc-null is not the character device 1:3: {null}"
    );
    ensure!(
        null["mode"] == 0o640,
        "/dev/oc-null has mode {:o}, want 640",
        null["mode"].as_u64().unwrap_or_default()
    );
    let fifo = existing(&r, "/dev/oc-fifo")?;
    ensure!(fifo["type"] == "fifo", "/dev/oc-fifo is not a fifo: {fifo}");
    Ok(())
}

fn paths_masked(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.write_in_rootfs("/secret-file", "secret")?;
    b.write_in_rootfs("/secret-dir/inner", "secret")?;
    // A /proc file that exists on this host (kernels differ: /proc/kcore needs CONFIG_PROC_KCORE).
    let proc_file = ["/proc/kcore", "/proc/timer_list", "/proc/keys"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/proc/keys");
    b.config["linux"]["maskedPaths"] =
        json!(["/secret-file", "/secret-dir", proc_file, "/no-such-path"]);
    let r = ctx.probe(&mut b, &["/secret-file", "/secret-dir", proc_file])?;
    for path in ["/secret-file", proc_file] {
        let p = existing(&r, path)?;
        let empty = p["content"].as_str().is_some_and(str::is_empty);
        let unreadable = p.get("read_errno").is_some();
        let is_null = p["type"] == "char" && p["major"] == 1 && p["minor"] == 3;
        ensure!(
            empty || unreadable || is_null,
            "{path} can still be read: {p}"
        );
    }
    let dir = existing(&r, "/secret-dir")?;
    ensure!(
        dir["entries"] == 0,
        "the masked directory still lists entries: {dir}"
    );
    Ok(())
}

fn paths_readonly(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.write_in_rootfs("/ro-dir/file", "x")?;
    b.config["linux"]["readonlyPaths"] = json!(["/ro-dir", "/proc/sys"]);
    let r = ctx.probe(&mut b, &["/ro-dir", "/ro-dir/file", "/proc/sys", "/"])?;
    let dir = existing(&r, "/ro-dir")?;
    ensure!(
        dir["readonly_fs"] == true && dir["create_errno"] == EROFS,
        "/ro-dir is writable: {dir}"
    );
    let file = existing(&r, "/ro-dir/file")?;
    ensure!(
        file["write_errno"] == EROFS,
        "/ro-dir/file is writable: {file}"
    );
    let sys = existing(&r, "/proc/sys")?;
    ensure!(
        sys["readonly_fs"] == true,
        "/proc/sys is not read-only: {sys}"
    );
    let root = existing(&r, "/")?;
    ensure!(
        root["readonly_fs"] == false,
        "the root became read-only too: {root}"
    );
    Ok(())
}

fn sysctl_namespaced(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "123456789",
    });
    let r = ctx.probe(
        &mut b,
        &["/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax"],
    )?;
    let fwd = existing(&r, "/proc/sys/net/ipv4/ip_forward")?;
    ensure!(
        fwd["content"] == "1\n",
        "net.ipv4.ip_forward is {}",
        fwd["content"]
    );
    let shm = existing(&r, "/proc/sys/kernel/shmmax")?;
    ensure!(
        shm["content"] == "123456789\n",
        "kernel.shmmax is {}",
        shm["content"]
    );
    Ok(())
}

/// The last (topmost) mount at `point` in the container's mountinfo.
fn mount_at(r: &Report, point: &str) -> anyhow::Result<MountInfo> {
    r.mountinfo()
        .into_iter()
        .rfind(|m| m.mount_point == point)
        .with_context(|| format!("no mount at {point} in the container's mountinfo"))
}

fn propagation(m: &MountInfo) -> (bool, bool) {
    let shared = m.optional.iter().any(|o| o.starts_with("shared:"));
    let slave = m.optional.iter().any(|o| o.starts_with("master:"));
    (shared, slave)
}

fn mounts_bind_propagation(ctx: &mut Ctx) -> anyhow::Result<()> {
    // The source is a shared mount in the runtime's namespace, so each option has something to
    // change: a bind of it starts out in (or as a slave of) its peer group.
    let share = ctx.dir().join("share");
    fs::create_dir_all(&share)?;
    let _host = HostMount::shared_bind(&share)?;
    let src = share.to_str().context("utf-8")?.to_owned();
    let mut b = ctx.bundle(&[])?;
    // The root as a slave of the runtime's mounts, as runc does by default: the copy of the
    // shared source becomes its slave, so a bind that ignored its option would show master:.
    b.config["linux"]["rootfsPropagation"] = json!("slave");
    for opt in ["rshared", "rslave", "rprivate"] {
        let dest = format!("/mnt/{opt}");
        b.mkdir_in_rootfs(&dest)?;
        b.mount(&dest, "bind", &src, &["rbind", opt]);
    }
    let r = ctx.probe(&mut b, &[])?;
    let m = mount_at(&r, "/mnt/rshared")?;
    ensure!(
        propagation(&m).0,
        "the rshared bind mount is in no peer group (no shared:N): {:?}",
        m.optional
    );
    let m = mount_at(&r, "/mnt/rslave")?;
    let (shared, slave) = propagation(&m);
    ensure!(
        slave && !shared,
        "the rslave bind mount of a shared source is not a plain slave (want master:N and no \
         shared:N): {:?}",
        m.optional
    );
    let m = mount_at(&r, "/mnt/rprivate")?;
    ensure!(
        propagation(&m) == (false, false),
        "the rprivate bind mount still propagates: {:?}",
        m.optional
    );
    Ok(())
}

fn mounts_recursive_readonly(ctx: &mut Ctx) -> anyhow::Result<()> {
    if !host::kernel_at_least(5, 12) {
        return Err(skip(
            "rro needs mount_setattr(2) with AT_RECURSIVE, kernel 5.12 or later",
        ));
    }
    // A source with a submount: `ro` on an rbind leaves the submount writable, `rro` does not.
    let share = ctx.dir().join("share");
    let sub = share.join("sub");
    fs::create_dir_all(&sub)?;
    let _sub = HostMount::tmpfs(&sub)?;
    let src = share.to_str().context("utf-8")?.to_owned();
    let mut b = ctx.bundle(&[])?;
    b.mkdir_in_rootfs("/mnt/rro")?;
    b.mount("/mnt/rro", "bind", &src, &["rbind", "rro"]);
    let r = ctx.probe(&mut b, &["/mnt/rro", "/mnt/rro/sub"])?;
    for path in ["/mnt/rro", "/mnt/rro/sub"] {
        let p = existing(&r, path)?;
        ensure!(
            p["readonly_fs"] == true && p["create_errno"] == EROFS,
            "{path} is writable under an rro bind mount: {p}"
        );
    }
    ensure!(
        fs::read_dir(&sub)?.next().is_none(),
        "a file appeared in the host's submount"
    );
    Ok(())
}

fn mounts_bind_file(ctx: &mut Ctx) -> anyhow::Result<()> {
    let host_file = ctx.dir().join("host-file");
    fs::write(&host_file, "a single host file")?;
    let mut b = ctx.bundle(&[])?;
    // The destination does not exist in the rootfs: the runtime creates the mount point (as
    // a file, since the source is one).
    let src = host_file.to_str().context("utf-8")?.to_owned();
    b.mount("/etc/oc-bound", "bind", &src, &["bind"]);
    let r = ctx.probe(&mut b, &["/etc/oc-bound"])?;
    let f = existing(&r, "/etc/oc-bound")?;
    ensure!(f["type"] == "file", "/etc/oc-bound is not a file: {f}");
    ensure!(
        f["content"] == "a single host file",
        "/etc/oc-bound reads {}",
        f["content"]
    );
    mount_at(&r, "/etc/oc-bound")?;
    Ok(())
}

fn mounts_bind_flags(ctx: &mut Ctx) -> anyhow::Result<()> {
    let share = ctx.dir().join("share");
    fs::create_dir_all(&share)?;
    let src = share.to_str().context("utf-8")?.to_owned();
    let mut b = ctx.bundle(&[])?;
    b.mkdir_in_rootfs("/mnt/flags")?;
    b.mount(
        "/mnt/flags",
        "bind",
        &src,
        &["rbind", "nosuid", "nodev", "noexec"],
    );
    let r = ctx.probe(&mut b, &[])?;
    let m = mount_at(&r, "/mnt/flags")?;
    for opt in ["nosuid", "nodev", "noexec"] {
        ensure!(
            m.has_option(opt),
            "/mnt/flags lacks {opt}: {:?}",
            m.mount_options
        );
    }
    Ok(())
}
