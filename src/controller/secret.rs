//! Kubernetes Secrets: reading credentials and client secrets, and writing the token Secret —
//! by server-side apply, owned by its Authorization, never adopting a Secret that someone else
//! created.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::cache::SecretCache;
use super::error::{Error, MissingSecret, Result};
use super::managed_fields::{created_by_update, is_ours, merged_apply_entry};
use crate::api::Authorization;
use crate::ghes::{SecretValue, Token};

pub use super::managed_fields::FIELD_MANAGER;

/// Annotation on a token Secret naming the GHES authorization id of the token it holds.
pub const AUTHORIZATION_ID_ANNOTATION: &str = "oauth.ghes.io/authorization-id";

/// Reads one value of a Secret. Missing Secret, missing key, empty or non-UTF-8 value are
/// configuration errors naming the Secret and key (never the value).
pub async fn read_value(
    secrets: &SecretCache,
    namespace: &str,
    name: &str,
    key: &str,
    role: &'static str,
) -> Result<(SecretValue, Arc<Secret>)> {
    let secret = secrets.get(namespace, name).await?.ok_or_else(|| {
        Error::MissingSecret(MissingSecret::Secret {
            role,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    })?;
    let value = require_value(&secret, key, role)?;
    Ok((value, secret))
}

/// One value of a Secret already read; a missing key or an empty or non-UTF-8 value is a
/// configuration error naming the Secret and key (never the value).
pub fn require_value(secret: &Secret, key: &str, role: &'static str) -> Result<SecretValue> {
    value_of(secret, key).map_err(|detail| {
        Error::MissingSecret(MissingSecret::Key {
            role,
            namespace: secret.namespace().unwrap_or_default(),
            name: secret.name_any(),
            key: key.to_owned(),
            detail,
        })
    })
}

/// One value of a Secret (`data`, or `stringData` as some test servers keep it).
pub fn value_of(secret: &Secret, key: &str) -> std::result::Result<SecretValue, String> {
    let raw = match secret.data.as_ref().and_then(|data| data.get(key)) {
        Some(bytes) => String::from_utf8(bytes.0.clone())
            .map_err(|_| " (the value is not UTF-8 text)".to_owned())?,
        None => secret
            .string_data
            .as_ref()
            .and_then(|data| data.get(key))
            .cloned()
            .ok_or_else(String::new)?,
    };
    // Tolerate the trailing newline that `kubectl create secret --from-file` often brings.
    let trimmed = raw.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(" (the value is empty)".to_owned());
    }
    Ok(SecretValue::new(trimmed))
}

/// Whether the Secret is controlled by the object with this uid.
pub fn is_controlled_by(secret: &Secret, uid: &str) -> bool {
    secret
        .owner_references()
        .iter()
        .any(|owner| owner.uid == uid && owner.controller == Some(true))
}

/// The token a Secret holds under `key`, if any.
pub fn token_in(secret: &Secret, key: &str) -> Option<Token> {
    value_of(secret, key)
        .ok()
        .map(|value| Token::new(value.expose()))
}

/// Annotation on a templated token Secret: SHA-256 of the token it embeds (never the token).
pub const TOKEN_SHA256_ANNOTATION: &str = "oauth.ghes.io/token-sha256";

/// Annotation on a templated token Secret: SHA-256 of its data as the operator wrote it, to
/// tell the data was not changed since.
pub const DATA_SHA256_ANNOTATION: &str = "oauth.ghes.io/data-sha256";

/// Annotation on a templated token Secret: SHA-256 of the template and the variables it used
/// (see [`crate::controller::template::recipe_hash`]).
pub const TEMPLATE_SHA256_ANNOTATION: &str = "oauth.ghes.io/template-sha256";

/// What the token Secret of an Authorization should look like.
pub struct DesiredSecret {
    /// Name.
    pub name: String,
    /// Labels, including `app.kubernetes.io/managed-by`.
    pub labels: BTreeMap<String, String>,
    /// Annotations, including the authorization id.
    pub annotations: BTreeMap<String, String>,
    /// The Secret's type.
    pub type_: String,
    /// The data, exactly.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl DesiredSecret {
    /// The desired Secret of `authorization` for the GHES authorization `authorization_id`,
    /// holding `data` (and `annotations` beyond the spec's).
    pub fn of(
        authorization: &Authorization,
        authorization_id: u64,
        type_: &str,
        data: BTreeMap<String, Vec<u8>>,
        extra_annotations: BTreeMap<String, String>,
    ) -> Self {
        let spec = &authorization.spec.secret;
        let mut annotations = spec.annotations.clone();
        annotations.insert(
            AUTHORIZATION_ID_ANNOTATION.to_owned(),
            authorization_id.to_string(),
        );
        annotations.extend(extra_annotations);
        Self {
            name: authorization.secret_name(),
            labels: spec.labels_with_managed_by(),
            annotations,
            type_: type_.to_owned(),
            data,
        }
    }

    /// Whether `existing` already has these labels, annotations, type and exactly this data.
    pub fn is_met_by(&self, existing: &Secret) -> bool {
        let has_all = |wanted: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
            wanted.iter().all(|(k, v)| have.get(k) == Some(v))
        };
        let data: BTreeMap<&String, &Vec<u8>> = existing
            .data
            .iter()
            .flatten()
            .map(|(key, value)| (key, &value.0))
            .collect();
        let wanted: BTreeMap<&String, &Vec<u8>> = self.data.iter().collect();
        has_all(&self.labels, existing.labels())
            && has_all(&self.annotations, existing.annotations())
            && type_of(existing) == self.type_
            && data == wanted
    }
}

