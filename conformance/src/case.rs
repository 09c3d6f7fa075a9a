//! A conformance case: a name, the spec section it checks (with the words it checks), and a
//! function that returns `Ok` (pass), a [`Skipped`] error (the host lacks something) or any
//! other error (fail, with the error chain as the reason).

use std::fmt;

use crate::ctx::Ctx;

/// One case of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// `group.case`, e.g. `process.cwd`.
    pub name: &'static str,
    /// The runtime-spec section checked, e.g. `config.md#process`.
    pub spec: &'static str,
    /// The spec's words that the case checks (short quote).
    pub quote: &'static str,
    /// The check.
    pub run: fn(&mut Ctx) -> anyhow::Result<()>,
}

impl Case {
    /// The group: the part of the name before the first dot.
    pub fn group(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

impl Outcome {
    /// Maps a case function's result to an outcome.
    pub fn from_result(result: anyhow::Result<()>) -> Self {
        match result {
            Ok(()) => Self::Pass,
            Err(e) => match e.downcast_ref::<Skipped>() {
                Some(Skipped(reason)) => Self::Skip(reason.clone()),
                None => Self::Fail(format!("{e:#}").replace('\n', " ")),
            },
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail(_) => "fail",
            Self::Skip(_) => "skip",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Pass => None,
            Self::Fail(r) | Self::Skip(r) => Some(r),
        }
    }
}

/// The error a case returns when the host lacks what it needs.
#[derive(Debug)]
pub struct Skipped(pub String);

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped: {}", self.0)
    }
}

impl std::error::Error for Skipped {}

/// `return Err(skip("no time namespace in this kernel"))`.
pub fn skip(reason: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Skipped(reason.into()))
}

/// Matches `name` against a filter: comma-separated patterns, each a substring or, when it
/// contains `*`, a glob over the whole name.
pub fn matches_filter(filter: &str, name: &str) -> bool {
    filter
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| {
            if p.contains('*') {
                glob(p.as_bytes(), name.as_bytes())
            } else {
                name.contains(p)
            }
        })
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(matches_filter("process", "process.cwd"));
        assert!(matches_filter("hooks.*,process.c*", "process.cwd"));
        assert!(!matches_filter("process.c*", "xprocess.cwd"));
        assert!(matches_filter("*.cwd", "process.cwd"));
        assert!(!matches_filter("lifecycle", "process.cwd"));
    }

    #[test]
    fn skipped_errors_become_skips() {
        let o = Outcome::from_result(Err(skip("no time ns")));
        assert_eq!(o, Outcome::Skip("no time ns".into()));
        let o = Outcome::from_result(Err(anyhow::anyhow!("boom")));
        assert_eq!(o, Outcome::Fail("boom".into()));
    }
}
