//! The HTTP side: URLs, one connection per request, the 401 → token → retry dance, and the
//! distribution API calls.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::auth::{Challenge, Credentials, TokenResponse, parse_challenge};
use super::{Error, is_loopback};
use crate::digest::Digest;
use crate::images::reference::DEFAULT_DOMAIN;

/// Time to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time from the request to the response headers (a manifest PUT can make the registry verify
/// blobs first).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest silence inside a response body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed for one blob (containerd: 10).
const MAX_REDIRECTS: usize = 10;
/// Where `docker.io` names are pulled from.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Every manifest type we understand, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

const USER_AGENT: &str = concat!("skiffd/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// An absolute URL split the way a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    scheme: Scheme,
    /// `host[:port]`.
    host: String,
    /// Path and query.
    path: String,
}

fn parse_url(s: &str) -> Result<Url, Error> {
    let (scheme, rest) = if let Some(r) = s.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = s.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err(Error::BadUrl(s.to_owned()));
    };
    let (host, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    if host.is_empty() {
        return Err(Error::BadUrl(s.to_owned()));
    }
    Ok(Url {
        scheme,
        host: host.to_owned(),
        path,
    })
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn tls() -> &'static tokio_rustls::TlsConnector {
    static TLS: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    })
}

async fn timed<T, E>(
    d: Duration,
    op: &'static str,
    url: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, Error> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| Error::Timeout {
            op,
            url: url.to_owned(),
        })
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(u: &Url, url: &str) -> Result<Sender, Error> {
    let has_port = if u.host.starts_with('[') {
        u.host.contains("]:")
    } else {
        u.host.contains(':')
    };
    let addr = match (has_port, u.scheme) {
        (true, _) => u.host.clone(),
        (false, Scheme::Http) => format!("{}:80", u.host),
        (false, Scheme::Https) => format!("{}:443", u.host),
    };
    let conn_err = |source| Error::Connect {
        host: addr.clone(),
        source,
    };
    let tcp = timed(
        CONNECT_TIMEOUT,
        "connect to",
        url,
        TcpStream::connect(&addr),
    )
    .await?
    .map_err(conn_err)?;
    // Small requests (HEAD, manifest GETs) should not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let http_err = |source| Error::Http {
        op: "handshake with",
        url: url.to_owned(),
        source,
    };
    let sender = match u.scheme {
        Scheme::Http => {
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(http_err)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            s
        }
        Scheme::Https => {
            let name = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
            let name = name.trim_start_matches('[').trim_end_matches(']');
            let server = rustls::pki_types::ServerName::try_from(name.to_owned())
                .map_err(|_| Error::BadUrl(url.to_owned()))?;
            let stream = timed(
                CONNECT_TIMEOUT,
                "TLS handshake with",
                url,
                tls().connect(server, tcp),
            )
            .await?
            .map_err(conn_err)?;
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(http_err)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            s
        }
    };
    Ok(sender)
}

/// Reads a small body (errors, tokens, manifests).
async fn read_body(resp: Response<Incoming>, op: &'static str, url: &str) -> Result<Bytes, Error> {
    let collected = timed(READ_TIMEOUT, op, url, resp.into_body().collect())
        .await?
        .map_err(|source| Error::Http {
            op,
            url: url.to_owned(),
            source,
        })?;
    Ok(collected.to_bytes())
}

/// The registry's `{"errors":[{"code","message"}]}` as one line, else the body's start.
async fn error_message(resp: Response<Incoming>, url: &str) -> String {
    let body = read_body(resp, "read error of", url)
        .await
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let msgs: Vec<String> = e.errors.into_iter().map(|i| i.message).collect();
        if !msgs.is_empty() {
            return msgs.join("; ");
        }
    }
    let s = String::from_utf8_lossy(&body);
    s.trim().chars().take(200).collect()
}

async fn status_error(op: &'static str, url: &str, resp: Response<Incoming>) -> Error {
    let status = resp.status().as_u16();
    let message = error_message(resp, url).await;
    if status == 401 {
        return Error::Unauthorized {
            url: url.to_owned(),
            message,
        };
    }
    Error::Status {
        op,
        url: url.to_owned(),
        status,
        message,
    }
}

/// The outcome of a cross-repository mount attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountResult {
    /// `201`: the blob is now in the target repository.
    Mounted,
    /// `202`: the registry could not mount and opened an upload at this location instead.
    Upload(String),
}

/// A blob's body as it arrives.
#[derive(Debug)]
pub struct BlobStream {
    /// `Content-Length` of this response.
    pub length: Option<u64>,
    /// Whether the registry honoured the `Range` (`206`); else the body starts at zero.
    pub resumed: bool,
    body: Incoming,
    url: String,
}

impl BlobStream {
    /// The next chunk, `None` at the end. A registry that goes away mid-body is an error here
    /// (hyper checks the `Content-Length`).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let frame = tokio::time::timeout(READ_TIMEOUT, self.body.frame())
                .await
                .map_err(|_| Error::Timeout {
                    op: "read blob",
                    url: self.url.clone(),
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(Error::Http {
                        op: "read blob",
                        url: self.url.clone(),
                        source,
                    });
                }
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        if !d.is_empty() {
                            return Ok(Some(d));
                        }
                    }
                }
            }
        }
    }
}

