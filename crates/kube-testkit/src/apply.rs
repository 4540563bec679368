//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write records which fields each field manager set: `Update` entries for create, update
//! and patch requests (the fields that request changed), `Apply` entries for apply requests (the
//! fields the applied configuration names). Apply then works like the API server's:
//! - a field the same manager applied before and now omits is removed, unless another manager
//!   also owns it;
//! - a field owned by another manager whose value the applied configuration changes is a 409
//!   conflict, unless `force=true`, which takes the field over;
//! - maps merge key by key; lists are atomic, except `x-kubernetes-list-type: set` (merged by
//!   value) and `map` (merged by their `x-kubernetes-list-map-keys`); `metadata.finalizers` is a
//!   set and `metadata.ownerReferences` a map keyed by `uid`, as in the built-in types.
//!
//! `fieldsV1` is rendered in the real format (`f:`, `k:`, `v:` and `.`), so tools that read it work;
//! it is simplified in that list items are never tracked by index (`i:`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::errors::{ApiError, go_quote};
use super::schema::{ListType, Step, list_type, schema_at};

/// One element of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Pe {
    Field(String),
    /// An item of a map list, by its key fields (canonical JSON).
    Key(String),
    /// An item of a set list, by its value (canonical JSON).
    Value(String),
}

/// A path into an object.
pub(crate) type FieldPath = Vec<Pe>;
/// A set of paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// `Apply` or `Update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ManagedEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub fields: FieldSet,
}

/// Who writes: the manager, the API version it speaks and the subresource it writes through.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pub manager: String,
    pub api_version: String,
    pub subresource: String,
}

/// Which part of an object a write can own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource; `status` is excluded when it has its own subresource.
    Main { status_separate: bool },
    /// The `status` subresource: only `status`.
    Status,
}

/// What kind of list a path holds.
pub(crate) struct Shape<'a> {
    pub schema: Option<&'a Value>,
}

impl Shape<'_> {
    fn list_type(&self, path: &[Pe]) -> ListType {
        match path {
            [Pe::Field(m), Pe::Field(f)] if m == "metadata" && f == "finalizers" => {
                return ListType::Set;
            }
            [Pe::Field(m), Pe::Field(f)] if m == "metadata" && f == "ownerReferences" => {
                return ListType::Map(vec!["uid".into()]);
            }
            [Pe::Field(m), ..] if m == "metadata" => return ListType::Atomic,
            _ => {}
        }
        let Some(schema) = self.schema else {
            return ListType::Atomic;
        };
        let steps: Vec<Step<'_>> = path
            .iter()
            .map(|pe| match pe {
                Pe::Field(name) => Step::Field(name),
                Pe::Key(_) | Pe::Value(_) => Step::Item,
            })
            .collect();
        schema_at(schema, &steps).map_or(ListType::Atomic, list_type)
    }
}

fn canonical(value: &Value) -> String {
    // serde_json's map is ordered by key, so this is canonical.
    value.to_string()
}

fn key_of(item: &Value, keys: &[String]) -> String {
    let mut key = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            key.insert(k.clone(), v.clone());
        }
    }
    canonical(&Value::Object(key))
}

fn in_scope(path: &[Pe], scope: Scope) -> bool {
    let Some(Pe::Field(first)) = path.first() else {
        return false;
    };
    match first.as_str() {
        "apiVersion" | "kind" => false,
        "metadata" => {
            scope != Scope::Status
                && matches!(path.get(1), Some(Pe::Field(f)) if matches!(f.as_str(), "labels" | "annotations" | "finalizers" | "ownerReferences"))
        }
        "status" => match scope {
            Scope::Status => true,
            Scope::Main { status_separate } => !status_separate,
        },
        _ => scope != Scope::Status,
    }
}

/// Every path of `obj` (interior nodes and leaves) a write in `scope` can own.
pub(crate) fn field_set(obj: &Value, shape: &Shape<'_>, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    walk(obj, &mut path, shape, &mut out);
    out.retain(|p| in_scope(p, scope));
    out
}

