//! Parsing `mounts[].options` into what the new mount API needs (pure, unit-tested).
//!
//! The vocabulary is mount(8)'s plus the OCI additions: recursive attributes (`rro`, `rnosuid`,
//! …, applied with `mount_setattr(AT_RECURSIVE)`) and propagation (`rprivate`, `shared`, …).
//! Anything not recognised is a filesystem option (`mode=755`, `newinstance`) handed to
//! `fsconfig(2)`, which rejects what the filesystem does not know.

use nix::mount::MsFlags;

use crate::sys::mount_api::*;

/// One propagation change, applied after the mount is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagation {
    pub flag: MsFlags,
    pub recursive: bool,
}

/// The parsed options of one mount.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: the whole subtree is bound.
    pub recursive: bool,
    /// `MOUNT_ATTR_*` to set and clear on the mount itself.
    pub attr_set: u64,
    pub attr_clr: u64,
    /// `MOUNT_ATTR_*` to set and clear on the mount and everything below it (`rro`, …).
    pub rec_attr_set: u64,
    pub rec_attr_clr: u64,
    pub propagation: Vec<Propagation>,
    /// Superblock flags for `fsconfig(FSCONFIG_SET_FLAG)` (`sync`, `dirsync`, …).
    pub sb_flags: Vec<&'static str>,
    /// Filesystem options: `key=value` or a bare flag.
    pub data: Vec<(String, Option<String>)>,
}

/// An option the runtime knows but cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mount option {0:?} is not supported")]
pub struct UnsupportedOption(pub String);

