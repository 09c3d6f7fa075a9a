//! Log lines in logrus's shapes, which containerd parses from `--log`:
//! JSON `{"level":"error","msg":"…","time":"<RFC 3339>"}` or text `time="…" level=… msg="…"`.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Where and how to log.
pub struct Logrus {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
}

impl Logrus {
    /// Install the subscriber: to `log` (appended) or stderr.
    pub fn install(log: Option<&std::path::Path>, json: bool, debug: bool) -> std::io::Result<()> {
        let out: Box<dyn Write + Send> = match log {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Box::new(std::io::stderr()),
        };
        let level = if debug {
            LevelFilter::DEBUG
        } else {
            LevelFilter::WARN
        };
        let subscriber = tracing_subscriber::registry().with(
            Logrus {
                out: Mutex::new(out),
                json,
            }
            .with_filter(level),
        );
        let _ = tracing::subscriber::set_global_default(subscriber);
        Ok(())
    }
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Logrus {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let msg = format!("{}{}", f.msg, f.extra);
        let line = format_line(
            self.json,
            *event.metadata().level(),
            &msg,
            &skiff::time::now(),
        );
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

/// One log line, newline included.
pub fn format_line(json: bool, level: Level, msg: &str, time: &str) -> String {
    let level = match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    if json {
        let v = serde_json::json!({"level": level, "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        format!("time={time:?} level={level} msg={msg:?}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_logrus_shaped() {
        let line = format_line(
            true,
            Level::ERROR,
            "container \"x\" does not exist",
            "2026-11-23T18:33:12.000000000Z",
        );
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("json");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        assert_eq!(v["time"], "2026-11-23T18:33:12.000000000Z");
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn text_line() {
        let line = format_line(false, Level::WARN, "a \"b\"", "T");
        assert_eq!(line, "time=\"T\" level=warning msg=\"a \\\"b\\\"\"\n");
    }
}
