//! Middleware: tower `Layer`s around call handling.
//!
//! - [`AuthLayer`]: in-payload authentication. A [`Verifier`] checks
//!   `params.metadata.authorization` (`Bearer …` / `Basic …`) of the first
//!   message, puts the caller's [`Identity`] into the [`Context`] or refuses
//!   the call (−32020), and may hand back a fresh token, which travels with
//!   the call's first response whatever it is: in `result.metadata.authorization`
//!   of an object result, else in the response's own `metadata` member (an
//!   error, a number, ...; docs/protocol.md, "Metadata"). The client finds it
//!   in every outcome ([`crate::ClientError::reply_metadata`] for an error),
//!   so one-time tokens keep working after a failed call.
//! - [`TimeoutLayer`]: bounds every call it wraps (it can only shorten the
//!   deadline the server and the caller set).
//! - [`ConcurrencyLimitLayer`] (tower's): at most N calls start their handler at
//!   once; further calls wait, which pushes back on the accept loop.
//!
//! ```
//! use strand_rpc_core::middleware::{AuthLayer, BearerTokens, TimeoutLayer, ConcurrencyLimitLayer};
//! use strand_rpc_core::server::{Router, Server};
//! use std::time::Duration;
//!
//! let server = Server::builder(Router::new())
//!     .layer(AuthLayer::new(BearerTokens::new().token("let-me-in", "alice")))
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .layer(ConcurrencyLimitLayer::new(256))
//!     .build();
//! ```

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::context::{Context, Identity};
use crate::error::RpcError;
use crate::server::{CallRequest, CallResponse};

pub use tower::limit::ConcurrencyLimitLayer;

