//! OpenRPC service descriptions (docs/openrpc.md).
//!
//! An OpenRPC 1.3 document lists a service's methods with their params and
//! result as JSON Schemas. strand adds, per method:
//!
//! - `x-strand-kind`: `unary`, `server`, `client`, `duplex` or `raw`;
//! - `x-strand-params`: the schema of the whole params object (the standard
//!   `params` list has one entry per field of it, `paramStructure: by-name`);
//! - `x-strand-timeout-ms`: the method's own server-side timeout, when set.
//!
//! For a streaming kind, `params` describes each request message and
//! `result` each response; for raw, `result` is the leading response.
//!
//! [`Describer`] (feature `openrpc`) builds a document from Rust types with
//! `schemars`; `#[strand::service]` uses it to generate
//! `{Trait}Client::openrpc()`. [`Router::discover`](crate::server::Router::discover)
//! serves documents as the `rpc.discover` method.

use serde_json::{json, Map, Value};

use crate::message::error_codes;
use crate::server::CallKind;

/// The method name a server answers with its document (OpenRPC's service
/// discovery method).
pub const DISCOVER_METHOD: &str = "rpc.discover";

/// The OpenRPC version the documents follow.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// The `x-strand-kind` value of a call kind.
pub fn kind_name(kind: CallKind) -> &'static str {
    match kind {
        CallKind::Unary => "unary",
        CallKind::ServerStreaming => "server",
        CallKind::ClientStreaming => "client",
        CallKind::Duplex => "duplex",
        CallKind::Raw => "raw",
    }
}

/// The call kind an `x-strand-kind` value names.
pub fn kind_from_name(name: &str) -> Option<CallKind> {
    Some(match name {
        "unary" => CallKind::Unary,
        "server" => CallKind::ServerStreaming,
        "client" => CallKind::ClientStreaming,
        "duplex" => CallKind::Duplex,
        "raw" => CallKind::Raw,
        _ => return None,
    })
}

/// strand's error codes a call can end with, as OpenRPC error objects keyed
/// by their component name (docs/protocol.md, "Error codes").
fn call_errors() -> [(&'static str, i64, &'static str); 9] {
    [
        (
            "InvalidParams",
            error_codes::INVALID_PARAMS,
            "The params did not match the method's params schema",
        ),
        (
            "InternalError",
            error_codes::INTERNAL_ERROR,
            "The server failed",
        ),
        (
            "ServerStopping",
            error_codes::SERVER_STOPPING,
            "The server is shutting down and aborted the call",
        ),
        (
            "MessageTooLong",
            error_codes::MESSAGE_TOO_LONG,
            "A message was longer than the reader's limit",
        ),
        (
            "HandlerError",
            error_codes::HANDLER_ERROR,
            "The handler returned an error (details in data)",
        ),
        (
            "StreamEnded",
            error_codes::STREAM_ENDED,
            "The stream ended before the call completed",
        ),
        (
            "TimedOut",
            error_codes::TIMED_OUT,
            "The call ran past its deadline",
        ),
        (
            "HandlerAborted",
            error_codes::HANDLER_ABORTED,
            "The handler was aborted",
        ),
        (
            "Unauthorized",
            error_codes::UNAUTHORIZED,
            "Authentication refused the call",
        ),
    ]
}

/// One method of a document, as [`Describer::method`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec<'a> {
    /// The wire name.
    pub name: &'a str,
    /// The call kind.
    pub kind: CallKind,
    /// The doc comment (first paragraph becomes the summary).
    pub docs: &'a str,
    /// The method's own server-side timeout in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// Puts `methods` and `schemas` together as one document.
fn document(info: Value, methods: Vec<Value>, schemas: Map<String, Value>) -> Value {
    let errors: Map<String, Value> = call_errors()
        .iter()
        .map(|(key, code, message)| (key.to_string(), json!({ "code": code, "message": message })))
        .collect();
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": methods,
        "components": { "schemas": schemas, "errors": errors },
    })
}

