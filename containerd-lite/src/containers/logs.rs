//! The json-file log, docker's format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`, one entry per
//! output line (a partial line is kept until its newline, or written as is at the end, or once
//! it reaches [`MAX_LINE`] — docker's 16 KiB split).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::images::oci::{format_rfc3339, parse_rfc3339};

/// Where docker splits a long line.
pub const MAX_LINE: usize = 16 * 1024;

/// An output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// stdout (frame byte 1).
    Stdout,
    /// stderr (frame byte 2).
    Stderr,
}

impl Stream {
    /// The multiplexed-frame stream byte.
    pub fn byte(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream.
    pub stream: Stream,
    /// The bytes (with their newline).
    pub log: Vec<u8>,
    /// Unix nanoseconds.
    pub time: i64,
}

#[derive(Serialize, Deserialize)]
struct Line {
    log: String,
    stream: Stream,
    time: String,
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 with nine fractional digits (docker's fixed-width `RFC3339NanoFixed`).
pub fn format_nanos(t: i64) -> String {
    let secs = t.div_euclid(1_000_000_000);
    let nanos = t.rem_euclid(1_000_000_000);
    let s = format_rfc3339(secs);
    format!("{}.{nanos:09}Z", s.trim_end_matches('Z'))
}

/// Parses RFC 3339 with an optional fraction into nanoseconds.
pub fn parse_nanos(s: &str) -> Option<i64> {
    let secs = parse_rfc3339(s)?;
    let frac = s
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|f| {
            f.bytes()
                .take_while(u8::is_ascii_digit)
                .collect::<Vec<u8>>()
        })
        .unwrap_or_default();
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    Some(secs * 1_000_000_000 + nanos)
}

/// Appends entries to a container's log file.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (creating) the log for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn emit(&mut self, stream: Stream, bytes: &[u8], time: i64) -> io::Result<()> {
        let line = Line {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream,
            time: format_nanos(time),
        };
        let mut s = serde_json::to_string(&line).map_err(io::Error::other)?;
        s.push('\n');
        self.file.write_all(s.as_bytes())
    }

    /// Writes output: complete lines become entries, the rest waits for its newline.
    pub fn write(&mut self, stream: Stream, data: &[u8], time: i64) -> io::Result<()> {
        let idx = usize::from(stream == Stream::Stderr);
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + i + 1;
            self.emit(stream, &buf[start..end], time)?;
            start = end;
        }
        while buf.len() - start >= MAX_LINE {
            self.emit(stream, &buf[start..start + MAX_LINE], time)?;
            start += MAX_LINE;
        }
        self.partial[idx] = buf[start..].to_vec();
        Ok(())
    }

    /// Writes what is left of unterminated lines.
    pub fn flush_partial(&mut self, time: i64) -> io::Result<()> {
        for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                self.emit(stream, &buf, time)?;
            }
        }
        Ok(())
    }
}

/// The log's size now: where a read of "what is there" stops (a container writing faster than
/// a client reads must not make `docker logs` without `-f` endless).
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Reads complete entries from byte `offset`, stopping at `stop_at` or after about `max_bytes`
/// (so a client is fed in batches and a log of any size is never held whole); returns them
/// and the offset after the last one.
pub fn read_batch(
    path: &Path,
    offset: u64,
    stop_at: u64,
    max_bytes: usize,
) -> io::Result<(Vec<Entry>, u64)> {
    let mut out = Vec::new();
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((out, offset)),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut r = BufReader::new(file);
    let mut pos = offset;
    let mut read = 0usize;
    let mut line = Vec::new();
    while pos < stop_at && read < max_bytes {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        pos += n as u64;
        read += n;
        if let Ok(l) = serde_json::from_slice::<Line>(&line) {
            out.push(Entry {
                stream: l.stream,
                log: l.log.into_bytes(),
                time: parse_nanos(&l.time).unwrap_or(0),
            });
        }
    }
    Ok((out, pos))
}

/// Which entries `docker logs` wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after (nanoseconds).
    pub since: Option<i64>,
    /// Only entries at or before.
    pub until: Option<i64>,
    /// Only the last N (None = all).
    pub tail: Option<usize>,
}

