//! `/images/…` handlers.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::BodyReader;
use super::stream::progress_stream;
use super::{ApiError, ApiState, ChannelWriter, Query, ResponseBody, blocking, json};
use crate::ErrorKind;
use crate::digest::Digest;
use crate::events::Event;
use crate::images::oci::{self, format_rfc3339};
use crate::images::reference::{Reference, glob_match};
use crate::images::{Deleted, Image};
use crate::registry::{Client, Credentials};

type Resp = Response<ResponseBody>;

/// The `ImageSummary` of `/images/json` and `/system/df`. Before API 1.43 untagged images
/// carry `<none>:<none>` / `<none>@<none>` placeholders instead of empty arrays.
pub fn summary(img: &Image, api: (u32, u32)) -> Value {
    let placeholder = |v: Vec<String>, p: &str| {
        if v.is_empty() && api < (1, 43) {
            vec![p.to_owned()]
        } else {
            v
        }
    };
    json!({
        "Id": img.id.to_string(),
        "ParentId": "",
        "RepoTags": placeholder(img.repo_tags(), "<none>:<none>"),
        "RepoDigests": placeholder(img.repo_digests(), "<none>@<none>"),
        "Created": img.created(),
        "Size": img.size,
        "SharedSize": -1,
        "Labels": img.config_json.pointer("/config/Labels").cloned().filter(|v| !v.is_null()).unwrap_or(json!({})),
        "Containers": -1,
    })
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, msg)
}

fn matches_reference(img: &Image, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        img.records
            .iter()
            .filter_map(|r| Reference::parse(&r.name).ok())
            .any(|r| {
                // docker's FamiliarMatch: the familiar string, then the familiar name.
                glob_match(p, &r.familiar()) || glob_match(p, &r.familiar_name())
            })
    })
}

fn keep_matching(v: &mut Value, key: &str, patterns: &[String]) {
    if let Some(list) = v.get_mut(key).and_then(Value::as_array_mut) {
        list.retain(|n| {
            let Some(n) = n.as_str() else { return false };
            let Ok(r) = Reference::parse(n) else {
                return false;
            };
            patterns.iter().any(|p| {
                // A digest entry matches when its repository matches the pattern's name part.
                let name_part = match p.rfind(':') {
                    Some(i) if !p[i..].contains('/') => &p[..i],
                    _ => p.as_str(),
                };
                glob_match(p, &r.familiar())
                    || glob_match(p, &r.familiar_name())
                    || (r.digest.is_some() && glob_match(name_part, &r.familiar_name()))
            })
        });
    }
}