/// One document for several: the first one's `info`, every method (a later
/// document's method replaces a same-named one, as in `Router::merge`), and
/// the union of the component schemas. A same-named schema is taken from
/// the later document.
pub fn merge_documents(documents: &[Value]) -> Value {
    let Some(first) = documents.first() else {
        return document(
            json!({ "title": "strand", "version": "0.0.0" }),
            vec![],
            Map::new(),
        );
    };
    if documents.len() == 1 {
        return first.clone();
    }
    let mut methods: Vec<Value> = Vec::new();
    let mut schemas = Map::new();
    for doc in documents {
        for m in doc["methods"].as_array().into_iter().flatten() {
            methods.retain(|old| old["name"] != m["name"]);
            methods.push(m.clone());
        }
        if let Some(s) = doc["components"]["schemas"].as_object() {
            schemas.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    document(first["info"].clone(), methods, schemas)
}

#[cfg(feature = "openrpc")]
pub use describe::Describer;

#[cfg(feature = "openrpc")]
mod describe {
    use schemars::generate::{SchemaGenerator, SchemaSettings};
    use schemars::JsonSchema;
    use serde_json::{json, Map, Value};

    use super::{call_errors, document, kind_name, MethodSpec};

    /// Builds the method object of a document from schemas already generated.
    fn method_object(
        spec: &MethodSpec<'_>,
        params: Value,
        flat: Vec<Value>,
        result: Value,
    ) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(spec.name));
        let docs = spec.docs.trim();
        if !docs.is_empty() {
            let summary = docs.split("\n\n").next().unwrap_or(docs).replace('\n', " ");
            m.insert("summary".into(), json!(summary));
            m.insert("description".into(), json!(docs));
        }
        m.insert("params".into(), Value::Array(flat));
        m.insert("paramStructure".into(), json!("by-name"));
        m.insert(
            "result".into(),
            json!({ "name": "result", "schema": result }),
        );
        let errors: Vec<Value> = call_errors()
            .iter()
            .map(|(key, _, _)| json!({ "$ref": format!("#/components/errors/{key}") }))
            .collect();
        m.insert("errors".into(), Value::Array(errors));
        m.insert("x-strand-kind".into(), json!(kind_name(spec.kind)));
        m.insert("x-strand-params".into(), params);
        if let Some(ms) = spec.timeout_ms {
            m.insert("x-strand-timeout-ms".into(), json!(ms));
        }
        Value::Object(m)
    }

    /// The content descriptors of a params schema: one per property when it is
    /// an object (resolving a `$ref` into `schemas`), else one named `params`.
    fn flatten_params(params: &Value, schemas: &Map<String, Value>) -> Vec<Value> {
        let resolved = params
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .and_then(|name| schemas.get(name))
            .unwrap_or(params);
        let Some(props) = resolved.get("properties").and_then(Value::as_object) else {
            return vec![json!({ "name": "params", "schema": params })];
        };
        let required: Vec<&str> = resolved
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        props
            .iter()
            .map(|(name, schema)| {
                let mut d = json!({ "name": name, "schema": schema });
                if required.contains(&name.as_str()) {
                    d["required"] = json!(true);
                }
                if let Some(desc) = schema.get("description") {
                    d["description"] = desc.clone();
                }
                d
            })
            .collect()
    }

    /// Builds an OpenRPC document from Rust types: their JSON Schemas
    /// (draft 07, as OpenRPC 1.3 wants) go in `components.schemas`.
    pub struct Describer {
        generator: SchemaGenerator,
        info: Value,
        methods: Vec<(MethodSpec<'static>, Value, Value)>,
    }

    impl std::fmt::Debug for Describer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Describer")
                .field("info", &self.info)
                .finish_non_exhaustive()
        }
    }

    impl Describer {
        /// A document titled `title` at `version`, with `description`
        /// (omitted when empty).
        pub fn new(title: &str, version: &str, description: &str) -> Self {
            let settings = SchemaSettings::draft07().with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.meta_schema = None;
            });
            let mut info = json!({ "title": title, "version": version });
            if !description.trim().is_empty() {
                info["description"] = json!(description.trim());
            }
            Self {
                generator: settings.into_generator(),
                info,
                methods: Vec::new(),
            }
        }

        /// Adds a method whose params (each request message) are `P` and
        /// whose result (each response, or the leading response) is `R`.
        pub fn method<P: JsonSchema + ?Sized, R: JsonSchema + ?Sized>(
            &mut self,
            spec: MethodSpec<'static>,
        ) -> &mut Self {
            let params = self.generator.subschema_for::<P>().to_value();
            let result = self.generator.subschema_for::<R>().to_value();
            self.methods.push((spec, params, result));
            self
        }

        /// The document.
        pub fn finish(mut self) -> Value {
            let schemas = self.generator.take_definitions(true);
            let methods = self
                .methods
                .iter()
                .map(|(spec, params, result)| {
                    let flat = flatten_params(params, &schemas);
                    method_object(spec, params.clone(), flat, result.clone())
                })
                .collect();
            document(self.info, methods, schemas)
        }
    }
}