impl Selection {
    /// Whether an entry passes the stream and time filters.
    pub fn wants(&self, e: &Entry) -> bool {
        let stream_ok = match e.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        stream_ok
            && self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time <= u)
    }

    /// With a tail: the last `tail` entries of what the log holds up to `stop_at`, then the
    /// filters (as [`Selection::apply`]), reading as it goes so only the tail is ever held.
    /// Returns them and the offset where a follow goes on.
    pub fn tail_of(&self, path: &Path, stop_at: u64) -> io::Result<(Vec<Entry>, u64)> {
        let n = self.tail.unwrap_or(usize::MAX);
        let mut last = std::collections::VecDeque::new();
        let mut offset = 0;
        loop {
            let (batch, next) = read_batch(path, offset, stop_at, 1 << 20)?;
            if next == offset {
                break;
            }
            offset = next;
            for e in batch {
                if n == 0 {
                    continue;
                }
                if last.len() == n {
                    last.pop_front();
                }
                last.push_back(e);
            }
        }
        Ok((last.into_iter().filter(|e| self.wants(e)).collect(), offset))
    }

    /// Applies tail and then the filters to what is in the file now: as docker's json-file
    /// reader, the tail counts the file's last lines of both streams, before the stream and
    /// time filters pick from them.
    pub fn apply(&self, mut entries: Vec<Entry>) -> Vec<Entry> {
        if let Some(n) = self.tail {
            let skip = entries.len().saturating_sub(n);
            entries.drain(..skip);
        }
        entries.retain(|e| self.wants(e));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every complete entry from byte `offset`, and the offset after them.
    fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<Entry>, u64)> {
        read_batch(path, offset, u64::MAX, usize::MAX)
    }

    #[test]
    fn times_round_trip() {
        let t = 1_700_000_000_123_456_789;
        let s = format_nanos(t);
        assert_eq!(s, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(parse_nanos(&s), Some(t));
        assert_eq!(
            parse_nanos("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000_000)
        );
    }

    #[test]
    fn writes_docker_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"one\ntw", 1).unwrap();
        w.write(Stream::Stderr, b"err\n", 2).unwrap();
        w.write(Stream::Stdout, b"o\n", 3).unwrap();
        w.write(Stream::Stdout, b"tail", 4).unwrap();
        w.flush_partial(5).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["log"], "one\n");
        assert_eq!(first["stream"], "stdout");
        assert!(first["time"].as_str().unwrap().ends_with('Z'));
        let (all, end) = read_from(&p, 0).unwrap();
        assert_eq!(end, text.len() as u64);
        let logs: Vec<&[u8]> = all.iter().map(|e| e.log.as_slice()).collect();
        assert_eq!(logs, vec![&b"one\n"[..], b"err\n", b"two\n", b"tail"]);
        let sel = Selection {
            stdout: true,
            stderr: false,
            tail: Some(1),
            ..Selection::default()
        };
        let v = sel.apply(all.clone());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].log, b"tail");
        let sel = Selection {
            stdout: true,
            stderr: true,
            since: Some(3),
            ..Selection::default()
        };
        assert_eq!(sel.apply(all.clone()).len(), 2);
        // The tail counts both streams' lines before the stream filter (docker's json-file):
        // the last 3 lines are err, two, tail, of which stderr is one.
        let sel = Selection {
            stdout: false,
            stderr: true,
            tail: Some(3),
            ..Selection::default()
        };
        let v = sel.apply(all.clone());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].log, b"err\n");
        let sel = Selection {
            stderr: true,
            tail: Some(2),
            ..sel
        };
        assert!(sel.apply(all).is_empty());
        // Batches and the tail read give what apply gives, and stop where they are told.
        for tail in [Some(0), Some(2), Some(9)] {
            let sel = Selection {
                stdout: true,
                stderr: true,
                tail,
                ..Selection::default()
            };
            let (seen, e) = sel.tail_of(&p, log_len(&p)).unwrap();
            assert_eq!(e, end);
            let want = sel.apply(read_from(&p, 0).unwrap().0);
            assert_eq!(seen.len(), want.len(), "{tail:?}");
        }
        let (one, after_one) = read_batch(&p, 0, u64::MAX, 1).unwrap();
        assert_eq!(one.len(), 1);
        let (upto, stop) = read_batch(&p, 0, after_one, usize::MAX).unwrap();
        assert_eq!((upto.len(), stop), (1, after_one));
        let (more, end2) = read_from(&p, end).unwrap();
        assert!(more.is_empty());
        assert_eq!(end2, end);
    }

    #[test]
    fn splits_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, &vec![b'a'; MAX_LINE + 10], 1)
            .unwrap();
        w.flush_partial(2).unwrap();
        let (all, _) = read_from(&p, 0).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].log.len(), MAX_LINE);
    }
}
