//! Namespaces (config-linux.md#namespaces) and the UTS names (config.md#hostname,
//! config.md#domainname): each type new versus the runtime's, inherited when absent, joined
//! by path, and the errors the spec requires.

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::{case, ensure_failed};
use crate::case::{Case, skip};
use crate::ctx::Ctx;
use crate::host;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "namespaces.new_pid",
            "config-linux.md#namespaces",
            "pid processes inside the container will only be able to see other processes inside the same container ... If path is not specified, the runtime MUST create a new container namespace of type type.",
            new_pid
        ),
        case!(
            "namespaces.new_network",
            "config-linux.md#namespaces",
            "network the container will have its own network stack. ... If path is not specified, the runtime MUST create a new container namespace of type type.",
            new_network
        ),
        case!(
            "namespaces.new_mount",
            "config-linux.md#namespaces",
            "mount the container will have an isolated mount table. ... If path is not specified, the runtime MUST create a new container namespace of type type.",
            new_mount
        ),
        case!(
            "namespaces.new_ipc",
            "config-linux.md#namespaces",
            "ipc processes inside the container will only be able to communicate to other processes inside the same container via system level IPC.",
            new_ipc
        ),
        case!(
            "namespaces.new_uts",
            "config-linux.md#namespaces",
            "uts the container will be able to have its own hostname and domain name.",
            new_uts
        ),
        case!(
            "namespaces.new_cgroup",
            "config-linux.md#namespaces",
            "cgroup the container will have an isolated view of the cgroup hierarchy.",
            new_cgroup
        ),
        case!(
            "namespaces.new_user",
            "config-linux.md#user-namespace-mappings",
            "user the container will be able to remap user and group IDs from the host to local users and groups within the container. ... uidMappings (array of objects, OPTIONAL) describes the user namespace uid mappings from the host to the container.",
            new_user
        ),
        case!(
            "userns.multiple_ranges",
            "config-linux.md#user-namespace-mappings",
            "uidMappings (array of objects, OPTIONAL) describes the user namespace uid mappings from the host to the container. ... containerID (uint32, REQUIRED) - is the starting uid/gid in the container. hostID (uint32, REQUIRED) - is the starting uid/gid on the host to be mapped to containerID. size (uint32, REQUIRED) - is the number of ids to be mapped.",
            userns_multiple_ranges
        ),
        case!(
            "userns.file_owner",
            "config-linux.md#user-namespace-mappings",
            "hostID (uint32, REQUIRED) - is the starting uid/gid on the host to be mapped to containerID. (A file the container's root creates is owned, on the host, by the hostID its uid 0 maps to.)",
            userns_file_owner
        ),
        case!(
            "namespaces.new_time",
            "config-linux.md#namespaces",
            "time the container will be able to have its own clocks.",
            new_time
        ),
        case!(
            "namespaces.inherit_when_absent",
            "config-linux.md#namespaces",
            "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime namespace of that type.",
            inherit_when_absent
        ),
        case!(
            "namespaces.join_by_path",
            "config-linux.md#namespaces",
            "path (string, OPTIONAL) - namespace file. ... The runtime MUST place the container process in the namespace associated with that path.",
            join_by_path
        ),
        case!(
            "namespaces.join_pid_by_path",
            "config-linux.md#namespaces",
            "The runtime MUST place the container process in the namespace associated with that path.",
            join_pid_by_path
        ),
        case!(
            "namespaces.path_wrong_type_fails",
            "config-linux.md#namespaces",
            "The runtime MUST generate an error if path is not associated with a namespace of type type.",
            path_wrong_type_fails
        ),
        case!(
            "namespaces.duplicate_fails",
            "config-linux.md#namespaces",
            "If a namespaces field contains duplicated namespaces with same type, the runtime MUST generate an error.",
            duplicate_fails
        ),
        case!(
            "uts.hostname",
            "config.md#hostname",
            "hostname (string, OPTIONAL) specifies the container's hostname as seen by processes running inside the container.",
            hostname
        ),
        case!(
            "uts.domainname",
            "config.md#domainname",
            "domainname (string, OPTIONAL) specifies the container's domainname as seen by processes running inside the container.",
            domainname
        ),
    ]
}

