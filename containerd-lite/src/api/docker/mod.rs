//! The Docker Engine API, version 1.44, over HTTP/1.1.
//!
//! Every route answers unversioned and under `/v1.24` … `/v1.44` (moby registers each route
//! twice the same way); a version outside that range is a 400 with moby's wording. Every
//! response carries `Api-Version`, `Ostype` and `Docker-Experimental`. Errors are
//! `{"message": …}` with `Content-Type: application/json` exactly, because the CLI parses JSON
//! only then. This module is the only place where an error becomes an HTTP status:
//! [`status_of`] maps [`ErrorKind`] once, and its test pins the mapping.

mod body;
mod containers;
mod events;
mod images;
mod stream;
mod system;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

pub use body::{ChannelWriter, Query, ResponseBody};

use crate::ErrorKind;
use crate::events::EventLog;
use crate::images::ImageService;

/// The API version served (and the maximum accepted).
pub const API_VERSION: &str = "1.44";
/// The oldest version accepted.
pub const MIN_API_VERSION: &str = "1.24";
/// The engine version reported by `/version`.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The image service.
    pub images: Arc<ImageService>,
    /// The container service.
    pub containers: Arc<crate::containers::ContainerService>,
    /// The event log behind `/events`.
    pub events: Arc<EventLog>,
    /// `--data-root`.
    pub data_root: PathBuf,
    /// When the daemon started.
    pub started: Instant,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    /// Its class.
    pub kind: ErrorKind,
    /// The message the client shows.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<crate::images::reference::ParseError> for ApiError {
    fn from(e: crate::images::reference::ParseError) -> Self {
        Self::new(ErrorKind::InvalidArgument, e.to_string())
    }
}

impl From<crate::images::Error> for ApiError {
    fn from(e: crate::images::Error) -> Self {
        Self::new(e.kind(), crate::containers::error_chain(&e))
    }
}

/// The one mapping from error kind to HTTP status.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

type Resp = Response<ResponseBody>;

/// A JSON response.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(ResponseBody::full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: ApiError) -> Resp {
    let status = status_of(e.kind);
    if status.is_server_error() {
        tracing::error!(message = %e.message, "request failed");
    } else {
        tracing::debug!(%status, message = %e.message, "request refused");
    }
    json(status, &serde_json::json!({ "message": e.message }))
}

/// Splits `/v1.44/images/json` into (`Some("1.44")`, `/images/json`).
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return (Some(v), &rest[end..]);
        }
    }
    (None, path)
}

fn version_tuple(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn check_version(v: &str) -> Result<(), ApiError> {
    let bad = || {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("invalid API version {v:?}"),
        )
    };
    let have = version_tuple(v).ok_or_else(bad)?;
    let max = version_tuple(API_VERSION).ok_or_else(bad)?;
    let min = version_tuple(MIN_API_VERSION).ok_or_else(bad)?;
    if have > max {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            ),
        ));
    }
    if have < min {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ),
        ));
    }
    Ok(())
}

