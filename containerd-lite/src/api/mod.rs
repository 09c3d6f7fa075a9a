//! The daemon's client-facing APIs. Only the Docker Engine API exists so far.

pub mod docker;
