//! Wire-level behaviour: exact bytes in, exact JSON out (docs/protocol.md, "RPC framing" to "Error codes").

mod common;

use futures_util::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::server::{Incoming, RawReader, Router, Server};
use strand_rpc_core::RpcError;
use tokio::io::AsyncReadExt;

fn router() -> Router {
    Router::new()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .client_streaming("sum", |_ctx, mut input: Incoming<Value>| async move {
            let mut sum = 0;
            while let Some(v) = input.next().await {
                sum += v?["x"].as_i64().unwrap_or(0);
            }
            Ok::<_, RpcError>(json!({ "sum": sum }))
        })
        .raw(
            "rawEcho",
            |_ctx, p: Value, mut input: RawReader| async move {
                let mut data = Vec::new();
                input
                    .read_to_end(&mut data)
                    .await
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                Ok((
                    json!({ "accepted": p }),
                    strand_rpc_core::server::RawBody::from_reader(std::io::Cursor::new(data)),
                ))
            },
        )
        .unary("fail", |_ctx, _p: Value| async move {
            Err::<Value, _>(RpcError::handler("TypeError", "handler exploded"))
        })
}

#[tokio::test]
async fn handler_error_has_the_protocol_shape() {
    let f = common::start(router());
    let out = f
        .exchange(&[br#"{"method":"fail","jsonrpc":"2.0","id":null,"params":{}}"#])
        .await;
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({
            "jsonrpc": "2.0",
            "error": {
                "code": -32006,
                "message": "handler exploded",
                "data": {
                    "type": "TypeError",
                    "message": "handler exploded",
                    "data": { "stack": "TypeError: handler exploded\n    at strand handler" }
                }
            },
            "id": null
        })
    );
    // Key order as the JS stack writes it.
    assert!(out.starts_with(br#"{"jsonrpc":"2.0","error":{"code":-32006,"#));
}

#[tokio::test]
async fn response_bytes_are_exact() {
    let f = common::start(router());
    let out = f
        .exchange(&[br#"{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":7}"#])
        .await;
    assert_eq!(out, br#"{"jsonrpc":"2.0","result":{"a":1},"id":null}"#);
}

#[tokio::test]
async fn unknown_method_answers_then_ends() {
    let f = common::start(router());
    let out = f
        .exchange_json(&[br#"{"method":"nope","jsonrpc":"2.0","id":null,"params":{}}"#])
        .await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["error"]["code"], -32601);
    assert_eq!(out[0]["error"]["data"]["code"], -32601);
}

#[tokio::test]
async fn garbage_is_a_parse_error() {
    let f = common::start(router());
    let out = f.exchange_json(&[b"this is not json"]).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["error"]["code"], -32700);
    let out = f.exchange_json(&[b"{\"method\":\"echo\",,}"]).await;
    assert_eq!(out[0]["error"]["code"], -32700);
}

#[tokio::test]
async fn missing_method_is_an_invalid_request() {
    let f = common::start(router());
    let out = f
        .exchange_json(&[br#"{"jsonrpc":"2.0","params":{}}"#])
        .await;
    assert_eq!(out[0]["error"]["code"], -32600);
    let out = f.exchange_json(&[br#"{"method":5}"#]).await;
    assert_eq!(out[0]["error"]["code"], -32600);
}

#[tokio::test]
async fn oversized_message_fails_with_message_too_long() {
    let f = common::start_with(Server::builder(router()).max_message_size(1024));
    let big = format!(
        r#"{{"method":"echo","params":{{"pad":"{}"}}}}"#,
        "x".repeat(4096)
    );
    let out = f.exchange_json(&[big.as_bytes()]).await;
    assert_eq!(out[0]["error"]["code"], -32003);
    // A message just under the limit passes.
    let ok = format!(
        r#"{{"method":"echo","params":{{"pad":"{}"}}}}"#,
        "x".repeat(900)
    );
    let out = f.exchange_json(&[ok.as_bytes()]).await;
    assert_eq!(out[0]["result"]["pad"].as_str().unwrap().len(), 900);
}

#[tokio::test]
async fn oversized_later_message_fails_the_call() {
    let f = common::start_with(Server::builder(router()).max_message_size(256));
    let big = format!(
        r#"{{"method":"sum","params":{{"pad":"{}"}}}}"#,
        "x".repeat(1000)
    );
    let out = f
        .exchange_json(&[br#"{"method":"sum","params":{"x":1}}"#, big.as_bytes()])
        .await;
    assert_eq!(out[0]["error"]["code"], -32003);
}

#[tokio::test]
async fn header_and_messages_in_one_chunk_lose_nothing() {
    let f = common::start(router());
    // Packed with newlines, packed back to back, and one split across writes
    // (docs/protocol.md, "RPC framing" and "Write boundary", where the JS
    // server dropped messages).
    let out = f
        .exchange_json(&[
            b"{\"method\":\"sum\",\"params\":{\"x\":1}}\n{\"method\":\"sum\",\"params\":{\"x\":2}}{\"method\":\"sum\",\"par",
            b"ams\":{\"x\":3}}  ",
        ])
        .await;
    assert_eq!(
        out,
        vec![json!({"jsonrpc": "2.0", "result": {"sum": 6}, "id": null})]
    );
}

#[tokio::test]
async fn header_split_across_writes() {
    let f = common::start(router());
    let out = f
        .exchange_json(&[
            br#"{"jsonrpc":"2.0","meth"#,
            br#"od":"echo","params":{"split":true},"id":"abc"}"#,
        ])
        .await;
    assert_eq!(out[0]["result"], json!({ "split": true }));
}

#[tokio::test]
async fn raw_bytes_in_the_header_chunk_are_kept() {
    let f = common::start(router());
    let out = f
        .exchange(&[br#"{"jsonrpc":"2.0","method":"rawEcho","params":{"mode":"x"},"id":null}raw bytes here"#])
        .await;
    let leading = br#"{"jsonrpc":"2.0","result":{"accepted":{"mode":"x"}},"id":null}"#;
    assert_eq!(&out[..leading.len()], leading);
    assert_eq!(&out[leading.len()..], b"raw bytes here");
}

#[tokio::test]
async fn bad_later_message_reaches_the_handler_as_an_error() {
    let f = common::start(router());
    let out = f
        .exchange_json(&[br#"{"method":"sum","params":{"x":1}}"#, b"{oops}"])
        .await;
    assert_eq!(out[0]["error"]["code"], -32700);
}
