//! The client: one method per call kind, over any [`Connection`].
//!
//! Every call opens its own stream. The first message carries
//! `params.metadata` (the timeout in milliseconds, the authorization, and any
//! application metadata) and is written on its own (docs/protocol.md, "Write boundary").
//!
//! # Cancellation
//!
//! Dropping a call (its future, its [`ResponseStream`], its [`RequestSink`])
//! resets and stops its stream: the server cancels the handler. A timeout
//! set with [`CallBuilder::timeout`] is sent to the server and also enforced
//! locally, failing with [`ClientError::TimedOut`].

use std::borrow::Cow;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::codec::{MessageReader, DEFAULT_MAX_MESSAGE_SIZE};
use crate::error::ClientError;
use crate::message;
use crate::transport::{
    self, BoxRecvStream, BoxSendStream, Connection, DynConnection, StreamError,
};

/// Client defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Timeout of every call unless the call sets its own. Default: none (the
    /// server's own default applies).
    pub timeout: Option<Duration>,
    /// Longest message accepted from the server. Default 1 MiB.
    pub max_message_size: usize,
    /// Metadata sent with every call (e.g. `authorization`).
    pub metadata: Map<String, Value>,
    /// Reconnecting, for a client made by [`Client::connect_with`]: the
    /// backoff, the attempt limit and how often one call is sent again.
    /// Default: `None` (that constructor then uses
    /// [`ReconnectConfig::default`]; other constructors ignore it).
    pub reconnect: Option<ReconnectConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            metadata: Map::new(),
            reconnect: None,
        }
    }
}

impl ClientConfig {
    /// Sets the default timeout (see [`CallBuilder::timeout`] for one too
    /// long for the clock).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends `Bearer <token>` with every call.
    pub fn bearer(mut self, token: &str) -> Self {
        self.metadata
            .insert("authorization".into(), format!("Bearer {token}").into());
        self
    }

    /// Sets the message size limit.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets how [`Client::connect_with`] reconnects.
    pub fn reconnect(mut self, reconnect: ReconnectConfig) -> Self {
        self.reconnect = Some(reconnect);
        self
    }
}

/// Makes calls over one connection. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    conn: DynConnection,
    config: Arc<ClientConfig>,
    /// The same connection as `conn` when it reconnects.
    reconnecting: Option<Arc<ReconnectingConnection>>,
}

impl Client {
    /// A client over `conn` with default settings.
    pub fn new(conn: impl Connection) -> Self {
        Self::from_shared(Arc::new(conn), ClientConfig::default())
    }

    /// A client over a shared connection.
    pub fn from_shared(conn: DynConnection, config: ClientConfig) -> Self {
        Client {
            conn,
            config: Arc::new(config),
            reconnecting: None,
        }
    }

    /// A client that reconnects: it makes its connections with `connector`
    /// (the first one now; this fails if that fails) and a new one whenever
    /// the current one is lost or its server goes away, as
    /// `config.reconnect` says (gRPC's connection backoff by default). See
    /// the [`reconnect`] module for what happens to calls meanwhile.
    pub async fn connect_with(connector: Connector, config: ClientConfig) -> io::Result<Self> {
        let reconnect = config.reconnect.clone().unwrap_or_default();
        let conn = Arc::new(ReconnectingConnection::connect(connector, reconnect).await?);
        Ok(Client {
            conn: conn.clone(),
            config: Arc::new(config),
            reconnecting: Some(conn),
        })
    }

    /// The state of a reconnecting client as it changes (connecting, ready,
    /// reconnecting, closed); `None` for a client on one fixed connection.
    pub fn state(&self) -> Option<watch::Receiver<ClientState>> {
        self.reconnecting.as_ref().map(|r| r.state())
    }

    /// A copy of this client with other settings, on the same connection.
    pub fn with_config(&self, config: ClientConfig) -> Self {
        Client {
            conn: self.conn.clone(),
            config: Arc::new(config),
            reconnecting: self.reconnecting.clone(),
        }
    }

    /// The connection. For a reconnecting client, the connection that
    /// follows the current one ([`reconnect::ReconnectingConnection`]).
    pub fn connection(&self) -> &DynConnection {
        &self.conn
    }

    /// Starts a call with per-call options.
    pub fn call<'a>(&'a self, method: &'a str) -> CallBuilder<'a> {
        CallBuilder {
            client: self,
            method,
            timeout: self.config.timeout,
            metadata: None,
            idempotent: false,
        }
    }

