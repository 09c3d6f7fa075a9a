//! Health checks (`HEALTHCHECK` of an image, `docker run --health-*`): the probe settings with
//! docker's defaults, and the state machine of `State.Health`. Pure; the service runs the
//! probes as execs in the container (`ContainerService::spawn_health`).
//!
//! Docker's rules: the status starts as `starting`; a probe that exits 0 makes it `healthy`
//! and clears the failing streak; a failure adds to the streak, and `retries` failures in a
//! row make it `unhealthy` — except during the start period, when failures do not count (a
//! success still ends the period's `starting`). A probe that outlives its timeout is a failure
//! with exit code -1. The log keeps the last 5 results; probe output is cut at 4 KiB.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};

/// Results kept in `State.Health.Log`.
pub const LOG_ENTRIES: usize = 5;
/// Bytes of a probe's output kept.
pub const MAX_OUTPUT: usize = 4096;

/// How a container is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The command as it runs in the container (`CMD-SHELL x` → `/bin/sh -c x`).
    pub argv: Vec<String>,
    /// Between probes (docker: 30 s).
    pub interval: Duration,
    /// Before a probe counts as failed (docker: 30 s).
    pub timeout: Duration,
    /// Failures in a row that make the container unhealthy (docker: 3).
    pub retries: u32,
    /// Failures in this time after the start do not count (docker: 0).
    pub start_period: Duration,
    /// Between probes during the start period (docker: 5 s).
    pub start_interval: Duration,
}

fn duration_field(hc: &Value, key: &str, default: Duration) -> Duration {
    match hc.get(key).and_then(Value::as_i64) {
        Some(n) if n > 0 => Duration::from_nanos(n.unsigned_abs()),
        _ => default,
    }
}

impl Probe {
    /// The probe of a container's `Config.Healthcheck`; None when there is none to run
    /// (absent, `NONE`, or an empty test).
    pub fn from_config(hc: Option<&Value>, shell: Option<&[String]>) -> Option<Self> {
        let hc = hc?;
        let test: Vec<String> = hc
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let argv = match test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                let mut v = shell
                    .filter(|s| !s.is_empty())
                    .map_or_else(|| vec!["/bin/sh".into(), "-c".into()], <[String]>::to_vec);
                v.push(rest.join(" "));
                v
            }
            _ => return None,
        };
        let retries = hc
            .get("Retries")
            .and_then(Value::as_u64)
            .filter(|r| *r > 0)
            .map_or(3, |r| u32::try_from(r).unwrap_or(u32::MAX));
        Some(Self {
            argv,
            interval: duration_field(hc, "Interval", Duration::from_secs(30)),
            timeout: duration_field(hc, "Timeout", Duration::from_secs(30)),
            retries,
            start_period: duration_field(hc, "StartPeriod", Duration::ZERO),
            start_interval: duration_field(hc, "StartInterval", Duration::from_secs(5)),
        })
    }
}

/// Checks a `Healthcheck` as docker does at create: durations of 0 (the default) or at least
/// 1 ms, retries not negative.
pub fn validate(hc: Option<&Value>) -> Result<(), String> {
    let Some(hc) = hc else { return Ok(()) };
    for (key, what) in [
        ("Interval", "Interval"),
        ("Timeout", "Timeout"),
        ("StartPeriod", "StartPeriod"),
        ("StartInterval", "StartInterval"),
    ] {
        let n = hc.get(key).and_then(Value::as_i64).unwrap_or(0);
        if n != 0 && n < 1_000_000 {
            return Err(format!("{what} in Healthcheck cannot be less than 1ms"));
        }
    }
    if hc.get("Retries").and_then(Value::as_i64).unwrap_or(0) < 0 {
        return Err("Retries in Healthcheck cannot be negative".into());
    }
    Ok(())
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// When it started (Unix nanoseconds).
    pub start: i64,
    /// When it ended.
    pub end: i64,
    /// Its exit code; -1 when it timed out or could not run.
    pub exit_code: i64,
    /// What it printed (both streams, cut at [`MAX_OUTPUT`]).
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: &'static str,
    /// Failures in a row.
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: VecDeque<ProbeResult>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            status: "starting",
            failing_streak: 0,
            log: VecDeque::new(),
        }
    }
}

