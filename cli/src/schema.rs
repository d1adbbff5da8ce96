//! Checks a JSON value against a JSON Schema of an OpenRPC document, for
//! `strand call`'s params check (docs/openrpc.md, "strand call").
//!
//! The keywords `schemars` writes (draft 07): `type`, `enum`, `const`,
//! `properties`, `required`, `additionalProperties`, `items`, `anyOf`,
//! `oneOf`, `allOf`, `minimum`, `maximum`, `minItems`, `maxItems`, boolean
//! schemas and `$ref` into `#/components/schemas/`. Other keywords (`format`,
//! `pattern`, ...) are not checked: the server still checks the params, this
//! only catches mistakes before the call with a precise path.

use serde_json::{Map, Value};

/// How deep `$ref`s may nest before the schema is treated as recursive
/// beyond reason (a bound on the work per value, not a limit of real types).
const MAX_DEPTH: usize = 64;

/// The first mismatch: where (a JSON pointer into the value) and what.
#[derive(Debug, PartialEq)]
pub(crate) struct Mismatch {
    pub(crate) path: String,
    pub(crate) reason: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "at {path}: {}", self.reason)
    }
}

/// Checks `value` against `schema`, resolving `$ref`s in `schemas`
/// (`components.schemas` of the document).
pub(crate) fn check(
    value: &Value,
    schema: &Value,
    schemas: &Map<String, Value>,
) -> Result<(), Mismatch> {
    Checker { schemas }.check(value, schema, &mut String::new(), 0)
}

struct Checker<'a> {
    schemas: &'a Map<String, Value>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, ty: &str) -> bool {
    match (ty, value) {
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        ("number", Value::Number(_)) => true,
        (ty, value) => type_name(value) == ty,
    }
}