    /// A unary call.
    pub async fn unary<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        self.call(method).unary(params).await
    }

    /// A server-streaming call.
    pub async fn server_streaming<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<ResponseStream<R>, ClientError> {
        self.call(method).server_streaming(params).await
    }

    /// A client-streaming call.
    pub async fn client_streaming<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
    ) -> Result<ClientStreamingCall<P, R>, ClientError> {
        self.call(method).client_streaming().await
    }

    /// A duplex call.
    pub async fn duplex<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
    ) -> Result<(RequestSink<P>, ResponseStream<R>), ClientError> {
        self.call(method).duplex().await
    }

    /// A raw call.
    pub async fn raw<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<RawCall<R>, ClientError> {
        self.call(method).raw(params).await
    }

    /// A raw call whose bytes may be written before its leading response
    /// arrives (see [`CallBuilder::raw_pipelined`]).
    pub async fn raw_pipelined<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<PipelinedRawCall<R>, ClientError> {
        self.call(method).raw_pipelined(params).await
    }
}

/// One call's options: timeout and metadata. Finish with a call-kind method.
pub struct CallBuilder<'a> {
    client: &'a Client,
    method: &'a str,
    timeout: Option<Duration>,
    /// This call's own metadata, on top of the client's.
    metadata: Option<Map<String, Value>>,
    idempotent: bool,
}

