//! A client of the OCI distribution API (registry v2): what `docker pull` and `docker push`
//! need, and nothing more.
//!
//! # Why an own client rather than `oci-client`
//!
//! `oci-client` 0.18 was the candidate. With default features off it still pulls `reqwest`
//! 0.13 (and with it a second HTTP stack beside our hyper server), `chrono`, `regex`, the full
//! `oci-spec`, `olpc-cjson` and `sha2` 0.11 (a second copy beside our 0.10); its `rustls` feature
//! brings `aws-lc-rs`, whose C build alone takes minutes on the 2-core machines here. It also
//! does not fit the store's shape: its blob pulls write into an `AsyncWrite` without a hook for
//! per-chunk progress that we can pair with our verified ingest, its pushes have no progress at
//! all, and cross-repository mounts are not combined with existence checks the way docker does.
//! What the daemon needs is ~10 requests; this module makes them over the hyper 1 client we
//! already link (the server side uses the same crate), with rustls + ring for TLS.
//!
//! # What it speaks
//!
//! - Endpoints: `docker.io` goes to `registry-1.docker.io`; loopback registries (`localhost`,
//!   `127.0.0.0/8`, `::1`) are spoken to in plain HTTP (docker's implicit insecure registries),
//!   everything else over HTTPS with the webpki roots.
//! - Auth ([`auth`]): anonymous first; on `401` the `WWW-Authenticate` challenge decides:
//!   `Bearer realm=…,service=…,scope=…` → `GET realm?service=&scope=` (with Basic credentials
//!   from `X-Registry-Auth` when given) and the `token`/`access_token` of the answer; `Basic` →
//!   the credentials themselves. Tokens are cached per scope for the client's life (one
//!   operation).
//! - Pull: `GET /v2/<repo>/manifests/<ref>` with every manifest media type in `Accept`,
//!   `GET /v2/<repo>/blobs/<digest>` streamed (redirects followed, `Range: bytes=N-` to resume).
//! - Push: `HEAD` blob, `POST …/blobs/uploads/?mount=&from=` (cross-repository mount; a `202`
//!   falls back to an upload), `POST` + `PATCH` chunks + `PUT ?digest=` (monolithic `PUT` for
//!   small blobs), `PUT /v2/<repo>/manifests/<tag>`.
//!
//! A connection per request: no pool. That is cheap on loopback and costs a TLS handshake per
//! request on a remote registry; a pool is a later optimisation.

pub mod auth;
mod client;

pub use auth::Credentials;
pub use client::{BlobStream, Client, MountResult};

use crate::ErrorKind;

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP (or TLS) connection could not be made.
    #[error("connect to registry {host}")]
    Connect {
        /// `host:port`.
        host: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection reset, registry died, bad response).
    #[error("{op} {url}")]
    Http {
        /// What was being done.
        op: &'static str,
        /// The URL.
        url: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// No answer within the time allowed.
    #[error("{op} {url}: timed out")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The URL.
        url: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{op} {url}: {status} {message}")]
    Status {
        /// What was being done.
        op: &'static str,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's `errors[].message`s, or the body.
        message: String,
    },
    /// Authentication failed or was refused.
    #[error("unauthorized: authentication required for {url}: {message}")]
    Unauthorized {
        /// The URL.
        url: String,
        /// The registry's message.
        message: String,
    },
    /// A URL (from a reference, a `Location` header or a token realm) does not parse.
    #[error("invalid registry URL {0:?}")]
    BadUrl(String),
    /// A `Location` header is missing where the protocol requires one.
    #[error("{op} {url}: the registry sent no Location header")]
    NoLocation {
        /// What was being done.
        op: &'static str,
        /// The URL.
        url: String,
    },
    /// The token endpoint answered without a token.
    #[error("token endpoint {realm} answered without a token")]
    NoToken {
        /// The realm.
        realm: String,
    },
    /// Too many redirects.
    #[error("{url}: too many redirects")]
    Redirects {
        /// The first URL.
        url: String,
    },
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Status { status: 404, .. } => ErrorKind::NotFound,
            Error::Status { status: 400, .. } | Error::BadUrl(_) => ErrorKind::InvalidArgument,
            Error::Unauthorized { .. }
            | Error::Status {
                status: 401 | 403, ..
            } => ErrorKind::FailedPrecondition,
            Error::Connect { .. }
            | Error::Http { .. }
            | Error::Timeout { .. }
            | Error::Status { .. }
            | Error::NoLocation { .. }
            | Error::NoToken { .. }
            | Error::Redirects { .. } => ErrorKind::Unavailable,
        }
    }
}

/// Whether `host` (`host[:port]`, `[v6]:port`) is a loopback address, which docker treats as an
/// insecure (plain HTTP) registry without configuration.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_insecure() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.2.1"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry-1.docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("example.com:443"));
    }

    #[test]
    fn kinds() {
        let st = |status| Error::Status {
            op: "x",
            url: "u".into(),
            status,
            message: String::new(),
        };
        assert_eq!(st(404).kind(), ErrorKind::NotFound);
        assert_eq!(st(401).kind(), ErrorKind::FailedPrecondition);
        assert_eq!(st(500).kind(), ErrorKind::Unavailable);
    }
}
