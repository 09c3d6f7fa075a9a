//! Running the selected cases on a bounded pool of threads and reporting them in order.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use serde_json::json;

use crate::bundle::RootfsSource;
use crate::case::{Case, Outcome, matches_filter};
use crate::ctx::{CGROUP_PARENT, Ctx};
use crate::{cases, host, probe};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TAP 13: `ok N - name`, `not ok N - name # reason`, `ok N - name # SKIP reason`.
    Tap,
    /// One JSON object per case, then one summary object.
    Json,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub runtime: PathBuf,
    pub filter: Option<String>,
    pub format: Format,
    pub keep_failed: bool,
    pub jobs: usize,
    /// A file of expected non-passing results; when set, the exit status reflects mismatches
    /// against it instead of plain failures.
    pub expect: Option<PathBuf>,
    /// Mount the hugetlb controller as a cgroup v1 hierarchy first (crun on hybrid hosts).
    pub hugetlb_v1: bool,
    /// Run every runtime invocation where /sys/fs/cgroup is the host's cgroup2 hierarchy.
    pub cgroup2_ns: bool,
    /// Print the case list with the spec sections and quit.
    pub list: bool,
}

/// What one case did.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// Runs the suite; returns true if the run is a success (no failures, or no mismatch against
/// the expectations file).
pub fn run(opts: &Options) -> anyhow::Result<bool> {
    let selected: Vec<Case> = cases::all()
        .into_iter()
        .filter(|c| {
            opts.filter
                .as_deref()
                .is_none_or(|f| matches_filter(f, c.name))
        })
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for c in cases::all() {
        ensure!(names.insert(c.name), "case {} is registered twice", c.name);
    }
    if opts.list {
        for c in &selected {
            println!("{}\t{}\t{}", c.name, c.spec, c.quote);
        }
        return Ok(true);
    }
    ensure!(!selected.is_empty(), "no case matches the filter");
    let expectations = match &opts.expect {
        Some(path) => Some(Expectations::load(path)?),
        None => None,
    };

    let runtime = fs::canonicalize(&opts.runtime)
        .with_context(|| format!("runtime {} not found", opts.runtime.display()))?;
    if opts.hugetlb_v1 {
        mount_hugetlb_v1()?;
    }
    let wrapper = if opts.cgroup2_ns {
        ensure!(
            Path::new(host::CGROUP2_HYBRID_MOUNT)
                .join("cgroup.controllers")
                .exists(),
            "--cgroup2-ns needs a hybrid host with cgroup2 mounted at {} (on a pure v2 host \
             the runtime takes its v2 paths without it)",
            host::CGROUP2_HYBRID_MOUNT
        );
        host::set_cgroup2_ns(true);
        Some(std::env::current_exe().context("finding the suite's own binary")?)
    } else {
        None
    };
    let cache = std::env::temp_dir().join("oci-conformance-cache");
    let probe = probe::build(&cache, "probe", probe::SOURCE)?;
    let console = probe::build(&cache, "console", probe::CONSOLE_SOURCE)?;
    let source = RootfsSource::load(&probe, &console)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let work = std::env::temp_dir().join(format!("oci-conformance-{}-{stamp}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("mkdir {}", work.display()))?;

    let started = Instant::now();
    let results = execute(
        opts,
        &runtime,
        wrapper.as_deref(),
        &source,
        &work,
        &selected,
    )?;
    let elapsed = started.elapsed();

    let _ = fs::remove_dir(&work); // only if empty: kept failures stay
    host::remove_cgroup_everywhere(CGROUP_PARENT);

    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count();
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .count();
    let skipped = results.len() - passed - failed;
    let summary = format!("{passed} passed, {failed} failed, {skipped} skipped");
    match opts.format {
        Format::Tap => {
            println!(
                "# runtime {}{} in {:.1}s",
                runtime.display(),
                if opts.cgroup2_ns {
                    " (--cgroup2-ns)"
                } else {
                    ""
                },
                elapsed.as_secs_f64()
            );
            println!("{summary}");
        }
        Format::Json => println!(
            "{}",
            json!({
                "summary": summary, "passed": passed, "failed": failed, "skipped": skipped,
                "seconds": elapsed.as_secs_f64(), "runtime": runtime, "cgroup2_ns": opts.cgroup2_ns,
            })
        ),
    }
    if opts.keep_failed && failed > 0 {
        eprintln!(
            "oci-conformance: failed cases kept under {}",
            work.display()
        );
    }
    match expectations {
        Some(exp) => {
            let mismatches = exp.compare(&results);
            for m in &mismatches {
                eprintln!("oci-conformance: {m}");
            }
            if mismatches.is_empty() {
                eprintln!(
                    "oci-conformance: results match {}",
                    opts.expect
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
            }
            Ok(mismatches.is_empty())
        }
        None => Ok(failed == 0),
    }
}

/// Runs `cases` on `opts.jobs` threads, printing each result as soon as all earlier cases
/// have been printed (so the output is in registry order).
fn execute(
    opts: &Options,
    runtime: &Path,
    wrapper: Option<&Path>,
    source: &RootfsSource,
    work: &Path,
    cases: &[Case],
) -> anyhow::Result<Vec<CaseResult>> {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, CaseResult)>();
    let jobs = opts.jobs.clamp(1, cases.len());
    if opts.format == Format::Tap {
        println!("TAP version 13");
        println!("1..{}", cases.len());
    }
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let result = run_case(opts, runtime, wrapper, source, work, i, *case);
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut printed = 0;
        for (i, result) in rx {
            results[i] = Some(result);
            while let Some(Some(r)) = results.get(printed) {
                print_result(opts.format, printed + 1, r);
                printed += 1;
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.context("a worker thread died before reporting its case"))
        .collect()
}

fn run_case(
    opts: &Options,
    runtime: &Path,
    wrapper: Option<&Path>,
    source: &RootfsSource,
    work: &Path,
    index: usize,
    case: Case,
) -> CaseResult {
    let started = Instant::now();
    let dir = work.join(format!("{:03}-{}", index + 1, case.name));
    let prefix = format!("oc{}-{}", std::process::id(), index + 1);
    let outcome = match Ctx::new(runtime, wrapper, &dir, source, prefix) {
        Err(e) => Outcome::Fail(format!("setting up the case: {e:#}")),
        Ok(mut ctx) => {
            let result = catch_unwind(AssertUnwindSafe(|| (case.run)(&mut ctx)))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the case panicked")));
            let outcome = Outcome::from_result(result);
            let keep = opts.keep_failed && matches!(outcome, Outcome::Fail(_));
            ctx.cleanup(keep);
            outcome
        }
    };
    CaseResult {
        case,
        outcome,
        duration: started.elapsed(),
    }
}

fn print_result(format: Format, n: usize, r: &CaseResult) {
    let line = match format {
        Format::Tap => match &r.outcome {
            Outcome::Pass => format!("ok {n} - {}", r.case.name),
            Outcome::Fail(reason) => format!("not ok {n} - {} # {reason}", r.case.name),
            Outcome::Skip(reason) => format!("ok {n} - {} # SKIP {reason}", r.case.name),
        },
        Format::Json => json!({
            "name": r.case.name,
            "group": r.case.group(),
            "spec": r.case.spec,
            "result": r.outcome.word(),
            "reason": r.outcome.reason(),
            "duration_ms": r.duration.as_millis() as u64,
        })
        .to_string(),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Mounts the hugetlb controller as a v1 hierarchy at /sys/fs/cgroup/hugetlb (what crun needs
/// on a hybrid host whose cgroup2 holds hugetlb). This changes the host and is not undone.
fn mount_hugetlb_v1() -> anyhow::Result<()> {
    use nix::mount::{MsFlags, mount};
    let target = Path::new(host::CGROUP_ROOT).join("hugetlb");
    let mounts = fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let already = mounts
        .lines()
        .filter_map(probe::MountInfo::parse)
        .any(|m| Path::new(&m.mount_point) == target);
    if already {
        return Ok(());
    }
    eprintln!(
        "oci-conformance: --hugetlb-v1: mounting the hugetlb controller at {} (changes the \
         host; not undone)",
        target.display()
    );
    fs::create_dir_all(&target).with_context(|| format!("mkdir {}", target.display()))?;
    mount(
        Some("cgroup"),
        &target,
        Some("cgroup"),
        MsFlags::empty(),
        Some("hugetlb"),
    )
    .map_err(|errno| {
        let hint = if errno == nix::errno::Errno::EBUSY {
            " (hugetlb is still enabled in the cgroup2 hierarchy, e.g. in \
             /sys/fs/cgroup/unified/cgroup.subtree_control, or used by its child cgroups; \
             an alternative that leaves the host alone: run the suite in a private mount \
             namespace without the cgroup2 mount, `unshare -m --propagation private sh -c \
             'umount /sys/fs/cgroup/unified && exec oci-conformance --runtime crun'`)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "mount -t cgroup -o hugetlb cgroup {}: {errno}{hint}",
            target.display()
        )
    })
}

/// The expectations file: one entry per line, `xfail NAME` or `skip NAME`, optionally followed
/// by `# reason`; `#` starts a comment. Every case not listed must pass.
#[derive(Debug, Default)]
pub struct Expectations {
    entries: BTreeMap<String, &'static str>,
}

impl Expectations {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let known: std::collections::BTreeSet<&str> = cases::all().iter().map(|c| c.name).collect();
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(kind), Some(name), None) = (words.next(), words.next(), words.next()) else {
                bail!(
                    "line {}: want `xfail NAME` or `skip NAME`, got {line:?}",
                    n + 1
                );
            };
            let kind = match kind {
                "xfail" => "fail",
                "skip" => "skip",
                other => bail!("line {}: unknown kind {other:?} (xfail or skip)", n + 1),
            };
            ensure!(
                known.contains(name),
                "line {}: no case is named {name} (stale entry?)",
                n + 1
            );
            ensure!(
                entries.insert(name.to_owned(), kind).is_none(),
                "line {}: {name} is listed twice",
                n + 1
            );
        }
        Ok(Self { entries })
    }

    /// Mismatches between `results` and the expectations, as messages.
    pub fn compare(&self, results: &[CaseResult]) -> Vec<String> {
        let mut out = Vec::new();
        for r in results {
            let want = self.entries.get(r.case.name).copied().unwrap_or("pass");
            let got = r.outcome.word();
            if want == got {
                continue;
            }
            let why = r.outcome.reason().unwrap_or_default();
            out.push(match (want, got) {
                ("pass", _) => format!(
                    "REGRESSION {}: expected pass, got {got}: {why}",
                    r.case.name
                ),
                (_, "pass") => format!(
                    "UNEXPECTED PASS {}: expected {want}; remove it from the expectations file",
                    r.case.name
                ),
                _ => format!(
                    "MISMATCH {}: expected {want}, got {got}: {why}",
                    r.case.name
                ),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_and_reject_unknown_names() {
        let first = cases::all()[0].name;
        let e = Expectations::parse(&format!("# c\nxfail {first} # why\n\n")).unwrap();
        assert_eq!(e.entries.get(first), Some(&"fail"));
        assert!(Expectations::parse("xfail no.such.case").is_err());
        assert!(Expectations::parse(&format!("maybe {first}")).is_err());
    }

    #[test]
    fn compare_flags_regressions_and_unexpected_passes() {
        let all = cases::all();
        let e = Expectations::parse(&format!("xfail {}", all[0].name)).unwrap();
        let results = vec![
            CaseResult {
                case: all[0],
                outcome: Outcome::Pass,
                duration: Duration::ZERO,
            },
            CaseResult {
                case: all[1],
                outcome: Outcome::Fail("x".into()),
                duration: Duration::ZERO,
            },
        ];
        let m = e.compare(&results);
        assert_eq!(m.len(), 2);
        assert!(m[0].starts_with("UNEXPECTED PASS"));
        assert!(m[1].starts_with("REGRESSION"));
    }
}
