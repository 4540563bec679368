//! The admin HTTP server of `run`: `/livez`, `/readyz` and `/metrics`, on `--admin-address`.
//!
//! - `/livez`: 200 while the process runs.
//! - `/readyz`: 200 once this instance does its job: it leads (or runs without leader election)
//!   and the controllers' caches have synced, or it stands by while another instance leads. A
//!   standby is ready so that a rolling update can proceed: the new pod becomes ready as a
//!   standby, the old leader stops and releases the Lease, the new pod takes over. Otherwise
//!   503 with the reason as plain text.
//! - `/metrics`: every metric as OpenMetrics text.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};

/// Where this instance is in its life, as `/readyz` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not yet standing by or leading.
    Starting,
    /// Waiting for the Lease while another instance leads.
    Standby {
        /// The instance holding the Lease, when one does.
        leader: Option<String>,
    },
    /// The controllers are starting; their caches have not synced yet.
    Syncing,
    /// The controllers run on synced caches.
    Running,
    /// Shutting down.
    Stopping,
}

/// The instance's health, shared by the parts that change it and the admin server.
#[derive(Debug)]
pub struct Health {
    phase: Mutex<Phase>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A health in [`Phase::Starting`].
    pub fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Starting),
        }
    }

    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Ok` with a short description when ready, else `Err` with the reason.
    pub fn readiness(&self) -> Result<String, String> {
        match self.phase() {
            Phase::Running => Ok("ok: controllers running, caches synced".into()),
            Phase::Standby {
                leader: Some(leader),
            } => Ok(format!("ok: standing by, {leader} leads")),
            Phase::Standby { leader: None } => Ok("ok: standing by".into()),
            Phase::Starting => Err("starting".into()),
            Phase::Syncing => Err("controller caches have not synced yet".into()),
            Phase::Stopping => Err("shutting down".into()),
        }
    }
}

/// The admin server, bound and not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl AdminServer {
    /// Binds `address` (port 0 picks a free port; see [`local_addr`](Self::local_addr)).
    pub async fn bind(address: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(address).await?,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets open requests finish.
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(AdminState { metrics, health });
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.health.readiness() {
        Ok(message) => (StatusCode::OK, format!("{message}\n")).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standby_is_ready_syncing_is_not() {
        let health = Health::new();
        assert!(health.readiness().is_err());
        health.set(Phase::Standby {
            leader: Some("pod-a".into()),
        });
        assert_eq!(
            health.readiness().as_deref(),
            Ok("ok: standing by, pod-a leads")
        );
        health.set(Phase::Syncing);
        assert!(health.readiness().is_err());
        health.set(Phase::Running);
        assert!(health.readiness().is_ok());
        health.set(Phase::Stopping);
        assert_eq!(health.readiness(), Err("shutting down".into()));
    }
}
