//! The daemon's event log: what `GET /events` streams (`docker events`).
//!
//! Events are kept in memory only, like moby's `daemon/events` (a ring of the last
//! [`HISTORY`] events for `since`, and a broadcast channel for live subscribers); they do not
//! survive a restart. Image events carry docker's actions and ids
//! (moby `daemon/images/image_events.go`): `pull`/`push` with the familiar reference as id,
//! `tag`/`untag`/`delete`/`load`/`save` with the image id, and the `name` attribute.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Events kept for `since` (moby keeps 256; a load of many images emits one per image).
pub const HISTORY: usize = 1024;

/// The kind of object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// An image.
    Image,
    /// A container.
    Container,
}

impl EventType {
    /// docker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Image => "image",
            EventType::Container => "container",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What it is about.
    pub kind: EventType,
    /// `pull`, `push`, `tag`, `untag`, `delete`, `load`, `save`.
    pub action: String,
    /// The actor's id.
    pub id: String,
    /// The actor's attributes (`name`).
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    /// An image event, now.
    pub fn image(action: &str, id: impl Into<String>, name: impl Into<String>) -> Self {
        let time_nano = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self {
            kind: EventType::Image,
            action: action.to_owned(),
            id: id.into(),
            attributes: BTreeMap::from([("name".to_owned(), name.into())]),
            time_nano,
        }
    }

    /// A container event, now; `attributes` carry `name`, `image`, the labels and extras
    /// (`exitCode`, `signal`).
    pub fn container(action: &str, id: &str, attributes: BTreeMap<String, String>) -> Self {
        let mut e = Self::image(action, id, "");
        e.kind = EventType::Container;
        e.attributes = attributes;
        e
    }

    /// The JSON of the API (`events.Message`, with the legacy `status`/`id` fields).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "status": self.action,
            "id": self.id,
            "Type": self.kind.as_str(),
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        });
        if self.kind == EventType::Container {
            // The legacy `from` field (the CLI's default format prints it).
            v["from"] = json!(self.attributes.get("image").cloned().unwrap_or_default());
        }
        v
    }
}

/// Which events a subscriber wants (`filters` of `/events`): within a key any value matches,
/// across keys all must.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `type=image`.
    pub types: Vec<String>,
    /// `event=pull` (also accepted as `action`).
    pub actions: Vec<String>,
    /// `image=<name or id>`.
    pub images: Vec<String>,
    /// `container=<name or id>`.
    pub containers: Vec<String>,
    /// `label=key` or `label=key=value`.
    pub labels: Vec<String>,
}

impl Filter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        any(&self.types, &|t| t == e.kind.as_str())
            && any(&self.actions, &|a| a == e.action)
            && any(&self.images, &|i| match e.kind {
                EventType::Image => i == e.id || e.attributes.get("name").is_some_and(|n| n == i),
                EventType::Container => e.attributes.get("image").is_some_and(|n| n == i),
            })
            && any(&self.containers, &|c| {
                e.kind == EventType::Container
                    && (e.id.starts_with(c) || e.attributes.get("name").is_some_and(|n| n == c))
            })
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => e.attributes.get(k).is_some_and(|x| x == v),
                None => e.attributes.contains_key(l.as_str()),
            })
    }
}

/// The log: history plus live subscribers.
#[derive(Debug)]
pub struct EventLog {
    tx: broadcast::Sender<Arc<Event>>,
    history: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(256);
        Self {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    /// Records and broadcasts an event.
    pub fn publish(&self, e: Event) {
        let e = Arc::new(e);
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(e.clone());
        }
        // No subscriber is not an error.
        let _ = self.tx.send(e);
    }

    /// A live subscription. Subscribe before reading [`history`](Self::history) so that
    /// nothing falls between the two (duplicates are dropped by time).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// The events kept, oldest first.
    pub fn history(&self) -> Vec<Arc<Event>> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Parses docker's `since`/`until`: `seconds[.nanoseconds]` (what the CLI sends) into
/// nanoseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn go_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|n| *n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    // Durations here are seconds to hours: far inside i64's range.
    #[allow(clippy::cast_possible_truncation)]
    Some(total as i64)
}

/// A time in a filter (`until` of prune, `since`/`until` of events) as docker's
/// `timetypes.GetTimestamp` takes it: `seconds[.nanoseconds]`, a Go duration back from `now`
/// (`24h`, `10m30s`), or an RFC 3339 date or time (`2006-01-02`, `2006-01-02T15:04:05`,
/// with an optional fraction and zone; no zone is UTC). Nanoseconds since the epoch.
pub fn filter_time(s: &str, now_nanos: i64) -> Option<i64> {
    if let Some(t) = parse_timestamp(s) {
        return Some(t);
    }
    if let Some(d) = go_duration(s) {
        return now_nanos.checked_sub(d);
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    crate::images::oci::parse_rfc3339(&full).and_then(|secs| secs.checked_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("12"), Some(12_000_000_000));
        assert_eq!(parse_timestamp("12.5"), Some(12_500_000_000));
        assert_eq!(parse_timestamp("12.000000001"), Some(12_000_000_001));
        assert_eq!(parse_timestamp("x"), None);
        let now = 1_000_000 * 1_000_000_000;
        assert_eq!(filter_time("10m", now), Some(now - 600 * 1_000_000_000));
        assert_eq!(filter_time("1h30m", now), Some(now - 5400 * 1_000_000_000));
        assert_eq!(filter_time("12", now), Some(12_000_000_000));
        assert_eq!(filter_time("1970-01-02", now), Some(86_400 * 1_000_000_000));
        assert_eq!(filter_time("1970-01-01T01:00:00+01:00", now), Some(0));
        assert_eq!(filter_time("soon", now), None);
        assert_eq!(go_duration("500ms"), Some(500_000_000));
        assert_eq!(go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration("10"), None);
        assert_eq!(go_duration(""), None);
        assert_eq!(parse_timestamp("1.x"), None);
    }

    #[test]
    fn filters_and_history() {
        let log = EventLog::new();
        let mut rx = log.subscribe();
        log.publish(Event::image("pull", "busybox:latest", "busybox"));
        log.publish(Event::image("tag", "sha256:ab", "bb:1"));
        assert_eq!(log.history().len(), 2);
        assert_eq!(rx.try_recv().unwrap().action, "pull");
        let f = Filter {
            types: vec!["image".into()],
            actions: vec!["tag".into()],
            ..Filter::default()
        };
        let h = log.history();
        assert!(!f.matches(&h[0]) && f.matches(&h[1]));
        let f = Filter {
            images: vec!["busybox".into()],
            ..Filter::default()
        };
        assert!(f.matches(&h[0]) && !f.matches(&h[1]));
        let j = h[1].to_json();
        assert_eq!(j["Type"], "image");
        assert_eq!(j["Actor"]["Attributes"]["name"], "bb:1");
        assert_eq!(j["status"], "tag");
    }
}
