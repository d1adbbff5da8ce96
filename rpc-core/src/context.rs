//! The per-call [`Context`] a handler receives.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::message;
use crate::transport::PeerInfo;

/// Who the caller is, as established by an authentication layer (a bearer
/// token, a TLS client certificate, something the carrier learnt, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The principal's name (user, service, certificate subject, ...).
    pub name: String,
    /// Anything else the verifier knows: roles, claims, the auth method.
    pub attributes: Map<String, Value>,
}

impl Identity {
    /// An identity with a name and no attributes.
    pub fn new(name: impl Into<String>) -> Self {
        Identity {
            name: name.into(),
            attributes: Map::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// Everything about one call besides its params: method, metadata, identity,
/// deadline, cancellation and the peer. Cheap to clone.
///
/// The cancellation token fires when the call ends for any reason: the caller
/// went away (stream reset or stopped), the deadline passed, the server is
/// shutting down, or the handler returned. Work spawned by a handler can watch
/// it with [`Context::cancelled`].
#[derive(Clone)]
pub struct Context {
    call: Arc<Call>,
    identity: Option<Arc<Identity>>,
    deadline: Option<Instant>,
}

/// What every clone of a call's context shares: one allocation per call.
struct Call {
    /// The method name, then the raw JSON of `params.metadata` if the
    /// caller sent it: one allocation for both.
    text: Box<str>,
    method_len: usize,
    metadata: Metadata,
    reply_metadata: Mutex<Option<Map<String, Value>>>,
    /// The cancellation token, made on first use: most calls never look
    /// at it, and making one allocates.
    cancel: OnceLock<CancellationToken>,
    /// The call ended ([`CallEnd`] dropped): a token made after that
    /// starts cancelled.
    ended: AtomicBool,
    /// Kept here, not in each [`Context`]: a clone of the context then
    /// touches only this call's counter, not the connection's, which every
    /// call of the connection shares (on both workers at once).
    peer: Arc<PeerInfo>,
}

/// `params.metadata`, made a map from the raw JSON the caller sent (kept
/// in [`Call::text`]) only when someone asks for one: most calls only need
/// the timeout, read without a map.
struct Metadata {
    map: OnceLock<Map<String, Value>>,
}

impl Call {
    fn method(&self) -> &str {
        &self.text[..self.method_len]
    }

    /// The raw JSON of `params.metadata`, if the caller sent it.
    fn raw_metadata(&self) -> Option<&str> {
        Some(&self.text[self.method_len..]).filter(|raw| !raw.is_empty())
    }

    fn metadata(&self) -> &Map<String, Value> {
        self.metadata.map.get_or_init(|| {
            self.raw_metadata()
                .and_then(|raw| serde_json::from_str(raw).ok())
                .unwrap_or_default()
        })
    }

    /// `metadata.timeout`. From the raw JSON whenever the caller sent it,
    /// even once the map was made, so that the value the server's deadline
    /// was set from is the one a handler reads later.
    fn timeout(&self) -> Option<Duration> {
        match self.raw_metadata() {
            Some(raw) => raw_timeout(raw),
            None => requested_timeout(self.metadata.map.get()?),
        }
    }
}

/// `timeout` of a raw metadata object, read without making a map. A key
/// repeated counts as in the map (and in `JSON.parse`): the last one wins.
fn raw_timeout(raw: &str) -> Option<Duration> {
    struct TimeoutOnly(Option<Value>);

    /// A member name: whether it is `timeout` (escaped or not).
    struct IsTimeout(bool);

    impl<'de> Deserialize<'de> for IsTimeout {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Key;
            impl serde::de::Visitor<'_> for Key {
                type Value = IsTimeout;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<IsTimeout, E> {
                    Ok(IsTimeout(key == "timeout"))
                }
            }
            d.deserialize_str(Key)
        }
    }

    impl<'de> Deserialize<'de> for TimeoutOnly {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Members;
            impl<'de> serde::de::Visitor<'de> for Members {
                type Value = TimeoutOnly;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a metadata object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<TimeoutOnly, A::Error> {
                    let mut timeout = None;
                    while let Some(IsTimeout(is_timeout)) = map.next_key()? {
                        if is_timeout {
                            timeout = Some(map.next_value::<Value>()?);
                        } else {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                    Ok(TimeoutOnly(timeout))
                }
            }
            d.deserialize_map(Members)
        }
    }

    if !message::is_object(raw) {
        return None;
    }
    let only: TimeoutOnly = serde_json::from_str(raw).ok()?;
    timeout_ms(only.0?.as_f64()?)
}

impl Context {
    /// A context for a call to `method` from `peer` with the caller's `metadata`.
    pub fn new(method: &str, metadata: Map<String, Value>, peer: Arc<PeerInfo>) -> Self {
        Self::with_metadata(method, None, OnceLock::from(metadata), peer)
    }

    /// A context whose metadata is the raw JSON of `params.metadata`, parsed
    /// on first use.
    pub(crate) fn from_raw_metadata(
        method: &str,
        metadata: Option<&RawValue>,
        peer: Arc<PeerInfo>,
    ) -> Self {
        Self::with_metadata(method, metadata, OnceLock::new(), peer)
    }

    fn with_metadata(
        method: &str,
        raw: Option<&RawValue>,
        map: OnceLock<Map<String, Value>>,
        peer: Arc<PeerInfo>,
    ) -> Self {
        let raw = raw.map_or("", RawValue::get);
        let mut text = String::with_capacity(method.len() + raw.len());
        text.push_str(method);
        text.push_str(raw);
        Context {
            call: Arc::new(Call {
                text: text.into_boxed_str(),
                method_len: method.len(),
                metadata: Metadata { map },
                reply_metadata: Mutex::new(None),
                cancel: OnceLock::new(),
                ended: AtomicBool::new(false),
                peer,
            }),
            identity: None,
            deadline: None,
        }
    }

    /// The method name the caller asked for.
    pub fn method(&self) -> &str {
        self.call.method()
    }

    /// The caller's metadata (`params.metadata` of the first message).
    pub fn metadata(&self) -> &Map<String, Value> {
        self.call.metadata()
    }

    /// `metadata.authorization`, e.g. `"Bearer <token>"`.
    pub fn authorization(&self) -> Option<&str> {
        self.metadata().get("authorization")?.as_str()
    }

    /// The timeout the caller asked for (`metadata.timeout`, milliseconds).
    pub fn requested_timeout(&self) -> Option<Duration> {
        self.call.timeout()
    }

    /// The authenticated identity, if an authentication layer set one.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Sets the authenticated identity (for authentication middleware).
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = Some(Arc::new(identity));
    }

    /// When the call must be done by.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Moves the deadline earlier; a later `deadline` is ignored, so layers can
    /// only shorten what the server and the caller allowed.
    pub fn shorten_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(match self.deadline {
            Some(current) => current.min(deadline),
            None => deadline,
        });
    }

