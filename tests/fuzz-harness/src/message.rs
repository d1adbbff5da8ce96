//! `rpc_message`: request, response, metadata and error parsing
//! (`rpc-core/src/message.rs`, `error.rs`, and how the server reads a call's
//! first message).
//!
//! Checked, besides never panicking:
//! - the server's first-message path fails only with −32700 or −32600; the
//!   timeout it reads from the raw `metadata` JSON does not change once a
//!   handler makes the metadata map, and is the one that map holds;
//! - `IncomingMessage::parse` (UTF-8 checked once) agrees with
//!   `serde_json::from_slice`;
//! - `may_have_metadata` never skips an object that has `metadata`;
//! - an error object re-encodes (`encode_error`) to one that parses back the
//!   same, and so does an `RpcError` made from it (`to_error_object`);
//! - the first request's fast metadata splice gives the same params as the
//!   `Value` path (`with_metadata`), for requests and raw-call headers;
//! - reply metadata the server's encoders put in a response (in an object
//!   result, or beside a result or an error) reads back the same, and the
//!   result or error with it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use strand_rpc_core::__fuzz::parse_call_header;
use strand_rpc_core::message::{
    encode_error, encode_error_with_metadata, encode_raw_header_with_metadata, encode_request,
    encode_request_with_metadata, encode_response_with_metadata, error_codes, may_have_metadata,
    with_metadata, ErrorObject, IncomingMessage, MetadataOnly, MetadataRaw,
};
use strand_rpc_core::middleware::Credentials;
use strand_rpc_core::transport::PeerInfo;
use strand_rpc_core::RpcError;

use crate::util::reply_metadata;

/// JSON values equal but for the last bits of floats, which serde_json
/// (without `float_roundtrip`) may not read back exactly.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn error_eq(a: &ErrorObject, b: &ErrorObject) -> bool {
    a.code == b.code
        && a.message == b.message
        && match (&a.data, &b.data) {
            (Some(x), Some(y)) => json_eq(x, y),
            (None, None) => true,
            _ => false,
        }
}

/// `err` encoded in a response and parsed back.
fn reparse_error(err: &ErrorObject) -> ErrorObject {
    let bytes = encode_error(err);
    let msg = IncomingMessage::parse(&bytes).expect("an encoded error parses");
    assert!(msg.result.is_none() && msg.method.is_none());
    msg.error.expect("an encoded error has its error")
}

/// Reply metadata written by the server's encoders
/// (`encode_response_with_metadata`, `encode_error_with_metadata`) is read
/// back by the rule of docs/protocol.md ([`reply_metadata`]), and the result
/// or error comes back unchanged but for the metadata member of an object
/// (or null) result, where the metadata is merged in.
fn reply_metadata_round_trip(msg: &IncomingMessage<'_>) {
    let metadata = msg
        .metadata
        .and_then(|raw| serde_json::from_str::<Map<String, Value>>(raw.get()).ok())
        .unwrap_or_else(|| Map::from_iter([("authorization".into(), "Bearer t".into())]));
    let same = |got: Option<Map<String, Value>>, want: &Map<String, Value>| {
        got.is_some_and(|got| json_eq(&Value::Object(got), &Value::Object(want.clone())))
    };
    if let Some(result) = msg
        .result
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
    {
        let bytes = encode_response_with_metadata(&result, Some(&metadata)).expect("encodes");
        let back = IncomingMessage::parse(&bytes).expect("our response parses");
        let value: Value =
            serde_json::from_str(back.result.expect("a result").get()).expect("our result parses");
        // What the result should read as, and the metadata in it.
        let (want, read) = match &result {
            Value::Object(members) => {
                let mut members = members.clone();
                let merged = match members.remove("metadata") {
                    Some(Value::Object(mut existing)) => {
                        existing.extend(metadata.clone());
                        existing
                    }
                    _ => metadata.clone(),
                };
                members.insert("metadata".into(), Value::Object(merged.clone()));
                (Value::Object(members), merged)
            }
            Value::Null => (
                Value::Object(Map::from_iter([(
                    "metadata".into(),
                    Value::Object(metadata.clone()),
                )])),
                metadata.clone(),
            ),
            other => (other.clone(), metadata.clone()),
        };
        assert!(
            json_eq(&value, &want),
            "result {result} came back as {value}"
        );
        let got = reply_metadata(&back);
        assert!(
            same(got.clone(), &read),
            "reply metadata {read:?} read as {got:?}"
        );
    }
    if let Some(err) = &msg.error {
        let bytes = encode_error_with_metadata(err, Some(&metadata));
        let back = IncomingMessage::parse(&bytes).expect("our error response parses");
        let got = back.error.as_ref().expect("an error");
        assert!(error_eq(got, err), "{err:?} came back as {got:?}");
        let got = reply_metadata(&back);
        assert!(
            same(got.clone(), &metadata),
            "reply metadata {metadata:?} read as {got:?}"
        );
    }
}

fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// Runs one input.
pub fn rpc_message(data: &[u8]) {
    // The server's reading of a first message.
    match parse_call_header(data, Arc::new(PeerInfo::default())) {
        Ok((ctx, _params)) => {
            let raw_timeout = ctx.requested_timeout();
            let map = ctx.metadata().clone();
            assert_eq!(
                ctx.requested_timeout(),
                raw_timeout,
                "the timeout changed once the metadata map was made: {map:?}"
            );
            // An empty map may also be metadata that serde_json cannot hold
            // in a map (a number out of range, say); the raw read is lenient.
            if !map.is_empty() {
                let from_map = map
                    .get("timeout")
                    .and_then(Value::as_f64)
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .map(|ms| Duration::from_secs_f64(ms.min(1e12) / 1000.0));
                assert_eq!(
                    raw_timeout, from_map,
                    "the raw timeout and the map's differ: {map:?}"
                );
            }
            let _ = Credentials::parse(ctx.authorization());
        }
        Err(err) => assert!(
            [error_codes::PARSE_ERROR, error_codes::INVALID_REQUEST].contains(&err.code()),
            "{err}"
        ),
    }

    let parsed = IncomingMessage::parse(data);
    let sliced = serde_json::from_slice::<IncomingMessage<'_>>(data);
    let Ok(msg) = parsed else {
        assert!(sliced.is_err(), "only from_slice reads it");
        return;
    };
    let other = sliced.expect("only parse reads it");
    assert_eq!(msg.method, other.method);
    assert_eq!(msg.params.map(|r| r.get()), other.params.map(|r| r.get()));
    assert_eq!(msg.result.map(|r| r.get()), other.result.map(|r| r.get()));
    assert_eq!(msg.error, other.error);

    for raw in [msg.params, msg.result].into_iter().flatten() {
        let json = raw.get();
        if is_object(json) && !may_have_metadata(json) {
            let only = serde_json::from_str::<MetadataOnly>(json);
            assert!(
                only.map_or(true, |m| m.metadata.is_none()),
                "may_have_metadata skipped metadata in {json}"
            );
            let raw_md = serde_json::from_str::<MetadataRaw<'_>>(json);
            assert!(raw_md.map_or(true, |m| m.metadata.is_none()));
        }
    }

    if let Some(err) = &msg.error {
        let back = reparse_error(err);
        assert!(error_eq(&back, err), "{err:?} came back as {back:?}");
        let mut rpc = RpcError::new(err.code, err.message.clone());
        if let Some(data) = &err.data {
            rpc = rpc.with_data(data.clone());
        }
        let wire = rpc.to_error_object();
        assert_eq!(wire.code, err.code);
        let back = reparse_error(&wire);
        assert!(error_eq(&back, &wire), "{wire:?} came back as {back:?}");
        if let Some(method) = &msg.method {
            let handler = RpcError::handler(method.to_string(), err.message.clone());
            let wire = handler.to_error_object();
            let data = wire.data.as_ref().expect("handler errors carry data");
            assert!(data["data"]["stack"].is_string(), "{data}");
            assert!(error_eq(&reparse_error(&wire), &wire));
        }
    }

    reply_metadata_round_trip(&msg);

    // The first request of a call, written both ways.
    let Some(params) = msg
        .params
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
    else {
        return;
    };
    let metadata = match msg
        .result
        .map(|raw| serde_json::from_str::<Value>(raw.get()))
    {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::from_iter([("timeout".to_string(), Value::Null)]),
    };
    let method = msg.method.as_deref().unwrap_or("m");
    let fast = encode_request_with_metadata(method, &params, &metadata).expect("encodes");
    let slow = encode_request(
        method,
        &with_metadata(&params, Some(&metadata)).expect("encodes"),
    )
    .expect("encodes");
    let fast: Value = serde_json::from_slice(&fast).expect("our request parses");
    let slow: Value = serde_json::from_slice(&slow).expect("our request parses");
    assert_eq!(fast, slow, "the metadata splice and the Value path differ");
    let raw = encode_raw_header_with_metadata(method, &params, &metadata).expect("encodes");
    let raw: Value = serde_json::from_slice(&raw).expect("our raw header parses");
    assert_eq!(raw["params"], slow["params"]);
    assert_eq!(raw["method"], slow["method"]);
}
