//! Bodies and query strings: a streaming response body fed from a blocking thread, a blocking
//! reader over a request body, and docker's query and filter encodings.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::mpsc;

/// The response body type: a whole buffer or a stream of chunks.
#[derive(Debug)]
pub enum ResponseBody {
    /// A complete body.
    Full(Option<Bytes>),
    /// Chunks sent from elsewhere (a blocking export, a load's progress).
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(b.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ResponseBody::Full(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            ResponseBody::Full(None) => hyper::body::SizeHint::with_exact(0),
            ResponseBody::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// A `Write` for a blocking thread whose bytes become a [`ResponseBody::Stream`]. Writes fail
/// with `BrokenPipe` once the client went away.
#[derive(Debug)]
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    /// A writer and the body it feeds.
    pub fn new() -> (Self, ResponseBody) {
        let (tx, rx) = mpsc::channel(8);
        (
            Self {
                tx,
                buf: Vec::with_capacity(CHUNK),
            },
            ResponseBody::Stream(rx),
        )
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        // Best effort: the data is complete only if the writer's user flushed.
        let _ = self.send();
    }
}

/// How much of a refused request's body is read away before the connection is given up.
pub const DRAIN_LIMIT: usize = 64 << 20;

/// A blocking `Read` over a request body, fed by an async pump task.
#[derive(Debug)]
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl BodyReader {
    /// Spawns the pump on the current runtime and returns the reader. When the reader is
    /// dropped before the end (the request was refused), the pump reads the rest of the body
    /// away, up to [`DRAIN_LIMIT`], so that a client still sending gets the answer instead of
    /// a broken pipe (as Go's server does for docker).
    pub fn spawn(mut body: Incoming) -> Self {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut drained = 0usize;
            let mut reader_gone = false;
            loop {
                let item = match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue, // trailers
                    },
                    Some(Err(e)) => Err(io::Error::other(e)),
                };
                let failed = item.is_err();
                if reader_gone {
                    drained += item.map_or(0, |b| b.len());
                    if failed || drained > DRAIN_LIMIT {
                        break;
                    }
                    continue;
                }
                match tx.send(item).await {
                    Ok(()) if failed => break,
                    Ok(()) => {}
                    Err(_) => reader_gone = true,
                }
            }
        });
        Self {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Percent-decodes a URL component (`+` as space when `plus` is set).
pub fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hexval(b[i + 1]), hexval(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A parsed query string; keys may repeat (`names=a&names=b`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x%20y`.
    pub fn parse(q: Option<&str>) -> Self {
        let pairs = q
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
            .collect();
        Self(pairs)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// moby's `BoolValue`: absent, "", "0", "no", "false", "none" are false.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }

    /// The `filters` parameter: `{"k":{"v":true}}` or the legacy `{"k":["v"]}`.
    pub fn filters(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
        let obj = v.as_object().ok_or("invalid filter: not an object")?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                _ => return Err(format!("invalid filter value for {k:?}")),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = Query::parse(Some("names=a%2Fb%3A1&names=c&quiet=1&x=false&f=%7B%7D"));
        assert_eq!(q.all("names"), vec!["a/b:1", "c"]);
        assert!(q.bool("quiet"));
        assert!(!q.bool("x"));
        assert!(!q.bool("missing"));
        assert_eq!(q.get("f"), Some("{}"));
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("a+b", true), "a b");
    }

    #[test]
    fn parses_both_filter_forms() {
        let q = Query::parse(Some(
            "filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%2C%22reference%22%3A%5B%22busy*%22%5D%7D",
        ));
        let f = q.filters().unwrap();
        assert_eq!(f["dangling"], vec!["true"]);
        assert_eq!(f["reference"], vec!["busy*"]);
        assert!(Query::parse(Some("filters=%5B1%5D")).filters().is_err());
    }
}