    /// The call's cancellation token.
    pub fn cancellation(&self) -> &CancellationToken {
        let call = &*self.call;
        let token = call.cancel.get_or_init(CancellationToken::new);
        // Pairs with the fence in `CallEnd::drop`: either the end sees this
        // token, or this sees the end.
        fence(Ordering::SeqCst);
        if call.ended.load(Ordering::Relaxed) {
            token.cancel();
        }
        token
    }

    /// Whether the call has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        match self.call.cancel.get() {
            Some(token) => token.is_cancelled(),
            None => self.call.ended.load(Ordering::Acquire),
        }
    }

    /// Resolves when the call is cancelled.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        self.cancellation().clone().cancelled_owned()
    }

    /// Cancels the call when dropped (the server holds it while the call
    /// runs).
    pub(crate) fn end_guard(&self) -> CallEnd {
        CallEnd(self.call.clone())
    }

    /// What is known about the peer: carrier, address, certificates, and the
    /// carrier's own facts in [`PeerInfo::extensions`].
    pub fn peer(&self) -> &PeerInfo {
        &self.call.peer
    }

    /// Adds `key: value` to `result.metadata` of the call's first response
    /// (how a refreshed token travels back).
    pub fn set_reply_metadata(&self, key: impl Into<String>, value: impl Into<Value>) {
        let mut guard = self
            .call
            .reply_metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        guard
            .get_or_insert_with(Map::new)
            .insert(key.into(), value.into());
    }

    /// Takes the metadata for the first response (once).
    pub(crate) fn take_reply_metadata(&self) -> Option<Map<String, Value>> {
        self.call
            .reply_metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("method", &self.method())
            .field("identity", &self.identity)
            .field("deadline", &self.deadline)
            .field("cancelled", &self.is_cancelled())
            .field("transport", &self.call.peer.transport)
            .finish_non_exhaustive()
    }
}

