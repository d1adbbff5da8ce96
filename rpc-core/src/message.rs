//! JSON-RPC message shapes on the wire (docs/protocol.md, "RPC messages").
//!
//! Outgoing messages serialise straight from borrowed data (no intermediate
//! `Value`), with the key order the JS stack writes: requests
//! `method, jsonrpc, id, params`; responses `jsonrpc, result, id`. Incoming
//! messages keep `params` / `result` as raw JSON text so the typed value is
//! parsed once, straight from the received bytes.

use std::borrow::Cow;
use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The only JSON-RPC version strand speaks.
pub const JSONRPC_VERSION: &str = "2.0";

/// JSON-RPC error codes used by strand and the JS stack (docs/protocol.md, "Error
/// codes").
pub mod error_codes {
    /// The bytes were not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON was not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No handler is registered under the method name.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params did not match what the handler expects.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The server failed for a reason of its own.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The server is shutting down and aborted the call.
    pub const SERVER_STOPPING: i64 = -32001;
    /// A message was longer than the reader's limit.
    pub const MESSAGE_TOO_LONG: i64 = -32003;
    /// The handler returned an error (its details are in `data`).
    pub const HANDLER_ERROR: i64 = -32006;
    /// The stream ended before the call completed.
    pub const STREAM_ENDED: i64 = -32007;
    /// The call ran past its deadline.
    pub const TIMED_OUT: i64 = -32008;
    /// The handler was aborted.
    pub const HANDLER_ABORTED: i64 = -32015;
    /// In-payload authentication refused the call (strand's own code; the JS
    /// stack leaves the choice to its middleware).
    pub const UNAUTHORIZED: i64 = -32020;
}

/// A request as written: `{"method":..,"jsonrpc":"2.0","id":null,"params":..}`.
#[derive(Serialize)]
pub struct RequestRef<'a, P: ?Sized> {
    /// The method name.
    pub method: &'a str,
    /// Always `"2.0"`.
    pub jsonrpc: &'static str,
    /// Always `null`: the stream is the call.
    pub id: (),
    /// The params.
    pub params: &'a P,
}

/// A raw-call header as the JS client writes it:
/// `{"jsonrpc":"2.0","method":..,"params":..,"id":null}`.
#[derive(Serialize)]
pub struct RawHeaderRef<'a, P: ?Sized> {
    /// Always `"2.0"`.
    pub jsonrpc: &'static str,
    /// The method name.
    pub method: &'a str,
    /// The params.
    pub params: &'a P,
    /// Always `null`.
    pub id: (),
}

/// A success response as written: `{"jsonrpc":"2.0","result":..,"id":null}`.
#[derive(Serialize)]
pub struct ResponseRef<'a, R: ?Sized> {
    /// Always `"2.0"`.
    pub jsonrpc: &'static str,
    /// The result.
    pub result: &'a R,
    /// Always `null`.
    pub id: (),
}

/// An error response as written: `{"jsonrpc":"2.0","error":{..},"id":null}`.
#[derive(Serialize)]
pub struct ErrorResponseRef<'a> {
    /// Always `"2.0"`.
    pub jsonrpc: &'static str,
    /// The error object.
    pub error: &'a ErrorObject,
    /// Always `null`.
    pub id: (),
}

/// The `error` member of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The JSON-RPC error code.
    pub code: i64,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// Details: `{type, message, data}` for handler errors, `{code, message, data}`
    /// for protocol errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// Any message as read, with `params` / `result` left as raw JSON.
///
/// Requests have `method` and `params`; responses `result` or `error`. Unknown
/// members and any `id` are accepted and ignored (docs/protocol.md, "RPC messages").
#[derive(Debug, Deserialize)]
pub struct IncomingMessage<'a> {
    /// The method (requests); borrowed unless it has escapes.
    #[serde(default, borrow, deserialize_with = "borrowed_cow")]
    pub method: Option<Cow<'a, str>>,
    /// The params (requests), as raw JSON.
    #[serde(default, borrow)]
    pub params: Option<&'a RawValue>,
    /// The result (responses), as raw JSON; `null` is a result (`Some`),
    /// only an absent member is `None`.
    #[serde(default, borrow, deserialize_with = "present_raw")]
    pub result: Option<&'a RawValue>,
    /// The error (error responses).
    #[serde(default)]
    pub error: Option<ErrorObject>,
    /// Reply metadata of a response whose result cannot carry it (an error,
    /// or a result that is not an object), as raw JSON; docs/protocol.md,
    /// "Metadata".
    #[serde(default, borrow)]
    pub metadata: Option<&'a RawValue>,
}

