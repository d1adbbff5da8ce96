//! Errors: [`RpcError`] is what a handler or middleware answers a call with;
//! [`ClientError`] is what a client call fails with.

use std::fmt;
use std::io;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::codec::{FrameError, ReadError};
use crate::message::{error_codes, ErrorObject};
use crate::transport::StreamError;

/// An error answer to a call, written to the caller as a JSON-RPC error.
///
/// Handler errors (code −32006) carry `data` = `{type, message, data}`, which a
/// JS client rebuilds into an `Error` of that `type`; protocol errors carry
/// `data` = `{code, message, data}` (docs/protocol.md, "RPC messages").
///
/// Any `std::error::Error` converts into a handler error, so handlers can use
/// `?`. (That is also why `RpcError` itself does not implement `Error`.)
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    code: i64,
    message: String,
    error_type: Option<String>,
    data: Option<Value>,
}

impl RpcError {
    /// An error with a JSON-RPC `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            error_type: None,
            data: None,
        }
    }

    /// A handler error (−32006) whose `data.type` is `error_type`, e.g. `"Error"`,
    /// `"TypeError"` or an application error name.
    pub fn handler(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError {
            code: error_codes::HANDLER_ERROR,
            message: message.into(),
            error_type: Some(error_type.into()),
            data: None,
        }
    }

    /// Attaches application data (`data.data` on the wire).
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// −32602: the params do not fit the method.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(error_codes::INVALID_PARAMS, message)
    }

    /// −32601: no such method.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            error_codes::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        )
    }

    /// −32008: the call's deadline passed.
    pub fn timed_out() -> Self {
        Self::new(error_codes::TIMED_OUT, "call timed out")
    }

    /// −32001: the server is shutting down.
    pub fn server_stopping() -> Self {
        Self::new(error_codes::SERVER_STOPPING, "server is shutting down")
    }

    /// −32001 for a call the stopping server refused before starting it:
    /// `data.data.started` is `false`, which tells a client that sending
    /// the call to another server cannot run it twice (docs/protocol.md,
    /// "Go-away").
    pub fn server_stopping_not_started() -> Self {
        Self::server_stopping().with_data(json!({ "started": false }))
    }

    /// −32020: authentication refused the call.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(error_codes::UNAUTHORIZED, message)
    }

    /// −32603: the server failed on its own account.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(error_codes::INTERNAL_ERROR, message)
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The application data, if any.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    /// The wire form.
    pub fn to_error_object(&self) -> ErrorObject {
        let inner_data = match &self.data {
            Some(data) => data.clone(),
            None => Value::Object(Map::new()),
        };
        let data = if self.code == error_codes::HANDLER_ERROR {
            let error_type = self.error_type.as_deref().unwrap_or("Error");
            // A JS client rebuilds standard errors only when `data.stack` is a
            // string; give it one that names where the error came from.
            let mut inner = inner_data;
            if let Value::Object(map) = &mut inner {
                map.entry("stack").or_insert_with(|| {
                    Value::String(format!(
                        "{error_type}: {}\n    at strand handler",
                        self.message
                    ))
                });
            }
            json!({ "type": error_type, "message": self.message, "data": inner })
        } else {
            json!({ "code": self.code, "message": self.message, "data": inner_data })
        };
        ErrorObject {
            code: self.code,
            message: self.message.clone(),
            data: Some(data),
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for RpcError {
    fn from(err: E) -> Self {
        RpcError::handler("Error", err.to_string())
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with a JSON-RPC error: a handler error (−32006) or a
    /// protocol error of the server's (method not found, invalid params, ...).
    #[error("remote error {code}: {message}")]
    Remote {
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
        /// The error data: `{type, message, data}` for handler errors.
        data: Option<Value>,
        /// Reply metadata that came with the error (e.g. a refreshed token:
        /// `authorization`); see [`ClientError::reply_metadata`].
        metadata: Option<Map<String, Value>>,
    },
    /// The server broke the protocol (bad JSON, message too long, no response).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The transport failed: stream reset, connection closed, ...
    #[error("transport error: {0}")]
    Transport(#[source] io::Error),
    /// The server reset the call's stream before answering at all. A JS
    /// server does this for an unknown method (strand answers −32601).
    #[error("the server reset the call without answering ({0}); is the method known to it?")]
    Unanswered(#[source] io::Error),
    /// The connection was lost (closed, broken, or gone for good while
    /// reconnecting) during the call. `sent` says whether the server may
    /// have run it:
    ///
    /// - `false`: nothing of the call was sent (its stream could not be
    ///   opened); the server did not run it, and sending it again is safe.
    /// - `true`: the call's first message was written, or being written;
    ///   the server may have run it, in part or whole, and its answer is
    ///   lost. Only an idempotent call may be sent again.
    ///
    /// A reconnecting client ([`crate::Client::connect_with`]) sends a call
    /// again itself when that is safe: when nothing was sent, and, for a
    /// unary call marked idempotent ([`crate::CallBuilder::idempotent`]),
    /// also when it was. Streams are never resumed.
    #[error("connection lost {}: {source}", if *sent {
        "after the call was sent (the server may have run it)"
    } else {
        "before the call was sent (the server did not run it)"
    })]
    ConnectionLost {
        /// Whether the call's first message was written.
        sent: bool,
        /// The transport error (see [`ClientError::stream_error`]).
        #[source]
        source: io::Error,
    },
    /// The call's deadline passed before it completed.
    #[error("call timed out after {0:?}")]
    TimedOut(Duration),
    /// The call was cancelled locally.
    #[error("call cancelled")]
    Cancelled,
    /// Our own params could not be serialised, or a result could not be
    /// deserialised into the expected type.
    #[error("serialisation error: {0}")]
    Serde(#[from] serde_json::Error),
}

impl ClientError {
    /// The JSON-RPC error code, for [`ClientError::Remote`].
    pub fn code(&self) -> Option<i64> {
        match self {
            ClientError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The transport-level cause, if the transport failed.
    pub fn stream_error(&self) -> Option<&StreamError> {
        match self {
            ClientError::Transport(e)
            | ClientError::Unanswered(e)
            | ClientError::ConnectionLost { source: e, .. } => StreamError::from_io(e),
            _ => None,
        }
    }

    /// Whether the server certainly did not run the call, so that sending
    /// it again cannot run it twice: nothing of it was sent
    /// ([`ClientError::ConnectionLost`] with `sent: false`), the server
    /// refused its stream before reading it (reset with
    /// [`codes::REFUSED`](crate::transport::codes::REFUSED)), or a stopping
    /// server answered it −32001 without starting it (`data.data.started`
    /// is `false`, docs/protocol.md, "Go-away").
    pub fn not_started(&self) -> bool {
        use crate::transport::codes::REFUSED;
        match self {
            ClientError::ConnectionLost { sent, .. } => !sent,
            ClientError::Remote {
                code: error_codes::SERVER_STOPPING,
                data: Some(data),
                ..
            } => data.pointer("/data/started") == Some(&Value::Bool(false)),
            ClientError::Transport(_) | ClientError::Unanswered(_) => matches!(
                self.stream_error(),
                Some(StreamError::Reset(REFUSED) | StreamError::Stopped(REFUSED))
            ),
            _ => false,
        }
    }

    /// This error as a lost connection if the transport says the connection
    /// closed; `sent` as in [`ClientError::ConnectionLost`].
    pub(crate) fn lost_if_closed(self, sent: bool) -> Self {
        match self {
            ClientError::Transport(source) | ClientError::Unanswered(source)
                if matches!(
                    StreamError::from_io(&source),
                    Some(StreamError::ConnectionClosed(_))
                ) =>
            {
                ClientError::ConnectionLost { sent, source }
            }
            other => other,
        }
    }

    /// For a remote handler error, the `type` the handler gave (`"Error"`, ...).
    pub fn error_type(&self) -> Option<&str> {
        match self {
            ClientError::Remote {
                data: Some(data), ..
            } => data.get("type")?.as_str(),
            _ => None,
        }
    }

    pub(crate) fn from_error_object(
        err: ErrorObject,
        metadata: Option<Map<String, Value>>,
    ) -> Self {
        ClientError::Remote {
            code: err.code,
            message: err.message,
            data: err.data,
            metadata,
        }
    }

    /// The reply metadata an error response carried, such as the refreshed
    /// token (`authorization: "Bearer …"`) of a call that failed after the
    /// server's authentication took the caller's token. A client of one-time
    /// tokens must take the next token from here when a call fails.
    pub fn reply_metadata(&self) -> Option<&Map<String, Value>> {
        match self {
            ClientError::Remote { metadata, .. } => metadata.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn from_read(err: ReadError) -> Self {
        match err {
            ReadError::Io(e) => ClientError::Transport(e),
            ReadError::Frame(FrameError::Truncated) => {
                ClientError::Protocol("stream ended inside a message".into())
            }
            ReadError::Frame(e) => ClientError::Protocol(e.to_string()),
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        ClientError::Transport(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_error_shape() {
        let e = RpcError::handler("TypeError", "handler exploded").to_error_object();
        assert_eq!(e.code, -32006);
        assert_eq!(
            e.data.unwrap(),
            json!({"type": "TypeError", "message": "handler exploded",
                   "data": {"stack": "TypeError: handler exploded\n    at strand handler"}})
        );
    }

    #[test]
    fn protocol_error_shape() {
        let e = RpcError::method_not_found("nope").to_error_object();
        assert_eq!(e.code, -32601);
        assert_eq!(
            e.data.unwrap(),
            json!({"code": -32601, "message": "method not found: nope", "data": {}})
        );
    }

    #[test]
    fn std_errors_become_handler_errors() {
        fn fails() -> Result<(), RpcError> {
            "x".parse::<u32>()?;
            Ok(())
        }
        let e = fails().unwrap_err();
        assert_eq!(e.code(), error_codes::HANDLER_ERROR);
        assert_eq!(e.to_error_object().data.unwrap()["type"], "Error");
    }
}