/// Cancels its call when dropped (see [`Context::end_guard`]).
pub(crate) struct CallEnd(Arc<Call>);

impl Drop for CallEnd {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Release);
        // Pairs with the fence in `Context::cancellation`.
        fence(Ordering::SeqCst);
        if let Some(token) = self.0.cancel.get() {
            token.cancel();
        }
    }
}

/// Reads `metadata.timeout` (milliseconds; `null` or absent for none).
pub(crate) fn requested_timeout(metadata: &Map<String, Value>) -> Option<Duration> {
    timeout_ms(metadata.get("timeout")?.as_f64()?)
}

fn timeout_ms(ms: f64) -> Option<Duration> {
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms.min(1e12) / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(raw: Option<&str>) -> Context {
        let raw = raw.map(|r| RawValue::from_string(r.to_owned()).unwrap());
        Context::from_raw_metadata("m", raw.as_deref(), Arc::new(PeerInfo::default()))
    }

    #[test]
    fn raw_metadata_reads_like_the_map() {
        let c = ctx(Some(
            r#"{"timeout":1500,"authorization":"Bearer t","x":[1,{"y":"}"}]}"#,
        ));
        // The timeout is read without making the map.
        assert_eq!(c.requested_timeout(), Some(Duration::from_millis(1500)));
        assert!(c.call.metadata.map.get().is_none());
        assert_eq!(c.authorization(), Some("Bearer t"));
        assert_eq!(c.metadata()["x"][1]["y"], "}");
        // Once the map exists, the timeout still reads the same.
        assert_eq!(c.requested_timeout(), Some(Duration::from_millis(1500)));
    }

    /// Found by the `rpc_message` fuzz target: a repeated `timeout` made the
    /// raw read fail (no timeout: the server's deadline ignored the caller's)
    /// while the map, made later, kept the last one (a handler read 2 ms).
    #[test]
    fn a_repeated_timeout_reads_the_same_before_and_after_the_map() {
        let c = ctx(Some(r#"{"timeout":1,"x":"time\u006fut","timeout":2}"#));
        assert_eq!(c.requested_timeout(), Some(Duration::from_millis(2)));
        assert_eq!(c.metadata()["timeout"], 2);
        assert_eq!(c.requested_timeout(), Some(Duration::from_millis(2)));
        let c = ctx(Some(r#"{"time\u006fut":7}"#));
        assert_eq!(c.requested_timeout(), Some(Duration::from_millis(7)));
    }

    #[test]
    fn odd_metadata_is_empty_or_ignored() {
        for raw in [
            None,
            Some("null"),
            Some("\"text\""),
            Some("[1,2]"),
            Some("[5000]"),
        ] {
            let c = ctx(raw);
            assert_eq!(c.requested_timeout(), None, "{raw:?}");
            assert!(c.metadata().is_empty(), "{raw:?}");
        }
        for raw in [
            r#"{"timeout":null}"#,
            r#"{"timeout":"soon"}"#,
            r#"{"timeout":-1}"#,
        ] {
            assert_eq!(ctx(Some(raw)).requested_timeout(), None, "{raw}");
        }
        let c = Context::new("m", Map::new(), Arc::new(PeerInfo::default()));
        assert!(c.metadata().is_empty());
        assert_eq!(c.method(), "m");
    }

    #[test]
    fn the_end_of_the_call_cancels_its_token_made_before_or_after() {
        // Made before the end: cancelled by it, in every clone.
        let c = ctx(None);
        let token = c.cancellation().clone();
        let clone = c.clone();
        let end = c.end_guard();
        assert!(!token.is_cancelled() && !clone.is_cancelled());
        drop(end);
        assert!(token.is_cancelled() && clone.is_cancelled());
        // Never made while the call ran: none is allocated, the context
        // still reads cancelled, and one made afterwards starts cancelled.
        let c = ctx(None);
        drop(c.end_guard());
        assert!(c.call.cancel.get().is_none());
        assert!(c.is_cancelled());
        assert!(c.cancellation().is_cancelled());
        // A cancel before the end is seen as such.
        let c = ctx(None);
        let _end = c.end_guard();
        c.cancellation().cancel();
        assert!(c.is_cancelled());
    }
}