/// serde borrows a `Cow` field but not one inside an `Option`, which it
/// always copies: this borrows it there too.
fn borrowed_cow<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(deserializer)?.map(|b| b.0))
}

/// A member that is present, `null` included: serde reads `null` in an
/// `Option` as absent, which made a `null` result "neither result nor error".
fn present_raw<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

impl<'a> IncomingMessage<'a> {
    /// Parses a received message. UTF-8 is checked once for the whole
    /// message, so serde_json need not check each string (about 20 % faster
    /// than `from_slice` on a typical request); invalid UTF-8 gets
    /// serde_json's own error, with its position.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
    }
}

/// `params.metadata` of a message, as raw JSON (nothing allocated).
#[derive(Debug, Deserialize)]
pub struct MetadataRaw<'a> {
    /// `params.metadata`, if present and not null.
    #[serde(default, borrow)]
    pub metadata: Option<&'a RawValue>,
}

/// Only the `metadata` member of a params or result object.
#[derive(Debug, Default, Deserialize)]
pub struct MetadataOnly {
    /// `params.metadata` / `result.metadata`, if present and an object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Whether a params or result value's JSON text may have a `metadata`
/// member: false when it is not an object, or when the key cannot be in it
/// (not even escaped), which spares a parse of the whole object on most
/// messages.
pub fn may_have_metadata(json: &str) -> bool {
    let bytes = json.as_bytes();
    is_object(json)
        && (METADATA_KEY.find(bytes).is_some() || memchr::memchr(b'\\', bytes).is_some())
}

/// Whether a value's JSON text is an object. Only an object has members:
/// serde also reads a struct from an array (its elements as the fields, in
/// order), where JS reads no member at all.
pub(crate) fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// Built once: building a searcher per message cost more than the search.
static METADATA_KEY: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"metadata"));

/// Serialises `value` as one message into a fresh buffer.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut buf = BytesMut::with_capacity(128).writer();
    serde_json::to_writer(&mut buf, value)?;
    Ok(fit(buf.into_inner()))
}

/// The buffer grows by doubling, so a large message can sit in nearly twice
/// its size for as long as it is queued (a stream's writer holds one while
/// its reader stalls). Above [`FIT_ABOVE`] a message that wastes more than a
/// quarter of its buffer is copied into one of its own size.
fn fit(buf: BytesMut) -> Bytes {
    if buf.len() > FIT_ABOVE && buf.capacity() - buf.len() > buf.len() / 4 {
        Bytes::copy_from_slice(&buf)
    } else {
        buf.freeze()
    }
}

/// Messages up to this size keep their buffer as it grew.
const FIT_ABOVE: usize = 16 * 1024;

/// Encodes a request message.
pub fn encode_request<P: Serialize + ?Sized>(
    method: &str,
    params: &P,
) -> Result<Bytes, serde_json::Error> {
    encode(&RequestRef {
        method,
        jsonrpc: JSONRPC_VERSION,
        id: (),
        params,
    })
}

/// Encodes a success response.
pub fn encode_response<R: Serialize + ?Sized>(result: &R) -> Result<Bytes, serde_json::Error> {
    encode(&ResponseRef {
        jsonrpc: JSONRPC_VERSION,
        result,
        id: (),
    })
}

/// A response that carries reply metadata beside its result or error:
/// `{"jsonrpc":"2.0","result":..,"metadata":{..},"id":null}` (or `"error"`).
#[derive(Serialize)]
struct WithReplyMetadata<'a, B: Serialize> {
    jsonrpc: &'static str,
    #[serde(flatten)]
    body: B,
    metadata: &'a Map<String, Value>,
    id: (),
}

