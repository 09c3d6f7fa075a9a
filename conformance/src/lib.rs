//! `oci-conformance`: a black-box conformance suite for OCI runtimes (skiff, runc, crun, ...).
//!
//! Place in the architecture: the fourth program of Skiff (`conformance/`). It links no runtime
//! code: it drives the runtime under test only through its runc-compatible command line
//! (`create`, `start`, `state`, `kill`, `delete`, `exec`, `ps`, `pause`, `resume`, `update`,
//! `features`) on bundles it generates itself, and checks the results from outside (state JSON,
//! `/proc/<pid>/...`, cgroupfs, exit codes, hook side effects) and from inside the container
//! (a static probe, [`probe`], that reports what the container process sees as JSON).
//!
//! With `--cgroup2-ns` every runtime invocation goes through [`cgroup2_ns`], so the runtime
//! takes its cgroup v2 paths on a hybrid host.
//!
//! Key types: [`case::Case`] (name, spec section and quote, check function), [`ctx::Ctx`] (one
//! case's private directory, container ids, `--root`, and clean-up), [`runtime::Runtime`] (the
//! CLI driver, every call bounded by a timeout), [`bundle::Bundle`] (busybox rootfs + the
//! suite's own `config.json`), and [`suite::run`] (the thread pool, output and expectations).
//!
//! Every case is written from the runtime-spec text and cites the section it checks; see
//! `docs/conformance.md` for the results against skiff, runc and crun.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod case;
pub mod cases;
pub mod cgroup2_ns;
pub mod ctx;
pub mod host;
pub mod probe;
pub mod runtime;
pub mod suite;
