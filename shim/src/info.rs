//! `-v` and `-info`.
//!
//! `-info` (containerd 2.x runs it before the first task of a runtime other than runc): reads
//! the runtime options `Any` from stdin, runs `<binary> features` and prints a protobuf
//! `containerd.types.RuntimeInfo` whose `features` is that JSON in an `Any` of type
//! `types.containerd.io/opencontainers/runtime-spec/1/features/Features`
//! (`[CD]/pkg/shim/shim.go` `runInfo`, the runc shim's `Info`).

use std::io::Read as _;

use anyhow::Context as _;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message as _, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::runtime::Runtime;
use crate::service::{VERSION, runtime_options};

/// The runtime name containerd uses for this shim.
pub const RUNTIME_NAME: &str = "io.containerd.skiff.v2";
/// The binary name.
pub const BINARY_NAME: &str = "containerd-shim-skiff-v2";

/// The `-v` text, shaped like the Go shims'.
pub fn version_text() -> String {
    format!("{BINARY_NAME}:\n  Version:  {VERSION}\n  Revision: skiff\n")
}

/// Runs `-info`; returns the encoded `RuntimeInfo`.
pub fn info() -> anyhow::Result<Vec<u8>> {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let options = if stdin.is_empty() {
        None
    } else {
        Some(Any::parse_from_bytes(&stdin).context("decoding the runtime options on stdin")?)
    };
    let runtime = runtime_options(options.as_ref())?;
    let features = Runtime::features(runtime.binary())?;
    let mut any = Any::new();
    any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/features/Features".into();
    any.value = features;
    let info = RuntimeInfo {
        name: RUNTIME_NAME.into(),
        version: MessageField::some(RuntimeVersion {
            version: VERSION.into(),
            revision: "skiff".into(),
            ..Default::default()
        }),
        options: options.map_or(MessageField::none(), MessageField::some),
        features: MessageField::some(any),
        ..Default::default()
    };
    info.write_to_bytes().context("encoding the RuntimeInfo")
}
