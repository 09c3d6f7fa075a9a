//! `/images/…` handlers.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::BodyReader;
use super::{ApiError, ApiState, ChannelWriter, Query, ResponseBody, blocking, json};
use crate::ErrorKind;
use crate::images::oci::{self, format_rfc3339};
use crate::images::reference::{Reference, glob_match};
use crate::images::{Deleted, Image};

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
            .map(|i| summary(i, api))
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
    blocking(move || Ok(svc.tag(&name, &target)?)).await?;
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
    let name = name.to_owned();
    let items = blocking(move || Ok(svc.delete(&name, force)?)).await?;
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
    let lines = blocking(move || {
        let mut lines = Vec::new();
        svc.import(reader, &mut |l| lines.push(l))?;
        Ok(lines)
    })
    .await?;
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
    blocking(move || {
        for n in &check {
            svc.resolve(n)?;
        }
        Ok(())
    })
    .await?;
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