#[derive(Serialize)]
enum Body<'a, R: ?Sized> {
    #[serde(rename = "result")]
    Result(&'a R),
    #[serde(rename = "error")]
    Error(&'a ErrorObject),
}

/// Encodes the first success response of a call with the reply metadata
/// (docs/protocol.md, "Metadata"): in `result.metadata` when the result is
/// an object or `null`, else in a `metadata` member of the response itself,
/// beside `result` (a JS peer ignores that member).
pub fn encode_response_with_metadata<R: Serialize + ?Sized>(
    result: &R,
    metadata: Option<&Map<String, Value>>,
) -> Result<Bytes, serde_json::Error> {
    let Some(metadata) = metadata else {
        return encode_response(result);
    };
    let value = serde_json::to_value(result)?;
    match value {
        Value::Object(_) | Value::Null => encode_response(&with_metadata(&value, Some(metadata))?),
        other => encode(&WithReplyMetadata {
            jsonrpc: JSONRPC_VERSION,
            body: Body::Result(&other),
            metadata,
            id: (),
        }),
    }
}

/// Encodes an error response; reply metadata, if any, goes in a `metadata`
/// member of the response beside `error` (docs/protocol.md, "Metadata").
pub fn encode_error_with_metadata(
    error: &ErrorObject,
    metadata: Option<&Map<String, Value>>,
) -> Bytes {
    let Some(metadata) = metadata else {
        return encode_error(error);
    };
    encode(&WithReplyMetadata {
        jsonrpc: JSONRPC_VERSION,
        body: Body::<()>::Error(error),
        metadata,
        id: (),
    })
    .expect("error objects and maps always serialise")
}

/// Encodes an error response.
pub fn encode_error(error: &ErrorObject) -> Bytes {
    // An ErrorObject holds only strings, numbers and `Value`s: it always serialises.
    encode(&ErrorResponseRef {
        jsonrpc: JSONRPC_VERSION,
        error,
        id: (),
    })
    .expect("error objects always serialise")
}

/// Encodes the first request of a call: params with `metadata` merged in.
///
/// Params that serialise to a JSON object without a `metadata` member get
/// `"metadata":{…}` spliced in before their closing brace, so no `Value` tree
/// is built; anything else goes through [`with_metadata`].
pub fn encode_request_with_metadata<P: Serialize + ?Sized, M: Serialize + ?Sized>(
    method: &str,
    params: &P,
    metadata: &M,
) -> Result<Bytes, serde_json::Error> {
    request_with_metadata(method, params, metadata).map(fit)
}

/// [`encode_request_with_metadata`] left in its buffer, for a caller that
/// only copies it into a stream (freezing a buffer that is not full
/// allocates).
pub(crate) fn request_with_metadata<P: Serialize + ?Sized, M: Serialize + ?Sized>(
    method: &str,
    params: &P,
    metadata: &M,
) -> Result<BytesMut, serde_json::Error> {
    let mut out = BytesMut::with_capacity(128).writer();
    out.get_mut().put_slice(b"{\"method\":");
    serde_json::to_writer(&mut out, method)?;
    out.get_mut()
        .put_slice(b",\"jsonrpc\":\"2.0\",\"id\":null,\"params\":");
    write_params_with_metadata(&mut out, params, metadata)?;
    out.get_mut().put_slice(b"}");
    Ok(out.into_inner())
}

/// Encodes a raw call's header (the JS client's key order:
/// `jsonrpc, method, params, id`) with `metadata` merged into its params.
pub fn encode_raw_header_with_metadata<P: Serialize + ?Sized, M: Serialize + ?Sized>(
    method: &str,
    params: &P,
    metadata: &M,
) -> Result<Bytes, serde_json::Error> {
    let mut out = BytesMut::with_capacity(128).writer();
    out.get_mut().put_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
    serde_json::to_writer(&mut out, method)?;
    out.get_mut().put_slice(b",\"params\":");
    write_params_with_metadata(&mut out, params, metadata)?;
    out.get_mut().put_slice(b",\"id\":null}");
    Ok(fit(out.into_inner()))
}

fn write_params_with_metadata<P: Serialize + ?Sized, M: Serialize + ?Sized>(
    out: &mut bytes::buf::Writer<BytesMut>,
    params: &P,
    metadata: &M,
) -> Result<(), serde_json::Error> {
    let start = out.get_ref().len();
    serde_json::to_writer(&mut *out, params)?;
    let written = &out.get_ref()[start..];
    let splice = written.len() >= 2
        && written[0] == b'{'
        && written[written.len() - 1] == b'}'
        && !written.windows(10).any(|w| w == b"\"metadata\"");
    if splice {
        let empty = written.len() == 2;
        let buf = out.get_mut();
        buf.truncate(buf.len() - 1);
        if !empty {
            buf.put_u8(b',');
        }
        buf.put_slice(b"\"metadata\":");
        serde_json::to_writer(&mut *out, metadata)?;
        out.get_mut().put_u8(b'}');
    } else {
        out.get_mut().truncate(start);
        let metadata = match serde_json::to_value(metadata)? {
            Value::Object(map) => Some(map),
            _ => None,
        };
        serde_json::to_writer(&mut *out, &with_metadata(params, metadata.as_ref())?)?;
    }
    Ok(())
}

/// Parses `raw` (a params or result object) as `T`, then adds `metadata` to it
/// when `metadata` is `Some`. Used on the first message of a call only.
pub fn with_metadata<T: Serialize + ?Sized>(
    value: &T,
    metadata: Option<&Map<String, Value>>,
) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(value)?;
    if let Some(metadata) = metadata {
        match &mut value {
            Value::Object(map) => {
                let entry = map
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(existing) = entry {
                    for (k, v) in metadata {
                        existing.insert(k.clone(), v.clone());
                    }
                } else {
                    *entry = Value::Object(metadata.clone());
                }
            }
            Value::Null => {
                let mut map = Map::new();
                map.insert("metadata".into(), Value::Object(metadata.clone()));
                value = Value::Object(map);
            }
            // Params that are not objects cannot carry metadata; JS sends objects.
            _ => {}
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_get_a_buffer_of_their_own_size() {
        let mut big = BytesMut::with_capacity(128 * 1024);
        big.resize(70 * 1024, b'x');
        let ptr = big.as_ptr();
        let fitted = fit(big);
        assert_eq!(fitted.len(), 70 * 1024);
        assert_ne!(fitted.as_ptr(), ptr, "copied out of the doubled buffer");
        let mut small = BytesMut::with_capacity(256);
        small.resize(100, b'x');
        let ptr = small.as_ptr();
        assert_eq!(fit(small).as_ptr(), ptr, "small messages keep their buffer");
    }
    use serde_json::json;

    #[test]
    fn metadata_is_looked_for_only_where_it_may_be() {
        assert!(may_have_metadata(r#"{"a":1,"metadata":{}}"#));
        assert!(
            may_have_metadata(r#"{"meta\u0064ata":{}}"#),
            "an escaped key"
        );
        assert!(!may_have_metadata(r#"{"msg":"hello world","n":42}"#));
        // Not an object: no members, whatever it holds.
        assert!(!may_have_metadata(r#"[{"timeout":1,"note":"metadata"}]"#));
        assert!(!may_have_metadata(r#""metadata""#));
        assert!(may_have_metadata(r#" {"metadata":{}}"#));
    }

    #[test]
    fn the_method_is_borrowed_unless_escaped() {
        let plain = br#"{"method":"echo","jsonrpc":"2.0","id":null,"params":[]}"#;
        let msg = IncomingMessage::parse(plain).unwrap();
        assert!(matches!(msg.method, Some(Cow::Borrowed("echo"))));
        let escaped = br#"{"method":"ec\u0068o","jsonrpc":"2.0","id":null}"#;
        let msg = IncomingMessage::parse(escaped).unwrap();
        assert!(matches!(msg.method.as_deref(), Some("echo")));
        assert!(matches!(msg.method, Some(Cow::Owned(_))));
        let none = br#"{"jsonrpc":"2.0","id":null,"result":1}"#;
        assert_eq!(IncomingMessage::parse(none).unwrap().method, None);
        let null = br#"{"method":null,"jsonrpc":"2.0","id":null}"#;
        assert_eq!(IncomingMessage::parse(null).unwrap().method, None);
    }

    #[test]
    fn messages_parse_the_same_either_way_and_bad_utf8_is_a_syntax_error() {
        let msg =
            IncomingMessage::parse(br#"{"method":"\u00e9cho","params":{"a":"\u00e9"}}"#).unwrap();
        assert_eq!(msg.method.as_deref(), Some("\u{e9}cho"));
        assert_eq!(msg.params.unwrap().get(), r#"{"a":"\u00e9"}"#);
        let err = IncomingMessage::parse(b"{\"method\":\"\xff\"}").unwrap_err();
        assert!(err.is_syntax(), "{err}");
    }

    #[test]
    fn request_key_order_matches_js() {
        let bytes = encode_request("echo", &json!({"hello": "world"})).unwrap();
        assert_eq!(
            &bytes[..],
            br#"{"method":"echo","jsonrpc":"2.0","id":null,"params":{"hello":"world"}}"#
        );
    }

    #[test]
    fn response_and_error_shapes() {
        let bytes = encode_response(&json!({"i": 0})).unwrap();
        assert_eq!(
            &bytes[..],
            br#"{"jsonrpc":"2.0","result":{"i":0},"id":null}"#
        );
        let err = ErrorObject {
            code: error_codes::METHOD_NOT_FOUND,
            message: "no such method".into(),
            data: None,
        };
        assert_eq!(
            &encode_error(&err)[..],
            br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"no such method"},"id":null}"#
        );
    }

    #[test]
    fn incoming_accepts_any_id_and_missing_fields() {
        let msg: IncomingMessage<'_> =
            serde_json::from_slice(br#"{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":7}"#)
                .unwrap();
        assert_eq!(msg.method.as_deref(), Some("echo"));
        assert_eq!(msg.params.unwrap().get(), r#"{"a":1}"#);
        let msg: IncomingMessage<'_> = serde_json::from_slice(br#"{"method":"echo"}"#).unwrap();
        assert!(msg.params.is_none());
    }

    #[test]
    fn first_message_splices_metadata_like_the_value_path() {
        let mut md = Map::new();
        md.insert("timeout".into(), json!(null));
        md.insert("authorization".into(), json!("Bearer t"));
        let cases = [
            json!({"hello": "world"}),
            json!({}),
            json!(null),
            json!([1, 2]),
            json!(7),
            json!({"metadata": {"trace": "x"}, "a": "b"}),
            json!({"s": "a \"metadata\" inside"}),
        ];
        for params in cases {
            let fast = encode_request_with_metadata("echo", &params, &md).unwrap();
            let slow = encode_request("echo", &with_metadata(&params, Some(&md)).unwrap()).unwrap();
            let fast_v: Value = serde_json::from_slice(&fast).unwrap();
            let slow_v: Value = serde_json::from_slice(&slow).unwrap();
            assert_eq!(fast_v, slow_v, "{params}");
            let raw = encode_raw_header_with_metadata("up", &params, &md).unwrap();
            let raw_v: Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(raw_v["params"], slow_v["params"], "{params}");
            assert!(raw.starts_with(br#"{"jsonrpc":"2.0","method":"up","params":"#));
        }
        assert_eq!(
            &encode_request_with_metadata("echo", &json!({"a": 1}), &md).unwrap()[..],
            br#"{"method":"echo","jsonrpc":"2.0","id":null,"params":{"a":1,"metadata":{"authorization":"Bearer t","timeout":null}}}"#
        );
    }

    #[test]
    fn metadata_merges_into_params() {
        let mut md = Map::new();
        md.insert("timeout".into(), json!(300));
        let v = with_metadata(&json!({"x": 1}), Some(&md)).unwrap();
        assert_eq!(v, json!({"x": 1, "metadata": {"timeout": 300}}));
        let v = with_metadata(&(), Some(&md)).unwrap();
        assert_eq!(v, json!({"metadata": {"timeout": 300}}));
    }

    #[test]
    fn reply_metadata_goes_beside_a_result_that_cannot_carry_it() {
        let md = Map::from_iter([("authorization".to_string(), json!("Bearer t"))]);
        assert_eq!(
            &encode_response_with_metadata(&42, Some(&md)).unwrap()[..],
            br#"{"jsonrpc":"2.0","result":42,"metadata":{"authorization":"Bearer t"},"id":null}"#
        );
        assert_eq!(
            &encode_response_with_metadata(&json!({"a": 1}), Some(&md)).unwrap()[..],
            br#"{"jsonrpc":"2.0","result":{"a":1,"metadata":{"authorization":"Bearer t"}},"id":null}"#
        );
        let err = ErrorObject {
            code: -1,
            message: "no".into(),
            data: None,
        };
        assert_eq!(
            &encode_error_with_metadata(&err, Some(&md))[..],
            br#"{"jsonrpc":"2.0","error":{"code":-1,"message":"no"},"metadata":{"authorization":"Bearer t"},"id":null}"#
        );
        assert_eq!(encode_error_with_metadata(&err, None), encode_error(&err));
    }
}
