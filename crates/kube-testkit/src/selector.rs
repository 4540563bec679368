//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, `>`, `<`) and field selectors
//! (`metadata.name`, `metadata.namespace`, plus the few fields each resource supports), parsed
//! and matched like the API server does.

use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use super::resources::{Kind, ResourceInfo};

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

fn parse_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {detail}"))
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(text: &str) -> ApiResult<Vec<String>> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(parse_error("found ')', expected: identifier"));
                }
                current.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if depth != 0 {
        return Err(parse_error("found 'end of string', expected: ')'"));
    }
    parts.push(current);
    Ok(parts)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn checked_key(key: &str) -> ApiResult<String> {
    let key = key.trim();
    if valid_key(key) {
        Ok(key.to_owned())
    } else {
        Err(parse_error(format!(
            "key: Invalid value: {}: must be a valid label key",
            super::errors::go_quote(key)
        )))
    }
}

fn checked_value(value: &str) -> ApiResult<String> {
    let value = value.trim();
    if valid_value(value) {
        Ok(value.to_owned())
    } else {
        Err(parse_error(format!(
            "values[0]: Invalid value: {}: must be a valid label value",
            super::errors::go_quote(value)
        )))
    }
}

fn parse_set(text: &str) -> ApiResult<Vec<String>> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| parse_error("found 'end of string', expected: '('"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(checked_value)
        .collect()
}

/// Finds ` in ` / ` notin ` as a whole word after the key.
fn split_word<'a>(text: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut search = 0;
    while let Some(pos) = text[search..].find(word) {
        let at = search + pos;
        let before_ok = at > 0 && text[..at].ends_with(char::is_whitespace);
        let after = &text[at + word.len()..];
        let after_ok = after.starts_with(char::is_whitespace) || after.starts_with('(');
        if before_ok && after_ok {
            return Some((&text[..at], after));
        }
        search = at + word.len();
    }
    None
}

impl LabelSelector {
    /// Parses a `labelSelector` query parameter.
    pub fn parse(text: &str) -> ApiResult<Self> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                return Err(parse_error(
                    "found ',', expected: !, identifier, or 'end of string'",
                ));
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(checked_key(key)?)
            } else if let Some((key, set)) = split_word(part, "notin") {
                Requirement::NotIn(checked_key(key)?, parse_set(set)?)
            } else if let Some((key, set)) = split_word(part, "in") {
                Requirement::In(checked_key(key)?, parse_set(set)?)
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(checked_key(key)?, checked_value(value)?)
            } else if let Some((key, value)) = part.split_once("==") {
                Requirement::Equals(checked_key(key)?, checked_value(value)?)
            } else if let Some((key, value)) = part.split_once('=') {
                Requirement::Equals(checked_key(key)?, checked_value(value)?)
            } else if let Some((key, value)) = part.split_once('>') {
                let n = value.trim().parse().map_err(|_| {
                    parse_error("for 'Gt', 'Lt' operators, the value must be an integer")
                })?;
                Requirement::GreaterThan(checked_key(key)?, n)
            } else if let Some((key, value)) = part.split_once('<') {
                let n = value.trim().parse().map_err(|_| {
                    parse_error("for 'Gt', 'Lt' operators, the value must be an integer")
                })?;
                Requirement::LessThan(checked_key(key)?, n)
            } else {
                Requirement::Exists(checked_key(part)?)
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Whether this selector selects nothing but everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }
}

/// A parsed field selector.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Splits at unescaped commas and unescapes `\,`, `\=`, `\\`.
fn split_escaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            current.push(c);
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses a `fieldSelector` query parameter and checks that `info` supports its fields.
    pub fn parse(text: &str, info: &ResourceInfo) -> ApiResult<Self> {
        let mut terms = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in split_escaped(text, ',') {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let field = field.trim().to_owned();
            if !supported_field(info, &field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field, equal, unescape(value.trim())));
        }
        Ok(Self { terms })
    }

    /// A selector for one object name (the watch of a named object).
    pub fn name(name: &str) -> Self {
        Self {
            terms: vec![("metadata.name".into(), true, name.to_owned())],
        }
    }

    /// Whether an object (as `info` serves it) matches.
    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = field_value(info, obj, field).unwrap_or_default();
            (actual == *value) == *equal
        })
    }
}

/// The field labels each resource supports besides `metadata.name` and `metadata.namespace`.
fn extra_fields(info: &ResourceInfo) -> &'static [&'static str] {
    match info.rules {
        Kind::Secret => &["type"],
        Kind::Namespace => &["status.phase"],
        Kind::CoreEvent => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Event => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        _ => &[],
    }
}

fn supported_field(info: &ResourceInfo, field: &str) -> bool {
    field == "metadata.name"
        || field == "metadata.namespace"
        || extra_fields(info).contains(&field)
        || info
            .selectable_fields
            .iter()
            .any(|f| f.trim_start_matches('.') == field)
}

/// The value of a field label of an object (as `info` serves it).
fn field_value(info: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    let pointer = if field == "source" {
        "/source/component".to_owned()
    } else {
        format!("/{}", field.replace('.', "/"))
    };
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => {
            if info.rules == Kind::Secret && field == "type" {
                Some("Opaque".into())
            } else {
                None
            }
        }
        Some(other) => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "x", "tier": "web", "n": "5"}));
        let cases = [
            ("app=x", true),
            ("app==x", true),
            ("app!=x", false),
            ("app in (x,y)", true),
            ("app notin (x, y)", false),
            ("tier", true),
            ("!tier", false),
            ("missing!=x", true),
            ("missing notin (x)", true),
            ("app=x,tier in (web)", true),
            ("n>4", true),
            ("n<4", false),
            ("", true),
        ];
        for (sel, want) in cases {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn bad_selectors_are_bad_requests() {
        assert_eq!(LabelSelector::parse("a in (x").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("a b").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("a=,").unwrap_err().code, 400);
    }
}
