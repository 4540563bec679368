//! Grants, derived from app tokens: a user's grant of an app gets a stable id when the user's
//! first token of the app is created, shows the union of that app's tokens' scopes, and vanishes
//! with its last token. Deleting a grant deletes all of the app's tokens for the user.

use jiff::Timestamp;

use super::errors::ApiError;
use super::scopes;
use super::store::{GrantRecord, Store};
use super::wire::ApplicationGrant;

impl Store {
    /// Records the grant of `client_id` to the user if this is the first token of the app.
    pub(crate) fn ensure_grant(&mut self, user_id: u64, client_id: &str, created_at: Timestamp) {
        let key = (user_id, client_id.to_owned());
        match self.grants.get_mut(&key) {
            Some(grant) => grant.created_at = grant.created_at.min(created_at),
            None => {
                let id = self.next_grant_id();
                self.grants.insert(key, GrantRecord { id, created_at });
            }
        }
    }

    /// Forgets the grant once the user holds no token of the app any more.
    pub(crate) fn drop_grant_if_unused(&mut self, user_id: u64, client_id: &str) {
        let in_use = self
            .authorizations
            .values()
            .any(|a| a.user_id == user_id && a.client_id.as_deref() == Some(client_id));
        if !in_use {
            self.grants.remove(&(user_id, client_id.to_owned()));
        }
    }

    /// A grant as the API shows it, computed from the app's current tokens.
    pub(crate) fn render_grant(
        &self,
        user_id: u64,
        client_id: &str,
        grant: &GrantRecord,
        host: &str,
    ) -> Option<ApplicationGrant> {
        let tokens: Vec<_> = self
            .authorizations
            .values()
            .filter(|a| a.user_id == user_id && a.client_id.as_deref() == Some(client_id))
            .collect();
        let all_scopes: Vec<&String> = tokens.iter().flat_map(|a| &a.scopes).collect();
        let updated_at = tokens
            .iter()
            .map(|a| a.updated_at)
            .max()
            .unwrap_or(grant.created_at)
            .max(grant.created_at);
        Some(ApplicationGrant {
            id: grant.id,
            url: format!("http://{host}/api/v3/applications/grants/{}", grant.id),
            app: self.app_object(Some(client_id), None),
            created_at: grant.created_at,
            updated_at,
            scopes: scopes::normalize(&all_scopes),
            user: Some(self.user_object(user_id, host)?),
        })
    }

    /// The user's grants by id, optionally only the one of `client_id`.
    pub(crate) fn list_grants(
        &self,
        user_id: u64,
        client_id: Option<&str>,
        host: &str,
    ) -> Vec<ApplicationGrant> {
        let mut grants: Vec<_> = self
            .grants
            .iter()
            .filter(|((owner, app), _)| {
                *owner == user_id && client_id.is_none_or(|wanted| wanted == app)
            })
            .filter_map(|((owner, app), grant)| self.render_grant(*owner, app, grant, host))
            .collect();
        grants.sort_by_key(|grant| grant.id);
        grants
    }

    /// The client id of the user's grant `grant_id`; other users' grants are 404.
    fn owned_grant(&self, user_id: u64, grant_id: u64) -> Result<String, ApiError> {
        self.grants
            .iter()
            .find(|((owner, _), grant)| *owner == user_id && grant.id == grant_id)
            .map(|((_, client_id), _)| client_id.clone())
            .ok_or(ApiError::NotFound)
    }

    /// One of the user's grants.
    pub(crate) fn grant(
        &self,
        user_id: u64,
        grant_id: u64,
        host: &str,
    ) -> Result<ApplicationGrant, ApiError> {
        let client_id = self.owned_grant(user_id, grant_id)?;
        self.grants
            .get(&(user_id, client_id.clone()))
            .and_then(|grant| self.render_grant(user_id, &client_id, grant, host))
            .ok_or(ApiError::NotFound)
    }

    /// Revokes the grant and every token of its app for the user.
    pub(crate) fn delete_grant(&mut self, user_id: u64, grant_id: u64) -> Result<(), ApiError> {
        let client_id = self.owned_grant(user_id, grant_id)?;
        self.authorizations
            .retain(|_, a| !(a.user_id == user_id && a.client_id.as_deref() == Some(&client_id)));
        self.grants.remove(&(user_id, client_id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppSpec, EmulatorConfig, UserSpec};
    use crate::lifecycle::NewAuthorization;

    fn store() -> Store {
        Store::new(EmulatorConfig {
            users: vec![
                UserSpec::parse("alice:pw").unwrap(),
                UserSpec::parse("bob:pw").unwrap(),
            ],
            apps: vec![
                AppSpec::parse("app1:s1").unwrap(),
                AppSpec::parse("app2:s2").unwrap(),
            ],
            ..EmulatorConfig::default()
        })
        .unwrap()
    }

    fn token(store: &mut Store, user: u64, app: &str, fp: &str, scopes: &[&str]) -> u64 {
        let new = NewAuthorization {
            client_id: Some(app.into()),
            fingerprint: Some(fp.into()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..NewAuthorization::default()
        };
        store.create_authorization(user, new).unwrap().0
    }

    #[test]
    fn grant_id_is_stable_and_scopes_are_the_union() {
        let mut store = store();
        let first = token(&mut store, 1, "app1", "a", &["read:org"]);
        let grant_id = store.list_grants(1, None, "h")[0].id;
        token(&mut store, 1, "app1", "b", &["public_repo", "write:org"]);
        let grants = store.list_grants(1, None, "h");
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].id, grant_id);
        assert_eq!(grants[0].scopes, ["public_repo", "write:org"]);
        store.delete_authorization(1, first).unwrap();
        assert_eq!(store.list_grants(1, None, "h")[0].id, grant_id);
    }

    #[test]
    fn grant_vanishes_with_last_token_and_personal_tokens_have_none() {
        let mut store = store();
        let only = token(&mut store, 1, "app1", "a", &[]);
        let personal = NewAuthorization {
            note: Some("mine".into()),
            ..NewAuthorization::default()
        };
        store.create_authorization(1, personal).unwrap();
        assert_eq!(store.list_grants(1, None, "h").len(), 1);
        store.delete_authorization(1, only).unwrap();
        assert!(store.list_grants(1, None, "h").is_empty());
        token(&mut store, 1, "app1", "a", &[]);
        assert_ne!(
            store.list_grants(1, None, "h")[0].id,
            1,
            "a new grant gets a new id"
        );
    }

    #[test]
    fn deleting_a_grant_deletes_the_apps_tokens_of_that_user_only() {
        let mut store = store();
        token(&mut store, 1, "app1", "a", &[]);
        token(&mut store, 1, "app1", "b", &[]);
        token(&mut store, 1, "app2", "a", &[]);
        token(&mut store, 2, "app1", "a", &[]);
        let grants = store.list_grants(1, Some("app1"), "h");
        assert_eq!(grants.len(), 1);
        assert_eq!(store.delete_grant(2, grants[0].id), Err(ApiError::NotFound));
        store.delete_grant(1, grants[0].id).unwrap();
        assert_eq!(store.list_authorizations(1, None).len(), 1);
        assert_eq!(store.list_authorizations(2, None).len(), 1);
        assert_eq!(store.grant(1, grants[0].id, "h"), Err(ApiError::NotFound));
    }
}