impl<'a> CallBuilder<'a> {
    /// Sets this call's timeout (sent as `metadata.timeout`, enforced here too).
    ///
    /// A timeout so long that the clock cannot represent its end
    /// (`Instant + timeout` overflows, e.g. [`Duration::MAX`]) is no local
    /// deadline at all; it is still sent, and a strand server caps what it
    /// reads at 10^12 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds application metadata.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata
            .get_or_insert_with(Map::new)
            .insert(key.into(), value.into());
        self
    }

    /// Sends `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.metadata("authorization", format!("Bearer {token}"))
    }

    /// Marks this call idempotent: running it twice does no more than
    /// running it once. A reconnecting client then sends a unary call again
    /// on the new connection when the connection was lost after the call
    /// was sent ([`ClientError::ConnectionLost`] with `sent: true`); other
    /// calls are sent again only when the server certainly did not run them
    /// ([`ClientError::not_started`]). `#[rpc(idempotent)]` sets this on a
    /// service method.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    fn start(self) -> Start<'a> {
        Start {
            client: Cow::Borrowed(self.client),
            method: Cow::Borrowed(self.method),
            metadata: self.metadata,
            timeout: self.timeout,
            idempotent: self.idempotent,
            // Past the clock's range there is no deadline to keep.
            deadline: self
                .timeout
                .and_then(|t| Some((Instant::now().checked_add(t)?, t))),
        }
    }

    /// A unary call: one request, one response.
    pub async fn unary<P: Serialize + ?Sized, R: DeserializeOwned>(
        self,
        params: &P,
    ) -> Result<R, ClientError> {
        Ok(self.unary_with_metadata(params).await?.0)
    }

    /// A unary call that also returns `result.metadata` (e.g. a refreshed token).
    pub async fn unary_with_metadata<P: Serialize + ?Sized, R: DeserializeOwned>(
        self,
        params: &P,
    ) -> Result<(R, Option<Map<String, Value>>), ClientError> {
        let start = self.start();
        let deadline = start.deadline;
        match &start.client.reconnecting {
            None => with_deadline(deadline, start.unary_once(params)).await,
            Some(reconnecting) => {
                // Boxed: the retry loop's state would otherwise make every
                // unary call's future larger, reconnecting or not.
                let call = Box::pin(start.unary_retrying(params, reconnecting));
                with_deadline(deadline, call).await
            }
        }
    }

    /// A server-streaming call: one request, a stream of responses.
    pub async fn server_streaming<P: Serialize + ?Sized, R: DeserializeOwned>(
        self,
        params: &P,
    ) -> Result<ResponseStream<R>, ClientError> {
        let start = self.start();
        let deadline = start.deadline;
        let opened = async {
            let (mut send, reader) = start.open().await?;
            let header = start.header(params)?;
            // A refused request is answered on the response stream.
            let (refused, finished) = write_last_request(&mut send, &header).await?;
            if refused.is_none() && !finished {
                finish(&mut send).await?;
            }
            Ok::<_, ClientError>(reader)
        };
        let reader = with_deadline(deadline, opened).await?;
        Ok(ResponseStream::new(reader, deadline))
    }

    /// A client-streaming call: send messages, then [`ClientStreamingCall::finish`]
    /// for the one response.
    pub async fn client_streaming<P: Serialize, R: DeserializeOwned>(
        self,
    ) -> Result<ClientStreamingCall<P, R>, ClientError> {
        let (sink, responses) = self.duplex().await?;
        Ok(ClientStreamingCall { sink, responses })
    }

    /// A duplex call: a sink for requests and a stream of responses.
    pub async fn duplex<P: Serialize, R: DeserializeOwned>(
        self,
    ) -> Result<(RequestSink<P>, ResponseStream<R>), ClientError> {
        let start = self.start();
        let deadline = start.deadline;
        let (send, reader) = with_deadline(deadline, start.open()).await?;
        let start = start.into_owned();
        let method = start.method.to_string();
        let sink = RequestSink {
            send,
            method,
            start: Some(start),
            deadline,
            _marker: PhantomData,
        };
        Ok((sink, ResponseStream::new(reader, deadline)))
    }

    /// A raw call: a JSON header, a leading JSON response, then raw bytes both
    /// ways. The timeout covers the leading response only.
    ///
    /// Gives the writer once the leading response is here, as the
    /// TypeScript stack's raw caller does: the caller's first bytes leave a
    /// round trip after the header. [`CallBuilder::raw_pipelined`] lets them
    /// follow the header at once.
    pub async fn raw<P: Serialize + ?Sized, R: DeserializeOwned>(
        self,
        params: &P,
    ) -> Result<RawCall<R>, ClientError> {
        // Both steps keep the call's deadline.
        let PipelinedRawCall { writer, response } = self.raw_pipelined(params).await?;
        let RawResponse {
            leading,
            metadata,
            reader,
        } = response.leading().await?;
        Ok(RawCall {
            leading,
            metadata,
            writer,
            reader,
        })
    }

    /// A raw call whose bytes may be written before its leading response
    /// arrives: gives the writer once the header is written, and the leading
    /// response to wait for ([`PendingRawResponse::leading`]). A call that
    /// writes first and reads after starts a round trip sooner than with
    /// [`CallBuilder::raw`]; the wire is the same, and the server, strand or
    /// the TypeScript stack, sees the same bytes.
    ///
    /// The timeout covers writing the header and the leading response, not
    /// the bytes in between. A server that refuses the call (an unknown
    /// method, a failed authentication) answers with an error as its leading
    /// response and stops reading: a write may then fail with the stream
    /// stopped, and the leading response says why.
    pub async fn raw_pipelined<P: Serialize + ?Sized, R: DeserializeOwned>(
        self,
        params: &P,
    ) -> Result<PipelinedRawCall<R>, ClientError> {
        let start = self.start();
        let deadline = start.deadline;
        let call = async move {
            let (mut send, reader) = start.open().await?;
            let header =
                message::encode_raw_header_with_metadata(&start.method, params, &start.metadata())?;
            let refused = write_request(&mut send, &header).await?;
            if refused.is_none() {
                // Bytes written before the boundary could be lost by a JS
                // server still parsing the header.
                transport::write_boundary(&mut send).await?;
            }
            Ok(PipelinedRawCall {
                writer: send,
                response: PendingRawResponse::new(reader, refused, deadline),
            })
        };
        with_deadline(deadline, call).await
    }
}

/// What a call needs once its options are fixed.
struct Start<'a> {
    /// The connection and the client's settings (its metadata goes with
    /// every call). Borrowed, like the method, but for a streaming call's
    /// sink: cloning them is an atomic update on a counter every caller
    /// shares.
    client: Cow<'a, Client>,
    method: Cow<'a, str>,
    /// This call's own metadata.
    metadata: Option<Map<String, Value>>,
    timeout: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
    idempotent: bool,
}