/// `GET /images/json?filters=…`
pub async fn list(state: &Arc<ApiState>, q: &Query, api: (u32, u32)) -> Result<Resp, ApiError> {
    let filters = q.filters().map_err(invalid)?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "dangling" | "reference") {
            return Err(invalid(format!("invalid filter '{k}'")));
        }
    }
    let dangling = match filters.get("dangling").map(Vec::as_slice) {
        None | Some([]) => None,
        Some([v]) if v.eq_ignore_ascii_case("true") || v == "1" => Some(true),
        Some([v]) if v.eq_ignore_ascii_case("false") || v == "0" => Some(false),
        Some(v) => {
            return Err(invalid(format!(
                "invalid filter 'dangling={}'",
                v.join(",")
            )));
        }
    };
    let refs = filters.get("reference").cloned().unwrap_or_default();
    let svc = state.images.clone();
    let out = blocking(move || {
        Ok(svc
            .list()?
            .iter()
            .filter(|i| dangling.is_none_or(|d| i.dangling() == d))
            .filter(|i| refs.is_empty() || matches_reference(i, &refs))
            .map(|i| {
                let mut v = summary(i, api);
                if !refs.is_empty() {
                    // moby lists only the names that matched the reference filter.
                    keep_matching(&mut v, "RepoTags", &refs);
                    keep_matching(&mut v, "RepoDigests", &refs);
                }
                v
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json(StatusCode::OK, &Value::Array(out)))
}

/// `GET /images/{name}/json`
pub async fn inspect(state: &Arc<ApiState>, name: &str) -> Result<Resp, ApiError> {
    let svc = state.images.clone();
    let name = name.to_owned();
    let img = blocking(move || Ok(svc.resolve(&name)?)).await?;
    let c = &img.config_json;
    let s = |p: &str| c.pointer(p).cloned().unwrap_or(json!(""));
    let diff_ids: Vec<String> = img
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(ToString::to_string)
        .collect();
    let created = img
        .config
        .created
        .clone()
        .unwrap_or_else(|| format_rfc3339(img.created()));
    let last_tag = img.last_tag_time();
    Ok(json(
        StatusCode::OK,
        &json!({
            "Id": img.id.to_string(),
            "RepoTags": img.repo_tags(),
            "RepoDigests": img.repo_digests(),
            "Parent": "",
            "Comment": s("/comment"),
            "Created": created,
            "DockerVersion": s("/docker_version"),
            "Author": s("/author"),
            "Config": c.get("config").cloned().unwrap_or(Value::Null),
            "Architecture": img.config.architecture,
            "Variant": c.get("variant").cloned(),
            "Os": img.config.os,
            "Size": img.size,
            "GraphDriver": {"Name": "overlayfs", "Data": null},
            "RootFS": {"Type": "layers", "Layers": diff_ids},
            "Metadata": {"LastTagTime": if last_tag > 0 { format_rfc3339(last_tag) } else { "0001-01-01T00:00:00Z".into() }},
        }),
    ))
}

/// `GET /images/{name}/history`: newest first; the top entry carries the id and tags.
pub async fn history(state: &Arc<ApiState>, name: &str) -> Result<Resp, ApiError> {
    let svc = state.images.clone();
    let name = name.to_owned();
    let out = blocking(move || {
        let img = svc.resolve(&name)?;
        let sizes = img.layer_sizes(&svc);
        let mut layer = 0;
        let mut rows = Vec::new();
        let history = if img.config.history.is_empty() {
            // No history: one row per layer.
            vec![oci::History::default(); img.config.rootfs.diff_ids.len().max(1)]
        } else {
            img.config.history.clone()
        };
        for h in &history {
            let size = if h.empty_layer {
                0
            } else {
                let s = sizes.get(layer).copied().unwrap_or(0);
                layer += 1;
                s
            };
            rows.push(json!({
                "Id": "<missing>",
                "Created": h.created.as_deref().and_then(oci::parse_rfc3339).unwrap_or(0),
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Tags": null,
                "Size": size,
                "Comment": h.comment.clone().unwrap_or_default(),
            }));
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top["Id"] = json!(img.id.to_string());
            top["Tags"] = json!(img.repo_tags());
        }
        Ok(rows)
    })
    .await?;
    Ok(json(StatusCode::OK, &Value::Array(out)))
}

/// `POST /images/{name}/tag?repo=…&tag=…` → 201.
pub async fn tag(state: &Arc<ApiState>, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let repo = q.get("repo").unwrap_or("").to_owned();
    if repo.is_empty() {
        return Err(invalid("repository name must have at least one component"));
    }
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let svc = state.images.clone();
    let name = name.to_owned();
    let (id, r) = blocking(move || {
        let id = svc.resolve(&name)?.id;
        Ok((id, svc.tag(&name, &target)?))
    })
    .await?;
    state
        .events
        .publish(Event::image("tag", id.to_string(), r.familiar()));
    let mut r = Response::new(ResponseBody::empty());
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

fn deleted_json(items: &[Deleted]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|d| match d {
                Deleted::Untagged(n) => json!({"Untagged": n}),
                Deleted::Deleted(id) => json!({"Deleted": id.to_string()}),
            })
            .collect(),
    )
}

/// `DELETE /images/{name}?force=&noprune=`
pub async fn delete(state: &Arc<ApiState>, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let force = q.bool("force");
    let svc = state.images.clone();
    let containers = state.containers.clone();
    let name = name.to_owned();
    let (id, items) = blocking(move || {
        let img = svc.resolve(&name)?;
        let id = img.id;
        // moby `imageDeleteHelper`: the last name of an image a container uses, or the image
        // by id, is not removed without force.
        let by_id = id.hex().starts_with(name.trim_start_matches("sha256:"));
        if !force && (by_id || img.records.len() <= 1) {
            let users = containers.list().map_err(ApiError::from)?;
            if let Some(c) = users.iter().find(|c| c.image_id == id.to_string()) {
                let what = if by_id {
                    format!("unable to delete {} (must be forced)", &id.hex()[..12])
                } else {
                    format!("unable to remove repository reference \"{name}\" (must force)")
                };
                return Err(ApiError::new(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "conflict: {what} - container {} is using its referenced image {}",
                        &c.id[..12],
                        &id.hex()[..12]
                    ),
                ));
            }
        }
        Ok((id, svc.delete(&name, force)?))
    })
    .await?;
    for d in &items {
        state.events.publish(match d {
            Deleted::Untagged(n) => Event::image("untag", id.to_string(), n.clone()),
            Deleted::Deleted(id) => Event::image("delete", id.to_string(), id.to_string()),
        });
    }
    Ok(json(StatusCode::OK, &deleted_json(&items)))
}

/// `POST /images/prune?filters={"dangling":["false"]}`
pub async fn prune(state: &Arc<ApiState>, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters().map_err(invalid)?;
    for k in filters.keys() {
        if k != "dangling" {
            return Err(invalid(format!("invalid filter '{k}'")));
        }
    }
    let all = filters
        .get("dangling")
        .and_then(|v| v.first())
        .is_some_and(|v| v.eq_ignore_ascii_case("false") || v == "0");
    let svc = state.images.clone();
    let (items, reclaimed) = blocking(move || Ok(svc.prune(all)?)).await?;
    Ok(json(
        StatusCode::OK,
        &json!({"ImagesDeleted": deleted_json(&items), "SpaceReclaimed": reclaimed}),
    ))
}

/// `POST /images/load`: the whole archive is imported before the answer starts, so a bad
/// archive is an ordinary HTTP error and nothing of it stays visible.
pub async fn load(state: &Arc<ApiState>, q: &Query, body: Incoming) -> Result<Resp, ApiError> {
    let quiet = q.bool("quiet");
    let svc = state.images.clone();
    let reader = BodyReader::spawn(body);
    let (lines, loaded) = blocking(move || {
        let mut lines = Vec::new();
        let loaded = svc.import(reader, &mut |l| lines.push(l))?;
        Ok((lines, loaded))
    })
    .await?;
    for l in &loaded {
        if l.names.is_empty() {
            state
                .events
                .publish(Event::image("load", l.id.to_string(), l.id.to_string()));
        }
        for n in &l.names {
            state
                .events
                .publish(Event::image("load", l.id.to_string(), n.clone()));
        }
    }
    let mut out = String::new();
    for l in lines {
        if !quiet || l.starts_with("Loaded") {
            out.push_str(&json!({ "stream": l }).to_string());
            out.push('\n');
        }
    }
    let mut r = Response::new(ResponseBody::full(out));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: a docker-archive tar, streamed.
pub async fn get(state: &Arc<ApiState>, names: Vec<String>) -> Result<Resp, ApiError> {
    if names.is_empty() {
        return Err(invalid("no image names given"));
    }
    // Resolve first, so that a missing image is a 404 rather than a broken stream.
    let svc = state.images.clone();
    let check = names.clone();
    let resolved = blocking(move || {
        let mut out = Vec::new();
        for n in &check {
            out.push((svc.resolve(n)?.id, n.clone()));
        }
        Ok(out)
    })
    .await?;
    for (id, n) in resolved {
        state
            .events
            .publish(Event::image("save", id.to_string(), n));
    }
    let (mut writer, body) = ChannelWriter::new();
    let svc = state.images.clone();
    tokio::task::spawn_blocking(move || {
        let result = svc
            .export(&names, &mut writer)
            .and_then(|()| std::io::Write::flush(&mut writer).map_err(crate::images::Error::Write));
        if let Err(e) = result {
            // The status line is gone; the client sees a truncated tar.
            tracing::error!(error = %e, "image export failed");
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

/// `POST /images/create?fromImage=…&tag=…` (pull), streaming docker's progress messages.
/// `fromSrc` (import of a rootfs tar) is not implemented.
pub async fn create(
    state: &Arc<ApiState>,
    q: &Query,
    registry_auth: Option<String>,
) -> Result<Resp, ApiError> {
    if q.get("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Err(invalid(
            "docker import (fromSrc) is not supported by skiffd yet",
        ));
    }
    let from = q.get("fromImage").unwrap_or("");
    if from.is_empty() {
        return Err(invalid("fromImage is required"));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let want = format!("{}/{}", oci::PLATFORM_OS, oci::platform_arch());
        if !p.starts_with(&want) {
            return Err(invalid(format!(
                "platform {p} is not supported: this daemon runs {want} images"
            )));
        }
    }
    let mut r = Reference::parse(from)?;
    if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
        match t.parse::<Digest>() {
            Ok(d) => r.digest = Some(d),
            Err(_) => r = Reference::parse(&format!("{}:{t}", r.repository()))?,
        }
    } else if r.tag.is_none() && r.digest.is_none() {
        // `docker pull -a` sends no tag.
        return Err(invalid("pulling all tags of a repository is not supported"));
    }
    let creds = registry_auth.as_deref().and_then(Credentials::from_header);
    let svc = state.images.clone();
    let events = state.events.clone();
    let rt = tokio::runtime::Handle::current();
    progress_stream(
        move |progress| {
            let client = Client::new(&r.domain, creds);
            Ok(svc.pull(&rt, &client, &r, progress)?)
        },
        move |pulled| {
            let r = &pulled.reference;
            events.publish(Event::image("pull", r.familiar(), r.familiar_name()));
        },
    )
    .await
}

/// `POST /images/{name}/push?tag=…`, streaming docker's progress messages; without a tag
/// every tag of the repository is pushed.
pub async fn push(
    state: &Arc<ApiState>,
    name: &str,
    q: &Query,
    registry_auth: Option<String>,
) -> Result<Resp, ApiError> {
    let mut r = Reference::parse(name)?;
    if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
        r = Reference::parse(&format!("{}:{t}", r.repository()))?;
    }
    let creds = registry_auth.as_deref().and_then(Credentials::from_header);
    let svc = state.images.clone();
    let events = state.events.clone();
    let rt = tokio::runtime::Handle::current();
    let repo = r.clone();
    progress_stream(
        move |progress| {
            let client = Client::new(&r.domain, creds);
            Ok(svc.push(&rt, &client, &r, progress)?)
        },
        move |pushed| {
            for p in pushed {
                events.publish(Event::image(
                    "push",
                    format!("{}:{}", repo.familiar_name(), p.tag),
                    repo.familiar_name(),
                ));
            }
        },
    )
    .await
}
