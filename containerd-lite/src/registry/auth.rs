//! Registry credentials and `WWW-Authenticate` challenges.
//!
//! The docker CLI sends credentials as `X-Registry-Auth`: base64url of a JSON `AuthConfig`
//! (`username`, `password`, `serveraddress`, `identitytoken`, `registrytoken`); an empty object
//! (`e30=`) means anonymous (moby `api/types/registry/authconfig.go` `DecodeAuthConfig`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// Credentials for one registry.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// An OAuth refresh token from `docker login` (used as the Basic password here).
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Decodes an `X-Registry-Auth` header; `None` for anonymous or undecodable values (moby
    /// also falls back to anonymous then).
    pub fn from_header(v: &str) -> Option<Self> {
        let v = v.trim();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(v))
            .ok()?;
        let c: Credentials = serde_json::from_slice(&bytes).ok()?;
        (!c.is_anonymous()).then_some(c)
    }

    fn is_anonymous(&self) -> bool {
        self.username.is_empty() && self.registry_token.is_empty() && self.identity_token.is_empty()
    }

    /// The `Authorization: Basic …` value, if there is a user.
    pub fn basic(&self) -> Option<String> {
        if self.username.is_empty() {
            return None;
        }
        let secret = if self.password.is_empty() {
            &self.identity_token
        } else {
            &self.password
        };
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", self.username))
        ))
    }
}

/// An authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// Its parameters (`service`, `scope`).
        params: BTreeMap<String, String>,
    },
}

/// Parses a `WWW-Authenticate` value (RFC 7235 `auth-scheme 1*SP #auth-param`, quoted strings
/// with `\` escapes).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let realm = params.remove("realm")?;
        Some(Challenge::Bearer { realm, params })
    } else {
        None
    }
}

/// The answer of a token endpoint (docker's `token`, OAuth2's `access_token`).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        let Challenge::Bearer { realm, params } = c else {
            panic!("not bearer")
        };
        assert_eq!(realm, "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:library/busybox:pull");
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn decodes_registry_auth() {
        // {} → anonymous.
        assert_eq!(Credentials::from_header("e30="), None);
        assert_eq!(Credentials::from_header("not base64!"), None);
        let raw = r#"{"username":"u","password":"p","serveraddress":"127.0.0.1:5000"}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(raw);
        let c = Credentials::from_header(&enc).unwrap();
        assert_eq!(c.username, "u");
        assert_eq!(c.basic().unwrap(), "Basic dTpw");
        assert!(!format!("{c:?}").contains('p'.to_string().repeat(2).as_str()));
    }
}
