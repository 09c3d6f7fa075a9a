//! `GET /events?since=&until=&filters=`: newline-delimited JSON, headers sent at once.
//!
//! With `since`, the kept history from that time is replayed first; with `until`, the stream
//! ends at that time (at once when it is past). Without either it streams live events until
//! the client goes away. Filters: `type`, `event` (or `action`), `image`; other keys
//! (`container`, `label`, …) match no image event, as in docker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::{broadcast, mpsc};

use super::{ApiError, ApiState, Query, ResponseBody};
use crate::ErrorKind;
use crate::events::{Event, Filter, parse_timestamp};

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn line(e: &Event) -> Bytes {
    let mut s = e.to_json().to_string();
    s.push('\n');
    Bytes::from(s)
}

fn time_param(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_timestamp(v).map(Some).ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidArgument,
                format!("invalid value for {key}: {v:?}"),
            )
        }),
    }
}

/// Parses the filters into an event filter; `None` when a key rules out every image event.
fn filter(q: &Query) -> Result<Option<Filter>, ApiError> {
    let raw = q
        .filters()
        .map_err(|e| ApiError::new(ErrorKind::InvalidArgument, e))?;
    let mut f = Filter::default();
    for (k, v) in raw {
        match k.as_str() {
            "type" => f.types = v,
            "event" | "action" => f.actions = v,
            "image" => f.images = v,
            "container" => f.containers = v,
            "label" => f.labels = v,
            "network" | "volume" | "plugin" | "node" | "service" | "secret" | "config"
            | "daemon" | "scope" => {
                if !v.is_empty() {
                    return Ok(None);
                }
            }
            other => {
                return Err(ApiError::new(
                    ErrorKind::InvalidArgument,
                    format!("invalid filter '{other}'"),
                ));
            }
        }
    }
    Ok(Some(f))
}

/// `GET /events`.
pub fn stream(state: &Arc<ApiState>, q: &Query) -> Result<Response<ResponseBody>, ApiError> {
    let since = time_param(q, "since")?;
    let until = time_param(q, "until")?;
    let filter = filter(q)?;
    // Subscribe before reading the history: nothing can fall between the two.
    let mut live = state.events.subscribe();
    let history = state.events.history();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let Some(filter) = filter else {
            // Nothing can match; still honour `until` like docker (close at once if past).
            if let Some(u) = until {
                let wait = u.saturating_sub(now_nanos()).max(0);
                tokio::time::sleep(Duration::from_nanos(u64::try_from(wait).unwrap_or(0))).await;
            } else {
                tx.closed().await;
            }
            return;
        };
        let in_window = |e: &Event| {
            since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u)
        };
        let replayed_upto = match since {
            Some(_) => history.last().map_or(i64::MIN, |e| e.time_nano),
            None => i64::MIN,
        };
        if since.is_some() {
            for e in &history {
                if in_window(e) && filter.matches(e) && tx.send(line(e)).await.is_err() {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let wait = u64::try_from(u.saturating_sub(now_nanos()).max(0)).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_nanos(wait)
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, live.recv()).await.ok(),
                    None => Some(live.recv().await),
                }
            };
            tokio::select! {
                () = tx.closed() => return,
                r = next => match r {
                    None => return, // until reached
                    Some(Ok(e)) => {
                        if e.time_nano <= replayed_upto || !in_window(&e) || !filter.matches(&e) {
                            continue;
                        }
                        if tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(broadcast::error::RecvError::Lagged(n))) => {
                        tracing::warn!(missed = n, "events subscriber lagged");
                    }
                    Some(Err(broadcast::error::RecvError::Closed)) => return,
                },
            }
        }
    });
    let mut r = Response::new(ResponseBody::Stream(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}