/// Runs the probe with a new namespace of `oci_type` and checks it differs from the runtime's.
fn new_ns(ctx: &mut Ctx, oci_type: &str) -> anyhow::Result<crate::probe::Report> {
    let name = host::proc_ns_name(oci_type);
    if !host::has_ns(name) {
        return Err(skip(format!(
            "the kernel has no {oci_type} namespaces (/proc/self/ns/{name})"
        )));
    }
    let mut b = ctx.bundle(&[])?;
    b.namespace(oci_type, None);
    if oci_type == "user" {
        b.config["linux"]["uidMappings"] =
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        b.config["linux"]["gidMappings"] =
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    }
    let r = ctx.probe(&mut b, &[])?;
    let ours = host::ns_link("self", name)?;
    let theirs = r
        .namespace(name)
        .with_context(|| format!("the probe saw no {name} namespace"))?;
    ensure!(
        theirs != ours,
        "the container is in the runtime's {oci_type} namespace {ours}"
    );
    Ok(r)
}

fn new_pid(ctx: &mut Ctx) -> anyhow::Result<()> {
    let r = new_ns(ctx, "pid")?;
    ensure!(
        r.u64("pid")? == 1,
        "the container process is pid {} in its pid namespace, not 1",
        r.u64("pid")?
    );
    Ok(())
}

fn new_network(ctx: &mut Ctx) -> anyhow::Result<()> {
    new_ns(ctx, "network").map(drop)
}

fn new_mount(ctx: &mut Ctx) -> anyhow::Result<()> {
    new_ns(ctx, "mount").map(drop)
}

fn new_ipc(ctx: &mut Ctx) -> anyhow::Result<()> {
    new_ns(ctx, "ipc").map(drop)
}

fn new_uts(ctx: &mut Ctx) -> anyhow::Result<()> {
    new_ns(ctx, "uts").map(drop)
}

fn new_cgroup(ctx: &mut Ctx) -> anyhow::Result<()> {
    new_ns(ctx, "cgroup").map(drop)
}

fn new_time(ctx: &mut Ctx) -> anyhow::Result<()> {
    new_ns(ctx, "time").map(drop)
}

fn new_user(ctx: &mut Ctx) -> anyhow::Result<()> {
    let r = new_ns(ctx, "user")?;
    let uid_map: Vec<String> = r
        .str("uid_map")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ensure!(
        uid_map == ["0", "100000", "65536"],
        "uid_map is {:?}",
        r.str("uid_map")?
    );
    let gid_map: Vec<String> = r
        .str("gid_map")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ensure!(
        gid_map == ["0", "100000", "65536"],
        "gid_map is {:?}",
        r.str("gid_map")?
    );
    ensure!(
        r.u64("uid")? == 0,
        "uid in the container is {}, want 0",
        r.u64("uid")?
    );
    Ok(())
}

fn inherit_when_absent(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    for t in ["network", "ipc", "uts"] {
        b.remove_namespace(t);
    }
    b.config.as_object_mut().map(|c| c.remove("hostname"));
    let r = ctx.probe(&mut b, &[])?;
    for name in ["net", "ipc", "uts"] {
        let ours = host::ns_link("self", name)?;
        let theirs = r.namespace(name).unwrap_or_default();
        ensure!(
            theirs == ours,
            "{name} namespace is {theirs}, the runtime's is {ours}"
        );
    }
    Ok(())
}

fn join_by_path(ctx: &mut Ctx) -> anyhow::Result<()> {
    let first = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = ctx.start_running(&first)?;
    let mut b = ctx.bundle(&[])?;
    for (t, name) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        b.namespace(t, Some(&format!("/proc/{pid}/ns/{name}")));
    }
    b.config.as_object_mut().map(|c| c.remove("hostname"));
    let r = ctx.probe(&mut b, &[])?;
    for name in ["net", "ipc", "uts"] {
        let want = host::ns_link(&pid, name)?;
        let got = r.namespace(name).unwrap_or_default();
        ensure!(
            got == want,
            "{name} namespace is {got}, want the first container's {want}"
        );
    }
    Ok(())
}

fn join_pid_by_path(ctx: &mut Ctx) -> anyhow::Result<()> {
    let first = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = ctx.start_running(&first)?;
    let mut b = ctx.bundle(&[])?;
    b.namespace("pid", Some(&format!("/proc/{pid}/ns/pid")));
    let r = ctx.probe(&mut b, &[])?;
    let want = host::ns_link(&pid, "pid")?;
    let got = r.namespace("pid").unwrap_or_default();
    ensure!(
        got == want,
        "pid namespace is {got}, want the first container's {want}"
    );
    ensure!(
        r.u64("pid")? != 1,
        "the joining process is pid 1: it is not in the joined namespace"
    );
    Ok(())
}

