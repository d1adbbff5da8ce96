//! `strand describe URL`: the server's OpenRPC document (`rpc.discover`),
//! as JSON or as a table (docs/openrpc.md).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};
use strand::core::openrpc::DISCOVER_METHOD;
use strand::{Client, ClientError};

use crate::connect::ConnectArgs;

#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// ws://host:port[/path], wss://… or quic://host:port
    url: String,
    /// A table (method, kind, params, result, timeout, summary) instead of
    /// the JSON document.
    #[arg(long)]
    table: bool,
    #[command(flatten)]
    connect: ConnectArgs,
    /// How long to wait for the document, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DISCOVER_TIMEOUT_MS)]
    timeout: u64,
}

/// How long `describe`, `codegen` and `call`'s check wait for the document by
/// default (a server that neither answers nor refuses `rpc.discover` must not
/// hang them).
pub(crate) const DISCOVER_TIMEOUT_MS: u64 = 10_000;

pub(crate) async fn run(args: DescribeArgs) -> ExitCode {
    let endpoint = match args.connect.endpoint(&args.url) {
        Ok(e) => e,
        Err(e) => return crate::fail(e),
    };
    let client = match endpoint.connect().await {
        Ok(client) => client,
        Err(e) => return crate::fail(format!("cannot connect to {}: {e}", args.url)),
    };
    let document = discover(&client, Duration::from_millis(args.timeout)).await;
    crate::call::close(&client).await;
    let document = match document {
        Ok(Some(d)) => d,
        Ok(None) => {
            return crate::fail(format!(
                "{} does not describe itself: it has no `{DISCOVER_METHOD}` method (a strand server enables it with `Router::discover`)",
                args.url
            ))
        }
        Err(e) => return crate::fail(format!("{DISCOVER_METHOD}: {e}")),
    };
    if args.table {
        print!("{}", table(&document));
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

/// The server's document, or `None` when it has no `rpc.discover` (a strand
/// server answers -32601; a JS server resets the stream). Waits at most
/// `timeout`.
pub(crate) async fn discover(
    client: &Client,
    timeout: Duration,
) -> Result<Option<Value>, ClientError> {
    let call = client.call(DISCOVER_METHOD).timeout(timeout);
    match call.unary::<_, Value>(&json!({})).await {
        Ok(document) => Ok(Some(document)),
        Err(e) if e.code() == Some(strand::core::message::error_codes::METHOD_NOT_FOUND) => {
            Ok(None)
        }
        // A JS server resets the stream of a method it does not know.
        Err(ClientError::Unanswered(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The method object named `name` in `document`.
pub(crate) fn method<'a>(document: &'a Value, name: &str) -> Option<&'a Value> {
    document["methods"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

/// The schema of a method's whole params: `x-strand-params`, or for a
/// document without it, an object of the `params` content descriptors.
pub(crate) fn params_schema(method: &Value) -> Value {
    if let Some(schema) = method.get("x-strand-params") {
        return schema.clone();
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in method["params"].as_array().into_iter().flatten() {
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        properties.insert(
            name.to_string(),
            p.get("schema").cloned().unwrap_or(json!(true)),
        );
        if p["required"] == true {
            required.push(json!(name));
        }
    }
    json!({ "type": "object", "properties": properties, "required": required })
}

/// The component schemas `$ref`s point into.
pub(crate) fn schemas(document: &Value) -> Map<String, Value> {
    document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// A short type name for a schema: the `$ref`'s name, the `type`, or `any`.
fn short(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        _ => match schema["anyOf"].as_array() {
            Some(any) => any.iter().map(short).collect::<Vec<_>>().join("|"),
            None => "any".into(),
        },
    }
}

/// The document as an aligned table, one line per method.
pub(crate) fn table(document: &Value) -> String {
    let header = ["METHOD", "KIND", "PARAMS", "RESULT", "TIMEOUT", "SUMMARY"].map(String::from);
    let mut rows = vec![header];
    for m in document["methods"].as_array().into_iter().flatten() {
        rows.push([
            m["name"].as_str().unwrap_or("?").to_string(),
            m["x-strand-kind"].as_str().unwrap_or("?").to_string(),
            short(&params_schema(m)),
            short(&m["result"]["schema"]),
            m["x-strand-timeout-ms"]
                .as_u64()
                .map(|ms| format!("{ms}ms"))
                .unwrap_or_else(|| "-".into()),
            m["summary"].as_str().unwrap_or("").to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i < 5 {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
