//! The task service's error type and its one mapping to ttrpc status codes.
//!
//! containerd turns the ttrpc code back into an errdefs kind (`NotFound`, `AlreadyExists`,
//! `FailedPrecondition`, …) and shows the message to the user, so every variant carries the
//! context a user needs ("exec e1 of container c1 not found"), and a runtime failure carries the
//! runtime's own last `level=error` log message, as the Go runc shim does.

use containerd_shim_protos::ttrpc;

/// A failed task-service operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container, or no exec process, with that id.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `container "c1"`.
        what: String,
    },
    /// A container or exec id that is already in use.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was being created.
        what: String,
    },
    /// A request that can never succeed as sent (missing bundle, bad spec, bad mount).
    #[error("{0}")]
    InvalidArgument(String),
    /// The process is in the wrong state for the request (delete while running, …).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The runtime binary failed; `message` is its last error log line (or its stderr).
    #[error("{op}: {message}")]
    Runtime {
        /// The runtime subcommand, e.g. `runc create`.
        op: String,
        /// What the runtime said.
        message: String,
    },
    /// A host operation of the shim itself failed (fifo, pipe, mount, cgroupfs).
    #[error("{op}")]
    Io {
        /// What the shim was doing.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The request is not supported by this shim (Checkpoint).
    #[error("{0} is not implemented")]
    NotImplemented(&'static str),
}

impl Error {
    /// An [`Error::Io`] for `op`.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }

    /// The ttrpc status code containerd maps back to its errdefs kind.
    pub fn code(&self) -> ttrpc::Code {
        match self {
            Self::NotFound { .. } => ttrpc::Code::NOT_FOUND,
            Self::AlreadyExists { .. } => ttrpc::Code::ALREADY_EXISTS,
            Self::InvalidArgument(_) => ttrpc::Code::INVALID_ARGUMENT,
            Self::FailedPrecondition(_) => ttrpc::Code::FAILED_PRECONDITION,
            Self::Runtime { .. } | Self::Io { .. } => ttrpc::Code::UNKNOWN,
            Self::NotImplemented(_) => ttrpc::Code::UNIMPLEMENTED,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        // The full chain, once: Display never repeats the source, so append each source here.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), message))
    }
}

/// The task service's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_codes_containerd_expects() {
        let cases = [
            (
                Error::NotFound {
                    what: "exec \"e\"".into(),
                },
                ttrpc::Code::NOT_FOUND,
            ),
            (
                Error::AlreadyExists {
                    what: "container \"c\"".into(),
                },
                ttrpc::Code::ALREADY_EXISTS,
            ),
            (
                Error::InvalidArgument("x".into()),
                ttrpc::Code::INVALID_ARGUMENT,
            ),
            (
                Error::FailedPrecondition("x".into()),
                ttrpc::Code::FAILED_PRECONDITION,
            ),
            (
                Error::Runtime {
                    op: "skiff create".into(),
                    message: "boom".into(),
                },
                ttrpc::Code::UNKNOWN,
            ),
            (
                Error::NotImplemented("checkpoint"),
                ttrpc::Code::UNIMPLEMENTED,
            ),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            match ttrpc::Error::from(error) {
                ttrpc::Error::RpcStatus(status) => {
                    assert_eq!(status.code(), code, "{message}");
                    assert_eq!(status.message(), message);
                }
                other => panic!("not an RpcStatus: {other:?}"),
            }
        }
    }

    #[test]
    fn io_errors_carry_their_source_once() {
        let e = Error::io(
            "opening fifo /x",
            std::io::Error::from_raw_os_error(libc_enoent()),
        );
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(status) => {
                assert_eq!(status.code(), ttrpc::Code::UNKNOWN);
                assert!(
                    status
                        .message()
                        .starts_with("opening fifo /x: No such file"),
                    "{}",
                    status.message()
                );
                assert_eq!(status.message().matches("No such file").count(), 1);
            }
            other => panic!("not an RpcStatus: {other:?}"),
        }
    }

    fn libc_enoent() -> i32 {
        nix::errno::Errno::ENOENT as i32
    }
}
