//! Paths the `#[strand::service]` expansion refers to (as
//! `strand::__private`, or `strand_rpc_core::__private` with
//! `#[strand::service(crate = "strand_rpc_core")]`), so user crates need no
//! direct dependency on them and the generated code needs no carrier. Not a
//! public API: anything here may change in any release.

use std::time::Duration;

use serde_json::{Map, Value};

pub use futures_util;
pub use serde;
pub use serde_json;

pub use crate::client::{ClientStreamingCall, RawCall, RequestSink};
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