/// Serves one request: routing, handler, error mapping, common headers.
pub async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    let path = body::percent_decode(req.uri().path(), false);
    let span = tracing::debug_span!("http", %method, %path);
    let _enter = span.enter();
    let mut resp = match route(state, req, &method, &path).await {
        Ok(r) => r,
        Err(e) => error_response(e),
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("skiffd/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    tracing::debug!(status = %resp.status(), "served");
    Ok(resp)
}

async fn route(
    state: Arc<ApiState>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Resp, ApiError> {
    let (version, rest) = split_version(path);
    if let Some(v) = version {
        check_version(v)?;
    }
    let api = version
        .and_then(version_tuple)
        .or_else(|| version_tuple(API_VERSION))
        .unwrap_or((1, 44));
    let query = Query::parse(req.uri().query());
    let registry_auth = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let rest = rest.trim_end_matches('/');
    match (method.as_str(), rest) {
        ("GET" | "HEAD", "/_ping") => Ok(system::ping(method == Method::HEAD)),
        ("GET", "/version") => Ok(system::version()),
        ("GET", "/info") => system::info(&state).await,
        ("GET", "/system/df") => system::df(&state, &query, api).await,
        ("GET", "/events") => events::stream(&state, &query),
        ("POST", "/images/create") => images::create(&state, &query, registry_auth).await,
        ("GET", "/images/json") => images::list(&state, &query, api).await,
        ("POST", "/images/load") => images::load(&state, &query, req.into_body()).await,
        ("GET", "/images/get") => images::get(&state, query.all("names")).await,
        ("POST", "/images/prune") => images::prune(&state, &query).await,
        ("POST", "/containers/create") => containers::create(&state, &query, req.into_body()).await,
        ("GET", "/containers/json") => containers::list(&state, &query).await,
        ("POST", "/containers/prune") => containers::prune(&state, &query).await,
        ("POST", "/commit") => containers::commit(&state, &query, req.into_body()).await,
        ("DELETE", p) if p.starts_with("/containers/") => {
            containers::remove(&state, &p["/containers/".len()..], &query).await
        }
        (m, p) if p.starts_with("/containers/") => {
            let inner = &p["/containers/".len()..];
            let Some((id, action)) = inner.split_once('/') else {
                return Err(not_found(path));
            };
            match (m, action) {
                ("GET", "json") => containers::inspect(&state, id, &query).await,
                ("POST", "start") => containers::start(&state, id).await,
                ("POST", "stop") => containers::stop(&state, id, &query).await,
                ("POST", "restart") => containers::restart(&state, id, &query).await,
                ("POST", "kill") => containers::kill(&state, id, &query).await,
                ("POST", "wait") => containers::wait(&state, id, &query).await,
                ("POST", "attach") => containers::attach(&state, id, &query, req).await,
                ("POST", "resize") => containers::resize(&state, id, &query).await,
                ("GET", "logs") => containers::logs(&state, id, &query).await,
                ("POST", "rename") => containers::rename(&state, id, &query).await,
                ("POST", "pause") => containers::pause(&state, id, true).await,
                ("POST", "unpause") => containers::pause(&state, id, false).await,
                ("GET", "top") => containers::top(&state, id, &query).await,
                ("GET", "stats") => containers::stats(&state, id, &query).await,
                ("GET", "export") => containers::export(&state, id).await,
                ("GET", "changes") => containers::changes(&state, id).await,
                ("GET", "archive") => containers::archive_get(&state, id, &query, false).await,
                ("HEAD", "archive") => containers::archive_get(&state, id, &query, true).await,
                ("PUT", "archive") => {
                    containers::archive_put(&state, id, &query, req.into_body()).await
                }
                ("POST", "update") => containers::update(&state, id, req.into_body()).await,
                ("POST", "exec") => containers::exec_create(&state, id, req.into_body()).await,
                _ => Err(not_found(path)),
            }
        }
        (m, p) if p.starts_with("/exec/") => {
            let inner = &p["/exec/".len()..];
            match (m, inner.split_once('/')) {
                ("POST", Some((id, "start"))) => containers::exec_start(&state, id, req).await,
                ("POST", Some((id, "resize"))) => containers::exec_resize(&state, id, &query).await,
                ("GET", Some((id, "json"))) => containers::exec_inspect(&state, id).await,
                _ => Err(not_found(path)),
            }
        }
        ("DELETE", p) if p.starts_with("/images/") => {
            images::delete(&state, &p["/images/".len()..], &query).await
        }
        (m, p) if p.starts_with("/images/") => {
            let inner = &p["/images/".len()..];
            match (m, inner.rsplit_once('/')) {
                ("GET", Some((name, "json"))) => images::inspect(&state, name).await,
                ("GET", Some((name, "history"))) => images::history(&state, name).await,
                ("GET", Some((name, "get"))) => images::get(&state, vec![name.to_owned()]).await,
                ("POST", Some((name, "tag"))) => images::tag(&state, name, &query).await,
                ("POST", Some((name, "push"))) => {
                    images::push(&state, name, &query, registry_auth).await
                }
                _ => Err(not_found(path)),
            }
        }
        _ => Err(not_found(path)),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("page not found: {path}"))
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_kind_once() {
        assert_eq!(status_of(ErrorKind::NotFound), 404);
        assert_eq!(status_of(ErrorKind::AlreadyExists), 409);
        assert_eq!(status_of(ErrorKind::FailedPrecondition), 409);
        assert_eq!(status_of(ErrorKind::InvalidArgument), 400);
        assert_eq!(status_of(ErrorKind::Unavailable), 503);
        assert_eq!(status_of(ErrorKind::Internal), 500);
    }

    #[test]
    fn splits_and_checks_versions() {
        assert_eq!(
            split_version("/v1.44/images/json"),
            (Some("1.44"), "/images/json")
        );
        assert_eq!(split_version("/_ping"), (None, "/_ping"));
        assert_eq!(split_version("/version"), (None, "/version"));
        assert!(check_version("1.24").is_ok());
        assert!(check_version("1.44").is_ok());
        let e = check_version("1.45").unwrap_err();
        assert!(e.message.contains("too new"), "{}", e.message);
        assert!(
            check_version("1.12")
                .unwrap_err()
                .message
                .contains("too old")
        );
        assert!(check_version("x").is_err());
    }
}
