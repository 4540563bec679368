//! Accounts and ClusterAccounts: the reconciler that signs in and prunes ([`reconcile`]), and
//! the registry of per-account GHES clients and shared listings that Authorizations use
//! ([`registry`]).

pub mod reconcile;
pub mod registry;
