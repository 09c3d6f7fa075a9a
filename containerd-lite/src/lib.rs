//! `skiffd` (containerd-lite): the daemon of the Skiff stack.
//!
//! In the architecture (`ARCHITECTURE.md`) skiffd plays the part of dockerd + containerd: it owns
//! the stores and serves the Docker Engine API on a unix socket. This crate is the library behind
//! the `skiffd` binary; the modules follow containerd's split:
//!
//! - [`metadata`]: the embedded database (redb, `meta.redb`) with its schema version: images,
//!   content labels, snapshots and leases;
//! - [`content`]: blobs by digest under `content/blobs/sha256/`, resumable ingest by ref,
//!   size + digest verified on commit ([`content::ContentStore`]);
//! - [`snapshots`]: the overlay snapshotter (prepare / view / commit / remove / walk / usage on a
//!   parent chain, mount options for many layers) ([`snapshots::Snapshotter`]);
//! - [`images`]: references ([`images::reference::Reference`]), import of docker-archive and OCI
//!   layout tars, unpack with whiteouts, export, garbage collection ([`images::ImageService`]);
//! - [`registry`]: the OCI distribution API client behind pull and push (token auth, plain
//!   HTTP for loopback registries, blob mounts) — see its docs for why not `oci-client`;
//! - [`containers`]: container records, the OCI spec built as Docker builds it, the bundle,
//!   stdio and the json-file log, and the lifecycle ([`containers::ContainerService`]);
//! - [`tasks`]: the shim v2 protocol from the daemon's side (`shim start`, the task API over
//!   ttrpc, the events `Forward` server);
//! - [`events`]: the daemon's event log behind `/events` (image and container events);
//! - [`api::docker`]: the Docker Engine API 1.44 over HTTP — the only place where errors become
//!   HTTP statuses;
//! - [`daemon`]: flags, the data-root lock, the listeners and the graceful shutdown.
//!
//! Every error that crosses the API boundary carries an [`ErrorKind`].

#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod api;
pub mod containers;
pub mod content;
pub mod daemon;
pub mod digest;
pub mod events;
pub mod images;
pub mod metadata;
pub mod registry;
pub mod snapshots;
pub mod tasks;

/// The class of a failure, as the service boundary sees it (mapped to HTTP statuses in
/// [`api::docker`] and, later, to ttrpc codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// The object to create exists already.
    AlreadyExists,
    /// The request itself is malformed.
    InvalidArgument,
    /// The request is well formed but the state forbids it (e.g. a snapshot with children).
    FailedPrecondition,
    /// The resource is busy (e.g. an ingest ref held by another writer); retrying may succeed.
    Unavailable,
    /// Anything else: I/O, database, bugs.
    Internal,
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
