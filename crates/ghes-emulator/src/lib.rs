//! A stateful GitHub Enterprise Server emulator for the OAuth Authorizations API.
//!
//! It serves the ten operations of `GHES-API.md` under `/api/v3` with its own wire types,
//! faithful to GHES 3.22: HTTP Basic with lockout and two-factor codes, tokens shown once,
//! `hashed_token`, scope normalization, note and fingerprint uniqueness, grants derived from app
//! tokens, GitHub paging with `Link`, conditional GETs, optional rate limiting. Beside it, test
//! hooks under `/_emulator/` inject faults (latency, error statuses, connection resets), expose
//! the request log and state, and seed data.
//!
//! Use it in-process with [`Emulator::start`], or serve it with [`serve`] / [`router`].
//!
//! Module map:
//! - `config`: [`EmulatorConfig`], [`UserSpec`], [`AppSpec`], [`Settings`].
//! - `handle`: the shared [`Emulator`] handle and its library API; `server`: serving it.
//! - `store`, `lifecycle`, `grants`, `auth`: the data and GHES's rules about it.
//! - `scopes`, `paging`, `totp`: scope normalization, `Link` headers, RFC 6238 codes.
//! - `routes`, `authorization_routes`, `grant_routes`, `body`, `errors`, `wire`: the HTTP API.
//! - `faults`, `ratelimit`, `journal`, `hooks`: fault injection, rate limits, request log, hooks.

mod auth;
mod authorization_routes;
mod body;
mod config;
mod errors;
mod faults;
mod grant_routes;
mod grants;
mod handle;
mod hooks;
mod journal;
mod lifecycle;
mod paging;
mod ratelimit;
mod routes;
mod scopes;
mod server;
mod store;
mod totp;
mod wire;

#[cfg(test)]
mod tests;

pub use config::{AppSpec, EmulatorConfig, RateLimit, Settings, SpecError, UserSpec};
pub use faults::{ActiveFault, Fault, FaultError, FaultKind};
pub use handle::{Emulator, EmulatorError, SeedAuthorization, SettingsPatch};
pub use journal::RequestRecord;
pub use routes::router;
pub use server::{RunningEmulator, serve};
pub use totp::{InvalidSeed, totp_code};
pub use wire::{
    AppSummary, ApplicationGrant, Authorization, AuthorizationApp, EmulatorState, PERSONAL_APP_URL,
    PERSONAL_CLIENT_ID, SimpleUser, UserSummary,
};