impl Start<'_> {
    /// One attempt of a unary call. A lost connection fails it with
    /// [`ClientError::ConnectionLost`], saying whether it was sent.
    async fn unary_once<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        params: &P,
    ) -> Result<(R, Option<Map<String, Value>>), ClientError> {
        let call = async {
            let (mut send, reader) = self.open().await?;
            let header = self.header(params)?;
            let (refused, finished) = write_last_request(&mut send, &header).await?;
            let mut responses = ResponseStream::<R>::new(reader, None);
            let first = match refused {
                None if !finished => tokio::join!(finish(&mut send), responses.next()).1,
                _ => responses.next().await,
            };
            let value = first.unwrap_or_else(|| Err(refused.unwrap_or_else(no_response)))?;
            Ok((value, responses.metadata))
        };
        // A failed open is already `ConnectionLost { sent: false }` (see
        // `open`), which this leaves as it is; past it the call was sent.
        call.await.map_err(|e: ClientError| e.lost_if_closed(true))
    }

    /// A unary call of a reconnecting client: sent again on the next
    /// connection when the server did not run it, or, for an idempotent
    /// call, when the connection was lost after it was sent; at most
    /// `max_call_retries` times.
    async fn unary_retrying<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        params: &P,
        reconnecting: &ReconnectingConnection,
    ) -> Result<(R, Option<Map<String, Value>>), ClientError> {
        let max_retries = self
            .client
            .config
            .reconnect
            .as_ref()
            .map_or(ReconnectConfig::default().max_call_retries, |r| {
                r.max_call_retries
            });
        let mut retries = 0;
        loop {
            let used = reconnecting.current();
            let err = match self.unary_once(params).await {
                Ok(answer) => return Ok(answer),
                Err(err) => err,
            };
            let not_started = err.not_started();
            let retry = not_started
                || (self.idempotent && matches!(err, ClientError::ConnectionLost { .. }));
            if !retry || retries >= max_retries {
                return Err(err);
            }
            if not_started {
                // The server refused it (stopping): move on from it.
                if let Some(conn) = &used {
                    reconnecting.retire(conn);
                }
            }
            retries += 1;
            tracing::debug!(method = %self.method, retries, error = %err, "sending the call again");
        }
    }

    /// This start with its method owned, for a sink that outlives the
    /// caller's borrow.
    fn into_owned(self) -> Start<'static> {
        Start {
            client: Cow::Owned(self.client.into_owned()),
            method: Cow::Owned(self.method.into_owned()),
            metadata: self.metadata,
            timeout: self.timeout,
            deadline: self.deadline,
            idempotent: self.idempotent,
        }
    }

    /// The metadata the first message carries, merged as it is written (no
    /// map is built per call).
    fn metadata(&self) -> CallMetadata<'_> {
        CallMetadata {
            client: &self.client.config.metadata,
            call: self.metadata.as_ref(),
            timeout: self.timeout,
        }
    }

    async fn open(&self) -> Result<(BoxSendStream, MessageReader<BoxRecvStream>), ClientError> {
        let conn = &self.client.conn;
        let stream = match conn.try_open_stream() {
            Some(opened) => opened,
            None => conn.open_stream().await,
        }
        // Nothing of the call was sent: a lost connection says so.
        .map_err(|e| ClientError::Transport(e.into()).lost_if_closed(false))?;
        let (send, recv) = stream.split();
        let max = self.client.config.max_message_size;
        Ok((send, MessageReader::new(recv, max)))
    }

    /// The first message: params with the call's metadata merged in.
    fn header<P: Serialize + ?Sized>(&self, params: &P) -> Result<bytes::BytesMut, ClientError> {
        Ok(message::request_with_metadata(
            &self.method,
            params,
            &self.metadata(),
        )?)
    }
}

/// `params.metadata` of a call's first message: the client's metadata, the
/// call's own over it, and `timeout` (milliseconds, or `null` for none).
/// A `timeout` entry set as metadata is kept when the call has no timeout
/// of its own.
struct CallMetadata<'a> {
    client: &'a Map<String, Value>,
    call: Option<&'a Map<String, Value>>,
    timeout: Option<Duration>,
}

impl Serialize for CallMetadata<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let call = self.call.filter(|m| !m.is_empty());
        let has =
            |key: &str| self.client.contains_key(key) || call.is_some_and(|m| m.contains_key(key));
        let write_timeout = self.timeout.is_some() || !has("timeout");
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.client {
            let replaced =
                call.is_some_and(|m| m.contains_key(key)) || (write_timeout && key == "timeout");
            if !replaced {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in call.into_iter().flatten() {
            if !(write_timeout && key == "timeout") {
                map.serialize_entry(key, value)?;
            }
        }
        if write_timeout {
            let millis = self
                .timeout
                .map(|t| t.as_millis().min(u64::MAX as u128) as u64);
            map.serialize_entry("timeout", &millis)?;
        }
        map.end()
    }
}

/// Writes a call's first message. A stop from the server is returned as
/// `Some(error)`, not failed on: a server may answer without reading the
/// request (one that is shutting down answers every new call with −32001),
/// and its stop can overtake our write; the response then says why, and the
/// stop is the error only if no response comes.
async fn write_request(
    send: &mut BoxSendStream,
    bytes: &[u8],
) -> Result<Option<ClientError>, ClientError> {
    match send.write_all(bytes).await {
        Ok(()) => Ok(None),
        Err(e) => request_write_failed(e),
    }
}

