//! `events`: the container's resource statistics and OOM notifications as JSON lines, in
//! runc's shape (`{"type":"stats","id":…,"data":{…}}`, `{"type":"oom","id":…}`).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Error, manager};
use crate::cgroups::{OomEvent, Stats};
use crate::state::{StateDir, Status};

/// One line of `events`' output.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub typ: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// With `stats_only`, print the statistics once. Otherwise print them every `interval` and an
/// `oom` event whenever the container's cgroup hits its memory limit, until the container stops.
pub fn events(
    root: &Path,
    id: &str,
    stats_only: bool,
    interval: Duration,
    out: &mut impl Write,
) -> Result<(), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    if dir.status(&state) == Status::Stopped {
        return Err(Error::NotRunning);
    }
    let cgroup = manager(&state)?;
    let emit = |out: &mut dyn Write, event: &Event<'_>| -> Result<(), Error> {
        let line = serde_json::to_string(event).map_err(|e| Error::Sys {
            op: "encode event",
            source: std::io::Error::other(e),
        })?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|source| Error::Sys {
                op: "write event",
                source,
            })
    };
    let stats_event = |cgroup: &crate::cgroups::Manager| -> Result<Event<'_>, Error> {
        Ok(Event {
            typ: "stats",
            id,
            data: Some(cgroup.stats()?),
        })
    };
    if stats_only {
        return emit(out, &stats_event(&cgroup)?);
    }
    let mut oom = cgroup.oom_watcher()?;
    let mut next_stats = Instant::now()
        .checked_add(interval)
        .unwrap_or_else(Instant::now);
    while dir.status(&state) != Status::Stopped {
        let wait = next_stats.saturating_duration_since(Instant::now());
        // Bounded so that a stopped container is noticed within a second.
        match oom.wait_event(Some(wait.min(Duration::from_secs(1))))? {
            Some(OomEvent::Oom) => emit(
                out,
                &Event {
                    typ: "oom",
                    id,
                    data: None,
                },
            )?,
            // The cgroup went away: the container was deleted.
            Some(OomEvent::Gone) => return Ok(()),
            None => {}
        }
        if Instant::now() >= next_stats && dir.status(&state) != Status::Stopped {
            emit(out, &stats_event(&cgroup)?)?;
            next_stats = Instant::now()
                .checked_add(interval)
                .unwrap_or_else(Instant::now);
        }
    }
    // An OOM kill is often what stopped the container: report one that arrived after the last
    // wait.
    if let Ok(Some(OomEvent::Oom)) = oom.read_event() {
        emit(
            out,
            &Event {
                typ: "oom",
                id,
                data: None,
            },
        )?;
    }
    Ok(())
}

/// Parse runc's `--interval` (a Go duration: `5s`, `500ms`, `1m`, `1m30s`).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 5s, 500ms, 1m)");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total = Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| total.checked_add(d))
            .ok_or_else(bad)?;
        rest = tail;
    }
    if total.is_zero() {
        return Err(format!("{s:?} must be greater than zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("99999999999999999999999h").is_err());
    }
}
