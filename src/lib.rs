//! ghes-oauth-operator: declarative GitHub Enterprise Server OAuth authorizations for Kubernetes.
//!
//! - [`api`]: the custom resources (`Authorization`, `Account`, `ClusterAccount`) and CRD generation.

pub mod api;