/// Per-mount attribute: (name, set, clear). Atime modes are a field, not bits: setting one
/// clears the whole field first (mount_setattr(2)).
const ATTRS: &[(&str, u64, u64)] = &[
    ("ro", MOUNT_ATTR_RDONLY, 0),
    ("rw", 0, MOUNT_ATTR_RDONLY),
    ("nosuid", MOUNT_ATTR_NOSUID, 0),
    ("suid", 0, MOUNT_ATTR_NOSUID),
    ("nodev", MOUNT_ATTR_NODEV, 0),
    ("dev", 0, MOUNT_ATTR_NODEV),
    ("noexec", MOUNT_ATTR_NOEXEC, 0),
    ("exec", 0, MOUNT_ATTR_NOEXEC),
    ("nodiratime", MOUNT_ATTR_NODIRATIME, 0),
    ("diratime", 0, MOUNT_ATTR_NODIRATIME),
    ("relatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK),
    ("norelatime", 0, MOUNT_ATTR_ATIME_MASK),
    ("noatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK),
    ("atime", 0, MOUNT_ATTR_ATIME_MASK),
    ("strictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK),
    ("nostrictatime", 0, MOUNT_ATTR_ATIME_MASK),
    ("nosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("symfollow", 0, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Superblock flags as fs/fs_context.c names them for `fsconfig`.
const SB_FLAGS: &[&str] = &[
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
    "mand",
    "nomand",
];

const PROPAGATION: &[(&str, MsFlags)] = &[
    ("shared", MsFlags::MS_SHARED),
    ("slave", MsFlags::MS_SLAVE),
    ("private", MsFlags::MS_PRIVATE),
    ("unbindable", MsFlags::MS_UNBINDABLE),
];

/// Every option [`parse`] understands itself (filesystem-specific options pass through to
/// `fsconfig` and are not listed), for `skiff features`.
pub fn known() -> Vec<String> {
    let mut out: Vec<String> = ["defaults", "remount", "bind", "rbind"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (name, ..) in ATTRS {
        out.push((*name).to_string());
        out.push(format!("r{name}"));
    }
    for (name, _) in PROPAGATION {
        out.push((*name).to_string());
        out.push(format!("r{name}"));
    }
    out.extend(SB_FLAGS.iter().map(|s| s.to_string()));
    out.sort();
    out.dedup();
    out
}

/// Parse a mount's option list.
pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, UnsupportedOption> {
    let mut o = MountOptions::default();
    for opt in options {
        let opt = opt.as_ref();
        match opt {
            "" | "defaults" | "remount" => continue,
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            "idmap" | "ridmap" | "tmpcopyup" => return Err(UnsupportedOption(opt.to_string())),
            _ => {}
        }
        if matches!(opt, "bind" | "rbind") {
            continue;
        }
        if let Some(&(_, set, clr)) = ATTRS.iter().find(|(n, ..)| *n == opt) {
            apply(&mut o.attr_set, &mut o.attr_clr, set, clr);
            continue;
        }
        if let Some(&(_, set, clr)) = opt
            .strip_prefix('r')
            .and_then(|r| ATTRS.iter().find(|(n, ..)| *n == r))
        {
            apply(&mut o.rec_attr_set, &mut o.rec_attr_clr, set, clr);
            continue;
        }
        if let Some(&(_, flag)) = PROPAGATION.iter().find(|(n, _)| *n == opt) {
            o.propagation.push(Propagation {
                flag,
                recursive: false,
            });
            continue;
        }
        if let Some(&(_, flag)) = opt
            .strip_prefix('r')
            .and_then(|r| PROPAGATION.iter().find(|(n, _)| *n == r))
        {
            o.propagation.push(Propagation {
                flag,
                recursive: true,
            });
            continue;
        }
        if let Some(&f) = SB_FLAGS.iter().find(|f| **f == opt) {
            o.sb_flags.push(f);
            continue;
        }
        match opt.split_once('=') {
            Some((k, v)) => o.data.push((k.to_string(), Some(v.to_string()))),
            None => o.data.push((opt.to_string(), None)),
        }
    }
    Ok(o)
}

/// Fold one attribute into the (set, clear) words so that a later option overrides an earlier
/// one. The atime mode is a multi-bit field: its options clear the whole field and set one value.
fn apply(set_word: &mut u64, clr_word: &mut u64, set: u64, clr: u64) {
    if clr == MOUNT_ATTR_ATIME_MASK {
        *set_word = (*set_word & !MOUNT_ATTR_ATIME_MASK) | set;
        *clr_word |= MOUNT_ATTR_ATIME_MASK;
    } else {
        *set_word = (*set_word & !clr) | set;
        *clr_word = (*clr_word & !set) | clr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_flags() {
        let o = parse(&["nosuid", "noexec", "nodev", "ro"]).expect("parse");
        assert_eq!(
            o.attr_set,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY
        );
        assert_eq!(o.attr_clr, 0);
        assert!(!o.bind && o.data.is_empty());
    }

    #[test]
    fn later_option_wins() {
        let o = parse(&["ro", "rw"]).expect("parse");
        assert_eq!(o.attr_set, 0);
        assert_eq!(o.attr_clr, MOUNT_ATTR_RDONLY);
        let o = parse(&["rw", "ro"]).expect("parse");
        assert_eq!(o.attr_set, MOUNT_ATTR_RDONLY);
        assert_eq!(o.attr_clr, 0);
    }

    #[test]
    fn atime_is_a_field() {
        let o = parse(&["noatime"]).expect("parse");
        assert_eq!(o.attr_set, MOUNT_ATTR_NOATIME);
        assert_eq!(o.attr_clr, MOUNT_ATTR_ATIME_MASK);
        let o = parse(&["noatime", "strictatime"]).expect("parse");
        assert_eq!(o.attr_set, MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.attr_clr, MOUNT_ATTR_ATIME_MASK);
        let o = parse(&["relatime"]).expect("parse");
        assert_eq!(o.attr_set, MOUNT_ATTR_RELATIME);
        assert_eq!(o.attr_clr, MOUNT_ATTR_ATIME_MASK);
    }

    #[test]
    fn binds() {
        let o = parse(&["rbind", "ro"]).expect("parse");
        assert!(o.bind && o.recursive);
        assert_eq!(o.attr_set, MOUNT_ATTR_RDONLY);
        let o = parse(&["bind"]).expect("parse");
        assert!(o.bind && !o.recursive);
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rbind", "rro", "rnosuid", "rnoatime"]).expect("parse");
        assert_eq!(
            o.rec_attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_attr_clr, MOUNT_ATTR_ATIME_MASK);
        assert_eq!(o.attr_set, 0);
        let o = parse(&["rrw"]).expect("parse");
        assert_eq!(o.rec_attr_clr, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn propagation() {
        let o = parse(&["rprivate", "shared", "runbindable", "slave"]).expect("parse");
        assert_eq!(
            o.propagation,
            vec![
                Propagation {
                    flag: MsFlags::MS_PRIVATE,
                    recursive: true
                },
                Propagation {
                    flag: MsFlags::MS_SHARED,
                    recursive: false
                },
                Propagation {
                    flag: MsFlags::MS_UNBINDABLE,
                    recursive: true
                },
                Propagation {
                    flag: MsFlags::MS_SLAVE,
                    recursive: false
                },
            ]
        );
    }

    #[test]
    fn data_and_sb_flags() {
        let o =
            parse(&["mode=755", "size=65536k", "newinstance", "sync", "defaults"]).expect("parse");
        assert_eq!(
            o.data,
            vec![
                ("mode".into(), Some("755".into())),
                ("size".into(), Some("65536k".into())),
                ("newinstance".into(), None)
            ]
        );
        assert_eq!(o.sb_flags, vec!["sync"]);
    }

    #[test]
    fn unsupported_refused() {
        assert_eq!(parse(&["idmap"]), Err(UnsupportedOption("idmap".into())));
    }
}
