//! Accounts in use cannot disappear: an Account or ClusterAccount, and the credentials Secret it
//! names, carry the finalizer [`IN_USE_FINALIZER`] from before the first token an Authorization
//! issues through them until no Authorization that uses them still holds one (each has revoked
//! its token, orphaned it with `deletionPolicy: Orphan`, or given up after the account's
//! `revokeTimeout`). Crossplane's ProviderConfigUsage is the model: deleting a namespace then
//! revokes its tokens before the credentials that revoke them are gone.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::account::AccountObject;
use super::cache::Referenced;
use super::context::Context;
use super::error::{Error, Result};
use super::packed::Listed;
use crate::api::AccountKey;
use crate::api::{AccountRef, FINALIZER};

pub use crate::api::IN_USE_FINALIZER;

/// Puts the in-use finalizer on the account `reference` names (from the Authorization's
/// `namespace`) and on its credentials Secret, where it is missing: called before a token is
/// issued through them. An account being deleted issues no new token.
pub async fn protect(ctx: &Context, namespace: &str, reference: &AccountRef) -> Result<()> {
    match ctx
        .caches
        .account_views
        .referenced(namespace, reference)
        .await?
    {
        Some(Referenced::Account(account)) => protect_account(ctx, account.as_ref()).await,
        Some(Referenced::ClusterAccount(account)) => protect_account(ctx, account.as_ref()).await,
        None => Ok(()),
    }
}

async fn protect_account<A: AccountObject>(ctx: &Context, account: &A) -> Result<()> {
    if account.meta().deletion_timestamp.is_some() {
        return Err(Error::AccountDeleting {
            account: AccountKey::of(account).to_string(),
        });
    }
    if !holds(ctx, account.meta()) {
        add_finalizer(&account.api(ctx.client.clone()), account).await?;
        ctx.caches.protected.remember(account.meta());
    }
    let namespace = ctx.accounts.credentials_namespace(account)?;
    let name = &account.credentials_secret_ref().name;
    if let Some(secret) = ctx.caches.secrets.get(&namespace, name).await?
        && !holds(ctx, &secret.metadata)
        && secret.metadata.deletion_timestamp.is_none()
    {
        let api = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
        add_finalizer(&api, secret.as_ref()).await?;
        ctx.caches.protected.remember(&secret.metadata);
    }
    Ok(())
}

/// Whether the object carries the finalizer, as `meta` shows or as this process added it (a
/// watch cache that has not caught up with the finalizer just added asks for no second patch).
fn holds(ctx: &Context, meta: &ObjectMeta) -> bool {
    held(meta) || ctx.caches.protected.contains(meta)
}

/// For an account being deleted: how many Authorizations that use it still hold a token (carry
/// their cleanup finalizer). Read from the API server, not a cache: a deletion must not go on a
/// view that has not caught up.
pub async fn holders<A: AccountObject>(ctx: &Context, account: &A) -> Result<usize> {
    let key = AccountKey::of(account);
    let scopes: Vec<Option<String>> = match &key.namespace {
        Some(namespace) => vec![Some(namespace.clone())],
        None => crate::cluster::scopes(ctx.watched_namespaces()),
    };
    let mut holding = 0;
    for scope in scopes {
        let api: Api<Listed> = crate::cluster::scoped_api(&ctx.client, scope.as_deref());
        let mut pages = crate::cluster::Pages::of(&api);
        while let Some(page) = pages.next().await? {
            holding += page
                .iter()
                .map(|Listed(authorization)| authorization)
                .filter(|authorization| AccountKey::referenced_by(authorization) == key)
                .filter(|authorization| authorization.finalizers().iter().any(|f| f == FINALIZER))
                .count();
        }
    }
    Ok(holding)
}

/// Lets a deleted account go: the in-use finalizer leaves its credentials Secret (unless
/// another account that is not going names the same Secret) and then the account.
pub async fn release<A: AccountObject>(ctx: &Context, account: &A) -> Result<()> {
    let namespace = ctx
        .accounts
        .credentials_namespace(account)
        .unwrap_or_default();
    let name = account.credentials_secret_ref().name.clone();
    let key = AccountKey::of(account);
    let shared = ctx
        .caches
        .account_views
        .all_accounts()
        .iter()
        .any(|other| keeps_secret(ctx, other.as_ref(), &key, &namespace, &name))
        || ctx
            .caches
            .account_views
            .all_cluster_accounts()
            .iter()
            .any(|other| keeps_secret(ctx, other.as_ref(), &key, &namespace, &name));
    if !shared && !namespace.is_empty() {
        let api = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
        if let Some(secret) = api.get_opt(&name).await? {
            remove_finalizer(&api, &secret).await?;
            ctx.caches.protected.forget(&secret.metadata);
            ctx.caches.secrets.changed(&namespace, &name);
        }
    }
    remove_finalizer(&account.api(ctx.client.clone()), account).await?;
    ctx.caches.protected.forget(account.meta());
    Ok(())
}

/// Whether `other`, an account other than `key` that is not being deleted, reads the
/// credentials Secret `namespace/name`.
fn keeps_secret<B: AccountObject>(
    ctx: &Context,
    other: &B,
    key: &AccountKey,
    namespace: &str,
    name: &str,
) -> bool {
    AccountKey::of(other) != *key
        && other.meta().deletion_timestamp.is_none()
        && other.credentials_secret_ref().name == name
        && ctx.accounts.credentials_namespace(other).ok().as_deref() == Some(namespace)
}

/// Whether the object carries the in-use finalizer: deleting it waits for the Authorizations
/// that use it.
pub fn held(meta: &ObjectMeta) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|finalizers| finalizers.iter().any(|f| f == IN_USE_FINALIZER))
}

/// Adds the finalizer with a JSON patch that fails if the list changed meanwhile (as kube's
/// finalizer helper does), so no one else's finalizer is lost.
async fn add_finalizer<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match patch_finalizers(api, object, add_patch(object)).await {
        // The list changed since `object` was read (a cache behind, another reconcile that
        // added it first): decide on the object as it is now.
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
            match api.get_opt(&object.name_any()).await? {
                Some(live) if !held(live.meta()) => {
                    patch_finalizers(api, &live, add_patch(&live)).await
                }
                _ => Ok(()),
            }
        }
        other => other,
    }
}

/// The JSON patch that adds the finalizer to `object`'s list as it was read.
fn add_patch<K: Resource>(object: &K) -> serde_json::Value {
    match &object.meta().finalizers {
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [IN_USE_FINALIZER]},
        ]),
        Some(finalizers) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "add", "path": "/metadata/finalizers/-", "value": IN_USE_FINALIZER},
        ]),
    }
}

async fn remove_finalizer<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(finalizers) = &object.meta().finalizers else {
        return Ok(());
    };
    let Some(index) = finalizers.iter().position(|f| f == IN_USE_FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = json!([
        {"op": "test", "path": path, "value": IN_USE_FINALIZER},
        {"op": "remove", "path": path},
    ]);
    patch_finalizers(api, object, patch).await
}

async fn patch_finalizers<K>(api: &Api<K>, object: &K, patch: serde_json::Value) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|error| Error::InvalidSpec(error.to_string()))?;
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: nothing to hold.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}
