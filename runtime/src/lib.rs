//! `skiff`: an OCI runtime with runc's command line.
//!
//! This crate is the runtime of the Skiff stack (see `ARCHITECTURE.md`): the library behind the
//! `skiff` binary, which containerd's shim, podman and dockerd call exactly as they call runc.
//!
//! - [`spec`] loads and validates a bundle's `config.json`;
//! - [`container`] holds the lifecycle verbs (`create`, `start`, `state`, `kill`, `delete`,
//!   `run`, `list`, `spec`);
//! - [`process`] is the clone of the container's init and the runtime ⇄ init protocol;
//! - [`namespaces`], [`rootfs`], [`hooks`] and [`seccomp`] are what the init sets up;
//! - [`cgroups`] places the container in its cgroups and applies `linux.resources`;
//! - [`state`] is the on-disk state under `--root`;
//! - [`exe`] protects the runtime's binary on the paths that enter a container (CVE-2019-5736).
//!
//! All `unsafe` code is in the private `sys` module.

#![deny(unsafe_code)]

pub mod cgroups;
pub mod container;
pub mod exe;
pub mod hooks;
pub mod lsm;
pub mod namespaces;
pub mod pidfd;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
mod sys;
pub mod time;
