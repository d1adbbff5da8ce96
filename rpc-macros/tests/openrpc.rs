//! The OpenRPC document of a `#[strand::service]` (feature `openrpc`): wire
//! names, kinds, params and result schemas, doc comments, timeouts, error
//! codes; and `rpc.discover` serving it.

// `sum_all` has no doc comment on purpose.
#![allow(missing_docs)]

use std::sync::Arc;

use futures_util::stream::{self, Stream};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strand::core::memory;
use strand::{Client, Context, Incoming, RawBody, RawReader, Router, RpcError, Server};

/// Two numbers to add.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Add {
    /// The first.
    a: i64,
    /// The second, 0 when absent.
    #[serde(default)]
    b: i64,
}

/// A chat line.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Line {
    text: String,
}

/// A calculator.
///
/// Second paragraph.
#[strand::service]
pub trait Calc {
    /// Adds two numbers.
    ///
    /// Returns the sum.
    #[rpc(timeout_ms = 2500)]
    async fn add(&self, ctx: Context, req: Add) -> Result<i64, RpcError>;

    /// Counts.
    fn count(&self, ctx: Context, req: Add) -> impl Stream<Item = Result<u32, RpcError>>;

    #[rpc(name = "sumAll")]
    async fn sum_all(&self, ctx: Context, input: Incoming<Add>) -> Result<i64, RpcError>;

    /// Chats.
    fn chat(
        &self,
        ctx: Context,
        input: Incoming<Line>,
    ) -> impl Stream<Item = Result<Line, RpcError>>;

    /// Raw bytes.
    async fn upper(
        &self,
        ctx: Context,
        req: Value,
        input: RawReader,
    ) -> Result<(bool, RawBody), RpcError>;
}

fn method<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no method {name} in {doc:#}"))
}

#[test]
fn document_lists_every_method_with_its_wire_name_and_kind() {
    let doc = CalcClient::openrpc();
    assert_eq!(doc["openrpc"], "1.3.2");
    let names: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "count", "sumAll", "chat", "upper"]);
    let kinds: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["x-strand-kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unary", "server", "client", "duplex", "raw"]);
}

#[test]
fn document_carries_docs_timeouts_and_info() {
    let doc = CalcClient::openrpc();
    assert_eq!(doc["info"]["title"], "Calc");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["info"]["description"],
        "A calculator.\n\nSecond paragraph."
    );
    let add = method(&doc, "add");
    assert_eq!(add["summary"], "Adds two numbers.");
    assert_eq!(add["description"], "Adds two numbers.\n\nReturns the sum.");
    assert_eq!(add["x-strand-timeout-ms"], 2500);
    let sum_all = method(&doc, "sumAll");
    assert!(sum_all.get("summary").is_none(), "{sum_all:#}");
    assert!(sum_all.get("x-strand-timeout-ms").is_none(), "{sum_all:#}");
}

#[test]
fn params_are_the_request_fields_by_name_and_the_whole_schema() {
    let doc = CalcClient::openrpc();
    let add = method(&doc, "add");
    assert_eq!(add["paramStructure"], "by-name");
    assert_eq!(
        add["x-strand-params"],
        json!({ "$ref": "#/components/schemas/Add" })
    );
    assert_eq!(
        add["params"],
        json!([
            { "name": "a", "required": true, "description": "The first.", "schema": { "type": "integer", "format": "int64", "description": "The first." } },
            { "name": "b", "description": "The second, 0 when absent.", "schema": { "type": "integer", "format": "int64", "description": "The second, 0 when absent.", "default": 0 } },
        ])
    );
    assert_eq!(add["result"]["schema"]["type"], "integer");
    let schema = &doc["components"]["schemas"]["Add"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["description"], "Two numbers to add.");
    // The raw method's header is any JSON: one param holding it.
    let upper = method(&doc, "upper");
    assert_eq!(
        upper["params"],
        json!([{ "name": "params", "schema": true }])
    );
    assert_eq!(upper["result"]["schema"]["type"], "boolean");
    // Streaming kinds describe each message and each response.
    let chat = method(&doc, "chat");
    assert_eq!(
        chat["result"]["schema"],
        json!({ "$ref": "#/components/schemas/Line" })
    );
}

