//! `docker cp`: paths inside a container's rootfs, resolved the way `filepath-securejoin` does
//! (every symlink is followed *within* the rootfs, `..` never leaves it), the stat header the
//! CLI expects (`X-Docker-Container-Path-Stat`: base64 of `{name,size,mode,mtime,linkTarget}`
//! with `mode` a Go `os.FileMode`, file type in the high bits), and tar in and out.
//!
//! The rootfs is the image's: a symlink in it may point anywhere, which is why resolution is
//! scoped. Extraction relies on the tar crate's `unpack_in`, which refuses entries whose
//! resolved parent leaves the destination (a symlink planted by an earlier entry, `..`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use serde_json::json;

/// Maximum symlinks followed in one resolution (Linux's MAXSYMLINKS is 40).
const MAX_SYMLINKS: usize = 255;

/// Resolves `path` (absolute inside the container) to a host path under `root`, following
/// symlinks inside the root. The last component is not followed when `follow_last` is false.
pub fn scoped_join(root: &Path, path: &str, follow_last: bool) -> std::io::Result<PathBuf> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .rev()
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let candidate: PathBuf = root.join(cur.iter().collect::<PathBuf>()).join(&c);
        let last = todo.is_empty();
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(std::io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    cur.clear();
                }
                for comp in target.components().rev() {
                    if let Component::Normal(n) = comp {
                        todo.push(n.to_string_lossy().into_owned());
                    } else if comp == Component::ParentDir {
                        todo.push("..".into());
                    }
                }
            }
            _ => cur.push(c),
        }
    }
    Ok(root.join(cur.iter().collect::<PathBuf>()))
}

/// Go's `os.FileMode` of a file (what the CLI decodes).
pub fn go_file_mode(m: &fs::Metadata) -> u32 {
    let ft = m.file_type();
    let mut mode = m.permissions().mode() & 0o777;
    if ft.is_dir() {
        mode |= 1 << 31;
    }
    if ft.is_symlink() {
        mode |= 1 << 27;
    }
    if ft.is_block_device() {
        mode |= 1 << 26;
    }
    if ft.is_char_device() {
        mode |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        mode |= 1 << 25;
    }
    if ft.is_socket() {
        mode |= 1 << 24;
    }
    let raw = m.mode();
    if raw & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode
}

/// The stat header's JSON for `host` (the resolved path) named `name`.
pub fn stat_json(host: &Path, name: &str) -> std::io::Result<serde_json::Value> {
    let m = fs::symlink_metadata(host)?;
    let link = if m.file_type().is_symlink() {
        fs::read_link(host)?.display().to_string()
    } else {
        String::new()
    };
    Ok(json!({
        "name": name,
        "size": m.len(),
        "mode": go_file_mode(&m),
        "mtime": crate::images::oci::format_rfc3339(m.mtime()),
        "linkTarget": link,
    }))
}

/// The base name docker uses for a path (`/` → `/`).
pub fn base_name(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

/// Writes a tar of `host` with its top entry named `name`.
pub fn write_tar(host: &Path, name: &str, out: impl Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let m = fs::symlink_metadata(host)?;
    if m.is_dir() {
        b.append_dir_all(name, host)?;
    } else {
        b.append_path_with_name(host, name)?;
    }
    b.into_inner()?.flush()
}

/// Extracts a tar into the directory `host` (ownership kept only with `keep_owner`).
pub fn extract_tar(host: &Path, input: impl Read, keep_owner: bool) -> std::io::Result<()> {
    let mut a = tar::Archive::new(input);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(keep_owner);
    a.set_overwrite(true);
    a.unpack(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("b", r.join("a/rel")).unwrap();
        assert_eq!(
            scoped_join(r, "/abs/passwd", true).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(scoped_join(r, "/a/b/up/x", true).unwrap(), r.join("x"));
        assert_eq!(scoped_join(r, "/a/rel", true).unwrap(), r.join("a/b"));
        assert_eq!(scoped_join(r, "/a/rel", false).unwrap(), r.join("a/rel"));
        assert_eq!(scoped_join(r, "/../../x", true).unwrap(), r.join("x"));
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(scoped_join(r, "/loop", true).is_err());
    }

    #[test]
    fn go_modes_and_names() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let m = fs::metadata(d.path()).unwrap();
        assert_eq!(go_file_mode(&m), 2_147_484_141);
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/"), "/");
        let f = d.path().join("f");
        fs::write(&f, "x").unwrap();
        let v = stat_json(&f, "f").unwrap();
        assert_eq!(v["size"], 1);
        let mut buf = Vec::new();
        write_tar(&f, "g", &mut buf).unwrap();
        let out = d.path().join("out");
        fs::create_dir(&out).unwrap();
        extract_tar(&out, buf.as_slice(), false).unwrap();
        assert_eq!(fs::read_to_string(out.join("g")).unwrap(), "x");
    }
}
