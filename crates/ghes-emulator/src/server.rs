//! Serving the emulator: [`serve`] for the `emulator` subcommand, [`Emulator::start`] and
//! [`RunningEmulator`] for in-process tests and `demo`.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::EmulatorConfig;
use super::handle::{Emulator, EmulatorError};
use super::routes::router;

/// How long [`RunningEmulator::shutdown`] waits for open requests before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves a new emulator built from `config` on `listener` until `shutdown` completes.
pub async fn serve(
    config: EmulatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EmulatorError> {
    Emulator::new(config)?.serve(listener, shutdown).await
}

impl Emulator {
    /// Serves this emulator on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), EmulatorError> {
        let addr = listener.local_addr().map_err(EmulatorError::Serve)?;
        self.set_default_host(addr.to_string());
        tracing::info!(%addr, "GHES emulator listening");
        axum::serve(listener, router(self))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(EmulatorError::Serve)
    }

    /// Builds an emulator from `config`, binds `addr` (use `127.0.0.1:0` in tests) and serves it
    /// on a background task.
    pub async fn start(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> Result<RunningEmulator, EmulatorError> {
        let emulator = Self::new(config)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(emulator.clone().serve(listener, async {
            // A dropped sender stops the server as well.
            let _ = stopped.await;
        }));
        Ok(RunningEmulator {
            emulator,
            addr: local,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// An emulator serving on a background task; derefs to its [`Emulator`] handle. Dropping it
/// stops the server too.
#[derive(Debug)]
pub struct RunningEmulator {
    emulator: Emulator,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EmulatorError>>>,
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://IP:PORT/api/v3`, the API root a client is configured with.
    pub fn api_url(&self) -> String {
        format!("{}/api/v3", self.base_url())
    }

    /// The shared handle (also reachable through `Deref`).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Stops accepting, lets open requests finish for a few seconds, then aborts them.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return;
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "GHES emulator stopped with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "GHES emulator task failed"),
            Err(_elapsed) => task.abort(),
        }
    }
}

impl Deref for RunningEmulator {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