/// A client for one registry, for the duration of one operation (tokens are cached per scope).
#[derive(Debug)]
pub struct Client {
    base: String,
    creds: Option<Credentials>,
    /// `Authorization` values by scope.
    auth: Mutex<HashMap<String, String>>,
}

impl Client {
    /// A client for the registry of `domain` (a reference's domain: `docker.io`,
    /// `127.0.0.1:5000`).
    pub fn new(domain: &str, creds: Option<Credentials>) -> Self {
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_API
        } else {
            domain
        };
        let scheme = if is_loopback(host) { "http" } else { "https" };
        Self {
            base: format!("{scheme}://{host}"),
            creds,
            auth: Mutex::default(),
        }
    }

    /// `http://host` or `https://host`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, repo: &str, tail: &str) -> String {
        format!("{}/v2/{repo}/{tail}", self.base)
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        }
    }

    async fn raw(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Bytes,
        auth: Option<&str>,
        op: &'static str,
    ) -> Result<Response<Incoming>, Error> {
        let u = parse_url(url)?;
        let mut b = Request::builder()
            .method(method.clone())
            .uri(u.path.as_str())
            .header(header::HOST, u.host.as_str())
            .header(header::USER_AGENT, USER_AGENT);
        for (k, v) in headers {
            b = b.header(k, v.as_str());
        }
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        if !matches!(method, Method::GET | Method::HEAD) {
            b = b.header(header::CONTENT_LENGTH, body.len());
        }
        let req = b
            .body(Full::new(body))
            .map_err(|_| Error::BadUrl(url.to_owned()))?;
        let mut sender = connect(&u, url).await?;
        timed(RESPONSE_TIMEOUT, op, url, sender.send_request(req))
            .await?
            .map_err(|source| Error::Http {
                op,
                url: url.to_owned(),
                source,
            })
    }

    /// Sends a request with the cached authorization for `scope`; on a `401` answers the
    /// challenge once and retries.
    async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        headers: &[(HeaderName, String)],
        body: Bytes,
        op: &'static str,
    ) -> Result<Response<Incoming>, Error> {
        let cached = || {
            self.auth
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(scope)
                .cloned()
        };
        let resp = self
            .raw(
                method.clone(),
                url,
                headers,
                body.clone(),
                cached().as_deref(),
                op,
            )
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let Some(challenge) = challenge else {
            return Err(status_error(op, url, resp).await);
        };
        let value = self.authorize(challenge, scope).await?;
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_owned(), value.clone());
        let resp = self
            .raw(method, url, headers, body, Some(&value), op)
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(status_error(op, url, resp).await);
        }
        Ok(resp)
    }

    /// Answers a challenge: the `Authorization` value to send for `scope`.
    async fn authorize(&self, challenge: Challenge, scope: &str) -> Result<String, Error> {
        let basic = self.creds.as_ref().and_then(Credentials::basic);
        match challenge {
            Challenge::Basic => basic.ok_or_else(|| Error::Unauthorized {
                url: self.base.clone(),
                message: "the registry wants credentials (docker login)".into(),
            }),
            Challenge::Bearer { realm, params } => {
                if let Some(t) = self
                    .creds
                    .as_ref()
                    .map(|c| c.registry_token.as_str())
                    .filter(|t| !t.is_empty())
                {
                    return Ok(format!("Bearer {t}"));
                }
                let mut url = realm.clone();
                url.push(if realm.contains('?') { '&' } else { '?' });
                let mut q = Vec::new();
                if let Some(s) = params.get("service") {
                    q.push(format!("service={}", enc(s)));
                }
                let mut scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(s) = params.get("scope") {
                    for extra in s.split(' ') {
                        if !extra.is_empty() && !scopes.contains(&extra) {
                            scopes.push(extra);
                        }
                    }
                }
                q.extend(scopes.iter().map(|s| format!("scope={}", enc(s))));
                url.push_str(&q.join("&"));
                let op = "fetch token from";
                let resp = self
                    .raw(Method::GET, &url, &[], Bytes::new(), basic.as_deref(), op)
                    .await?;
                if !resp.status().is_success() {
                    return Err(status_error(op, &realm, resp).await);
                }
                let body = read_body(resp, op, &realm).await?;
                let t: TokenResponse =
                    serde_json::from_slice(&body).map_err(|_| Error::NoToken {
                        realm: realm.clone(),
                    })?;
                let token = if t.token.is_empty() {
                    t.access_token
                } else {
                    t.token
                };
                if token.is_empty() {
                    return Err(Error::NoToken { realm });
                }
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the bytes and the `Content-Type`.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, Option<String>), Error> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let op = "fetch manifest";
        let resp = self
            .send(
                Method::GET,
                &url,
                &pull_scope(repo),
                &[(header::ACCEPT, MANIFEST_ACCEPT.to_owned())],
                Bytes::new(),
                op,
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(status_error(op, &url, resp).await);
        }
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
        Ok((read_body(resp, op, &url).await?, media_type))
    }

    /// `GET /v2/<repo>/blobs/<digest>` from `offset` (a `Range` request when non-zero),
    /// following redirects (to storage backends, without our credentials).
    pub async fn blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream, Error> {
        let first = self.url(repo, &format!("blobs/{digest}"));
        let op = "fetch blob";
        let mut headers = Vec::new();
        if offset > 0 {
            headers.push((header::RANGE, format!("bytes={offset}-")));
        }
        let mut resp = self
            .send(
                Method::GET,
                &first,
                &pull_scope(repo),
                &headers,
                Bytes::new(),
                op,
            )
            .await?;
        let mut url = first.clone();
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                break;
            }
            let Some(loc) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Err(Error::NoLocation { op, url });
            };
            url = self.absolute(loc);
            resp = self
                .raw(Method::GET, &url, &headers, Bytes::new(), None, op)
                .await?;
        }
        if resp.status().is_redirection() {
            return Err(Error::Redirects { url: first });
        }
        let resumed = match resp.status() {
            StatusCode::OK => false,
            StatusCode::PARTIAL_CONTENT => true,
            _ => return Err(status_error(op, &url, resp).await),
        };
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok(BlobStream {
            length,
            resumed,
            body: resp.into_body(),
            url,
        })
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: whether the repository has the blob.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool, Error> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let op = "check blob";
        let resp = self
            .send(Method::HEAD, &url, &push_scope(repo), &[], Bytes::new(), op)
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(op, &url, resp).await),
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`.
    pub async fn mount(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<MountResult, Error> {
        let url = self.url(
            repo,
            &format!(
                "blobs/uploads/?mount={}&from={}",
                enc(&digest.to_string()),
                enc(from)
            ),
        );
        let op = "mount blob";
        let scope = format!("{} repository:{from}:pull", push_scope(repo));
        let resp = self
            .send(Method::POST, &url, &scope, &[], Bytes::new(), op)
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountResult::Mounted),
            StatusCode::ACCEPTED => Ok(MountResult::Upload(self.location(&resp, op, &url)?)),
            _ => Err(status_error(op, &url, resp).await),
        }
    }

    fn location(
        &self,
        resp: &Response<Incoming>,
        op: &'static str,
        url: &str,
    ) -> Result<String, Error> {
        resp.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l))
            .ok_or_else(|| Error::NoLocation {
                op,
                url: url.to_owned(),
            })
    }

    /// `POST /v2/<repo>/blobs/uploads/`: the upload's location.
    pub async fn start_upload(&self, repo: &str) -> Result<String, Error> {
        let url = self.url(repo, "blobs/uploads/");
        let op = "start upload";
        let resp = self
            .send(Method::POST, &url, &push_scope(repo), &[], Bytes::new(), op)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(op, &url, resp).await);
        }
        self.location(&resp, op, &url)
    }

    /// `PATCH <location>` with one chunk at `offset`: the next location.
    pub async fn upload_chunk(
        &self,
        repo: &str,
        location: &str,
        offset: u64,
        data: Bytes,
    ) -> Result<String, Error> {
        let op = "upload chunk";
        let end = offset + data.len() as u64 - 1;
        let headers = [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_RANGE, format!("{offset}-{end}")),
        ];
        let resp = self
            .send(
                Method::PATCH,
                location,
                &push_scope(repo),
                &headers,
                data,
                op,
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(op, location, resp).await);
        }
        self.location(&resp, op, location)
    }

    /// `PUT <location>?digest=<digest>` with the last (or only) bytes.
    pub async fn finish_upload(
        &self,
        repo: &str,
        location: &str,
        digest: &Digest,
        data: Bytes,
    ) -> Result<(), Error> {
        let op = "finish upload";
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", enc(&digest.to_string()));
        let headers = [(header::CONTENT_TYPE, "application/octet-stream".to_owned())];
        let resp = self
            .send(Method::PUT, &url, &push_scope(repo), &headers, data, op)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(op, &url, resp).await);
        }
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<tag>`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), Error> {
        let url = self.url(repo, &format!("manifests/{tag}"));
        let op = "push manifest";
        let headers = [(header::CONTENT_TYPE, media_type.to_owned())];
        let resp = self
            .send(Method::PUT, &url, &push_scope(repo), &headers, bytes, op)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(op, &url, resp).await);
        }
        Ok(())
    }
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = parse_url("http://127.0.0.1:5000/v2/a/b/blobs/uploads/x?_state=1").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, "127.0.0.1:5000");
        assert_eq!(u.path, "/v2/a/b/blobs/uploads/x?_state=1");
        let u = parse_url("https://auth.docker.io?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("auth.docker.io", "/?x=1")
        );
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Client::new("docker.io", None).base(),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            Client::new("127.0.0.1:5000", None).base(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(Client::new("ghcr.io", None).base(), "https://ghcr.io");
        let c = Client::new("localhost:5000", None);
        assert_eq!(c.absolute("/v2/x"), "http://localhost:5000/v2/x");
        assert_eq!(c.absolute("http://other/v2/x"), "http://other/v2/x");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(enc("sha256:ab"), "sha256%3Aab");
        assert_eq!(
            enc("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
