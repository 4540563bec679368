//! CEL validation rules (`x-kubernetes-validations`) of custom resource schemas, evaluated as
//! the API server does: each rule at the schema node that carries it, with `self` the value
//! there; a transition rule (one that names `oldSelf`) only on an update, where the old object
//! has a value at the same place. A rule that is false is an `Invalid` field error with the
//! rule's `message` (or `failed rule: <rule>`), at the node's path or its `fieldPath`.
//!
//! The interpreter is the `cel` crate with CEL's standard library (which has `duration()`,
//! `matches()`, `has()` and the comprehension macros); Kubernetes' own extension libraries
//! (`url()`, `quantity()`, `isSorted()`, …) are not available: a rule that calls one fails to
//! evaluate and is reported as such, never silently passed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;

use super::errors::FieldError;
use super::memo::Memo;
use super::schema::join;

/// Compiled rules and CEL's standard library, kept per thread.
#[derive(Default)]
struct Compiled {
    env: Option<Arc<cel::Env>>,
    programs: Memo<Result<cel::Program, String>>,
}

thread_local! {
    static COMPILED: RefCell<Compiled> = RefCell::default();
}

/// `rule`, compiled (or why it does not compile), and the standard library to run it with.
fn compiled(rule: &str) -> (Rc<Result<cel::Program, String>>, Arc<cel::Env>) {
    COMPILED.with_borrow_mut(|compiled| {
        let env = compiled
            .env
            .get_or_insert_with(|| Arc::new(cel::Env::stdlib()))
            .clone();
        let program = compiled.programs.get(rule, |rule| {
            cel::Program::compile(rule).map_err(|e| e.to_string())
        });
        (program, env)
    })
}

/// Every rule of `schema` that does not compile, as `(path, rule, error)`: the CRD is refused.
pub(crate) fn compile_errors(schema: &Value) -> Vec<(String, String, String)> {
    let mut errors = Vec::new();
    for (path, rule) in super::schema::cel_rules(schema) {
        if let Err(error) = cel::Program::compile(&rule) {
            errors.push((path, rule, error.to_string()));
        }
    }
    errors
}

/// The field errors of `new` (and, on an update, `old`) under the CEL rules of `schema`.
/// `metadata`, `apiVersion` and `kind` carry no rules here (the operator's CRDs put none there).
pub(crate) fn validate(new: &Value, old: Option<&Value>, schema: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(new, old, schema, "", &mut errors);
    errors
}

