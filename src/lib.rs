//! ghes-oauth-operator: declarative GitHub Enterprise Server OAuth authorizations for Kubernetes.
//!
//! The crate is a library with one thin binary (`src/main.rs`). Its modules, as a table of
//! contents, from the foundations up (a module uses only those listed before it, and `cli`
//! wires them together):
//!
//! - [`api`]: the custom resources (`Authorization`, `Account`, `ClusterAccount`), their
//!   conditions and CRD generation.
//! - [`ghes`]: the GHES OAuth Authorizations API: a trait, its reqwest implementation, wire types,
//!   typed errors, two-factor codes, paging, client-side rate limiting and availability.
//! - [`telemetry`]: logging set-up (plain or JSON); [`table`]: plain-text tables for people;
//!   [`failpoint`]: named crash points for the test suite.
//! - [`cluster`]: reading the cluster in the operator's scopes (scoped `Api`s, paged listings).
//! - [`metrics`]: the Prometheus metrics; [`kube_requests`]: the count of Kubernetes requests by
//!   verb and resource; [`admin`]: the admin HTTP server (`/livez`, `/readyz`, `/metrics`).
//! - [`controller`]: the reconcilers of Authorizations, Accounts and ClusterAccounts, their
//!   caches, the configuration they run with, and what a shard's controllers need of sharding.
//! - [`options`]: the flags `run` and `plan` share, resolved into the controllers'
//!   configuration.
//! - [`leader`]: leader election through a Lease; [`shard`]: shards held through Leases over
//!   the replicas, and the labeller that assigns objects to them.
//! - [`plan`]: what a change would do, read-only (`plan`); [`ctl`]: commands for people
//!   (`status`, `rotate`, `check`).
//! - With the `demo` feature (on by default): `demo` and `bench`, which run the test doubles of
//!   `crates/` (`ghes-emulator`, `kube-testkit`) in the operator's process.
//! - [`operator`]: the process `run` starts: the admin server, then the controllers (alone,
//!   under the leader Lease, or per shard held).
//! - [`cli`]: the command line: each subcommand's flags, resolved and handed to the modules
//!   above.

pub mod admin;
pub mod api;
#[cfg(feature = "demo")]
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod ctl;
#[cfg(feature = "demo")]
pub mod demo;
pub mod failpoint;
pub mod ghes;
pub mod kube_requests;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod options;
pub mod plan;
pub mod shard;
pub mod table;
pub mod telemetry;