#[test]
fn every_method_lists_the_strand_error_codes() {
    let doc = CalcClient::openrpc();
    let errors = &doc["components"]["errors"];
    assert_eq!(errors["TimedOut"]["code"], -32008);
    assert_eq!(errors["Unauthorized"]["code"], -32020);
    assert_eq!(errors["InvalidParams"]["code"], -32602);
    for m in doc["methods"].as_array().unwrap() {
        let refs: Vec<&str> = m["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["$ref"].as_str().unwrap())
            .collect();
        assert!(refs.contains(&"#/components/errors/TimedOut"), "{refs:?}");
        for r in refs {
            let key = r.strip_prefix("#/components/errors/").unwrap();
            assert!(errors.get(key).is_some(), "dangling {r}");
        }
    }
}

struct Calculator;

impl Calc for Calculator {
    async fn add(&self, _ctx: Context, req: Add) -> Result<i64, RpcError> {
        Ok(req.a + req.b)
    }
    fn count(
        &self,
        _ctx: Context,
        _req: Add,
    ) -> impl Stream<Item = Result<u32, RpcError>> + Send + 'static {
        stream::empty()
    }
    async fn sum_all(&self, _ctx: Context, _input: Incoming<Add>) -> Result<i64, RpcError> {
        Ok(0)
    }
    fn chat(
        &self,
        _ctx: Context,
        _input: Incoming<Line>,
    ) -> impl Stream<Item = Result<Line, RpcError>> + Send + 'static {
        stream::empty()
    }
    async fn upper(
        &self,
        _ctx: Context,
        _req: Value,
        _input: RawReader,
    ) -> Result<(bool, RawBody), RpcError> {
        Ok((true, RawBody::empty()))
    }
}

async fn discover(router: Router) -> Result<Value, strand::ClientError> {
    let server = Server::builder(router).build();
    let (client_side, server_side) = memory::pair();
    server.spawn_connection(Arc::new(server_side));
    Client::new(client_side)
        .unary("rpc.discover", &json!({}))
        .await
}

#[tokio::test]
async fn rpc_discover_answers_with_the_document_when_enabled() {
    let router = Calculator.into_router().discover(CalcClient::openrpc());
    assert_eq!(discover(router).await.unwrap(), CalcClient::openrpc());
}

#[tokio::test]
async fn rpc_discover_is_off_by_default() {
    let err = discover(Calculator.into_router()).await.unwrap_err();
    assert_eq!(err.code(), Some(-32601), "{err:?}");
}

#[tokio::test]
async fn merged_routers_answer_with_the_merged_document() {
    let other = Router::new()
        .unary("ping", |_ctx, _p: Value| async { Ok::<_, RpcError>(()) })
        .discover(json!({
            "openrpc": "1.3.2",
            "info": { "title": "Ping", "version": "1" },
            "methods": [{ "name": "ping", "params": [], "result": { "name": "result", "schema": { "type": "null" } } }],
            "components": { "schemas": { "Pong": { "type": "null" } } },
        }));
    let router = Calculator
        .into_router()
        .discover(CalcClient::openrpc())
        .merge(other);
    let doc = discover(router).await.unwrap();
    assert_eq!(doc["info"]["title"], "Calc");
    let names: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "count", "sumAll", "chat", "upper", "ping"]);
    assert!(doc["components"]["schemas"]["Pong"].is_object());
    assert!(doc["components"]["schemas"]["Add"].is_object());
}

/// The document above is checked in as an example of the macro's output
/// (clients/ts/test/node/openrpc.test.mjs validates it against the OpenRPC
/// meta-schema and compiles a client generated from it); this keeps it
/// fresh. Regenerate it with `STRAND_BLESS=1 cargo test -p strand-macros --test openrpc`.
#[test]
fn checked_in_example_document_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../clients/ts/examples/calc.openrpc.json");
    let fresh = serde_json::to_string_pretty(&CalcClient::openrpc()).unwrap() + "\n";
    if std::env::var_os("STRAND_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is stale: regenerate it with `STRAND_BLESS=1 cargo test -p strand-macros --test openrpc`",
        path.display()
    );
}
