//! containerd's shim command line, parsed the way Go's `flag` package does it.
//!
//! containerd 1.6 → 2.x runs `shim -namespace NS -address GRPC -publish-binary BIN -id ID
//! [-bundle DIR] [-debug] start|delete` (`[CD]/pkg/shim/util.go` `Command`); `-v` and `-info`
//! are the command-like flags. Go flags accept one or two dashes and `-name=value`; boolean
//! flags never take a separate value. The first non-flag argument is the action; parsing stops
//! there, as in Go.
//!
//! `-socket` is our own flag: the serving shim started by `start` gets the address it must bind.

/// What the shim was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Print the version (`-v`, `-version`).
    Version,
    /// Print a protobuf `RuntimeInfo` (`-info`).
    Info,
    /// Launch (or reuse) a serving shim and print its address.
    Start,
    /// Clean up after a dead shim and print a protobuf `DeleteResponse`.
    Delete,
    /// Serve the task API (the daemonised child of `start`).
    Serve,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The action.
    pub action: Action,
    /// `-namespace`: the containerd namespace.
    pub namespace: String,
    /// `-id`: the container id (for `start`: the container that asked for a shim).
    pub id: String,
    /// `-address`: containerd's gRPC socket (part of the socket-address hash).
    pub address: String,
    /// `-publish-binary`: containerd's binary, for `publish` (the 1.6 fallback).
    pub publish_binary: String,
    /// `-bundle`: the bundle (`delete`); defaults to the working directory.
    pub bundle: String,
    /// `-socket`: the address the serving shim binds (our own flag).
    pub socket: String,
    /// `-debug`.
    pub debug: bool,
}

/// A malformed command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// A flag this shim does not know.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A string flag at the end of the line, without its value.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A boolean flag with a value that is not a Go boolean.
    #[error("invalid boolean value {value:?} for -{flag}")]
    BadBool {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
    },
    /// An action other than `start` and `delete`.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
}

/// Boolean flags: they take no separate value (`-debug`, `-debug=true`).
const BOOL_FLAGS: &[&str] = &["debug", "v", "version", "info"];

impl Args {
    /// Parses `argv[1..]`.
    pub fn parse<I, S>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut parsed = Args {
            action: Action::Serve,
            namespace: String::new(),
            id: String::new(),
            address: String::new(),
            publish_binary: String::new(),
            bundle: String::new(),
            socket: String::new(),
            debug: false,
        };
        let (mut version, mut info) = (false, false);
        let mut rest = args.into_iter().map(Into::into);
        let mut action = None;
        while let Some(arg) = rest.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                action = Some(arg);
                break;
            };
            if flag.is_empty() {
                // `--` ends the flags, as in Go.
                action = rest.next();
                break;
            }
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (flag.to_string(), None),
            };
            if BOOL_FLAGS.contains(&name.as_str()) {
                let value = match inline.as_deref() {
                    None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                    Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                    Some(other) => {
                        return Err(ArgsError::BadBool {
                            flag: name,
                            value: other.to_string(),
                        });
                    }
                };
                match name.as_str() {
                    "debug" => parsed.debug = value,
                    "v" | "version" => version = value,
                    _ => info = value,
                }
                continue;
            }
            let slot = match name.as_str() {
                "namespace" => &mut parsed.namespace,
                "id" => &mut parsed.id,
                "address" => &mut parsed.address,
                "publish-binary" => &mut parsed.publish_binary,
                "bundle" => &mut parsed.bundle,
                "socket" => &mut parsed.socket,
                _ => return Err(ArgsError::Unknown(name)),
            };
            *slot = match inline {
                Some(v) => v,
                None => rest.next().ok_or(ArgsError::MissingValue(name))?,
            };
        }
        parsed.action = if version {
            Action::Version
        } else if info {
            Action::Info
        } else {
            match action.as_deref() {
                None | Some("") => Action::Serve,
                Some("start") => Action::Start,
                Some("delete") => Action::Delete,
                Some(other) => return Err(ArgsError::UnknownAction(other.to_string())),
            }
        };
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_16_start_line() {
        let args = Args::parse([
            "-namespace",
            "default",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ])
        .expect("parses");
        assert_eq!(args.action, Action::Start);
        assert_eq!(args.namespace, "default");
        assert_eq!(args.address, "/run/containerd/containerd.sock");
        assert_eq!(args.publish_binary, "/usr/bin/containerd");
        assert_eq!(args.id, "c1");
        assert!(args.debug);
    }

    #[test]
    fn delete_line_with_bundle_and_go_forms() {
        let args = Args::parse([
            "--namespace=k8s.io",
            "-id=c2",
            "-bundle",
            "/b",
            "-debug=false",
            "delete",
        ])
        .expect("parses");
        assert_eq!(args.action, Action::Delete);
        assert_eq!(args.namespace, "k8s.io");
        assert_eq!(args.id, "c2");
        assert_eq!(args.bundle, "/b");
        assert!(!args.debug);
    }

    #[test]
    fn command_like_flags_win_over_actions() {
        assert_eq!(Args::parse(["-v"]).expect("v").action, Action::Version);
        assert_eq!(
            Args::parse(["-version"]).expect("version").action,
            Action::Version
        );
        assert_eq!(Args::parse(["-info"]).expect("info").action, Action::Info);
        assert_eq!(
            Args::parse(["-namespace", "n", "-socket", "unix:///s"])
                .expect("serve")
                .action,
            Action::Serve
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(
            Args::parse(["-nope"]),
            Err(ArgsError::Unknown("nope".into()))
        );
        assert_eq!(
            Args::parse(["-id"]),
            Err(ArgsError::MissingValue("id".into()))
        );
        assert_eq!(
            Args::parse(["-debug=maybe"]),
            Err(ArgsError::BadBool {
                flag: "debug".into(),
                value: "maybe".into()
            })
        );
        assert_eq!(
            Args::parse(["frobnicate"]),
            Err(ArgsError::UnknownAction("frobnicate".into()))
        );
    }
}
