//! GHES identities. Pruning acts on a GHES *user*, so what it may delete is decided by every
//! Authorization whose account logs in as that user on that server — in any namespace the
//! operator reads, through any Account or ClusterAccount — never by one account's resources.

use std::collections::HashMap;

use kube::Api;

use super::account::AccountObject;
use super::context::Context;
use super::error::Result;
use super::packed::Listed;
use super::prune::Claims;
use crate::api::{Account, AccountKey, ClusterAccount, GhesUser};

/// The Authorizations that may use one identity.
#[derive(Debug)]
pub struct Users {
    /// The claims of every Authorization whose account logs in as the identity, or may (an
    /// account whose login cannot be read right now, or that does not exist, is counted in:
    /// claiming too much only ever protects).
    pub claims: Claims,
    /// Whether every namespace was read. When the operator watches only some, other
    /// namespaces may hold users of the identity that it cannot see.
    pub sees_every_namespace: bool,
}

/// Reads, from the API server (consistent lists, never a cache that may not have synced),
/// every Authorization that uses `identity`. Page by page: only the claims are kept, not the
/// objects, so that memory does not peak with the number of Authorizations.
pub async fn users(ctx: &Context, identity: &GhesUser) -> Result<Users> {
    let scopes = crate::cluster::scopes(ctx.watched_namespaces());
    let mut accounts: HashMap<AccountKey, bool> = HashMap::new();
    for scope in &scopes {
        let api: Api<Account> = crate::cluster::scoped_api(&ctx.client, scope.as_deref());
        for account in api.list(&Default::default()).await? {
            let uses = may_log_in_as(ctx, &account, identity).await;
            accounts.insert(AccountKey::of(&account), uses);
        }
    }
    let cluster_accounts = Api::<ClusterAccount>::all(ctx.client.clone());
    for account in cluster_accounts.list(&Default::default()).await? {
        let uses = may_log_in_as(ctx, &account, identity).await;
        accounts.insert(AccountKey::of(&account), uses);
    }
    let mut claims = Claims::default();
    for scope in &scopes {
        let api: Api<Listed> = crate::cluster::scoped_api(&ctx.client, scope.as_deref());
        let mut pages = crate::cluster::Pages::of(&api);
        while let Some(page) = pages.next().await? {
            for Listed(authorization) in &page {
                let key = AccountKey::referenced_by(authorization);
                if accounts.get(&key).copied().unwrap_or(true) {
                    claims.add(authorization);
                }
            }
        }
    }
    Ok(Users {
        claims,
        sees_every_namespace: ctx.watched_namespaces().is_empty(),
    })
}

/// Whether `account` logs in as `identity`: the same API root, and the same login — or a
/// login that cannot be read now (counted in, to be safe).
pub(crate) async fn may_log_in_as<A: AccountObject>(
    ctx: &Context,
    account: &A,
    identity: &GhesUser,
) -> bool {
    let settings = account.settings();
    if !identity.is_on(&settings.api_root()) {
        return false;
    }
    let login = match ctx.accounts.lookup(&AccountKey::of(account)) {
        Some(entry) => Some(entry.username.clone()),
        None => {
            let reference = account.credentials_secret_ref();
            match ctx.accounts.credentials_namespace(account) {
                Err(_) => None,
                // Through the Secret cache: an account another shard serves is not in this
                // registry, and its Secret is read once, not at every prune run.
                Ok(namespace) => ctx
                    .caches
                    .secrets
                    .get(&namespace, &reference.name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|secret| {
                        super::secret::value_of(&secret, &reference.username_key).ok()
                    })
                    .map(|value| value.expose().to_owned()),
            }
        }
    };
    login.is_none_or(|login| identity.is_login(&login))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_compare_the_server_and_the_login_loosely() {
        assert_eq!(
            GhesUser::new("https://GHES.example.com/api/v3/", "Team-Bot"),
            GhesUser::new("https://ghes.example.com/api/v3", "team-bot")
        );
        assert_ne!(
            GhesUser::new("https://ghes.example.com/api/v3", "team-bot"),
            GhesUser::new("https://other.example.com/api/v3", "team-bot")
        );
        assert_ne!(
            GhesUser::new("https://ghes.example.com/api/v3", "team-bot"),
            GhesUser::new("https://ghes.example.com/api/v3", "release-bot")
        );
    }
}
