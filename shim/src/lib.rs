//! `containerd-shim-skiff-v2`: a containerd shim v2 that drives a runc-compatible runtime
//! (`skiff` by default; runc or crun through the runtime options' `BinaryName`).
//!
//! Place in the architecture (`ARCHITECTURE.md`): containerd (or skiffd) ⇄ ttrpc task API ⇄
//! this shim ⇄ runc command line ⇄ the runtime. One shim serves one container, or every
//! container of a group (a Kubernetes pod). Protocol facts with sources:
//! `reference/containerd-shim-and-store.md` §1–2 and §4; the runtime contract:
//! `reference/oci-runtimes.md` §5.
//!
//! Modules:
//! - [`args`]: containerd's Go-style flags; [`start`], [`delete`], [`info`]: the actions;
//!   [`serve`]: the daemonised serving shim.
//! - [`service`]: the task service; [`process`]: the process table and its state machine.
//! - [`runtime`]: the runtime CLI; [`reaper`]: the serving shim's one event loop (SIGCHLD
//!   reaping for CLIs and containers, every container's OOM watch, shutdown).
//! - [`stdio`]: fifos, pipes and the console socket; [`events`]: the ordered event
//!   publisher (with its own minimal ttrpc client); [`cgroups`]: Stats and the OOM watches;
//!   [`mounts`]: the rootfs mounts.
//! - [`error`]: the service error and its one mapping to ttrpc codes.
//!
//! Why not the `containerd-shim` crate: its framework owns exactly the parts that decide this
//! shim's footprint and correctness — it reads stdin at `start` as a legacy options `Any` (broken
//! with containerd 2.3's BootstrapParams), hard-codes the socket dir, and its reaper and
//! publisher are built around its own process model. Only `containerd-shim-protos` is used
//! (generated types and the sync ttrpc server), with `default-features = false`: no tokio, no
//! async runtime — a thread per blocking request (Wait) and per stdio stream instead, and one
//! poll loop for reaping and OOM, which is what keeps a shim's RSS small (8 threads for a
//! detached container; `serve` lists them).

#![forbid(unsafe_code)]

pub mod args;
pub mod cgroups;
pub mod delete;
pub mod error;
pub mod events;
pub mod info;
pub mod mounts;
pub mod process;
pub mod reaper;
pub mod runtime;
pub mod serve;
pub mod service;
pub mod start;
pub mod stdio;