impl Checker<'_> {
    fn fail(path: &str, reason: String) -> Result<(), Mismatch> {
        Err(Mismatch {
            path: path.to_string(),
            reason,
        })
    }

    fn check(
        &self,
        value: &Value,
        schema: &Value,
        path: &mut String,
        depth: usize,
    ) -> Result<(), Mismatch> {
        if depth > MAX_DEPTH {
            return Self::fail(path, format!("schema nested deeper than {MAX_DEPTH}"));
        }
        let s = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Self::fail(path, "no value is allowed here".into()),
            Value::Object(s) => s,
            _ => return Ok(()),
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.strip_prefix("#/components/schemas/");
            match name.and_then(|n| self.schemas.get(n)) {
                Some(target) => self.check(value, target, path, depth + 1)?,
                None => return Self::fail(path, format!("unresolvable $ref {r}")),
            }
        }
        if let Some(ty) = s.get("type") {
            let types: Vec<&str> = match ty {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
                return Self::fail(
                    path,
                    format!("expected {}, got {}", types.join(" or "), type_name(value)),
                );
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                return Self::fail(
                    path,
                    format!("expected one of {}, got {value}", list.join(", ")),
                );
            }
        }
        if let Some(c) = s.get("const") {
            if c != value {
                return Self::fail(path, format!("expected {c}, got {value}"));
            }
        }
        self.check_number(value, s, path)?;
        match value {
            Value::Object(obj) => self.check_object(obj, s, path, depth)?,
            Value::Array(items) => self.check_array(items, s, path, depth)?,
            _ => {}
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(value, sub, path, depth + 1)?;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(any) = s.get(key).and_then(Value::as_array) {
                let mut first = None;
                let matched = any
                    .iter()
                    .any(|sub| match self.check(value, sub, path, depth + 1) {
                        Ok(()) => true,
                        Err(e) => {
                            first.get_or_insert(e);
                            false
                        }
                    });
                if !matched {
                    return Err(first.unwrap_or(Mismatch {
                        path: path.clone(),
                        reason: format!("matches none of {key}"),
                    }));
                }
            }
        }
        Ok(())
    }

    fn check_number(
        &self,
        value: &Value,
        s: &Map<String, Value>,
        path: &str,
    ) -> Result<(), Mismatch> {
        let Some(n) = value.as_f64() else {
            return Ok(());
        };
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return Self::fail(path, format!("{value} is below the minimum {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return Self::fail(path, format!("{value} is above the maximum {max}"));
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        obj: &Map<String, Value>,
        s: &Map<String, Value>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), Mismatch> {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str() {
                if !obj.contains_key(name) {
                    return Self::fail(path, format!("missing required field `{name}`"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, v) in obj {
            let sub = match props.and_then(|p| p.get(key)) {
                Some(sub) => sub,
                None => match s.get("additionalProperties") {
                    Some(extra) => extra,
                    None => continue,
                },
            };
            let len = path.len();
            path.push('/');
            path.push_str(&key.replace('~', "~0").replace('/', "~1"));
            self.check(v, sub, path, depth + 1)?;
            path.truncate(len);
        }
        Ok(())
    }

    fn check_array(
        &self,
        items: &[Value],
        s: &Map<String, Value>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), Mismatch> {
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                return Self::fail(
                    path,
                    format!("expected at least {min} items, got {}", items.len()),
                );
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                return Self::fail(
                    path,
                    format!("expected at most {max} items, got {}", items.len()),
                );
            }
        }
        if let Some(item) = s.get("items").filter(|i| i.is_object() || i.is_boolean()) {
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                self.check(v, item, path, depth + 1)?;
                path.truncate(len);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mismatch(value: Value, schema: Value, schemas: Value) -> Option<String> {
        let schemas = schemas.as_object().cloned().unwrap_or_default();
        check(&value, &schema, &schemas)
            .err()
            .map(|m| m.to_string())
    }

    #[test]
    fn reports_the_path_of_the_first_mismatch() {
        let schemas = json!({
            "Add": { "type": "object", "required": ["a"], "properties": {
                "a": { "type": "integer", "format": "uint64", "minimum": 0 },
                "tags": { "type": "array", "items": { "$ref": "#/components/schemas/Tag" } },
            } },
            "Tag": { "type": "string", "enum": ["x", "y"] },
        });
        let add = json!({ "$ref": "#/components/schemas/Add" });
        assert_eq!(
            mismatch(
                json!({ "a": 1, "tags": ["x"] }),
                add.clone(),
                schemas.clone()
            ),
            None
        );
        assert_eq!(
            mismatch(json!({ "a": "1" }), add.clone(), schemas.clone()).as_deref(),
            Some("at /a: expected integer, got string")
        );
        assert_eq!(
            mismatch(json!({ "a": -1 }), add.clone(), schemas.clone()).as_deref(),
            Some("at /a: -1 is below the minimum 0")
        );
        assert_eq!(
            mismatch(json!({}), add.clone(), schemas.clone()).as_deref(),
            Some("at /: missing required field `a`")
        );
        assert_eq!(
            mismatch(
                json!({ "a": 1, "tags": ["x", "z"] }),
                add.clone(),
                schemas.clone()
            )
            .as_deref(),
            Some(r#"at /tags/1: expected one of "x", "y", got "z""#)
        );
        // Unknown fields pass (the params carry `metadata`, and the server decides).
        assert_eq!(
            mismatch(json!({ "a": 1, "extra": true }), add, schemas),
            None
        );
    }

    #[test]
    fn nullable_and_any_schemas() {
        let opt = json!({ "anyOf": [{ "type": "string" }, { "type": "null" }] });
        assert_eq!(mismatch(json!(null), opt.clone(), json!({})), None);
        assert_eq!(
            mismatch(json!(3), opt, json!({})).as_deref(),
            Some("at /: expected string, got integer")
        );
        assert_eq!(
            mismatch(json!([1, { "a": 2 }]), json!(true), json!({})),
            None
        );
        assert_eq!(
            mismatch(
                json!(1.0),
                json!({ "type": ["integer", "null"] }),
                json!({})
            ),
            None
        );
    }

    #[test]
    fn a_recursive_ref_is_bounded() {
        let schemas = json!({ "Loop": { "$ref": "#/components/schemas/Loop" } });
        let err = mismatch(
            json!(1),
            json!({ "$ref": "#/components/schemas/Loop" }),
            schemas,
        )
        .unwrap();
        assert!(err.contains("deeper than"), "{err}");
    }
}
