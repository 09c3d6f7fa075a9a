//! `/containers/…` and `/exec/…` handlers, including the hijacked attach and exec streams.
//!
//! Hijack (`reference/docker-engine-api.md` §3.1–3.3): the client sends `Connection: Upgrade`,
//! `Upgrade: tcp`; we answer `101` with `Content-Type: application/vnd.docker.raw-stream` (tty)
//! or `…multiplexed-stream` (8-byte frames `[stream,0,0,0,len_be32]`), then the connection is
//! a byte stream both ways. A read EOF from the client is "stdin closed" (`CloseWrite`): with
//! `StdinOnce` and no tty the process's stdin is closed, and output keeps flowing; when the
//! process's output ends we half-close our side (`shutdown(SHUT_WR)`), which ends the client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::{ApiError, ApiState, Query, ResponseBody, blocking, json};
use crate::ErrorKind;
use crate::containers::io::Chunk;
use crate::containers::logs::{self, Selection, format_nanos};
use crate::containers::{CommitRequest, ContainerRecord, Status, WaitCondition};
use crate::events::parse_timestamp;

type Resp = Response<ResponseBody>;

impl From<crate::containers::Error> for ApiError {
    fn from(e: crate::containers::Error) -> Self {
        Self::new(e.kind(), crate::containers::error_chain(&e))
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, msg)
}

fn no_content(status: StatusCode) -> Resp {
    let mut r = Response::new(ResponseBody::empty());
    *r.status_mut() = status;
    r
}