fn walk(value: &Value, path: &mut FieldPath, shape: &Shape<'_>, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, child) in map {
                path.push(Pe::Field(k.clone()));
                walk(child, path, shape, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            out.insert(path.clone());
            match shape.list_type(path) {
                ListType::Atomic => {}
                ListType::Set => {
                    for item in items {
                        path.push(Pe::Value(canonical(item)));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                ListType::Map(keys) => {
                    for item in items {
                        path.push(Pe::Key(key_of(item, &keys)));
                        out.insert(path.clone());
                        walk(item, path, shape, out);
                        path.pop();
                    }
                }
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

fn find_item(items: &[Value], pe: &Pe) -> Option<usize> {
    match pe {
        Pe::Key(key) => {
            let key: Value = serde_json::from_str(key).ok()?;
            let key = key.as_object()?;
            items
                .iter()
                .position(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
        }
        Pe::Value(v) => items.iter().position(|item| &canonical(item) == v),
        Pe::Field(_) => None,
    }
}

/// The value at `path`.
pub(crate) fn value_at<'v>(obj: &'v Value, path: &[Pe]) -> Option<&'v Value> {
    let mut current = obj;
    for pe in path {
        current = match (pe, current) {
            (Pe::Field(k), Value::Object(map)) => map.get(k)?,
            (Pe::Key(_) | Pe::Value(_), Value::Array(items)) => &items[find_item(items, pe)?],
            _ => return None,
        };
    }
    Some(current)
}

fn remove_at(obj: &mut Value, path: &[Pe]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut current = obj;
    for pe in parent_path {
        current = match (pe, current) {
            (Pe::Field(k), Value::Object(map)) => match map.get_mut(k) {
                Some(v) => v,
                None => return,
            },
            (Pe::Key(_) | Pe::Value(_), Value::Array(items)) => match find_item(items, pe) {
                Some(i) => &mut items[i],
                None => return,
            },
            _ => return,
        };
    }
    match (last, current) {
        (Pe::Field(k), Value::Object(map)) => {
            map.remove(k);
        }
        (Pe::Key(_) | Pe::Value(_), Value::Array(items)) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Whether the value at `path` is a leaf: a scalar, an atomic list, an empty map or a set item.
fn is_leaf(obj: &Value, path: &[Pe], shape: &Shape<'_>) -> bool {
    match value_at(obj, path) {
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(_)) => shape.list_type(path) == ListType::Atomic,
        Some(_) => true,
        None => false,
    }
}

fn is_prefix(prefix: &[Pe], path: &[Pe]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

/// The `managedFields` entries of an object.
pub(crate) fn decode_entries(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| {
            let operation = match entry.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return None,
            };
            let mut fields = FieldSet::new();
            if let Some(tree) = entry.get("fieldsV1") {
                decode_tree(tree, &mut Vec::new(), &mut fields);
            }
            let text = |key: &str| {
                entry
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Some(ManagedEntry {
                manager: text("manager"),
                operation,
                api_version: text("apiVersion"),
                subresource: text("subresource"),
                time: text("time"),
                fields,
            })
        })
        .collect()
}

fn decode_tree(tree: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(map) = tree.as_object() else {
        return;
    };
    for (key, child) in map {
        if key == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            continue;
        }
        let pe = if let Some(f) = key.strip_prefix("f:") {
            Pe::Field(f.to_owned())
        } else if let Some(k) = key.strip_prefix("k:") {
            match serde_json::from_str::<Value>(k) {
                Ok(v) => Pe::Key(canonical(&v)),
                Err(_) => continue,
            }
        } else if let Some(v) = key.strip_prefix("v:") {
            match serde_json::from_str::<Value>(v) {
                Ok(v) => Pe::Value(canonical(&v)),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        path.push(pe);
        if child.as_object().is_none_or(Map::is_empty) {
            out.insert(path.clone());
        } else {
            decode_tree(child, path, out);
        }
        path.pop();
    }
}

#[derive(Default)]
struct Node {
    owned: bool,
    children: BTreeMap<String, Node>,
}

fn encode_pe(pe: &Pe) -> String {
    match pe {
        Pe::Field(f) => format!("f:{f}"),
        Pe::Key(k) => format!("k:{k}"),
        Pe::Value(v) => format!("v:{v}"),
    }
}

fn render(node: &Node) -> Value {
    let mut map = Map::new();
    if node.owned && !node.children.is_empty() {
        map.insert(".".into(), json!({}));
    }
    for (k, child) in &node.children {
        map.insert(k.clone(), render(child));
    }
    Value::Object(map)
}

/// The `fieldsV1` tree of a set.
pub(crate) fn encode_fields(fields: &FieldSet) -> Value {
    let mut root = Node::default();
    for path in fields {
        let mut node = &mut root;
        for pe in path {
            node = node.children.entry(encode_pe(pe)).or_default();
        }
        node.owned = true;
    }
    render(&root)
}

/// The `managedFields` list of entries.
pub(crate) fn encode_entries(entries: &[ManagedEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation.as_str(),
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": encode_fields(&e.fields),
                });
                if !e.subresource.is_empty() {
                    entry["subresource"] = Value::String(e.subresource.clone());
                }
                entry
            })
            .collect(),
    )
}

fn same_writer(e: &ManagedEntry, who: &Writer, op: Operation) -> bool {
    e.manager == who.manager
        && e.operation == op
        && e.subresource == who.subresource
        && (op == Operation::Apply || e.api_version == who.api_version)
}

/// Records the fields an `Update` (create, update, patch) changed as owned by `who`, and takes
/// them away from every other manager.
pub(crate) fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    shape: &Shape<'_>,
    scope: Scope,
    who: &Writer,
    now: &str,
) {
    let old_set = old.map(|o| field_set(o, shape, scope)).unwrap_or_default();
    let new_set = field_set(new, shape, scope);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            !old_set.contains(*p)
                || (is_leaf(new, p, shape) && old.and_then(|o| value_at(o, p)) != value_at(new, p))
        })
        .cloned()
        .collect();
    let changed_leaves: FieldSet = changed
        .iter()
        .filter(|p| is_leaf(new, p, shape))
        .cloned()
        .collect();
    for entry in entries.iter_mut() {
        if !same_writer(entry, who, Operation::Update) {
            entry.fields.retain(|p| !changed_leaves.contains(p));
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| same_writer(e, who, Operation::Update))
        {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now.to_owned();
            }
            None => entries.push(ManagedEntry {
                manager: who.manager.clone(),
                operation: Operation::Update,
                api_version: who.api_version.clone(),
                subresource: who.subresource.clone(),
                time: now.to_owned(),
                fields: changed,
            }),
        }
    }
    prune_entries(entries, new, shape);
}

