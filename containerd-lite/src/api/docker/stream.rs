//! docker's JSON-message streams (pull, push): progress lines as the work goes, errors in band.
//!
//! moby `pkg/streamformatter` writes one JSON object per line, `\r\n`-terminated; the CLI's
//! `jsonmessage.DisplayJSONMessagesStream` redraws a line per `id`, draws `progressDetail` as a
//! bar on a TTY, and fails on `errorDetail` (not on `error` alone, which we send too for old
//! clients). An error before the first line is an ordinary HTTP error, so that the CLI shows
//! e.g. a 404 for a missing manifest.

use bytes::Bytes;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::json;
use tokio::sync::mpsc;

use super::{ApiError, ResponseBody};
use crate::images::Progress;

type Resp = Response<ResponseBody>;

enum Msg {
    Line(Bytes),
    Failed(ApiError),
}

/// Width of the text progress bar (moby `jsonmessage.JSONProgress`).
const BAR_WIDTH: u64 = 50;

fn human(n: u64) -> String {
    // docker's `units.HumanSize`: decimal units, `%.4g`.
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", units[i])
}

/// The JSON line of one progress message.
pub fn progress_line(p: &Progress) -> Bytes {
    let mut v = json!({ "status": p.status });
    if let Some(id) = &p.id {
        v["id"] = json!(id);
    }
    match p.detail {
        Some((current, total)) => {
            v["progressDetail"] = json!({"current": current, "total": total});
            let filled = (current.min(total) * BAR_WIDTH)
                .checked_div(total)
                .unwrap_or(0)
                .min(BAR_WIDTH);
            let mut bar = "=".repeat(usize::try_from(filled).unwrap_or(0));
            if filled < BAR_WIDTH {
                bar.push('>');
            }
            v["progress"] = json!(format!(
                "[{bar:<width$}] {:>8}/{}",
                human(current),
                human(total),
                width = usize::try_from(BAR_WIDTH).unwrap_or(50)
            ));
        }
        None if p.id.is_some() => v["progressDetail"] = json!({}),
        None => {}
    }
    if let Some(aux) = &p.aux {
        v = json!({"progressDetail": {}, "aux": aux});
    }
    let mut s = v.to_string();
    s.push_str("\r\n");
    Bytes::from(s)
}

/// The in-band error line.
pub fn error_line(e: &ApiError) -> Bytes {
    let mut s = json!({"errorDetail": {"message": e.message}, "error": e.message}).to_string();
    s.push_str("\r\n");
    Bytes::from(s)
}

/// Runs `work` on the blocking pool and streams its progress; `done` runs with the result
/// when it succeeded (to publish events).
pub async fn progress_stream<T: Send + 'static>(
    work: impl FnOnce(&(dyn Fn(Progress) + Sync)) -> Result<T, ApiError> + Send + 'static,
    done: impl FnOnce(T) + Send + 'static,
) -> Result<Resp, ApiError> {
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    tokio::task::spawn_blocking(move || {
        let send = |p: Progress| {
            // A client that went away does not stop the work (docker finishes pulls too).
            let _ = tx.blocking_send(Msg::Line(progress_line(&p)));
        };
        match work(&send) {
            Ok(v) => done(v),
            Err(e) => {
                let _ = tx.blocking_send(Msg::Failed(e));
            }
        }
    });
    let first = match rx.recv().await {
        Some(Msg::Failed(e)) => return Err(e),
        Some(Msg::Line(b)) => Some(b),
        None => None,
    };
    let (btx, brx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        if let Some(b) = first {
            if btx.send(b).await.is_err() {
                return;
            }
        }
        while let Some(m) = rx.recv().await {
            let b = match m {
                Msg::Line(b) => b,
                Msg::Failed(e) => {
                    tracing::error!(kind = ?e.kind, message = %e.message, "streamed operation failed");
                    error_line(&e)
                }
            };
            if btx.send(b).await.is_err() {
                break;
            }
        }
    });
    let mut r = Response::new(ResponseBody::Stream(brx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_docker_shapes() {
        let l = progress_line(&Progress::bar("abc", "Downloading", 500, 1000));
        let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["progressDetail"]["current"], 500);
        assert_eq!(v["progressDetail"]["total"], 1000);
        assert_eq!(v["id"], "abc");
        assert!(v["progress"].as_str().unwrap().starts_with("[====="));
        assert!(l.ends_with(b"\r\n"));
        let v: serde_json::Value =
            serde_json::from_slice(&progress_line(&Progress::of("x", "Pull complete"))).unwrap();
        assert_eq!(v["progressDetail"], json!({}));
        let v: serde_json::Value =
            serde_json::from_slice(&progress_line(&Progress::status("Digest: sha256:1"))).unwrap();
        assert!(v.get("progressDetail").is_none());
        let e = error_line(&ApiError::new(crate::ErrorKind::Unavailable, "boom"));
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["errorDetail"]["message"], "boom");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_500_000), "1.5MB");
        assert_eq!(human(2_000), "2kB");
    }
}
