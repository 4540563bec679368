//! Accounts and ClusterAccounts: the reconciler that signs in and prunes ([`reconcile`]), and
//! the registry of per-account GHES clients and shared listings that Authorizations use
//! ([`registry`]).

use std::fmt::Debug;

use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::AccountResource;

pub mod reconcile;
pub(crate) mod registry;

/// An account resource the controller can write status to.
pub trait AccountObject:
    AccountResource + Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync
{
    /// The API for this object (namespaced or cluster-wide).
    fn api(&self, client: kube::Client) -> Api<Self>;
}

impl AccountObject for crate::api::Account {
    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl AccountObject for crate::api::ClusterAccount {
    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }
}
