//! `metadata` rules every object follows: names, labels, annotations, finalizers and owner
//! references are validated with the API server's messages; uids, timestamps and generated names
//! are made here.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use rand::Rng;
use regex::Regex;
use serde_json::Value;

use super::errors::FieldError;

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$"))
        .unwrap_or_else(|e| unreachable!("the constant pattern {pattern} compiles: {e}"))
}

static LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL));
static SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN));
static QUALIFIED_RE: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME));
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE));

fn subdomain_message() -> String {
    format!(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
    )
}

fn label_message() -> String {
    format!(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL}')"
    )
}

/// Problems of a DNS-1123 subdomain (most object names).
pub(crate) fn subdomain_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > 253 {
        problems.push("must be no more than 253 characters".to_owned());
    }
    if !SUBDOMAIN_RE.is_match(name) {
        problems.push(subdomain_message());
    }
    problems
}

/// Problems of a DNS-1123 label (namespace names).
pub(crate) fn label_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > 63 {
        problems.push("must be no more than 63 characters".to_owned());
    }
    if !LABEL_RE.is_match(name) {
        problems.push(label_message());
    }
    problems
}

fn qualified_name_problems(key: &str) -> Vec<String> {
    let qualified_message = format!(
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{QUALIFIED_NAME}')"
    );
    let parts: Vec<&str> = key.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![format!(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{QUALIFIED_NAME}') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    let mut problems = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            problems.push("prefix part must be non-empty".to_owned());
        } else {
            problems.extend(
                subdomain_problems(prefix)
                    .into_iter()
                    .map(|p| format!("prefix part {p}")),
            );
        }
    }
    if name.is_empty() {
        problems.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            problems.push("name part must be no more than 63 characters".to_owned());
        }
        if !QUALIFIED_RE.is_match(name) {
            problems.push(qualified_message);
        }
    }
    problems
}

/// Validates the name of a new object.
pub(crate) fn validate_name(name: &str, dns_label: bool) -> Vec<FieldError> {
    let problems = if dns_label {
        label_problems(name)
    } else {
        subdomain_problems(name)
    };
    problems
        .into_iter()
        .map(|p| FieldError::invalid("metadata.name", Value::String(name.to_owned()), p))
        .collect()
}

/// The largest total size of an object's annotations.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Validates labels, annotations, finalizers and owner references.
pub(crate) fn validate_meta(meta: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (key, value) in labels {
            for p in qualified_name_problems(key) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    Value::String(key.clone()),
                    p,
                ));
            }
            let value = value.as_str().unwrap_or_default();
            if value.len() > 63 {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    Value::String(value.to_owned()),
                    "must be no more than 63 characters",
                ));
            }
            if !LABEL_VALUE_RE.is_match(value) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    Value::String(value.to_owned()),
                    format!("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '{LABEL_VALUE}')"),
                ));
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (key, value) in annotations {
            for p in qualified_name_problems(&key.to_lowercase()) {
                errors.push(FieldError::invalid(
                    "metadata.annotations",
                    Value::String(key.clone()),
                    p,
                ));
            }
            total += key.len() + value.as_str().map_or(0, str::len);
        }
        if total > ANNOTATIONS_MAX_BYTES {
            errors.push(FieldError::too_long(
                "metadata.annotations",
                ANNOTATIONS_MAX_BYTES,
            ));
        }
    }
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in finalizers.iter().enumerate() {
            let f = f.as_str().unwrap_or_default();
            for p in qualified_name_problems(f) {
                errors.push(FieldError::invalid(
                    format!("metadata.finalizers[{i}]"),
                    Value::String(f.to_owned()),
                    p,
                ));
            }
        }
    }
    if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
        let mut controllers = 0;
        for r in refs {
            let field = |name: &str| r.get(name).and_then(Value::as_str).unwrap_or_default();
            for (name, what) in [
                ("apiVersion", "version"),
                ("kind", "kind"),
                ("name", "name"),
                ("uid", "uid"),
            ] {
                if field(name).is_empty() {
                    errors.push(FieldError::invalid(
                        format!("metadata.ownerReferences.{name}"),
                        Value::String(String::new()),
                        format!("{what} must not be empty"),
                    ));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errors.push(FieldError::invalid(
                "metadata.ownerReferences",
                Value::Array(refs.clone()),
                "Only one reference can have Controller set to true",
            ));
        }
    }
    errors
}

fn finalizers(meta: &Value) -> BTreeSet<String> {
    meta.get("finalizers")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Validates an update of `metadata`: once an object is being deleted, no new finalizers.
pub(crate) fn validate_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = validate_meta(new);
    if old.get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        let added: Vec<String> = finalizers(new)
            .difference(&finalizers(old))
            .cloned()
            .collect();
        if !added.is_empty() {
            let listed: Vec<String> = added.iter().map(|f| super::errors::go_quote(f)).collect();
            errors.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    listed.join(", ")
                ),
            ));
        }
    }
    errors
}

/// Now, as `metav1.Time` renders it (RFC 3339, whole seconds, UTC).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random version-4 UUID.
pub(crate) fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The five random characters the API server appends to a `generateName`.
pub(crate) fn generated_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_checked_like_the_api_server() {
        assert!(validate_name("ok-name.x", false).is_empty());
        let errs = validate_name("Bad_Name", false);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message().starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert!(!validate_name("a.b", true).is_empty());
    }

    #[test]
    fn labels_and_finalizers_are_checked() {
        let meta = json!({"labels": {"app.kubernetes.io/name": "ok", "bad key": "x", "k": "bad value"},
            "finalizers": ["oauth.ghes.io/cleanup", "no good/x/y"]});
        let errs = validate_meta(&meta);
        assert_eq!(errs.len(), 3, "{errs:#?}");
    }

    #[test]
    fn no_new_finalizers_on_a_deleting_object() {
        let old = json!({"deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a/b"]});
        let new =
            json!({"deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a/b", "c/d"]});
        let errs = validate_meta_update(&new, &old);
        assert_eq!(
            errs[0].message(),
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\"}"
        );
        assert!(validate_meta_update(&json!({"finalizers": []}), &old).is_empty());
    }

    #[test]
    fn uids_look_like_uuids() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
    }
}
