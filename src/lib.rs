//! ghes-oauth-operator: declarative GitHub Enterprise Server OAuth authorizations for Kubernetes.
//!
//! The crate is a library with one thin binary (`src/main.rs`). Its modules, as a table of contents:
//!
//! - [`api`]: the custom resources (`Authorization`, `Account`, `ClusterAccount`) and CRD generation.
//! - [`ghes`]: the GHES OAuth Authorizations API: a trait, its reqwest implementation, wire types,
//!   typed errors, two-factor codes, paging and client-side rate limiting.
//! - [`controller`]: the reconcilers of Authorizations, Accounts and ClusterAccounts.
//! - [`admin`]: the admin HTTP server (`/livez`, `/readyz`, `/metrics`).
//! - [`metrics`]: the Prometheus metrics.
//! - [`leader`]: leader election through a Lease.
//! - [`cli`]: the command line; [`ctl`]: its commands for people (`status`, `rotate`, `check`).
//! - [`telemetry`]: logging set-up (plain or JSON).
//! - With the `demo` feature (on by default): `demo` and `bench`, which run the test doubles of
//!   `crates/` (`ghes-emulator`, `kube-testkit`) in the operator's process.

pub mod admin;
pub mod api;
#[cfg(feature = "demo")]
pub mod bench;
pub mod cli;
pub mod controller;
pub mod ctl;
#[cfg(feature = "demo")]
pub mod demo;
pub mod failpoint;
pub mod ghes;
pub mod kube_requests;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod shard;
pub mod table;
pub mod telemetry;