fn walk(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    check_rules(value, old, schema, path, errors);
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|v| v.is_object());
            for (key, child) in map {
                let old_child = old.and_then(|o| o.get(key));
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    walk(child, old_child, child_schema, &join(path, key), errors);
                } else if let Some(child_schema) = additional {
                    walk(
                        child,
                        old_child,
                        child_schema,
                        &format!("{path}[{key}]"),
                        errors,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                // Old items correlate only through the keys of a map list, as in the API server.
                let keys: Vec<&str> = if schema
                    .get("x-kubernetes-list-type")
                    .and_then(Value::as_str)
                    == Some("map")
                {
                    schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                for (index, item) in items.iter().enumerate() {
                    let old_item = (!keys.is_empty())
                        .then(|| {
                            old.and_then(Value::as_array)?.iter().find(|candidate| {
                                keys.iter().all(|key| candidate.get(key) == item.get(key))
                            })
                        })
                        .flatten();
                    walk(
                        item,
                        old_item,
                        item_schema,
                        &format!("{path}[{index}]"),
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_rules(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for rule in rules {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        let (program, env) = compiled(text);
        let program = match program.as_ref() {
            Ok(program) => program,
            Err(error) => {
                errors.push(FieldError::invalid(
                    path,
                    Value::String(type_name(value).into()),
                    format!("compilation failed: {error}"),
                ));
                continue;
            }
        };
        let transition = program.references().has_variable("oldSelf");
        if transition && old.is_none() {
            continue;
        }
        let mut context = cel::Context::with_env(env);
        let bind =
            |context: &mut cel::Context, name: &str, value: &Value| match cel::to_value(value) {
                Ok(value) => {
                    context.add_variable_from_value(name.to_owned(), value);
                    true
                }
                Err(_) => false,
            };
        let bound = bind(&mut context, "self", value)
            && old.is_none_or(|old| bind(&mut context, "oldSelf", old));
        let field = match rule.get("fieldPath").and_then(Value::as_str) {
            Some(relative) => format!("{path}{relative}"),
            None => path.to_owned(),
        };
        let detail = match (bound, bound.then(|| program.execute(&context))) {
            (true, Some(Ok(cel::Value::Bool(true)))) => continue,
            (true, Some(Ok(cel::Value::Bool(false)))) => rule
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| format!("failed rule: {text}"), str::to_owned),
            (true, Some(Ok(other))) => format!("rule {text:?} gave {other:?}, not a bool"),
            (true, Some(Err(error))) => format!("rule {text:?} could not be evaluated: {error}"),
            _ => format!("rule {text:?}: the value cannot be given to CEL"),
        };
        let error = match rule.get("reason").and_then(Value::as_str) {
            Some("FieldValueRequired") => FieldError::required(field, detail),
            Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
            Some("FieldValueDuplicate") => {
                let mut error =
                    FieldError::duplicate(field, Value::String(type_name(value).into()));
                error.detail = detail;
                error
            }
            _ => FieldError::invalid(field, Value::String(type_name(value).into()), detail),
        };
        errors.push(error);
    }
}

/// What the API server shows as the value of a failed rule: the value's type.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "has(self.app) == has(oldSelf.app)", "message": "app cannot be added or removed"},
                        {"rule": "!has(self.a) || !has(self.b)", "message": "set a or b, not both"}
                    ],
                    "properties": {
                        "a": {"type": "string"},
                        "b": {"type": "string"},
                        "app": {"type": "object", "properties": {
                            "id": {"type": "string", "x-kubernetes-validations": [
                                {"rule": "self == oldSelf", "message": "id is immutable"}
                            ]}
                        }},
                        "every": {"type": "string", "x-kubernetes-validations": [
                            {"rule": "duration(self) >= duration('30s')", "message": "every must be at least 30s"}
                        ]},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                            "x-kubernetes-validations": [
                                {"rule": "!('managed-by' in self)", "message": "no managed-by", "fieldPath": "['managed-by']"}
                            ]}
                    }
                }
            }
        })
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(FieldError::message).collect()
    }

    #[test]
    fn rules_hold_or_name_the_field() {
        let ok = json!({"spec": {"a": "x", "every": "1m30s", "labels": {"team": "a"}}});
        assert!(validate(&ok, None, &schema()).is_empty());
        let bad =
            json!({"spec": {"a": "x", "b": "y", "every": "10s", "labels": {"managed-by": "me"}}});
        assert_eq!(
            messages(&validate(&bad, None, &schema())),
            [
                "spec: Invalid value: \"object\": set a or b, not both",
                "spec.every: Invalid value: \"string\": every must be at least 30s",
                "spec.labels['managed-by']: Invalid value: \"object\": no managed-by",
            ]
        );
    }

    #[test]
    fn transition_rules_run_on_updates_only() {
        let created = json!({"spec": {"app": {"id": "one"}}});
        assert!(validate(&created, None, &schema()).is_empty());
        let changed = json!({"spec": {"app": {"id": "two"}}});
        assert_eq!(
            messages(&validate(&changed, Some(&created), &schema())),
            ["spec.app.id: Invalid value: \"string\": id is immutable"]
        );
        let removed = json!({"spec": {}});
        assert_eq!(
            messages(&validate(&removed, Some(&created), &schema())),
            ["spec: Invalid value: \"object\": app cannot be added or removed"]
        );
    }

    #[test]
    fn a_rule_that_cannot_compile_is_reported() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==", "message": "m"}]});
        assert_eq!(compile_errors(&schema).len(), 1);
        assert!(messages(&validate(&json!({}), None, &schema))[0].contains("compilation failed"));
    }
}
