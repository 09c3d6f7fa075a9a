//! Image references, normalised as docker's `reference.ParseNormalizedNamed` does:
//! `busybox` = `docker.io/library/busybox:latest`, `localhost:5000/x` keeps its registry,
//! `name@sha256:…` carries a digest. Familiar forms drop `docker.io/` and `library/`.

use std::fmt;

use crate::digest::{Digest, is_hex};

/// The registry of names without one.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag of names without a tag or digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// The repository path (`library/busybox`).
    pub path: String,
    /// The tag, if given.
    pub tag: Option<String>,
    /// The digest, if given.
    pub digest: Option<Digest>,
}

/// Why a string is not a reference (docker's wording, which the CLI shows as is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The string does not match the grammar.
    #[error("invalid reference format")]
    Invalid,
    /// Upper-case letters in the repository.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// A bare 64-hex string, which docker reserves for ids.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// Longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    TooLong,
}

impl Reference {
    /// Parses and normalises `s`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError::Invalid);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|_| ParseError::Invalid)?),
            ),
            None => (s, None),
        };
        // The tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if tag.is_some_and(|t| !valid_tag(t)) {
            return Err(ParseError::Invalid);
        }
        if is_hex(name, 64) {
            return Err(ParseError::HexName(name.to_owned()));
        }
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        if domain == LEGACY_DOMAIN {
            domain = DEFAULT_DOMAIN.to_owned();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_REPO_PREFIX}{path}");
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ParseError::Uppercase(path));
        }
        if !valid_domain(&domain) || !path.split('/').all(valid_component) {
            return Err(ParseError::Invalid);
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(ParseError::TooLong);
        }
        Ok(Self {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Parses `s` and adds `:latest` when it has neither tag nor digest.
    pub fn parse_tagged(s: &str) -> Result<Self, ParseError> {
        let mut r = Self::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox` for `docker.io/library/busybox`, else the full repository.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.repository()
        }
    }

    /// The familiar string (`busybox:latest`, `localhost:5000/x@sha256:…`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

/// The full string (`docker.io/library/busybox:latest`).
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let host = match d.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return false,
        None => d,
    };
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Go's `path.Match` subset docker's `reference` filter uses: `*` (not across `/`), `?`, and
/// `[…]` classes with ranges and `^`/`!` negation.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

fn glob(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len())
            .take_while(|&i| i == 0 || n[i - 1] != '/')
            .any(|i| glob(&p[1..], &n[i..])),
        Some('?') => n.first().is_some_and(|&c| c != '/') && glob(&p[1..], &n[1..]),
        Some('[') => {
            let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) else {
                return false;
            };
            let Some(&c) = n.first() else { return false };
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some('^' | '!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&p[end + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && glob(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox", "busybox"),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("library/busybox", "docker.io/library/busybox", "busybox"),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("index.docker.io/foo/bar", "docker.io/foo/bar", "foo/bar"),
            ("foo/bar:v1", "docker.io/foo/bar:v1", "foo/bar:v1"),
            (
                "localhost:5000/x:y",
                "localhost:5000/x:y",
                "localhost:5000/x:y",
            ),
            ("localhost/x", "localhost/x", "localhost/x"),
            ("quay.io/a/b/c", "quay.io/a/b/c", "quay.io/a/b/c"),
            (
                "127.0.0.1:5000/busybox",
                "127.0.0.1:5000/busybox",
                "127.0.0.1:5000/busybox",
            ),
            (
                "my-app__x.y_z",
                "docker.io/library/my-app__x.y_z",
                "my-app__x.y_z",
            ),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
    }

    #[test]
    fn tags_and_digests() {
        let r = Reference::parse_tagged("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.familiar(), format!("busybox@{D}"));
        let r = Reference::parse_tagged(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None, "a digest reference gets no default tag");
        let r = Reference::parse(&format!("localhost:5000/a:t@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.domain, "localhost:5000");
    }

    #[test]
    fn rejects_what_docker_rejects() {
        assert_eq!(
            Reference::parse("Busybox").unwrap_err(),
            ParseError::Uppercase("library/Busybox".into())
        );
        assert!(matches!(
            Reference::parse(&"a".repeat(64)).unwrap_err(),
            ParseError::HexName(_)
        ));
        for bad in [
            "",
            "busybox:",
            "-x",
            "x-",
            "a..b",
            "a/:t",
            "busybox@sha256:12",
            "a:b:c",
            "a___b",
            ":tag",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn glob_matches_like_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busy*", "busybox:latest"));
        assert!(!glob_match("busy*", "busy/box"));
        assert!(glob_match("*/*", "foo/bar"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(glob_match("[a-c]usybox", "busybox"));
        assert!(!glob_match("[^b]usybox", "busybox"));
        assert!(!glob_match("alpine", "busybox"));
        assert!(glob_match("busybox:lat*", "busybox:latest"));
    }
}
