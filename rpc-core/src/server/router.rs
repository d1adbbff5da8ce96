//! The [`Router`]: method names to typed handlers, one registration method
//! per call kind. It is the innermost `tower::Service` of a server.
//!
//! Handlers get the call's [`Context`] and typed (serde) params. Each adapter
//! enforces the context's deadline: on expiry the cancellation token fires,
//! the handler's future is dropped and the call ends with −32008.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::{sleep_until, Sleep};

use super::call::{parse_params, CallRequest, CallResponse, Incoming, RawBody, RawReader};
use crate::context::Context;
use crate::error::RpcError;
use crate::message;
use crate::metrics::MethodSeries;

/// The five call kinds (docs/protocol.md, "Call kinds").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// One request, one response.
    Unary,
    /// One request, many responses.
    ServerStreaming,
    /// Many requests, one response.
    ClientStreaming,
    /// Many requests, many responses, interleaved.
    Duplex,
    /// A JSON header and leading response, then raw bytes both ways.
    Raw,
}

type ErasedHandler =
    Arc<dyn Fn(CallRequest) -> BoxFuture<'static, Result<CallResponse, RpcError>> + Send + Sync>;

#[derive(Clone)]
struct Method {
    kind: CallKind,
    timeout: Option<Duration>,
    handler: ErasedHandler,
    /// Its metrics series, looked up once (`crate::metrics`).
    series: Arc<MethodSeries>,
}

/// Method name → handler. Cheap to clone (shared).
///
/// ```
/// use strand_rpc_core::server::Router;
/// use strand_rpc_core::RpcError;
/// use serde_json::Value;
///
/// let router = Router::new()
///     .unary("echo", |_ctx, params: Value| async move { Ok::<_, RpcError>(params) });
/// ```
#[derive(Clone, Default)]
pub struct Router {
    methods: Arc<HashMap<Arc<str>, Method>>,
    /// The metrics series of calls to methods it does not have.
    unknown: Arc<MethodSeries>,
    /// The OpenRPC documents `rpc.discover` answers with, merged (empty:
    /// discovery off).
    documents: Arc<Vec<serde_json::Value>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self
            .methods
            .iter()
            .map(|(n, m)| (n.as_ref(), m.kind))
            .collect();
        names.sort();
        f.debug_struct("Router").field("methods", &names).finish()
    }
}

impl PartialOrd for CallKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CallKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// A document shared by every `rpc.discover` answer (serialized, not cloned).
struct SharedDocument(Arc<serde_json::Value>);

