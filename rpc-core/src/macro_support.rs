//! Paths the `#[strand::service]` expansion refers to (as
//! `strand::__private`, or `strand_rpc_core::__private` with
//! `#[strand::service(crate = "strand_rpc_core")]`), so user crates need no
//! direct dependency on them and the generated code needs no carrier. Not a
//! public API: anything here may change in any release.

use std::time::Duration;

use serde_json::{Map, Value};

pub use futures_util;
#[cfg(feature = "openrpc")]
pub use schemars;
pub use serde;
pub use serde_json;

pub use crate::client::{ClientStreamingCall, PipelinedRawCall, RawCall, RequestSink};
#[cfg(feature = "openrpc")]
pub use crate::openrpc::{Describer, MethodSpec};
pub use crate::server::{CallKind, Incoming, RawReader, Router};
pub use crate::{CallBuilder, Client, ClientError, Context, ResponseStream, RpcError};

/// The per-call options a generated client applies to each of its calls.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    metadata: Map<String, Value>,
}

impl CallOptions {
    /// Sets the timeout of every call.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Adds `key: value` to the metadata of every call (replacing a same-named entry).
    pub fn insert_metadata(&mut self, key: String, value: Value) {
        self.metadata.insert(key, value);
    }

    /// Applies the options to one call; they override the client's defaults.
    pub fn apply<'a>(&self, mut call: CallBuilder<'a>) -> CallBuilder<'a> {
        if let Some(timeout) = self.timeout {
            call = call.timeout(timeout);
        }
        for (key, value) in &self.metadata {
            call = call.metadata(key.clone(), value.clone());
        }
        call
    }
}

/// A type `#[strand::service]` can describe: one with a JSON Schema.
#[cfg(feature = "openrpc")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no JSON Schema, which the service's OpenRPC document needs",
    label = "this type needs `schemars::JsonSchema`",
    note = "derive it: `#[derive(schemars::JsonSchema)]` on `{Self}` (or `#[schemars(with = \"...\")]` on a field of a foreign type), or build without strand's `openrpc` feature"
)]
pub trait HasSchema {}

#[cfg(feature = "openrpc")]
impl<T: schemars::JsonSchema + ?Sized> HasSchema for T {}

/// Fails to compile, naming `T`, when `T` has no JSON Schema.
#[cfg(feature = "openrpc")]
pub fn has_schema<T: HasSchema + ?Sized>() {}
