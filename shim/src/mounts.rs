//! The rootfs mounts containerd passes in Create (the snapshotter's mounts: `overlay` with
//! lowerdir/upperdir/workdir, or a `bind` of a single layer), mounted on `<bundle>/rootfs`
//! by the shim, which also owns unmounting them at Delete (containerd's runtime v2 contract,
//! `[CD]/core/mount/mount_linux.go` for the option parsing mirrored here).

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Error, Result};

/// One mount from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type (`overlay`, `bind`, …).
    pub kind: String,
    /// Source.
    pub source: String,
    /// Options, containerd style (flags and `key=value` data mixed).
    pub options: Vec<String>,
}

/// Flags and data split out of containerd's option list.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    flags: MsFlags,
    data: String,
}

/// Option words that are mount flags: (word, flag, whether the word clears it).
const FLAG_OPTIONS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, false),
    ("rw", MsFlags::MS_RDONLY, true),
    ("bind", MsFlags::MS_BIND, false),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), false),
    ("nosuid", MsFlags::MS_NOSUID, false),
    ("suid", MsFlags::MS_NOSUID, true),
    ("nodev", MsFlags::MS_NODEV, false),
    ("dev", MsFlags::MS_NODEV, true),
    ("noexec", MsFlags::MS_NOEXEC, false),
    ("exec", MsFlags::MS_NOEXEC, true),
    ("sync", MsFlags::MS_SYNCHRONOUS, false),
    ("async", MsFlags::MS_SYNCHRONOUS, true),
    ("noatime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, false),
    ("remount", MsFlags::MS_REMOUNT, false),
    ("defaults", MsFlags::empty(), false),
];

fn parse(options: &[String]) -> Parsed {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options {
        match FLAG_OPTIONS.iter().find(|(word, _, _)| word == option) {
            Some((_, flag, true)) => flags.remove(*flag),
            Some((_, flag, false)) => flags.insert(*flag),
            None => data.push(option.as_str()),
        }
    }
    Parsed {
        flags,
        data: data.join(","),
    }
}

/// Mounts `mounts` in order on `target`; on failure unmounts what it mounted.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..i {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let parsed = parse(&m.options);
    let fail = |e: nix::Error| {
        Error::io(
            format!(
                "mounting {} ({}) on {} with {:?}",
                m.source,
                m.kind,
                target.display(),
                m.options
            ),
            e.into(),
        )
    };
    let data = (!parsed.data.is_empty()).then_some(parsed.data.as_str());
    let kind = (m.kind != "bind").then_some(m.kind.as_str());
    let flags = if m.kind == "bind" {
        parsed.flags | MsFlags::MS_BIND
    } else {
        parsed.flags
    };
    mount(Some(m.source.as_str()), target, kind, flags, data).map_err(fail)?;
    // A bind mount ignores MS_RDONLY on the first call: remount it read-only (mount(2)).
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (lazily, so a busy mount cannot block Delete).
pub fn unmount_all(target: &Path) -> Result<()> {
    for _ in 0..16 {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(e) => {
                return Err(Error::io(
                    format!("unmounting {}", target.display()),
                    e.into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlay_options_are_data() {
        let p = parse(&opts(&[
            "index=off",
            "lowerdir=/a:/b",
            "upperdir=/u",
            "workdir=/w",
        ]));
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(p.data, "index=off,lowerdir=/a:/b,upperdir=/u,workdir=/w");
    }

    #[test]
    fn bind_options_are_flags() {
        let p = parse(&opts(&["rbind", "ro"]));
        assert_eq!(
            p.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(p.data, "");
        let p = parse(&opts(&["ro", "rw", "nosuid"]));
        assert_eq!(p.flags, MsFlags::MS_NOSUID);
    }
}