async fn read_json(body: Incoming) -> Result<Value, ApiError> {
    use http_body_util::BodyExt as _;
    let bytes = body
        .collect()
        .await
        .map_err(|e| invalid(format!("reading the request body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

/// `POST /containers/create`.
pub async fn create(state: &Arc<ApiState>, q: &Query, body: Incoming) -> Result<Resp, ApiError> {
    let body = read_json(body).await?;
    let name = q.get("name").map(str::to_owned);
    let svc = state.containers.clone();
    let (id, warnings) = blocking(move || Ok(svc.create(&body, name.as_deref())?)).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": warnings}),
    ))
}

/// moby `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

fn status_text(r: &ContainerRecord) -> String {
    let now = crate::unix_now();
    let since = |t: i64| human_duration(now - t / 1_000_000_000);
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(r.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(r.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            since(r.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited if r.state.finished_at == 0 => format!("Exited ({})", r.state.exit_code),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            since(r.state.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

/// The `Command` of `docker ps`: the path and the arguments, an argument with a space in
/// single quotes (as docker shows it; the path itself is never quoted).
fn command_line(r: &ContainerRecord) -> String {
    let mut v = vec![r.path.clone()];
    v.extend(r.args.iter().map(|a| {
        if a.contains(' ') {
            format!("'{a}'")
        } else {
            a.clone()
        }
    }));
    v.join(" ")
}

pub(super) fn summary(r: &ContainerRecord) -> Value {
    let mode = r.host_config["NetworkMode"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    json!({
        "Id": r.id,
        "Names": [r.name],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": command_line(r),
        "Created": r.created / 1_000_000_000,
        "Ports": [],
        "Labels": r.config.labels,
        "State": r.state.status.as_str(),
        "Status": status_text(r),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": {}},
        "Mounts": mounts_json(r),
    })
}

fn mounts_json(r: &ContainerRecord) -> Vec<Value> {
    r.host()
        .binds
        .iter()
        .filter_map(|b| {
            let p: Vec<&str> = b.split(':').collect();
            if p.len() < 2 {
                return None;
            }
            let rw = !p.get(2).is_some_and(|o| o.split(',').any(|x| x == "ro"));
            Some(json!({"Type": "bind", "Source": p[0], "Destination": p[1], "Mode": p.get(2).copied().unwrap_or(""),
                "RW": rw, "Propagation": "rprivate"}))
        })
        .collect()
}

/// The filters `GET /containers/json` takes (docker's `acceptedPsFilterTags`).
const PS_FILTERS: [&str; 15] = [
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// A `filters` query checked and resolved against the containers and images: names as
/// regular expressions, `ancestor` as image ids, `before`/`since` as creation times.
pub(super) struct PsFilter {
    raw: std::collections::BTreeMap<String, Vec<String>>,
    names: Vec<regex::Regex>,
    ancestors: Vec<String>,
    before: Option<i64>,
    since: Option<i64>,
    until: Option<i64>,
}

impl PsFilter {
    /// Checks the filters of `GET /containers/json` (`accepted` = [`PS_FILTERS`]) or of
    /// `POST /containers/prune` (`label`, `label!`, `until`); an unknown key or a bad value is
    /// docker's 400 "Invalid filter".
    pub(super) fn new(
        raw: std::collections::BTreeMap<String, Vec<String>>,
        accepted: &[&str],
        recs: &[ContainerRecord],
        images: &crate::images::ImageService,
    ) -> Result<Self, ApiError> {
        let bad = |k: &str, v: &str| invalid(format!("Invalid filter '{k}={v}'"));
        for (k, vals) in &raw {
            if !accepted.contains(&k.as_str()) {
                return Err(invalid(format!("Invalid filter '{k}'")));
            }
            for v in vals {
                let ok = match k.as_str() {
                    "status" => Status::ALL.iter().any(|st| st.as_str() == v),
                    "exited" => v.parse::<i64>().is_ok(),
                    "health" => matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none"),
                    "is-task" => matches!(v.as_str(), "true" | "false"),
                    _ => true,
                };
                if !ok {
                    return Err(bad(k, v));
                }
            }
        }
        let names = raw
            .get("name")
            .map(|v| {
                v.iter()
                    .map(|n| regex::Regex::new(n).map_err(|e| bad("name", &format!("{n}: {e}"))))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        // An image that does not resolve matches by the name the container was created with.
        let ancestors = raw
            .get("ancestor")
            .map(|v| {
                v.iter()
                    .map(|a| {
                        images
                            .resolve(a)
                            .map_or_else(|_| a.clone(), |i| i.id.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let created_of = |k: &str| -> Result<Option<i64>, ApiError> {
            let Some(v) = raw.get(k).and_then(|v| v.first()) else {
                return Ok(None);
            };
            let v = v.trim_start_matches('/');
            recs.iter()
                .find(|r| r.short_name() == v || r.id == v)
                .or_else(|| recs.iter().find(|r| r.id.starts_with(v)))
                .map(|r| Some(r.created))
                .ok_or_else(|| {
                    ApiError::new(ErrorKind::NotFound, format!("No such container: {v}"))
                })
        };
        let until = match raw.get("until").and_then(|v| v.first()) {
            Some(u) => Some(
                crate::events::filter_time(u, logs::now_nanos()).ok_or_else(|| bad("until", u))?,
            ),
            None => None,
        };
        Ok(Self {
            names,
            ancestors,
            before: created_of("before")?,
            since: created_of("since")?,
            until,
            raw,
        })
    }

    /// `status` or `exited` asks for stopped containers without `all`.
    fn implies_all(&self) -> bool {
        self.raw.contains_key("status") || self.raw.contains_key("exited")
    }

    /// Whether `r` passes; `health` is its health status, if a check runs.
    fn matches(&self, r: &ContainerRecord, health: Option<&str>) -> bool {
        let f = &self.raw;
        let any =
            |k: &str, p: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|v| v.iter().any(|x| p(x)));
        let host = r.host();
        let network = r.host_config["NetworkMode"]
            .as_str()
            .unwrap_or("none")
            .to_owned();
        let exposed: Vec<String> = r
            .config
            .exposed_ports
            .as_ref()
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        any("id", &|x| r.id.starts_with(x))
            // docker tries the name with and without its leading `/`.
            && (self.names.is_empty()
                || self
                    .names
                    .iter()
                    .any(|n| n.is_match(&r.name) || n.is_match(r.short_name())))
            && any("status", &|x| x == r.state.status.as_str())
            && (self.ancestors.is_empty()
                || self
                    .ancestors
                    .iter()
                    .any(|a| *a == r.image_id || *a == r.image))
            && any("exited", &|x| {
                r.state.status == Status::Exited && x.parse::<i64>().ok() == Some(r.state.exit_code)
            })
            && any("health", &|x| x == health.unwrap_or("none"))
            && any("is-task", &|x| x == "false")
            && any("isolation", &|x| x == "default" || x.is_empty())
            && any("network", &|x| x == network)
            && any("volume", &|x| {
                host.binds.iter().any(|b| {
                    let mut p = b.split(':');
                    let (src, dst) = (p.next().unwrap_or(""), p.next().unwrap_or(""));
                    x == src || x == dst
                })
            })
            && any("expose", &|x| {
                let x = if x.contains('/') { x.to_owned() } else { format!("{x}/tcp") };
                exposed.contains(&x)
            })
            // Nothing is published until port mapping exists.
            && any("publish", &|_| false)
            && self.before.is_none_or(|t| r.created < t)
            && self.since.is_none_or(|t| r.created > t)
            && self.until.is_none_or(|t| r.created < t)
            && labels_match(&r.config.labels, f.get("label"), true)
            && labels_match(&r.config.labels, f.get("label!"), false)
    }
}

/// `label` filters (`key` or `key=value`): all must hold (`want`), or (for `label!`) none may.
fn labels_match(
    labels: &std::collections::BTreeMap<String, String>,
    filter: Option<&Vec<String>>,
    want: bool,
) -> bool {
    filter.is_none_or(|v| {
        v.iter().all(|l| {
            let has = match l.split_once('=') {
                Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                None => labels.contains_key(l.as_str()),
            };
            has == want
        })
    })
}

/// The health status of a running container with a health check.
fn health_of(svc: &crate::containers::ContainerService, r: &ContainerRecord) -> Option<String> {
    if !r.state.status.is_live() {
        return None;
    }
    svc.health(&r.id).map(|h| h.status.to_owned())
}

/// The size of a container's writable layer, and of its whole root filesystem (the image's
/// layers too), as `SizeRw` / `SizeRootFs`.
pub(super) fn container_sizes(
    images: &crate::images::ImageService,
    r: &ContainerRecord,
) -> (u64, u64) {
    let rw = images
        .snapshotter()
        .usage(&r.snapshot)
        .map(|u| u.size)
        .unwrap_or(0);
    let image = images.resolve(&r.image_id).map(|i| i.size).unwrap_or(0);
    (rw, rw + image)
}

/// `GET /containers/json`.
pub async fn list(state: &Arc<ApiState>, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters().map_err(invalid)?;
    let all = q.bool("all");
    let size = q.bool("size");
    let limit: Option<usize> = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .and_then(|l| usize::try_from(l).ok())
        .filter(|l| *l > 0);
    let svc = state.containers.clone();
    let images = state.images.clone();
    let out = blocking(move || {
        let recs = svc.list()?;
        let filter = PsFilter::new(filters, &PS_FILTERS, &recs, &images)?;
        let mut out: Vec<Value> = recs
            .iter()
            .filter(|r| all || limit.is_some() || r.state.status.is_live() || filter.implies_all())
            .map(|r| (r, health_of(&svc, r)))
            .filter(|(r, health)| filter.matches(r, health.as_deref()))
            .map(|(r, health)| {
                let mut v = summary(r);
                if let Some(h) = health {
                    // docker ps: "Up 3 minutes (healthy)", "(health: starting)".
                    let shown = if h == "starting" {
                        "health: starting".to_owned()
                    } else {
                        h
                    };
                    v["Status"] =
                        json!(format!("{} ({shown})", v["Status"].as_str().unwrap_or("")));
                }
                if size {
                    let (rw, rootfs) = container_sizes(&images, r);
                    v["SizeRw"] = json!(rw);
                    v["SizeRootFs"] = json!(rootfs);
                }
                v
            })
            .collect();
        if let Some(n) = limit {
            out.truncate(n);
        }
        Ok(out)
    })
    .await?;
    Ok(json(StatusCode::OK, &Value::Array(out)))
}

fn time_or_zero(n: i64) -> String {
    if n == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        format_nanos(n)
    }
}

/// `GET /containers/{id}/json`.
pub async fn inspect(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let svc = state.containers.clone();
    let images = state.images.clone();
    let id = id.to_owned();
    let want_size = q.bool("size");
    let (r, graph, sizes) = blocking(move || {
        let r = svc.get(&id)?;
        let graph = svc.graph_driver_data(&r);
        let sizes = want_size.then(|| container_sizes(&images, &r));
        Ok((r, graph, sizes))
    })
    .await?;
    let (resolv, hostname, hosts) = state.containers.paths(&r.id);
    let execs = state.containers.exec_ids(&r.id);
    let st = &r.state;
    let mode = r.host_config["NetworkMode"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    let mut config = serde_json::to_value(&r.config).unwrap_or_else(|_| json!({}));
    config["Image"] = json!(r.image);
    let mut v = json!({
        "Id": r.id,
        "Created": format_nanos(r.created),
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": st.status.as_str(),
            "Running": st.status.is_live(),
            "Paused": st.status == Status::Paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": time_or_zero(st.started_at),
            "FinishedAt": time_or_zero(st.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": resolv,
        "HostnamePath": hostname,
        "HostsPath": hosts,
        "LogPath": state.containers.log_path(&r.id),
        "Name": r.name,
        "RestartCount": r.restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if execs.is_empty() { Value::Null } else { json!(execs) },
        "HostConfig": r.host_config,
        "GraphDriver": {"Data": graph, "Name": "overlayfs"},
        "Mounts": mounts_json(&r),
        "Config": config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": { mode: {
                "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DriverOpts": null, "DNSNames": null,
            }},
        },
    });
    if let Some((rw, rootfs)) = sizes {
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(rootfs);
    }
    if let Some(h) = state.containers.health(&r.id) {
        v["State"]["Health"] = h.to_json(format_nanos);
    }
    Ok(json(StatusCode::OK, &v))
}

/// `POST /containers/{id}/start`.
pub async fn start(state: &Arc<ApiState>, id: &str) -> Result<Resp, ApiError> {
    Ok(if state.containers.start(id).await? {
        no_content(StatusCode::NO_CONTENT)
    } else {
        no_content(StatusCode::NOT_MODIFIED)
    })
}

fn int_param(q: &Query, k: &str) -> Result<Option<i64>, ApiError> {
    match q.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| invalid(format!("invalid value for {k}: {v:?}"))),
    }
}

/// `POST /containers/{id}/stop`.
pub async fn stop(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let t = int_param(q, "t")?;
    Ok(if state.containers.stop(id, t, q.get("signal")).await? {
        no_content(StatusCode::NO_CONTENT)
    } else {
        no_content(StatusCode::NOT_MODIFIED)
    })
}

/// `POST /containers/{id}/restart`.
pub async fn restart(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let t = int_param(q, "t")?;
    state.containers.restart(id, t, q.get("signal")).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/kill`.
pub async fn kill(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    state.containers.kill(id, q.get("signal")).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}`.
pub async fn remove(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    state.containers.remove(id, q.bool("force")).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause|unpause`.
pub async fn pause(state: &Arc<ApiState>, id: &str, pause: bool) -> Result<Resp, ApiError> {
    state.containers.set_paused(id, pause).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename`.
pub async fn rename(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let name = q.get("name").unwrap_or("").to_owned();
    let svc = state.containers.clone();
    let id = id.to_owned();
    blocking(move || Ok(svc.rename(&id, &name)?)).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

fn size_params(q: &Query) -> Result<(u32, u32), ApiError> {
    let p = |k| -> Result<u32, ApiError> {
        q.get(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| invalid(format!("invalid {k}")))
    };
    Ok((p("h")?, p("w")?))
}

/// `POST /containers/{id}/resize`.
pub async fn resize(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let (h, w) = size_params(q)?;
    state.containers.resize(id, h, w).await?;
    Ok(no_content(StatusCode::OK))
}

/// `POST /containers/{id}/update`.
pub async fn update(state: &Arc<ApiState>, id: &str, body: Incoming) -> Result<Resp, ApiError> {
    let body = read_json(body).await?;
    state.containers.update(id, &body).await?;
    Ok(json(StatusCode::OK, &json!({"Warnings": []})))
}

/// `POST /containers/{id}/wait`: the headers go out at once; the body when the condition
/// holds.
pub async fn wait(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let cond = match q.get("condition").unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => return Err(invalid(format!("invalid condition: {other:?}"))),
    };
    let fut = state.containers.wait(id, cond)?;
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        let code = fut.await;
        let _ = tx
            .send(Bytes::from(format!(
                "{}\n",
                json!({"StatusCode": code, "Error": null})
            )))
            .await;
    });
    let mut r = Response::new(ResponseBody::Stream(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `GET /containers/{id}/top`.
pub async fn top(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let pids = state.containers.pids(id).await?;
    let args = q
        .get("ps_args")
        .filter(|a| !a.is_empty())
        .unwrap_or("-ef")
        .to_owned();
    let (titles, procs) = blocking(move || {
        let out = std::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .map_err(|e| ApiError::new(ErrorKind::Internal, format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(invalid(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids).map_err(invalid)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &json!({"Titles": titles, "Processes": procs}),
    ))
}

/// moby `parsePSOutput`: the header's columns, then the rows whose `PID` is one of `pids`.
pub fn parse_ps(out: &str, pids: &[u32]) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut lines = out.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or("Couldn't find PID field in ps output")?;
    let mut procs = Vec::new();
    for l in lines {
        if l.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len();
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| (*s).to_owned()).collect();
        row.push(
            fields
                .iter()
                .skip(n - 1)
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        );
        procs.push(row);
    }
    Ok((titles, procs))
}

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// The next batch (about 1 MiB) of a json-file log from `offset`, read on the blocking pool,
/// up to `limit`; None at the end (or on a read error).
async fn log_batch(
    path: &std::path::Path,
    offset: u64,
    limit: u64,
) -> Option<(Vec<logs::Entry>, u64)> {
    if offset >= limit {
        return None;
    }
    let path = path.to_owned();
    let (batch, next) =
        tokio::task::spawn_blocking(move || logs::read_batch(&path, offset, limit, 1 << 20))
            .await
            .ok()?
            .ok()?;
    (next > offset).then_some((batch, next))
}

/// `GET /containers/{id}/logs`.
pub async fn logs(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let sel = Selection {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: match q.get("since").filter(|s| !s.is_empty() && *s != "0") {
            Some(s) => Some(parse_timestamp(s).ok_or_else(|| invalid("invalid since"))?),
            None => None,
        },
        until: match q.get("until").filter(|s| !s.is_empty() && *s != "0") {
            Some(s) => Some(parse_timestamp(s).ok_or_else(|| invalid("invalid until"))?),
            None => None,
        },
        tail: match q.get("tail").unwrap_or("all") {
            "all" | "" => None,
            n => Some(
                n.parse::<i64>()
                    .ok()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid("invalid tail"))?,
            ),
        },
    };
    if !sel.stdout && !sel.stderr {
        return Err(invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let svc = state.containers.clone();
    let idc = id.to_owned();
    let rec = blocking(move || Ok(svc.get(&idc)?)).await?;
    let tty = rec.config.tty;
    let follow = q.bool("follow");
    let timestamps = q.bool("timestamps");
    let path = state.containers.log_path(&rec.id);
    let live = state.containers.live_of(&rec.id);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let render = move |e: &logs::Entry| -> Bytes {
            let mut data = Vec::new();
            if timestamps {
                data.extend_from_slice(format_nanos(e.time).as_bytes());
                data.push(b' ');
            }
            data.extend_from_slice(&e.log);
            Bytes::from(if tty {
                data
            } else {
                frame(e.stream.byte(), &data)
            })
        };
        let mut watch = live.watch();
        let p = path.clone();
        // What the log holds now (up to its size at this moment), read in batches on the
        // blocking pool and sent from here: a slow client holds no pool thread.
        let p2 = p.clone();
        let Ok(limit) = tokio::task::spawn_blocking(move || logs::log_len(&p2)).await else {
            return;
        };
        let mut offset = 0;
        if sel.tail.is_some() {
            let s2 = sel.clone();
            let Ok(Ok((entries, next))) =
                tokio::task::spawn_blocking(move || s2.tail_of(&p, limit)).await
            else {
                return;
            };
            offset = next;
            for e in entries {
                if tx.send(render(&e)).await.is_err() {
                    return;
                }
            }
        } else {
            while let Some((batch, next)) = log_batch(&p, offset, limit).await {
                offset = next;
                for e in batch.iter().filter(|e| sel.wants(e)) {
                    if tx.send(render(e)).await.is_err() {
                        return;
                    }
                }
            }
        }
        if !follow || tx.is_closed() {
            return;
        }
        let mut ended = !watch.borrow().running;
        loop {
            // What was written since, in the same batches.
            while let Some((more, next)) = log_batch(&path, offset, u64::MAX).await {
                offset = next;
                for e in more.iter().filter(|e| sel.wants(e)) {
                    if tx.send(render(e)).await.is_err() {
                        return;
                    }
                }
            }
            if ended {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = watch.changed() => {}
                () = tx.closed() => return,
            }
            let w = *watch.borrow();
            ended = !w.running || w.removed;
        }
    });
    let mut r = Response::new(ResponseBody::Stream(rx));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        }),
    );
    Ok(r)
}

/// The 101 answer of a hijack (`None` when the client did not ask to upgrade).
/// Output without a connection upgrade: a plain streamed body, raw with a tty, multiplexed
/// 8-byte-header frames without.
/// The output of a process as a plain streamed body (no upgrade), only the streams wanted
/// (`want` = stdout, stderr).
fn streamed_output(mut out: mpsc::Receiver<Chunk>, tty: bool, want: (bool, bool)) -> Resp {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some((stream, data)) = out.recv().await {
            if !wanted(stream, want) {
                continue;
            }
            let b = if tty {
                data.to_vec()
            } else {
                frame(stream, &data)
            };
            if tx.send(Bytes::from(b)).await.is_err() {
                break;
            }
        }
    });
    let mut r = upgrade_response(false, tty);
    *r.body_mut() = ResponseBody::Stream(rx);
    r
}

/// Whether a chunk of `stream` (1 stdout, 2 stderr) is one the client asked for.
fn wanted(stream: u8, want: (bool, bool)) -> bool {
    match stream {
        1 => want.0,
        2 => want.1,
        _ => true,
    }
}

fn upgrade_response(req_upgrade: bool, tty: bool) -> Resp {
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut r = Response::new(ResponseBody::empty());
    if req_upgrade {
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        r.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("tcp"));
    }
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"))
}

/// Where stdin from the client goes.
enum StdinSink {
    Container(Arc<crate::containers::Live>, bool),
    Exec(Arc<ApiState>, Arc<crate::containers::ExecInstance>, bool),
}

impl StdinSink {
    async fn write(&self, data: &[u8]) -> bool {
        match self {
            StdinSink::Container(l, _) => l.write_stdin(data).await,
            StdinSink::Exec(_, e, _) => e.write_stdin(data).await,
        }
    }

    async fn eof(&self) {
        match self {
            StdinSink::Container(l, close) => {
                if *close {
                    l.close_stdin().await;
                }
            }
            StdinSink::Exec(st, e, close) => {
                if *close {
                    st.containers.exec_close_stdin(e).await;
                }
            }
        }
    }
}

/// Runs a hijacked connection: stdin from the client into `sink`, output from `out` to the
/// client (framed unless `tty`), half-close when the output ends.
/// Work to run once the connection is hijacked (an exec starts only then, as in moby, so its
/// first output cannot arrive in the same packet as the 101 and be lost by clients that read
/// the raw socket under their HTTP buffer — docker-py does).
type AfterUpgrade = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

fn spawn_stream(
    on_upgrade: hyper::upgrade::OnUpgrade,
    mut out: mpsc::Receiver<Chunk>,
    sink: Option<StdinSink>,
    tty: bool,
    want: (bool, bool),
    after_upgrade: Option<AfterUpgrade>,
) {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let parts = match upgraded.downcast::<TokioIo<tokio::net::UnixStream>>() {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("hijacked connection is not a unix stream");
                return;
            }
        };
        let (mut rd, mut wr) = parts.io.into_inner().into_split();
        let early = parts.read_buf;
        if let Some(f) = after_upgrade {
            if let Err(e) = f.await {
                // moby writes a failure after the hijack into the output as text, through the
                // stdout writer: a stdout frame without a tty (the CLI then reads the exit code,
                // 126/127, from the exec's inspect).
                let text = format!("{e}\r\n");
                let bytes = if tty {
                    text.into_bytes()
                } else {
                    frame(1, text.as_bytes())
                };
                let _ = wr.write_all(&bytes).await;
                let _ = wr.shutdown().await;
                return;
            }
        }
        let stdin_task = sink.map(|sink| {
            tokio::spawn(async move {
                if !early.is_empty() && !sink.write(&early).await {
                    return;
                }
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            sink.eof().await;
                            return;
                        }
                        Ok(n) => {
                            if !sink.write(&buf[..n]).await {
                                return;
                            }
                        }
                    }
                }
            })
        });
        while let Some((stream, data)) = out.recv().await {
            if !wanted(stream, want) {
                continue;
            }
            let r = if tty {
                wr.write_all(&data).await
            } else {
                wr.write_all(&frame(stream, &data)).await
            };
            if r.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
        if let Some(t) = stdin_task {
            // Give a client a moment to half-close after reading the end; then let go.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while !t.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            t.abort();
        }
    });
}

/// `POST /containers/{id}/attach`.
pub async fn attach(
    state: &Arc<ApiState>,
    id: &str,
    q: &Query,
    mut req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let svc = state.containers.clone();
    let idc = id.to_owned();
    let rec = blocking(move || Ok(svc.get(&idc)?)).await?;
    let live = state.containers.live_of(&rec.id);
    let tty = rec.config.tty;
    let stdin = q.bool("stdin") && rec.config.open_stdin;
    // `logs=1` replays the log first; `stream=1` then follows the live output (docker reads
    // the log to its end, then attaches, as here).
    let out = if q.bool("logs") {
        let (tx, rx) = mpsc::channel::<Chunk>(64);
        let path = state.containers.log_path(&rec.id);
        let stream = q.bool("stream");
        let live = live.clone();
        tokio::spawn(async move {
            // Read in batches on the blocking pool, sent from here (up to the log's size now).
            let p2 = path.clone();
            let limit = tokio::task::spawn_blocking(move || logs::log_len(&p2))
                .await
                .unwrap_or(0);
            let mut offset = 0;
            while let Some((batch, next)) = log_batch(&path, offset, limit).await {
                offset = next;
                for e in batch {
                    if tx
                        .send((e.stream.byte(), Bytes::from(e.log)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
            if stream {
                let mut live_out = live.attachers.attach();
                while let Some(c) = live_out.recv().await {
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    } else if q.bool("stream") {
        live.attachers.attach()
    } else {
        // Neither: nothing to send (docker answers and closes).
        mpsc::channel::<Chunk>(1).1
    };
    state.containers.event(&rec, "attach", &[]);
    let upgrade = wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let sink = stdin.then(|| StdinSink::Container(live.clone(), rec.config.stdin_once && !tty));
    let want = (q.bool("stdout"), q.bool("stderr"));
    if upgrade {
        spawn_stream(on_upgrade, out, sink, tty, want, None);
        Ok(upgrade_response(true, tty))
    } else {
        // No upgrade (old clients, curl): output only, as a plain streamed body.
        Ok(streamed_output(out, tty, want))
    }
}

/// `POST /containers/{id}/exec`.
pub async fn exec_create(
    state: &Arc<ApiState>,
    id: &str,
    body: Incoming,
) -> Result<Resp, ApiError> {
    let body = read_json(body).await?;
    let svc = state.containers.clone();
    let id = id.to_owned();
    let eid = blocking(move || Ok(svc.exec_create(&id, &body)?)).await?;
    Ok(json(StatusCode::CREATED, &json!({"Id": eid})))
}

/// `POST /exec/{id}/start`.
pub async fn exec_start(
    state: &Arc<ApiState>,
    id: &str,
    mut req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let upgrade = wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = read_json(req.into_body()).await?;
    let exec = state.containers.exec(id)?;
    let detach = body.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    let tty = body.get("Tty").and_then(Value::as_bool).unwrap_or(exec.tty);
    let out = exec.attachers.attach();
    let size = body
        .get("ConsoleSize")
        .and_then(Value::as_array)
        .and_then(|sz| Some((sz.first()?.as_u64()?, sz.get(1)?.as_u64()?)))
        .filter(|(h, w)| *h > 0 && *w > 0)
        .map(|(h, w)| {
            (
                u32::try_from(h).unwrap_or(24),
                u32::try_from(w).unwrap_or(80),
            )
        });
    let st = state.clone();
    let ex = exec.clone();
    let start = async move {
        st.containers.exec_start(&ex).await?;
        if let Some((h, w)) = size {
            let _ = st.containers.exec_resize(&ex, h, w).await;
        }
        Ok::<(), crate::containers::Error>(())
    };
    let pending = if detach || !upgrade {
        start.await?;
        None
    } else {
        Some(start)
    };
    if detach {
        drop(out);
        return Ok(no_content(StatusCode::OK));
    }
    let sink = exec
        .attach_stdin
        .then(|| StdinSink::Exec(state.clone(), exec.clone(), true));
    let want = (exec.attach_stdout, exec.attach_stderr);
    if let Some(start) = pending {
        let after: AfterUpgrade =
            Box::pin(async move { start.await.map_err(|e| crate::containers::error_chain(&e)) });
        spawn_stream(on_upgrade, out, sink, tty, want, Some(after));
        Ok(upgrade_response(true, tty))
    } else {
        Ok(streamed_output(out, tty, want))
    }
}

/// `POST /exec/{id}/resize`.
pub async fn exec_resize(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let (h, w) = size_params(q)?;
    let exec = state.containers.exec(id)?;
    state.containers.exec_resize(&exec, h, w).await?;
    Ok(no_content(StatusCode::OK))
}

/// `GET /exec/{id}/json`.
pub async fn exec_inspect(state: &Arc<ApiState>, id: &str) -> Result<Resp, ApiError> {
    let e = state.containers.exec(id)?;
    let (running, pid, code) = *e.state.lock().unwrap_or_else(|p| p.into_inner());
    Ok(json(
        StatusCode::OK,
        &json!({
            "ID": e.id,
            "Running": running,
            "ExitCode": code,
            "ProcessConfig": {
                "tty": e.tty,
                "entrypoint": e.cmd.first().cloned().unwrap_or_default(),
                "arguments": e.cmd.iter().skip(1).collect::<Vec<_>>(),
                "privileged": e.privileged,
                "user": e.user,
            },
            "OpenStdin": e.attach_stdin,
            "OpenStderr": e.attach_stderr,
            "OpenStdout": e.attach_stdout,
            "CanRemove": false,
            "ContainerID": e.container_id,
            "DetachKeys": "",
            "Pid": pid,
        }),
    ))
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: one object, or one per second.
pub async fn stats(state: &Arc<ApiState>, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let stream = q.get("stream").is_none_or(|_| q.bool("stream"));
    let one_shot = q.bool("one-shot");
    let interval = if one_shot {
        Duration::from_millis(0)
    } else {
        Duration::from_millis(500)
    };
    let first = state.containers.stats(id, interval).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let st = state.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let mut v = first;
        loop {
            if tx.send(Bytes::from(format!("{v}\n"))).await.is_err() || !stream {
                return;
            }
            match st.containers.stats(&id, Duration::from_secs(1)).await {
                Ok(n) => v = n,
                Err(_) => return,
            }
        }
    });
    let mut r = Response::new(ResponseBody::Stream(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `GET /containers/{id}/export`.
pub async fn export(state: &Arc<ApiState>, id: &str) -> Result<Resp, ApiError> {
    let svc = state.containers.clone();
    let idc = id.to_owned();
    let rec = blocking(move || Ok(svc.get(&idc)?)).await?;
    let (w, body) = super::ChannelWriter::new();
    let st = state.clone();
    tokio::spawn(async move {
        if let Err(e) = st.containers.export(&rec.id, w).await {
            tracing::error!(container = %rec.id, error = %crate::containers::error_chain(&e), "export");
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

fn not_found_path(path: &str, id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Could not find the file {path} in container {id}"),
    )
}

fn stat_header(v: &Value) -> HeaderValue {
    use base64::Engine as _;
    let enc = base64::engine::general_purpose::STANDARD.encode(v.to_string());
    HeaderValue::from_str(&enc).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `HEAD|GET /containers/{id}/archive?path=`: the stat header, and for GET the tar.
pub async fn archive_get(
    state: &Arc<ApiState>,
    id: &str,
    q: &Query,
    head: bool,
) -> Result<Resp, ApiError> {
    use crate::containers::archive;
    let path = q.get("path").unwrap_or("").to_owned();
    if path.is_empty() {
        return Err(invalid("path is required"));
    }
    // A missing container is a 404 naming it, before any work.
    let svc = state.containers.clone();
    let idc = id.to_owned();
    let (id, host) = blocking(move || {
        let r = svc.get(&idc)?;
        Ok((r.id.clone(), r.host()))
    })
    .await?;
    let volume = volume_of(&host, &path);
    let (w, body) = super::ChannelWriter::new();
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel::<Result<Value, ApiError>>();
    let st = state.clone();
    let id2 = id.clone();
    let id3 = id.clone();
    tokio::spawn(async move {
        let p2 = path.clone();
        let r = st
            .containers
            .with_rootfs(&id3, move |root| {
                // Everything goes through descriptors resolved with the rootfs as the root (the
                // container may be running and swapping directories for symlinks).
                // A path in a bind-mounted volume is read from the volume's source.
                let (root, inner) = match &volume {
                    Some((src, rest, _)) => (src.as_path(), rest.clone()),
                    None => (root, p2.clone()),
                };
                let root = archive::Root::open(root).map_err(|e| {
                    crate::containers::Error::Invalid(format!("opening the root filesystem: {e}"))
                })?;
                let follow = p2.ends_with('/') || p2.ends_with("/.");
                let name = archive::base_name(&p2);
                let target = match root.lookup(&inner, follow) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = stat_tx.send(Err(not_found_path(&p2, &id2)));
                        return Ok(());
                    }
                };
                let _ = stat_tx.send(Ok(target.stat_json(&name)));
                if !head {
                    if let Err(e) = archive::write_tar(&target, &name, w) {
                        tracing::debug!(error = %e, "archive stream ended");
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "archive");
        }
    });
    let stat = stat_rx.await.map_err(|_| {
        ApiError::new(
            ErrorKind::Internal,
            format!("could not read the root filesystem of container {id}"),
        )
    })??;
    let mut r = Response::new(if head { ResponseBody::empty() } else { body });
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

/// Where `docker cp` finds a container path on the host side: in a bind mount (`-v`, or
/// `--mount type=bind`) when the path is under one — the longest destination wins — as (the
/// directory to resolve in, the rest of the path inside it, read-only); else None (the
/// rootfs). The path is taken lexically (`.` and `..` folded first); a symlink in the container
/// that leads into a mount is not followed to it (the rootfs's own directory is used). A file
/// bind resolves in its parent directory. A trailing `/` or `/.` of `path` is kept.
fn volume_of(
    host: &crate::containers::config::HostConfig,
    path: &str,
) -> Option<(std::path::PathBuf, String, bool)> {
    let clean = |p: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in p.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                c => out.push(c.to_owned()),
            }
        }
        out
    };
    let mut mounts: Vec<(String, String, bool)> = host
        .binds
        .iter()
        .filter_map(|b| {
            let mut parts = b.splitn(3, ':');
            let (src, dst) = (parts.next()?, parts.next()?);
            let ro = parts
                .next()
                .is_some_and(|o| o.split(',').any(|x| x == "ro"));
            Some((src.to_owned(), dst.to_owned(), ro))
        })
        .collect();
    mounts.extend(
        host.mounts
            .iter()
            .filter(|m| m.kind == "bind")
            .map(|m| (m.source.clone(), m.target.clone(), m.read_only)),
    );
    let want = clean(path);
    let mut best: Option<(usize, std::path::PathBuf, bool)> = None;
    for (src, dst, ro) in mounts {
        // Only absolute sources are binds (anything else was refused at create).
        if !src.starts_with('/') {
            continue;
        }
        let d = clean(&dst);
        if d.is_empty() || !want.starts_with(&d) {
            continue;
        }
        if best.as_ref().is_none_or(|(n, _, _)| d.len() > *n) {
            best = Some((d.len(), std::path::PathBuf::from(src), ro));
        }
    }
    let (n, src, ro) = best?;
    let mut rest = format!("/{}", want[n..].join("/"));
    if path.ends_with("/.") {
        rest = format!("{}/.", rest.trim_end_matches('/'));
    } else if path.ends_with('/') && !rest.ends_with('/') {
        rest.push('/');
    }
    // A file bind: resolve its name in the directory that holds it.
    if rest == "/" && std::fs::metadata(&src).is_ok_and(|m| !m.is_dir()) {
        // The bind mounts what the source leads to (the host's, trusted): that file.
        let file = std::fs::canonicalize(&src).unwrap_or(src);
        let name = file.file_name()?.to_string_lossy().into_owned();
        return Some((file.parent()?.to_path_buf(), format!("/{name}"), ro));
    }
    Some((src, rest, ro))
}

/// `PUT /containers/{id}/archive?path=DIR`: extracts the body (a tar) into DIR.
pub async fn archive_put(
    state: &Arc<ApiState>,
    id: &str,
    q: &Query,
    body: Incoming,
) -> Result<Resp, ApiError> {
    use crate::containers::Error as CError;
    use crate::containers::archive;
    // First, so that a refusal below still reads the upload away (see BodyReader).
    let reader = super::body::BodyReader::spawn(body);
    let path = q.get("path").unwrap_or("").to_owned();
    if path.is_empty() {
        return Err(invalid("bad parameter: path cannot be empty"));
    }
    let opts = archive::ExtractOptions {
        keep_owner: q.bool("copyUIDGID"),
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
    };
    let svc = state.containers.clone();
    let idc = id.to_owned();
    let (cid, host) = blocking(move || {
        let r = svc.get(&idc)?;
        Ok((r.id.clone(), r.host()))
    })
    .await?;
    // docker's refusals: a read-only volume, or a read-only rootfs outside any volume.
    let volume = volume_of(&host, &path);
    match &volume {
        Some((_, _, true)) => return Err(invalid("mounted volume is marked read-only")),
        None if host.readonly_rootfs => {
            return Err(invalid("container rootfs is marked read-only"));
        }
        _ => {}
    }
    state
        .containers
        .with_rootfs(id, move |root| {
            // Resolution and every write happen relative to descriptors, the rootfs (or the
            // volume's source) as the root (the container may be running and swapping
            // directories for symlinks); errors name paths in the container, never host paths.
            let (root, inner) = match &volume {
                Some((src, rest, _)) => (src.as_path(), rest.clone()),
                None => (root, path.clone()),
            };
            let root = archive::Root::open(root)
                .map_err(|e| CError::Invalid(format!("opening the root filesystem: {e}")))?;
            match root.lookup(&inner, true) {
                Ok(t) if t.is_dir() => {}
                Ok(_) => {
                    return Err(CError::Invalid(
                        "extraction point is not a directory".into(),
                    ));
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                    return Err(CError::Invalid(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                Err(_) => {
                    return Err(CError::PathNotFound(format!(
                        "Could not find the file {path} in container {cid}"
                    )));
                }
            }
            archive::extract_tar(&root, &inner, reader, opts)
                .map_err(|e| CError::Invalid(format!("extracting into {path}: {e}")))
        })
        .await?;
    Ok(no_content(StatusCode::OK))
}

/// The fields of the Engine API's container `Config`.
const CONFIG_KEYS: [&str; 25] = [
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=…` with an optional
/// `Config` body.
pub async fn commit(state: &Arc<ApiState>, q: &Query, body: Incoming) -> Result<Resp, ApiError> {
    let given = read_json(body).await?;
    let container = q.get("container").unwrap_or("").to_owned();
    let name = match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag")) {
        (Some(r), Some(t)) if !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) => Some(format!("{r}:latest")),
        (None, _) => None,
    };
    let req = CommitRequest {
        name: name.clone(),
        comment: q.get("comment").unwrap_or("").to_owned(),
        author: q.get("author").unwrap_or("").to_owned(),
        pause: q.get("pause").is_none_or(|_| q.bool("pause")),
        // As moby's decoder: a body without any Config field (none, `{}`, docker-py's empty
        // dict) is no Config, and the container's is kept whole.
        config: match given {
            Value::Null => None,
            Value::Object(o) if !o.keys().any(|k| CONFIG_KEYS.contains(&k.as_str())) => None,
            g @ Value::Object(_) => Some(g),
            _ => return Err(invalid("the commit request body must be a Config object")),
        },
        changes: q.all("changes"),
    };
    let id = state.containers.commit(&container, req).await?;
    if let Some(n) = name {
        state
            .events
            .publish(crate::events::Event::image("tag", id.clone(), n));
    }
    Ok(json(StatusCode::CREATED, &json!({"Id": id})))
}

/// `GET /containers/{id}/changes`.
pub async fn changes(state: &Arc<ApiState>, id: &str) -> Result<Resp, ApiError> {
    let svc = state.containers.clone();
    let id = id.to_owned();
    let list = blocking(move || Ok(svc.changes(&id)?)).await?;
    let v: Vec<Value> = list
        .into_iter()
        .map(|(p, k)| json!({"Path": p, "Kind": k}))
        .collect();
    Ok(json(StatusCode::OK, &Value::Array(v)))
}

/// `POST /containers/prune`: removes the stopped containers the filters (`label`, `label!`,
/// `until`) select; answers what went and the bytes their writable layers held.
pub async fn prune(state: &Arc<ApiState>, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters().map_err(invalid)?;
    let svc = state.containers.clone();
    let images = state.images.clone();
    let chosen = blocking(move || {
        let recs = svc.list()?;
        let filter = PsFilter::new(filters, &["label", "label!", "until"], &recs, &images)?;
        Ok(recs
            .iter()
            .filter(|r| !r.state.status.is_live() && filter.matches(r, None))
            .map(|r| (r.id.clone(), container_sizes(&images, r).0))
            .collect::<Vec<_>>())
    })
    .await?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for (id, rw) in chosen {
        match state.containers.remove(&id, false).await {
            Ok(()) => {
                deleted.push(id);
                reclaimed += rw;
            }
            // Started or removed meanwhile: not ours to prune any more.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::FailedPrecondition | ErrorKind::NotFound
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_paths_in_volumes() {
        let host: crate::containers::config::HostConfig = serde_json::from_value(json!({
            "Binds": ["/srv/data:/data", "/srv/deep:/data/deep:ro", "/srv/ro:/ro:ro,rprivate",
                      "named:/named"],
            "Mounts": [{"Type": "bind", "Source": "/srv/m", "Target": "/m", "ReadOnly": true},
                       {"Type": "tmpfs", "Target": "/t"}],
        }))
        .unwrap();
        let v = |p: &str| volume_of(&host, p).map(|(s, r, ro)| (s.display().to_string(), r, ro));
        assert_eq!(v("/data/x"), Some(("/srv/data".into(), "/x".into(), false)));
        assert_eq!(v("/data"), Some(("/srv/data".into(), "/".into(), false)));
        assert_eq!(v("/data/"), Some(("/srv/data".into(), "/".into(), false)));
        assert_eq!(
            v("//data/./deep/f"),
            Some(("/srv/deep".into(), "/f".into(), true))
        );
        assert_eq!(
            v("/data/dir/."),
            Some(("/srv/data".into(), "/dir/.".into(), false))
        );
        assert_eq!(v("/ro/a/"), Some(("/srv/ro".into(), "/a/".into(), true)));
        assert_eq!(v("/m/f"), Some(("/srv/m".into(), "/f".into(), true)));
        // `..` is folded before the match: out of the volume, or into one.
        assert_eq!(v("/data/../etc/passwd"), None);
        assert_eq!(
            v("/tmp/../ro/x"),
            Some(("/srv/ro".into(), "/x".into(), true))
        );
        assert_eq!(v("/database"), None);
        assert_eq!(v("/etc/passwd"), None);
        // Not binds: a relative (named) source, a tmpfs.
        assert_eq!(v("/named/x"), None);
        assert_eq!(v("/t/x"), None);
    }

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn frames_and_ps() {
        assert_eq!(frame(2, b"hi"), vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 100\nroot 11 1 0 10:00 ? 00:00:00 other\n";
        let (t, p) = parse_ps(out, &[10]).unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(
            p,
            vec![vec![
                "root",
                "10",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
        assert!(parse_ps("A B\n", &[]).is_err());
    }
}