/// A failed write of a call's first message: the server's stop is returned,
/// anything else is the error (see [`write_request`]).
fn request_write_failed(e: io::Error) -> Result<Option<ClientError>, ClientError> {
    if matches!(StreamError::from_io(&e), Some(StreamError::Stopped(_))) {
        Ok(Some(ClientError::Transport(e)))
    } else {
        Err(ClientError::Transport(e))
    }
}

/// [`write_request`] for a request that is all the call sends: the finish
/// goes with it where the carrier can (see `SendStream::poll_write_last`);
/// also gives whether it did.
async fn write_last_request(
    send: &mut BoxSendStream,
    bytes: &[u8],
) -> Result<(Option<ClientError>, bool), ClientError> {
    let mut rest = bytes;
    let mut finished = false;
    while !rest.is_empty() {
        match std::future::poll_fn(|cx| send.poll_write_last(cx, rest)).await {
            Ok((0, _)) => return Err(ClientError::Transport(io::ErrorKind::WriteZero.into())),
            Ok((n, fin)) => {
                rest = &rest[n..];
                finished = fin;
            }
            Err(e) => return request_write_failed(e).map(|refused| (refused, false)),
        }
    }
    Ok((None, finished))
}

/// Ends our sending side. A stop from the server after we wrote everything is
/// benign (a JS server stops reading a unary call once it has the request).
async fn finish(send: &mut BoxSendStream) -> Result<(), ClientError> {
    match send.shutdown().await {
        Ok(()) => Ok(()),
        Err(e) if matches!(StreamError::from_io(&e), Some(StreamError::Stopped(_))) => Ok(()),
        Err(e) => Err(ClientError::Transport(e)),
    }
}

fn no_response() -> ClientError {
    ClientError::Protocol("the stream ended without a response".into())
}

/// Runs `fut` until the call's deadline, if it has one.
async fn with_deadline<T>(
    deadline: Option<(Instant, Duration)>,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let at = deadline.map(|(at, _)| at);
    crate::deadline::until(at, fut, || {
        ClientError::TimedOut(deadline.map_or(Duration::ZERO, |(_, timeout)| timeout))
    })
    .await
}

mod handles;
pub mod reconnect;

pub use handles::{
    ClientStreamingCall, PendingRawResponse, PipelinedRawCall, RawCall, RawResponse, RequestSink,
    ResponseStream,
};
pub use reconnect::{ClientState, Connector, ReconnectConfig, ReconnectingConnection};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(client: Value, call: Option<Value>, timeout: Option<u64>) -> Value {
        let as_map = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let client = as_map(client);
        let call = call.map(as_map);
        let md = CallMetadata {
            client: &client,
            call: call.as_ref(),
            timeout: timeout.map(Duration::from_millis),
        };
        serde_json::to_value(&md).unwrap()
    }

    #[test]
    fn call_metadata_merges_the_client_the_call_and_the_timeout() {
        assert_eq!(merged(json!({}), None, None), json!({"timeout": null}));
        assert_eq!(
            merged(json!({"authorization": "Bearer a"}), None, Some(1500)),
            json!({"authorization": "Bearer a", "timeout": 1500})
        );
        assert_eq!(
            merged(
                json!({"authorization": "Bearer a", "x": 1}),
                Some(json!({"authorization": "Bearer b"})),
                None
            ),
            json!({"authorization": "Bearer b", "x": 1, "timeout": null}),
            "the call's own entry wins"
        );
        // A `timeout` set as metadata stays unless the call has a timeout.
        assert_eq!(
            merged(json!({"timeout": 7}), None, None),
            json!({"timeout": 7})
        );
        assert_eq!(
            merged(json!({}), Some(json!({"timeout": 8})), None),
            json!({"timeout": 8})
        );
        assert_eq!(
            merged(json!({"timeout": 7}), Some(json!({"timeout": 8})), Some(9)),
            json!({"timeout": 9})
        );
    }

    #[test]
    fn call_metadata_writes_each_key_once() {
        let client = Map::from_iter([("timeout".to_string(), json!(1))]);
        let call = Map::from_iter([("timeout".to_string(), json!(2))]);
        let md = CallMetadata {
            client: &client,
            call: Some(&call),
            timeout: None,
        };
        assert_eq!(serde_json::to_string(&md).unwrap(), r#"{"timeout":2}"#);
    }
}
