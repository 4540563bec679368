//! What the operator reads of a Secret's `managedFields`: whether this manager wrote fields by
//! a create or update (not by apply), which a later apply must first take over; the Secret
//! cache keeps only that, and the writes merge those entries into the apply's.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::json;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "ghes-oauth-operator";

/// Whether this manager wrote fields of `secret` by a create or update (not by apply), as
/// [`strip_managed_fields`] leaves that known.
pub fn created_by_update(secret: &Secret) -> bool {
    secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|entry| is_ours(entry, "Update"))
}

pub(crate) fn is_ours(entry: &ManagedFieldsEntry, operation: &str) -> bool {
    entry.manager.as_deref() == Some(FIELD_MANAGER) && entry.operation.as_deref() == Some(operation)
}

/// What a cache keeps of a Secret's `managedFields`: only whether this manager wrote fields by
/// a create or update (the entry, without its field set), so that a later write knows to take
/// them over first.
pub fn strip_managed_fields(secret: &mut Secret) {
    let kept: Vec<ManagedFieldsEntry> = secret
        .metadata
        .managed_fields
        .take()
        .into_iter()
        .flatten()
        .filter(|entry| is_ours(entry, "Update"))
        .map(|entry| ManagedFieldsEntry {
            fields_v1: None,
            ..entry
        })
        .collect();
    secret.metadata.managed_fields = (!kept.is_empty()).then_some(kept);
}

/// The managed-fields entry that says no more than [`created_by_update`] reads: this manager
/// wrote fields by a create or update.
pub fn created_entry() -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(FIELD_MANAGER.to_owned()),
        operation: Some("Update".to_owned()),
        ..ManagedFieldsEntry::default()
    }
}

/// This manager's `Apply` entry with the fields of its `Update` entries added; `None` when it
/// has no `Update` entry.
pub(crate) fn merged_apply_entry(entries: &[ManagedFieldsEntry]) -> Option<ManagedFieldsEntry> {
    let updates: Vec<&ManagedFieldsEntry> =
        entries.iter().filter(|e| is_ours(e, "Update")).collect();
    let first = *updates.first()?;
    let mut merged = entries
        .iter()
        .find(|e| is_ours(e, "Apply"))
        .cloned()
        .unwrap_or_else(|| ManagedFieldsEntry {
            operation: Some("Apply".into()),
            subresource: None,
            ..first.clone()
        });
    let mut fields = merged
        .fields_v1
        .take()
        .map_or_else(|| json!({}), |fields| fields.0);
    for update in updates {
        if let Some(more) = &update.fields_v1 {
            merge_fields(&mut fields, &more.0);
        }
    }
    merged.fields_v1 = Some(FieldsV1(fields));
    Some(merged)
}

/// Adds the field set `more` to `into` (both `FieldsV1` trees: objects keyed by field).
fn merge_fields(into: &mut serde_json::Value, more: &serde_json::Value) {
    match (into, more) {
        (serde_json::Value::Object(into), serde_json::Value::Object(more)) => {
            for (key, value) in more {
                match into.get_mut(key) {
                    Some(existing) => merge_fields(existing, value),
                    None => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (into, more) => {
            if into.is_null() {
                *into = more.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_a_create_wrote_become_this_managers_apply() {
        let entry =
            |manager: &str, operation: &str, fields: serde_json::Value| ManagedFieldsEntry {
                api_version: Some("v1".into()),
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(FieldsV1(fields)),
                manager: Some(manager.into()),
                operation: Some(operation.into()),
                subresource: None,
                time: None,
            };
        let entries = [
            entry(
                FIELD_MANAGER,
                "Update",
                json!({"f:data": {"f:token": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}),
            ),
            entry(
                "kubectl",
                "Update",
                json!({"f:metadata": {"f:annotations": {}}}),
            ),
        ];
        let merged = merged_apply_entry(&entries).expect("an Update entry of ours");
        assert_eq!(merged.operation.as_deref(), Some("Apply"));
        assert_eq!(merged.manager.as_deref(), Some(FIELD_MANAGER));
        assert_eq!(
            merged.fields_v1.map(|f| f.0),
            Some(json!({"f:data": {"f:token": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}))
        );
        // With an Apply entry already: the two field sets are joined.
        let both = [
            entries[0].clone(),
            entry(FIELD_MANAGER, "Apply", json!({"f:data": {"f:other": {}}})),
        ];
        let merged = merged_apply_entry(&both).expect("merged");
        assert_eq!(
            merged.fields_v1.map(|f| f.0),
            Some(json!({
                "f:data": {"f:other": {}, "f:token": {}},
                "f:metadata": {"f:labels": {"f:a": {}}},
            }))
        );
        assert!(merged_apply_entry(&entries[1..]).is_none(), "none of ours");
    }
}
