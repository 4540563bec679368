//! ghes-oauth-operator: declarative GitHub Enterprise Server OAuth authorizations for Kubernetes.
//!
//! The crate is a library with one thin binary (`src/main.rs`). Its modules, as a table of contents:
//!
//! - [`api`]: the custom resources (`Authorization`, `Account`, `ClusterAccount`) and CRD generation.
//! - [`ghes`]: the GHES OAuth Authorizations API: a trait, its reqwest implementation, wire types,
//!   typed errors, two-factor codes, paging and client-side rate limiting.
//! - [`emulator`]: a stateful GHES emulator used by the tests, `demo` and `emulator` subcommand.
//! - [`testkit`]: an in-process Kubernetes API test server used by the tests and `demo`.
//! - [`controller`]: the reconcilers of Authorizations, Accounts and ClusterAccounts.
//! - [`admin`]: the admin HTTP server (`/livez`, `/readyz`, `/metrics`).
//! - [`metrics`]: the Prometheus metrics.
//! - [`leader`]: leader election through a Lease.
//! - [`cli`]: the command line.
//! - [`demo`]: the `demo` subcommand.
//! - [`telemetry`]: logging set-up (plain or JSON).

pub mod admin;
pub mod api;
pub mod bench;
pub mod cli;
pub mod controller;
pub mod ctl;
pub mod demo;
pub mod emulator;
pub mod failpoint;
pub mod ghes;
pub mod leader;
pub mod metrics;
pub mod table;
pub mod telemetry;
pub mod testkit;