/// Credentials found in `metadata.authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `authorization` metadata.
    None,
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic <base64(user:password)>`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// An `authorization` value of another or malformed scheme.
    Other(String),
}

impl Credentials {
    /// Parses an `authorization` value.
    pub fn parse(value: Option<&str>) -> Credentials {
        let Some(value) = value else {
            return Credentials::None;
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Credentials::Bearer(rest.to_string());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            if let Some((user, password)) = decode_base64(rest)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                return Credentials::Basic { user, password };
            }
        }
        Credentials::Other(value.to_string())
    }
}

/// A successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who the caller is; handlers read it from [`Context::identity`].
    pub identity: Identity,
    /// A fresh token to hand back in `result.metadata.authorization`
    /// (as `Bearer <token>`).
    pub refreshed_token: Option<String>,
}

impl Verified {
    /// A verification without a token refresh.
    pub fn new(identity: Identity) -> Self {
        Verified {
            identity,
            refreshed_token: None,
        }
    }

    /// Hands `token` back to the caller.
    pub fn with_refreshed_token(mut self, token: impl Into<String>) -> Self {
        self.refreshed_token = Some(token.into());
        self
    }
}

/// Checks a call's credentials.
#[async_trait]
pub trait Verifier: Send + Sync + 'static {
    /// Accepts the call with an identity, or refuses it with the error the
    /// caller gets (usually [`RpcError::unauthorized`]). `ctx` gives the method,
    /// the peer (TLS certificates, upgrade request) and the metadata.
    async fn verify(&self, credentials: Credentials, ctx: &Context) -> Result<Verified, RpcError>;
}

/// A [`Verifier`] from a fixed set of bearer tokens, each naming an identity.
///
/// A presented token is compared with every known token in constant time
/// ([`constant_time_eq`]), so how long a check takes does not tell an attacker
/// how much of a guess was right, nor which token it was close to. What it
/// can tell is the number of tokens and whether a guess has the length of
/// one of them: tokens should be long and random, not secret in their length.
#[derive(Debug, Clone, Default)]
pub struct BearerTokens {
    /// (token, identity); no two tokens equal.
    tokens: Vec<(String, String)>,
}

impl BearerTokens {
    /// An empty set (every call is refused).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `token` as `identity`.
    /// A token given twice names the identity given last.
    pub fn token(mut self, token: impl Into<String>, identity: impl Into<String>) -> Self {
        let token = token.into();
        self.tokens.retain(|(known, _)| *known != token);
        self.tokens.push((token, identity.into()));
        self
    }

    /// The identity of `token`: every known token is compared, each in
    /// constant time, whichever matches.
    fn find(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (known, identity) in &self.tokens {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(identity.as_str());
            }
        }
        found
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths
/// only, not on where they differ: for comparing secrets (tokens,
/// passwords) in a [`Verifier`]. Inputs of different lengths return at once,
/// so the length of a secret is not hidden; give secrets a fixed length (e.g.
/// random tokens) if it matters.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the compiler from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[async_trait]
impl Verifier for BearerTokens {
    async fn verify(&self, credentials: Credentials, _ctx: &Context) -> Result<Verified, RpcError> {
        match credentials {
            Credentials::Bearer(token) => match self.find(&token) {
                Some(name) => Ok(Verified::new(
                    Identity::new(name).with_attribute("auth", "bearer"),
                )),
                None => Err(RpcError::unauthorized("invalid bearer token")),
            },
            Credentials::None => Err(RpcError::unauthorized("missing authorization")),
            _ => Err(RpcError::unauthorized("expected a bearer token")),
        }
    }
}

/// In-payload authentication for every call it wraps.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<dyn Verifier>,
}

impl AuthLayer {
    /// Authenticates calls with `verifier`.
    pub fn new(verifier: impl Verifier) -> Self {
        AuthLayer {
            verifier: Arc::new(verifier),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<dyn Verifier>,
}

impl<S> AuthService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<CallRequest> for AuthService<S>
where
    S: Service<CallRequest, Response = CallResponse, Error = RpcError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = CallResponse;
    type Error = RpcError;
    type Future = BoxFuture<'static, Result<CallResponse, RpcError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), RpcError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: CallRequest) -> Self::Future {
        // Use the instance that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let credentials = Credentials::parse(req.ctx.authorization());
            let verified = verifier.verify(credentials, &req.ctx).await?;
            if let Some(token) = verified.refreshed_token {
                req.ctx
                    .set_reply_metadata("authorization", format!("Bearer {token}"));
            }
            req.ctx.set_identity(verified.identity);
            inner.call(req).await
        })
    }
}

/// Bounds every call it wraps to `timeout` (from when the call reaches it).
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Calls must finish within `timeout`. One too long for the clock to
    /// represent its end (e.g. [`Duration::MAX`]) bounds nothing.
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> TimeoutService<S> {
        TimeoutService {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service [`TimeoutLayer`] produces. It shortens the context's deadline;
/// the router's adapters enforce it (for streams, until the last item).
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
}

impl<S> TimeoutService<S> {
    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<CallRequest> for TimeoutService<S>
where
    S: Service<CallRequest, Response = CallResponse, Error = RpcError>,
{
    type Response = CallResponse;
    type Error = RpcError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), RpcError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: CallRequest) -> S::Future {
        // A timeout past the clock's range shortens nothing.
        if let Some(deadline) = Instant::now().checked_add(self.timeout) {
            req.ctx.shorten_deadline(deadline);
        }
        self.inner.call(req)
    }
}

/// Standard base64 (with or without padding); `None` if malformed.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let input = input.trim_end_matches('=').as_bytes();
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials() {
        assert_eq!(Credentials::parse(None), Credentials::None);
        assert_eq!(
            Credentials::parse(Some("Bearer abc")),
            Credentials::Bearer("abc".into())
        );
        // "alice:s3cret:x" — passwords may contain colons.
        assert_eq!(
            Credentials::parse(Some("Basic YWxpY2U6czNjcmV0Ong=")),
            Credentials::Basic {
                user: "alice".into(),
                password: "s3cret:x".into()
            }
        );
        assert_eq!(
            Credentials::parse(Some("Basic !!!")),
            Credentials::Other("Basic !!!".into())
        );
        assert_eq!(
            Credentials::parse(Some("Digest x")),
            Credentials::Other("Digest x".into())
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"let-me-in", b"let-me-in"));
        assert!(!constant_time_eq(b"let-me-in", b"let-me-im"));
        assert!(!constant_time_eq(b"let-me-in", b"Let-me-in"));
        assert!(!constant_time_eq(b"let-me-in", b"let-me-i"));
        assert!(!constant_time_eq(b"let-me-i", b"let-me-in"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(&[0x80], &[0x00]));
    }

    #[test]
    fn base64_decodes_every_padding() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("Zm9vYg").unwrap(), b"foob");
        assert!(decode_base64("Z").is_none());
    }
}