impl Health {
    /// Records a result; returns the new status when it changed.
    pub fn record(
        &mut self,
        r: ProbeResult,
        retries: u32,
        in_start_period: bool,
    ) -> Option<&'static str> {
        let before = self.status;
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy";
        } else if !(in_start_period && self.status == "starting") {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy";
            }
        }
        self.log.push_back(r);
        while self.log.len() > LOG_ENTRIES {
            self.log.pop_front();
        }
        (self.status != before).then_some(self.status)
    }

    /// As inspect shows it.
    pub fn to_json(&self, format_time: impl Fn(i64) -> String) -> Value {
        let log: Vec<Value> = self
            .log
            .iter()
            .map(|r| {
                json!({"Start": format_time(r.start), "End": format_time(r.end),
                       "ExitCode": r.exit_code, "Output": r.output})
            })
            .collect();
        json!({"Status": self.status, "FailingStreak": self.failing_streak, "Log": log})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> ProbeResult {
        ProbeResult {
            start: 1,
            end: 2,
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn probes_from_configs_with_docker_defaults() {
        let p =
            Probe::from_config(Some(&json!({"Test": ["CMD-SHELL", "test -e /ok"]})), None).unwrap();
        assert_eq!(p.argv, ["/bin/sh", "-c", "test -e /ok"]);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.retries, 3);
        assert_eq!(p.start_period, Duration::ZERO);
        assert_eq!(p.start_interval, Duration::from_secs(5));
        let p = Probe::from_config(
            Some(
                &json!({"Test": ["CMD", "true", "x"], "Interval": 1_000_000_000,
                         "Timeout": 500_000_000, "Retries": 2, "StartPeriod": 3_000_000_000_i64}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(p.argv, ["true", "x"]);
        assert_eq!(p.interval, Duration::from_secs(1));
        assert_eq!(p.timeout, Duration::from_millis(500));
        assert_eq!(p.retries, 2);
        assert_eq!(p.start_period, Duration::from_secs(3));
        let shell = ["/bin/ash".to_owned(), "-c".to_owned()];
        let p =
            Probe::from_config(Some(&json!({"Test": ["CMD-SHELL", "x"]})), Some(&shell)).unwrap();
        assert_eq!(p.argv, ["/bin/ash", "-c", "x"]);
        for none in [
            json!({"Test": ["NONE"]}),
            json!({"Test": []}),
            json!({"Test": ["CMD"]}),
            json!({}),
        ] {
            assert_eq!(Probe::from_config(Some(&none), None), None, "{none}");
        }
        assert_eq!(Probe::from_config(None, None), None);
    }

    #[test]
    fn configs_are_checked_as_docker_does() {
        assert!(validate(None).is_ok());
        assert!(validate(Some(&json!({"Interval": 0, "Retries": 0}))).is_ok());
        assert!(validate(Some(&json!({"Interval": 1_000_000}))).is_ok());
        let e = validate(Some(&json!({"Interval": 1}))).unwrap_err();
        assert!(
            e.contains("Interval in Healthcheck cannot be less than 1ms"),
            "{e}"
        );
        assert!(validate(Some(&json!({"StartInterval": 999}))).is_err());
        let e = validate(Some(&json!({"Retries": -1}))).unwrap_err();
        assert!(e.contains("cannot be negative"), "{e}");
    }

    #[test]
    fn statuses_follow_dockers_rules() {
        let mut h = Health::default();
        assert_eq!(h.status, "starting");
        // Failures in the start period do not count.
        assert_eq!(h.record(result(1), 2, true), None);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.record(result(0), 2, true), Some("healthy"));
        // Once healthy, failures count even inside the start period (docker).
        assert_eq!(h.record(result(1), 2, true), None);
        assert_eq!(h.failing_streak, 1);
        h.failing_streak = 0;
        assert_eq!(h.record(result(1), 2, false), None);
        assert_eq!(h.failing_streak, 1);
        assert_eq!(h.record(result(-1), 2, false), Some("unhealthy"));
        assert_eq!(h.record(result(1), 2, false), None);
        assert_eq!(h.failing_streak, 3);
        assert_eq!(h.record(result(0), 2, false), Some("healthy"));
        assert_eq!(h.failing_streak, 0);
        for _ in 0..10 {
            h.record(result(0), 2, false);
        }
        assert_eq!(h.log.len(), LOG_ENTRIES);
        let j = h.to_json(|t| t.to_string());
        assert_eq!(j["Status"], "healthy");
        assert_eq!(j["Log"].as_array().unwrap().len(), LOG_ENTRIES);
        assert_eq!(j["Log"][0]["Start"], "1");
    }
}