impl Serialize for SharedDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, name: &str, kind: CallKind, handler: ErasedHandler) -> Self {
        let methods = Arc::make_mut(&mut self.methods);
        let timeout = methods.get(name).and_then(|m| m.timeout);
        methods.insert(
            name.into(),
            Method {
                kind,
                timeout,
                handler,
                series: Arc::default(),
            },
        );
        self
    }

    /// Sets `name`'s timeout, overriding the server default. The caller's
    /// `metadata.timeout` can still shorten it. Call after registering `name`.
    pub fn timeout(mut self, name: &str, timeout: Duration) -> Self {
        if let Some(m) = Arc::make_mut(&mut self.methods).get_mut(name) {
            m.timeout = Some(timeout);
        }
        self
    }

    /// Adds every method of `other` (replacing same-named ones). When
    /// either router answers `rpc.discover`, the merged one answers with
    /// both routers' documents merged.
    pub fn merge(mut self, other: Router) -> Self {
        let methods = Arc::make_mut(&mut self.methods);
        for (name, m) in other.methods.iter() {
            methods.insert(name.clone(), m.clone());
        }
        if other.documents.is_empty() {
            return self;
        }
        let mut documents = (*self.documents).clone();
        documents.extend(other.documents.iter().cloned());
        self.serve_documents(documents)
    }

    /// Answers `rpc.discover` (a unary method, no params) with `document`, an
    /// OpenRPC document such as `{Trait}Client::openrpc()` of a
    /// `#[strand::service]` (feature `openrpc`). Called again, or on merged
    /// routers, it answers with all the documents merged into one
    /// ([`crate::openrpc::merge_documents`]).
    ///
    /// Off unless called. **It reveals the API** (every method, its params
    /// and result schemas, its doc comments) to whoever may call the
    /// server: behind an auth layer, `rpc.discover` is authenticated like
    /// any other method; on a public endpoint, anyone can read it
    /// (docs/openrpc.md, "Security").
    pub fn discover(self, document: serde_json::Value) -> Self {
        let mut documents = (*self.documents).clone();
        documents.push(document);
        self.serve_documents(documents)
    }

    /// The documents `rpc.discover` answers with (empty when discovery is off).
    pub fn documents(&self) -> &[serde_json::Value] {
        &self.documents
    }

    fn serve_documents(mut self, documents: Vec<serde_json::Value>) -> Self {
        let merged = Arc::new(crate::openrpc::merge_documents(&documents));
        self.documents = Arc::new(documents);
        self.unary(
            crate::openrpc::DISCOVER_METHOD,
            move |_ctx, _params: serde::de::IgnoredAny| {
                let merged = Arc::clone(&merged);
                async move { Ok::<_, RpcError>(SharedDocument(merged)) }
            },
        )
    }

    /// The registered methods and their kinds, sorted by name.
    pub fn methods(&self) -> Vec<(String, CallKind)> {
        let mut v: Vec<_> = self
            .methods
            .iter()
            .map(|(n, m)| (n.to_string(), m.kind))
            .collect();
        v.sort();
        v
    }

    /// The router's own (shared) name for `name`, its kind and its metrics
    /// series, if it has the method: labels that cost no copy.
    pub(crate) fn method_entry(&self, name: &str) -> Option<(&Arc<str>, CallKind, &MethodSeries)> {
        let (name, method) = self.methods.get_key_value(name)?;
        Some((name, method.kind, &method.series))
    }

    /// The metrics series of calls to methods the router does not have.
    pub(crate) fn unknown_series(&self) -> &MethodSeries {
        &self.unknown
    }

    /// `name`'s own timeout, if set.
    pub fn method_timeout(&self, name: &str) -> Option<Duration> {
        self.methods.get(name)?.timeout
    }

    /// A unary method: `f(ctx, params)` resolves to the result.
    pub fn unary<P, R, F, Fut>(self, name: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let handler: ErasedHandler = Arc::new(move |req: CallRequest| {
            let CallRequest { ctx, params, input } = req;
            let params = parse_params::<P>(params.as_deref());
            let fut = params.map(|p| f(ctx.clone(), p));
            Box::pin(async move {
                // The handler first: one that answers at once never reads
                // the input (its end is read when the call drops it).
                let result = tokio::select! {
                    biased;
                    r = with_deadline(&ctx, fut?) => r?,
                    e = input.fail_on_error() => {
                        ctx.cancellation().cancel();
                        return Err(e);
                    }
                };
                encode_result(&ctx, &result).map(CallResponse::Unary)
            })
        });
        self.add(name, CallKind::Unary, handler)
    }

    /// A server-streaming method: `f(ctx, params)` returns a stream of results.
    pub fn server_streaming<P, R, F, S>(self, name: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, P) -> S + Send + Sync + 'static,
        S: Stream<Item = Result<R, RpcError>> + Send + 'static,
    {
        let handler: ErasedHandler = Arc::new(move |req: CallRequest| {
            let CallRequest { ctx, params, input } = req;
            let stream = parse_params::<P>(params.as_deref()).map(|p| f(ctx.clone(), p));
            Box::pin(async move {
                let stream = stream?;
                let watch = Box::pin(input.fail_on_error());
                Ok(CallResponse::Stream(
                    EncodedResults::new(ctx, stream, Some(watch)).boxed(),
                ))
            })
        });
        self.add(name, CallKind::ServerStreaming, handler)
    }

    /// A client-streaming method: `f(ctx, messages)` reads every message (the
    /// first one included) and resolves to one result.
    pub fn client_streaming<P, R, F, Fut>(self, name: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, Incoming<P>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let handler: ErasedHandler = Arc::new(move |req: CallRequest| {
            let CallRequest { ctx, params, input } = req;
            let first = parse_params::<P>(params.as_deref());
            let fut = f(ctx.clone(), input.into_messages(Some(first)));
            Box::pin(async move {
                let result = with_deadline(&ctx, fut).await?;
                encode_result(&ctx, &result).map(CallResponse::Unary)
            })
        });
        self.add(name, CallKind::ClientStreaming, handler)
    }

    /// A duplex method: `f(ctx, messages)` returns a stream of results while it
    /// reads messages (the first one included).
    pub fn duplex<P, R, F, S>(self, name: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, Incoming<P>) -> S + Send + Sync + 'static,
        S: Stream<Item = Result<R, RpcError>> + Send + 'static,
    {
        let handler: ErasedHandler = Arc::new(move |req: CallRequest| {
            let CallRequest { ctx, params, input } = req;
            let first = parse_params::<P>(params.as_deref());
            let stream = f(ctx.clone(), input.into_messages(Some(first)));
            Box::pin(async move {
                Ok(CallResponse::Stream(
                    EncodedResults::new(ctx, stream, None).boxed(),
                ))
            })
        });
        self.add(name, CallKind::Duplex, handler)
    }

    /// A raw method: `f(ctx, params, bytes_in)` resolves to the leading result
    /// and the bytes to send back.
    pub fn raw<P, R, F, Fut>(self, name: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, P, RawReader) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(R, RawBody), RpcError>> + Send + 'static,
    {
        let handler: ErasedHandler = Arc::new(move |req: CallRequest| {
            let CallRequest { ctx, params, input } = req;
            let fut =
                parse_params::<P>(params.as_deref()).map(|p| f(ctx.clone(), p, input.into_raw()));
            Box::pin(async move {
                let (leading, body) = with_deadline(&ctx, fut?).await?;
                let leading = encode_result(&ctx, &leading)?;
                let body = RawBody::from_stream(DeadlineBody::new(&ctx, body));
                Ok(CallResponse::Raw { leading, body })
            })
        });
        self.add(name, CallKind::Raw, handler)
    }
}