fn path_wrong_type_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["true"])?;
    // An ipc namespace file given as the network namespace.
    b.namespace("network", Some("/proc/self/ns/ipc"));
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    ensure_failed(
        &out,
        "create with an ipc namespace path as the network namespace",
    )
}

fn duplicate_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["true"])?;
    crate::bundle::array_at(&mut b.config["linux"]["namespaces"])
        .push(json!({ "type": "network" }));
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    ensure_failed(&out, "create with two network namespace entries")
}

fn hostname(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["hostname"] = json!("oc-host");
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.str("hostname")? == "oc-host",
        "hostname is {:?}",
        r.str("hostname")?
    );
    Ok(())
}

fn domainname(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.config["domainname"] = json!("oc.example");
    let r = ctx.probe(&mut b, &[])?;
    ensure!(
        r.str("domainname")? == "oc.example",
        "domainname is {:?}",
        r.str("domainname")?
    );
    Ok(())
}

/// A bundle with a new user namespace and the given (containerID, hostID, size) ranges.
fn userns_bundle(
    ctx: &mut Ctx,
    uids: &[(u32, u32, u32)],
    gids: &[(u32, u32, u32)],
) -> anyhow::Result<crate::bundle::Bundle> {
    if !host::has_ns("user") {
        return Err(skip(
            "the kernel has no user namespaces (/proc/self/ns/user)",
        ));
    }
    let mut b = ctx.bundle(&[])?;
    b.namespace("user", None);
    let ranges = |r: &[(u32, u32, u32)]| -> serde_json::Value {
        r.iter()
            .map(|(c, h, n)| json!({ "containerID": c, "hostID": h, "size": n }))
            .collect()
    };
    b.config["linux"]["uidMappings"] = ranges(uids);
    b.config["linux"]["gidMappings"] = ranges(gids);
    Ok(b)
}

/// /proc/self/{u,g}id_map as (inside, outside, count) lines.
fn parse_map(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(|n| n.parse::<u64>().ok());
            Some((w.next()??, w.next()??, w.next()??))
        })
        .collect()
}

fn userns_multiple_ranges(ctx: &mut Ctx) -> anyhow::Result<()> {
    let uids = [
        (0, 100_000, 1000),
        (1000, 300_000, 1),
        (1001, 101_001, 64_535),
    ];
    let gids = [(0, 200_000, 5), (5, 400_005, 1), (6, 200_006, 65_530)];
    let mut b = userns_bundle(ctx, &uids, &gids)?;
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 5 });
    let r = ctx.probe(&mut b, &[])?;
    for (what, got, want) in [
        ("uid_map", r.str("uid_map")?, &uids[..]),
        ("gid_map", r.str("gid_map")?, &gids[..]),
    ] {
        let mut got = parse_map(got);
        got.sort_unstable();
        let want: Vec<(u64, u64, u64)> = want
            .iter()
            .map(|(c, h, n)| (u64::from(*c), u64::from(*h), u64::from(*n)))
            .collect();
        ensure!(
            got == want,
            "{what} in the container is {got:?}, want the configured ranges {want:?}"
        );
    }
    ensure!(
        r.u64("uid")? == 1000 && r.u64("gid")? == 5,
        "the process runs as {}:{}, want 1000:5 (ids of the second ranges)",
        r.u64("uid")?,
        r.u64("gid")?
    );
    Ok(())
}

fn userns_file_owner(ctx: &mut Ctx) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let (host_uid, host_gid) = (100_000, 200_000);
    let mut b = userns_bundle(ctx, &[(0, host_uid, 65_536)], &[(0, host_gid, 65_536)])?;
    // A directory the container's root may write to: owned by the host ids of its uid/gid 0
    // (the runtime SHOULD NOT chown the rootfs for the mapping, so the suite does it).
    let dir = b.mkdir_in_rootfs("/owned")?;
    nix::unistd::chown(
        &dir,
        Some(nix::unistd::Uid::from_raw(host_uid)),
        Some(nix::unistd::Gid::from_raw(host_gid)),
    )?;
    b.sh("touch /owned/by-root && mkdir /owned/dir-by-root");
    ctx.run_to_exit(&b)?;
    for name in ["by-root", "dir-by-root"] {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path)
            .with_context(|| format!("the container's root could not create /owned/{name}"))?;
        ensure!(
            (meta.uid(), meta.gid()) == (host_uid, host_gid),
            "/owned/{name} created by the container's root is owned by {}:{} on the host, \
             want the mapped {host_uid}:{host_gid}",
            meta.uid(),
            meta.gid()
        );
    }
    Ok(())
}
