//! The official GHES API description, loaded from `ghes-oauth-authorizations.openapi.json`, and
//! a checker that judges a live response against it: is the status one the operation declares,
//! and does the body validate against the declared schema?
//!
//! The description is OpenAPI 3.0; its schemas are turned into JSON Schema by rewriting
//! `nullable: true` as `anyOf: [schema, {type: null}]`, keeping `$ref`s pointing into the same
//! `components` tree.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Statuses GHES really answers that the description does not list for an operation.
/// `GHES-API.md` documents them: `404` for an unknown id or an endpoint unavailable to the
/// user, `400` for malformed JSON, `401` on every authenticated endpoint, `403` for a login
/// lock-out or rate limit, `422` for validation on every write, `429` for a (secondary) rate
/// limit ("403/429 with those headers"). Their bodies are still checked, against `basic-error`
/// (or `validation-error` for 422).
const UNDECLARED_BUT_DOCUMENTED: &[u16] = &[400, 401, 403, 404, 422, 429];

/// The loaded description.
pub struct Description {
    document: Value,
}

impl Description {
    /// Loads the description from `$GHES_OPENAPI`, else `../shared/` beside the repository.
    /// `None` (with the reason printed) when it is absent and `CI` is not `true`; under CI a
    /// missing file fails the test.
    pub fn load() -> Option<Self> {
        let path = std::env::var_os("GHES_OPENAPI")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../shared/ghes-oauth-authorizations.openapi.json")
            });
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let document = serde_json::from_str(&text).expect("the description is JSON");
                Some(Self { document })
            }
            Err(error) => {
                let message = format!(
                    "the official API description is not at {} ({error}); set GHES_OPENAPI",
                    path.display()
                );
                if std::env::var("CI").is_ok_and(|value| value == "true") {
                    panic!("{message}");
                }
                eprintln!("SKIPPED: {message}");
                None
            }
        }
    }

    /// The operation serving `method path` (path relative to `/api/v3`, no query), with its
    /// path template.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let paths = self.document["paths"].as_object()?;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in paths {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal_matches = 0;
            let fits = parts.iter().zip(&segments).all(|(part, segment)| {
                if part.starts_with('{') {
                    true
                } else if part == segment {
                    literal_matches += 1;
                    true
                } else {
                    false
                }
            });
            let Some(operation) = item.get(method.to_ascii_lowercase()) else {
                continue;
            };
            if fits && best.is_none_or(|(score, _, _)| literal_matches > score) {
                best = Some((literal_matches, template.as_str(), operation));
            }
        }
        best.map(|(_, template, operation)| (template, operation))
    }

    /// Checks one response. `Err` says what is wrong.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let (template, operation) = self
            .operation(method, path)
            .ok_or_else(|| format!("{method} {path} is no operation of the description"))?;
        let declared = &operation["responses"];
        let response = match declared.get(status.to_string()) {
            Some(response) => self.resolve(response).clone(),
            None if UNDECLARED_BUT_DOCUMENTED.contains(&status) => {
                let schema = if status == 422 {
                    "validation-error"
                } else {
                    "basic-error"
                };
                json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            }
            None => {
                let allowed: Vec<&String> = declared
                    .as_object()
                    .map(|m| m.keys().collect())
                    .unwrap_or_default();
                return Err(format!(
                    "{method} {template} answered {status}; the description allows {allowed:?}"
                ));
            }
        };
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(format!(
                    "{method} {template} {status} declares no body but one was sent"
                ))
            };
        };
        let root = json!({
            "allOf": [convert(schema)],
            "components": convert(&self.document["components"]),
        });
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|error| format!("schema for {method} {template} {status}: {error}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|error| format!("{} at {}", error, error.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} {status} body breaks the schema: {}",
                errors.join("; ")
            ))
        }
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => self
                .document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or(value),
            None => value,
        }
    }
}

/// OpenAPI 3.0 schema → JSON Schema: `nullable: true` adds `null` to a plain `type` (so errors
/// name the failing keyword, e.g. a `format`), and becomes `anyOf [.., null]` otherwise.
fn convert(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
            let mut converted: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(key, _)| key.as_str() != "nullable")
                .map(|(key, value)| (key.clone(), convert(value)))
                .collect();
            if !nullable {
                return Value::Object(converted);
            }
            // `enum` would still refuse null under a widened `type`; keep `anyOf` for it.
            let plain_type = converted
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match plain_type {
                Some(kind) if !converted.contains_key("enum") => {
                    converted.insert("type".into(), json!([kind, "null"]));
                    Value::Object(converted)
                }
                _ => json!({"anyOf": [Value::Object(converted), {"type": "null"}]}),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(convert).collect()),
        other => other.clone(),
    }
}
