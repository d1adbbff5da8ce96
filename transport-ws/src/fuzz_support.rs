//! Not an API: what strand's fuzz targets and their replay tests
//! (`tests/fuzz-harness`) need of the crate's internals. Hidden, unstable,
//! and may change or go away in any release.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::io::AsyncRead;

use crate::handshake::{self, Head};
use crate::{UpgradeRequest, WsError, WsServerConfig};

/// What the server made of an upgrade request head.
#[derive(Debug)]
pub enum RequestHead {
    /// An upgrade to go on with (the hook and the `101` come next).
    Upgrade {
        /// The request target and headers.
        request: Box<UpgradeRequest>,
        /// `Sec-WebSocket-Key`.
        key: String,
        /// Bytes read past the head.
        leftover: Bytes,
    },
    /// Answered with this status.
    Reject(StatusCode),
    /// A plain request answered by the configured `HttpHandler`, with this
    /// status.
    Plain(StatusCode),
}

/// Reads and checks an upgrade request head from `io`, as the server does
/// before it runs the upgrade hook.
pub async fn read_request_head<S: AsyncRead + Unpin>(
    io: &mut S,
    config: &WsServerConfig,
) -> Result<RequestHead, WsError> {
    Ok(match handshake::read_head(io, config).await? {
        Head::Upgrade {
            request,
            key,
            leftover,
        } => RequestHead::Upgrade {
            request,
            key,
            leftover,
        },
        Head::Reject(status, _) => RequestHead::Reject(status),
        Head::Plain(response) => RequestHead::Plain(response.status),
    })
}

/// The window a peer advertised in its upgrade headers (`x-strand-window`).
pub fn parse_window(headers: &HeaderMap) -> Option<u32> {
    handshake::parse_window(headers)
}
