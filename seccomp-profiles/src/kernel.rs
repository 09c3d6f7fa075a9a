//! Kernel versions: the `minKernel` condition of a profile rule, and the host's version to
//! check it against.
//!
//! Only the first two numbers count, as in Docker: `"4.8"` in a profile, and `4.8` out of a
//! release string such as `6.1.0-18-amd64` or `3.12-1-amd64` (moby/profiles `kernel_linux.go`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ProfileError;

/// Where the running kernel's release string is (proc(5); the same text as `uname -r`).
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// A kernel version, major and minor (`6.1` for `6.1.0-18-amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// The version at the start of a kernel release string (`uname -r`): `6.1.0-18-amd64`,
    /// `3.12-1-amd64` and `6.10.14-linuxkit` give 6.1, 3.12 and 6.10. `None` if the string does
    /// not start with `<number>.<number>`.
    pub fn from_release(release: &str) -> Option<KernelVersion> {
        let (major, rest) = release.trim().split_once('.')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        Some(KernelVersion {
            major: major.parse().ok()?,
            minor: rest[..digits].parse().ok()?,
        })
    }

    /// Parses a profile's `minKernel`: exactly `"<major>.<minor>"`, not `0.0`, as Docker's
    /// `KernelVersion.UnmarshalJSON` requires.
    fn from_profile(text: &str) -> Option<KernelVersion> {
        let (major, minor) = text.split_once('.')?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<u32>().ok()
            }
        };
        let version = KernelVersion {
            major: number(major)?,
            minor: number(minor)?,
        };
        (version != KernelVersion { major: 0, minor: 0 }).then_some(version)
    }
}

impl From<(u32, u32)> for KernelVersion {
    fn from((major, minor): (u32, u32)) -> Self {
        KernelVersion { major, minor }
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        KernelVersion::from_profile(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid kernel version {text:?}, expected \"<major>.<minor>\" such as \"4.8\""
            ))
        })
    }
}

/// `minKernel`: absent, `null` and `""` all mean no condition (Docker ignores an empty string).
pub(crate) fn deserialize_min_kernel<'de, D>(
    deserializer: D,
) -> Result<Option<KernelVersion>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => KernelVersion::from_profile(&text).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid minKernel {text:?}, expected \"<major>.<minor>\" such as \"4.8\""
            ))
        }),
    }
}

/// The running kernel's version, from `/proc/sys/kernel/osrelease`, for the `kernel` argument of
/// [`crate::resolve`] (what Docker gets from `uname(2)`).
pub fn host_kernel_version() -> Result<(u32, u32), ProfileError> {
    let release =
        std::fs::read_to_string(OSRELEASE).map_err(|source| ProfileError::ReadKernelRelease {
            path: OSRELEASE,
            source,
        })?;
    let version =
        KernelVersion::from_release(&release).ok_or_else(|| ProfileError::KernelRelease {
            release: release.trim().to_owned(),
        })?;
    Ok((version.major, version.minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32) -> KernelVersion {
        KernelVersion { major, minor }
    }

    #[test]
    fn release_strings_give_major_and_minor() {
        for (release, want) in [
            ("6.1.0-18-amd64", v(6, 1)),
            ("3.12-1-amd64", v(3, 12)),
            ("3.12.25-gentoo", v(3, 12)),
            ("6.10.14-linuxkit\n", v(6, 10)),
            ("4.8", v(4, 8)),
            ("5.15.0-rc5", v(5, 15)),
        ] {
            assert_eq!(
                KernelVersion::from_release(release),
                Some(want),
                "{release}"
            );
        }
        for bad in ["", "6", "linux-6.1", "6.x", ".1"] {
            assert_eq!(KernelVersion::from_release(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn min_kernel_must_be_exactly_major_dot_minor() {
        let parse = |json: &str| serde_json::from_str::<KernelVersion>(json);
        assert_eq!(parse(r#""4.8""#).unwrap(), v(4, 8));
        assert_eq!(parse(r#""10.0""#).unwrap(), v(10, 0));
        for bad in [
            r#""4""#,
            r#""4.8.1""#,
            r#""a.b""#,
            r#""4.""#,
            r#""-4.8""#,
            r#""0.0""#,
            "4.8",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn versions_order_by_major_then_minor() {
        assert!(v(4, 7) < v(4, 8));
        assert!(v(4, 20) < v(5, 0));
        assert!(v(3, 99) < v(4, 8));
        assert_eq!(v(4, 8).to_string(), "4.8");
    }

    #[test]
    fn host_kernel_is_readable() {
        // Every Linux since 2.6 has the file; the tests run on Linux only (the runtime is Linux
        // only).
        let (major, _) = host_kernel_version().unwrap();
        assert!(major >= 3);
    }
}
