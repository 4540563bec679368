//! ghes-oauth-operator: declarative GitHub Enterprise Server OAuth authorizations for Kubernetes.
//!
//! - [`api`]: the custom resources (`Authorization`, `Account`, `ClusterAccount`) and CRD generation.
//! - [`ghes`]: the GHES OAuth Authorizations API client.

pub mod api;
pub mod ghes;