impl tower::Service<CallRequest> for Router {
    type Response = CallResponse;
    type Error = RpcError;
    type Future = BoxFuture<'static, Result<CallResponse, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: CallRequest) -> Self::Future {
        self.dispatch(req)
    }
}

impl Router {
    /// Runs the handler for the call's method (what the tower `Service`
    /// impl does, without needing `&mut`).
    pub(crate) fn dispatch(
        &self,
        req: CallRequest,
    ) -> BoxFuture<'static, Result<CallResponse, RpcError>> {
        match self.methods.get(req.ctx.method()) {
            Some(m) => (m.handler)(req),
            None => {
                let err = RpcError::method_not_found(req.ctx.method());
                Box::pin(async move { Err(err) })
            }
        }
    }
}

/// Runs `fut` until the context's deadline; on expiry cancels the call.
async fn with_deadline<T>(
    ctx: &Context,
    fut: impl Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    crate::deadline::until(ctx.deadline(), fut, || {
        ctx.cancellation().cancel();
        RpcError::timed_out()
    })
    .await
}

/// Encodes a result message; the first response of a call carries the reply
/// metadata that middleware set (e.g. a refreshed token).
fn encode_result<R: Serialize>(ctx: &Context, result: &R) -> Result<Bytes, RpcError> {
    let encoded = match ctx.take_reply_metadata() {
        Some(md) => message::encode_response_with_metadata(result, Some(&md)),
        None => message::encode_response(result),
    };
    encoded.map_err(|e| RpcError::internal(format!("cannot encode result: {e}")))
}

/// A handler's result stream, encoded, bounded by the deadline, and (for
/// server streaming) watching the caller's side for a reset.
struct EncodedResults<S> {
    ctx: Context,
    inner: Pin<Box<S>>,
    deadline: Option<Pin<Box<Sleep>>>,
    watch: Option<BoxFuture<'static, RpcError>>,
    done: bool,
}

impl<S> EncodedResults<S> {
    fn new(ctx: Context, inner: S, watch: Option<BoxFuture<'static, RpcError>>) -> Self {
        let deadline = ctx.deadline().map(|d| Box::pin(sleep_until(d)));
        EncodedResults {
            ctx,
            inner: Box::pin(inner),
            deadline,
            watch,
            done: false,
        }
    }
}

impl<S, R> Stream for EncodedResults<S>
where
    S: Stream<Item = Result<R, RpcError>>,
    R: Serialize,
{
    type Item = Result<Bytes, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(d) = this.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                this.done = true;
                this.ctx.cancellation().cancel();
                return Poll::Ready(Some(Err(RpcError::timed_out())));
            }
        }
        if let Some(w) = this.watch.as_mut() {
            if let Poll::Ready(err) = w.as_mut().poll(cx) {
                this.done = true;
                this.ctx.cancellation().cancel();
                return Poll::Ready(Some(Err(err)));
            }
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(item))) => Poll::Ready(Some(encode_result(&this.ctx, &item))),
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A raw body that fails once the deadline passes.
struct DeadlineBody {
    ctx: Context,
    inner: RawBody,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    fn new(ctx: &Context, inner: RawBody) -> Self {
        let deadline = ctx.deadline().map(|d| Box::pin(sleep_until(d)));
        DeadlineBody {
            ctx: ctx.clone(),
            inner,
            deadline,
        }
    }
}

impl Stream for DeadlineBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if let Some(d) = self.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                self.deadline = None;
                self.ctx.cancellation().cancel();
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "call timed out",
                ))));
            }
        }
        self.inner.poll_next_unpin(cx)
    }
}