/// Drops owned paths the object no longer has, containers whose contents the entry no longer
/// owns any of, and entries that own nothing.
pub(crate) fn prune_entries(entries: &mut Vec<ManagedEntry>, obj: &Value, shape: &Shape<'_>) {
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| value_at(obj, p).is_some());
        let owned = entry.fields.clone();
        entry.fields.retain(|p| {
            is_leaf(obj, p, shape) || owned.iter().any(|q| q.len() > p.len() && is_prefix(p, q))
        });
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// One apply conflict: the other manager (as the API server prints it) and the path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Conflict {
    pub manager: String,
    pub path: String,
}

fn print_manager(e: &ManagedEntry) -> String {
    let mut text = go_quote(&e.manager);
    if !e.subresource.is_empty() {
        text.push_str(&format!(" with subresource {}", go_quote(&e.subresource)));
    }
    if e.operation == Operation::Update {
        text.push_str(&format!(" using {}", e.api_version));
    }
    text
}

/// A path as structured-merge-diff prints it: `.spec.note`, `.status.conditions[type="Ready"]`.
pub(crate) fn print_path(path: &[Pe]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            Pe::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Pe::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Pe::Value(v) => out.push_str(&format!("[={v}]")),
        }
    }
    out
}

/// The 409 of an apply with conflicts, as the API server words it.
pub(crate) fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let message = match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.path
        ),
        many => {
            let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for c in many {
                by_manager.entry(&c.manager).or_default().push(&c.path);
            }
            let mut lines = Vec::new();
            for (manager, paths) in by_manager {
                lines.push(format!("conflicts with {manager}:"));
                lines.extend(paths.iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    let mut error = ApiError::new(409, "Conflict", message);
    for c in conflicts {
        error = error.with_cause(
            "FieldManagerConflict",
            &format!("conflict with {}", c.manager),
            &c.path,
        );
    }
    error
}

/// Removes what an apply configuration may not set.
pub(crate) fn clean_applied(applied: &mut Value) {
    strip_nulls(applied);
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "creationTimestamp",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(field);
        }
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Keeps only the part of an applied configuration `scope` can write (`apiVersion`, `kind` and
/// `metadata` always stay, they identify the object).
pub(crate) fn restrict_to_scope(applied: &mut Value, scope: Scope) {
    if let Some(map) = applied.as_object_mut() {
        map.retain(|k, _| match k.as_str() {
            "apiVersion" | "kind" | "metadata" => true,
            "status" => match scope {
                Scope::Status => true,
                Scope::Main { status_separate } => !status_separate,
            },
            _ => scope != Scope::Status,
        });
    }
}

fn merge_into(target: &mut Value, applied: &Value, path: &mut FieldPath, shape: &Shape<'_>) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, av) in a {
                path.push(Pe::Field(k.clone()));
                match t.get_mut(k) {
                    Some(tv)
                        if (tv.is_object() && av.is_object())
                            || (tv.is_array() && av.is_array()) =>
                    {
                        merge_into(tv, av, path, shape);
                    }
                    _ => {
                        t.insert(k.clone(), av.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(t), Value::Array(a)) => match shape.list_type(path) {
            ListType::Atomic => *t = a.clone(),
            ListType::Set => {
                for item in a {
                    if !t.contains(item) {
                        t.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for item in a {
                    let pe = Pe::Key(key_of(item, &keys));
                    match find_item(t, &pe) {
                        Some(i) => {
                            path.push(pe);
                            merge_into(&mut t[i], item, path, shape);
                            path.pop();
                        }
                        None => t.push(item.clone()),
                    }
                }
            }
        },
        (t, a) => *t = a.clone(),
    }
}

/// Server-side apply of `applied` onto `live` by `who`: returns the merged object and updates
/// `entries`, or the conflicts with other managers (when not forced).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply(
    live: &Value,
    applied: &Value,
    shape: &Shape<'_>,
    scope: Scope,
    who: &Writer,
    force: bool,
    entries: &mut Vec<ManagedEntry>,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_set = field_set(applied, shape, scope);
    let applied_leaves: Vec<&FieldPath> = applied_set
        .iter()
        .filter(|p| is_leaf(applied, p, shape))
        .collect();

    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, FieldPath)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.manager == who.manager {
            continue;
        }
        for leaf in &applied_leaves {
            let owns = entry.fields.iter().any(|p| is_prefix(leaf, p));
            if owns && value_at(live, leaf) != value_at(applied, leaf) {
                conflicts.push(Conflict {
                    manager: print_manager(entry),
                    path: print_path(leaf),
                });
                taken.push((i, (*leaf).clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, leaf) in taken {
        entries[i].fields.retain(|p| !is_prefix(&leaf, p));
    }

    let mut merged = live.clone();
    merge_into(&mut merged, applied, &mut Vec::new(), shape);

    let previous: FieldSet = entries
        .iter()
        .find(|e| same_writer(e, who, Operation::Apply))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: Vec<&FieldPath> = entries
        .iter()
        .filter(|e| !same_writer(e, who, Operation::Apply))
        .flat_map(|e| e.fields.iter())
        .collect();
    let mut dropped: Vec<&FieldPath> = previous.difference(&applied_set).collect();
    // Deepest first, so a parent is looked at after its children went.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    // A list-map item that goes goes whole: its fields (its keys among them) are not removed one
    // by one, which would leave an item without its keys behind.
    let dropped_items: Vec<&FieldPath> = dropped
        .iter()
        .copied()
        .filter(|p| matches!(p.last(), Some(Pe::Key(_))))
        .filter(|item| !others.iter().any(|o| is_prefix(item, o)))
        .filter(|item| !applied_set.iter().any(|a| is_prefix(item, a)))
        .collect();
    for path in dropped {
        let inside_dropped_item = dropped_items
            .iter()
            .any(|item| item.len() < path.len() && is_prefix(item, path));
        if inside_dropped_item
            || others.iter().any(|o| is_prefix(path, o))
            || applied_set.iter().any(|a| is_prefix(path, a))
        {
            continue;
        }
        let removable = match value_at(&merged, path) {
            None => false,
            Some(Value::Object(map)) => map.is_empty() || matches!(path.last(), Some(Pe::Key(_))),
            Some(Value::Array(items)) => {
                items.is_empty() || shape.list_type(path) == ListType::Atomic
            }
            Some(_) => true,
        };
        if removable {
            remove_at(&mut merged, path);
        }
    }

    match entries
        .iter_mut()
        .find(|e| same_writer(e, who, Operation::Apply))
    {
        Some(entry) => {
            entry.fields = applied_set;
            entry.time = now.to_owned();
            entry.api_version = who.api_version.clone();
        }
        None => entries.push(ManagedEntry {
            manager: who.manager.clone(),
            operation: Operation::Apply,
            api_version: who.api_version.clone(),
            subresource: who.subresource.clone(),
            time: now.to_owned(),
            fields: applied_set,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(m: &str) -> Writer {
        Writer {
            manager: m.into(),
            api_version: "v1".into(),
            subresource: String::new(),
        }
    }

    const MAIN: Scope = Scope::Main {
        status_separate: true,
    };

    #[test]
    fn fields_v1_round_trips() {
        let shape = Shape { schema: None };
        let obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"], "name": "n"},
            "data": {"k": "v"}, "status": {"s": 1}});
        let set = field_set(&obj, &shape, MAIN);
        let tree = encode_fields(&set);
        assert_eq!(
            tree,
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:finalizers": {".": {}, "v:\"x\"": {}},
                "f:labels": {".": {}, "f:a": {}}}})
        );
        let entries = decode_entries(&json!({"metadata": {"managedFields": [
            {"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": tree}
        ]}}));
        assert_eq!(entries[0].fields, set);
    }

    #[test]
    fn apply_removes_what_the_manager_stopped_applying() {
        let shape = Shape { schema: None };
        let mut entries = Vec::new();
        let live = json!({"data": {}});
        let first = json!({"data": {"a": "1", "b": "2"}});
        let merged = apply(
            &live,
            &first,
            &shape,
            MAIN,
            &who("m"),
            false,
            &mut entries,
            "t",
        )
        .unwrap();
        let second = json!({"data": {"a": "1"}});
        let merged = apply(
            &merged,
            &second,
            &shape,
            MAIN,
            &who("m"),
            false,
            &mut entries,
            "t",
        )
        .unwrap();
        assert_eq!(merged, json!({"data": {"a": "1"}}));
    }

    #[test]
    fn apply_removes_a_list_map_item_whole() {
        let schema = json!({"type": "object", "properties": {"conditions": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "status": {"type": "string"}}}}}});
        let shape = Shape {
            schema: Some(&schema),
        };
        let mut entries = Vec::new();
        let both = json!({"conditions": [
            {"type": "Ready", "status": "Unknown"},
            {"type": "Reconciling", "status": "True"}]});
        let merged = apply(
            &json!({}),
            &both,
            &shape,
            MAIN,
            &who("m"),
            false,
            &mut entries,
            "t",
        )
        .unwrap();
        let one = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        let merged = apply(
            &merged,
            &one,
            &shape,
            MAIN,
            &who("m"),
            false,
            &mut entries,
            "t",
        )
        .unwrap();
        assert_eq!(merged, one, "no key-less remnant of the dropped item");
    }

    #[test]
    fn apply_conflicts_with_another_managers_value_unless_forced() {
        let shape = Shape { schema: None };
        let mut entries = Vec::new();
        let live = apply(
            &json!({}),
            &json!({"data": {"a": "1"}}),
            &shape,
            MAIN,
            &who("one"),
            false,
            &mut entries,
            "t",
        )
        .unwrap();
        let err = apply(
            &live,
            &json!({"data": {"a": "2"}}),
            &shape,
            MAIN,
            &who("two"),
            false,
            &mut entries,
            "t",
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "\"one\"".into(),
                path: ".data.a".into()
            }]
        );
        assert_eq!(
            conflict_error(&err).message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.a"
        );
        // The same value is shared ownership, not a conflict.
        apply(
            &live,
            &json!({"data": {"a": "1"}}),
            &shape,
            MAIN,
            &who("two"),
            false,
            &mut entries.clone(),
            "t",
        )
        .unwrap();
        let merged = apply(
            &live,
            &json!({"data": {"a": "2"}}),
            &shape,
            MAIN,
            &who("two"),
            true,
            &mut entries,
            "t",
        )
        .unwrap();
        assert_eq!(merged["data"]["a"], "2");
        prune_entries(&mut entries, &merged, &shape);
        assert!(entries.iter().all(|e| e.manager == "two"));
    }

    #[test]
    fn map_lists_merge_by_key() {
        let schema = json!({"properties": {"status": {"properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object"}}}}}});
        let shape = Shape {
            schema: Some(&schema),
        };
        let scope = Scope::Main {
            status_separate: false,
        };
        let mut entries = Vec::new();
        let live = json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}});
        let applied = json!({"status": {"conditions": [{"type": "B", "status": "False"}]}});
        let merged = apply(
            &live,
            &applied,
            &shape,
            scope,
            &who("m"),
            false,
            &mut entries,
            "t",
        )
        .unwrap();
        assert_eq!(merged["status"]["conditions"][0]["status"], "True");
        assert_eq!(merged["status"]["conditions"][1]["status"], "False");
        let path = print_path(&[
            Pe::Field("status".into()),
            Pe::Field("conditions".into()),
            Pe::Key("{\"type\":\"B\"}".into()),
        ]);
        assert_eq!(path, ".status.conditions[type=\"B\"]");
    }

    #[test]
    fn update_takes_changed_fields_from_others() {
        let shape = Shape { schema: None };
        let mut entries = Vec::new();
        let v1 = json!({"data": {"a": "1", "b": "1"}});
        record_update(&mut entries, None, &v1, &shape, MAIN, &who("creator"), "t");
        let v2 = json!({"data": {"a": "2", "b": "1"}});
        record_update(
            &mut entries,
            Some(&v1),
            &v2,
            &shape,
            MAIN,
            &who("editor"),
            "t",
        );
        let editor = entries.iter().find(|e| e.manager == "editor").unwrap();
        assert!(
            editor
                .fields
                .contains(&vec![Pe::Field("data".into()), Pe::Field("a".into())])
        );
        let creator = entries.iter().find(|e| e.manager == "creator").unwrap();
        assert!(
            !creator
                .fields
                .contains(&vec![Pe::Field("data".into()), Pe::Field("a".into())])
        );
    }
}