/// A Secret's type (`Opaque` when unset).
pub fn type_of(secret: &Secret) -> &str {
    secret.type_.as_deref().unwrap_or("Opaque")
}

/// Writes the token Secret: owned by (and garbage-collected with) the Authorization; returns
/// it as written.
///
/// A Secret that did not exist when it was read (`existing: None`) is created with a
/// create-only request that carries all of it: if something else made a Secret of that name
/// meanwhile, the write fails with `SecretConflict` instead of taking that Secret over. A
/// later write is a server-side apply, which removes the fields this manager wrote before and
/// no longer wants; the first one first takes over, as this manager's apply, the fields its
/// create wrote (as `kubectl` upgrades client-side fields), so that none of them is left
/// behind.
pub async fn write_token_secret(
    client: &Client,
    authorization: &Authorization,
    desired: &DesiredSecret,
    existing: Option<&Secret>,
) -> Result<Secret> {
    let namespace = authorization.namespace().unwrap_or_default();
    let api = Api::<Secret>::namespaced(client.clone(), &namespace);
    let body = token_secret_body(authorization, desired)?;
    let Some(existing) = existing else {
        let secret: Secret = serde_json::from_value(body)
            .map_err(|error| Error::InvalidSpec(format!("the token Secret: {error}")))?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        return match api.create(&params, &secret).await {
            Ok(created) => Ok(created),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::SecretConflict {
                name: desired.name.clone(),
            }),
            Err(error) => Err(error.into()),
        };
    };
    if created_by_update(existing) {
        take_over_created_fields(&api, &desired.name).await?;
    }
    Ok(api
        .patch(
            &desired.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?)
}

/// Makes the fields this manager's create (or update) wrote its apply's: the entries merge
/// into one `Apply` entry. One JSON patch, guarded by the resourceVersion read.
async fn take_over_created_fields(api: &Api<Secret>, name: &str) -> Result<()> {
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(());
    };
    let entries = secret.metadata.managed_fields.clone().unwrap_or_default();
    let Some(merged) = merged_apply_entry(&entries) else {
        return Ok(());
    };
    let mut upgraded: Vec<ManagedFieldsEntry> = entries
        .into_iter()
        .filter(|entry| !is_ours(entry, "Update") && !is_ours(entry, "Apply"))
        .collect();
    upgraded.push(merged);
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": secret.resource_version()},
        {"op": "replace", "path": "/metadata/managedFields", "value": upgraded},
    ]))
    .map_err(|error| Error::InvalidSpec(format!("the token Secret's field owners: {error}")))?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    Ok(())
}

/// The token Secret as the operator wants it.
fn token_secret_body(
    authorization: &Authorization,
    desired: &DesiredSecret,
) -> Result<serde_json::Value> {
    let namespace = authorization.namespace().unwrap_or_default();
    let owner = owner_reference(authorization)?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": desired.name,
            "namespace": namespace,
            "labels": desired.labels,
            "annotations": desired.annotations,
            "ownerReferences": [owner],
        },
        "type": desired.type_,
        "data": desired
            .data
            .iter()
            .map(|(key, value)| (key.clone(), data_encoding::BASE64.encode(value)))
            .collect::<BTreeMap<_, _>>(),
    }))
}

/// Deletes a Secret the Authorization owns (after a rename of spec.secret.name).
pub async fn delete_owned(client: &Client, namespace: &str, secret: &Secret) -> Result<()> {
    let name = secret.name_any();
    match Api::<Secret>::namespaced(client.clone(), namespace)
        .delete(&name, &Default::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn owner_reference(authorization: &Authorization) -> Result<OwnerReference> {
    let mut owner = authorization.controller_owner_ref(&()).ok_or_else(|| {
        Error::InvalidSpec("the Authorization has no uid yet; it cannot own a Secret".into())
    })?;
    owner.block_owner_deletion = Some(true);
    Ok(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::ByteString;

    fn secret_with(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some([(key.to_owned(), ByteString(value.to_vec()))].into()),
            ..Secret::default()
        }
    }

    #[test]
    fn values_are_trimmed_and_validated() {
        let secret = secret_with("password", b"hunter2\n");
        assert_eq!(
            value_of(&secret, "password").expect("value").expose(),
            "hunter2"
        );
        assert!(value_of(&secret, "other").is_err());
        assert!(value_of(&secret_with("password", b"\n"), "password").is_err());
        assert!(value_of(&secret_with("password", &[0xff, 0xfe]), "password").is_err());
    }
}
