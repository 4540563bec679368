//! [`Emulator`]: the shared, thread-safe handle on the emulator's state that the routes, the test
//! hooks and in-process tests all use. Locks are std mutexes, never held across `.await`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use serde::Deserialize;

use super::config::{AppSpec, EmulatorConfig, RateLimit, Settings, SpecError, UserSpec};
use super::errors::ApiError;
use super::faults::{ActiveFault, Fault, FaultBook, FaultError};
use super::journal::{Journal, RequestRecord};
use super::lifecycle::NewAuthorization;
use super::store::Store;
use super::wire::{AppSummary, Authorization, EmulatorState, UserSummary};

/// Everything that can go wrong using the emulator as a library.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A user or app description is invalid or duplicated.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A fault description is invalid.
    #[error("invalid fault: {0}")]
    Fault(#[from] FaultError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server stopped with an error.
    #[error("emulator server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A seeded authorization names an unknown user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// A seeded authorization breaks GHES's rules (unknown app or scope, duplicate note or
    /// fingerprint).
    #[error("authorization refused: {0}")]
    Rejected(String),
}

impl From<ApiError> for EmulatorError {
    fn from(error: ApiError) -> Self {
        let details: Vec<String> = error
            .field_errors()
            .iter()
            .map(|e| format!("{} {}", e.field, e.code))
            .collect();
        let message = error.message();
        Self::Rejected(if details.is_empty() {
            message
        } else {
            format!("{message}: {}", details.join(", "))
        })
    }
}

/// An authorization to seed as if a person had created it on GHES directly.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAuthorization {
    /// Owner's login.
    pub login: String,
    /// App client id; `None` for a personal token (which then needs a unique `note`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Scopes (normalized on the way in).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Note.
    #[serde(default)]
    pub note: Option<String>,
    /// Note URL.
    #[serde(default)]
    pub note_url: Option<String>,
    /// Fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Backdated creation time (default now); `expires_at` follows from it.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

/// A partial settings change: absent fields stay, `Some(None)` (JSON `null`) switches off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Switch the API off (POST 410, PUT 404) or on.
    #[serde(default)]
    pub api_disabled: Option<bool>,
    /// New rate limit, or `Some(None)` for none.
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<RateLimit>>,
    /// New token lifetime for tokens created from now on, or `Some(None)` for none.
    #[serde(default, deserialize_with = "present")]
    pub token_ttl_secs: Option<Option<u64>>,
    /// New lockout threshold (0 disables lockouts).
    #[serde(default)]
    pub max_login_attempts: Option<u32>,
    /// Ids that listings skip from now on (see [`Settings::listing_skips`]).
    #[serde(default)]
    pub listing_skips: Option<Vec<u64>>,
    /// GHES's clock from now on (see [`Settings::clock_offset_secs`]).
    #[serde(default)]
    pub clock_offset_secs: Option<i64>,
}

/// Distinguishes a JSON `null` (`Some(None)`) from an absent field (`None`, via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

struct Shared {
    store: Mutex<Store>,
    faults: Mutex<FaultBook>,
    journal: Mutex<Journal>,
    /// Host used for URLs when no request is at hand (library calls): the listening address.
    default_host: Mutex<String>,
}

/// Shared handle on one emulated server; cheap to clone.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("host", &self.default_host())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Emulator {
    /// An emulator holding the configured users, apps and settings (not yet serving).
    pub fn new(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        Ok(Self {
            shared: Arc::new(Shared {
                store: Mutex::new(Store::new(config)?),
                faults: Mutex::default(),
                journal: Mutex::default(),
                default_host: Mutex::new("localhost".into()),
            }),
        })
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.shared.store)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultBook> {
        lock(&self.shared.faults)
    }

    pub(crate) fn journal(&self) -> MutexGuard<'_, Journal> {
        lock(&self.shared.journal)
    }

    /// Host (`ip:port`) used in URLs built outside a request.
    pub(crate) fn default_host(&self) -> String {
        lock(&self.shared.default_host).clone()
    }

    pub(crate) fn set_default_host(&self, host: String) {
        *lock(&self.shared.default_host) = host;
    }

    /// The API requests seen so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.journal().records()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.journal().clear();
    }

    /// Injects a fault; returns it with its id.
    pub fn inject(&self, fault: Fault) -> Result<ActiveFault, EmulatorError> {
        Ok(self.faults().add(fault)?)
    }

    /// The active faults.
    pub fn active_faults(&self) -> Vec<ActiveFault> {
        self.faults().list()
    }

    /// Removes one injected fault; whether it was still active.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.faults().remove(id)
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.faults().clear();
    }

    /// Everything the emulator holds, without secrets.
    pub fn state(&self) -> EmulatorState {
        let host = self.default_host();
        self.store().snapshot(&host)
    }

    pub(crate) fn state_for_host(&self, host: &str) -> EmulatorState {
        self.store().snapshot(host)
    }

    /// Creates an authorization as a person on GHES would; the answer includes the token.
    pub fn seed_authorization(
        &self,
        seed: SeedAuthorization,
    ) -> Result<Authorization, EmulatorError> {
        let host = self.default_host();
        self.seed_authorization_for_host(seed, &host)
    }

    pub(crate) fn seed_authorization_for_host(
        &self,
        seed: SeedAuthorization,
        host: &str,
    ) -> Result<Authorization, EmulatorError> {
        let mut store = self.store();
        let user_id = store
            .users
            .get(&seed.login)
            .map(|user| user.id)
            .ok_or_else(|| EmulatorError::UnknownUser(seed.login.clone()))?;
        if let Some(client_id) = &seed.client_id
            && !store.apps.contains_key(client_id)
        {
            return Err(ApiError::invalid("client_id", "invalid").into());
        }
        let new = NewAuthorization {
            client_id: seed.client_id,
            scopes: seed.scopes,
            note: seed.note.filter(|n| !n.trim().is_empty()),
            note_url: seed.note_url,
            fingerprint: seed.fingerprint,
            created_at: seed
                .created_at
                .map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t)),
        };
        let (id, token) = store.create_authorization(user_id, new)?;
        Ok(store.render_by_id(id, host, &token)?)
    }

    /// Current settings.
    pub fn settings(&self) -> Settings {
        self.store().settings.clone()
    }

    /// Changes settings; returns the result. A new rate limit starts fresh windows.
    pub fn update_settings(&self, patch: SettingsPatch) -> Settings {
        let mut store = self.store();
        if let Some(disabled) = patch.api_disabled {
            store.settings.api_disabled = disabled;
        }
        if let Some(rate_limit) = patch.rate_limit {
            store.settings.rate_limit = rate_limit;
            store.rate_windows.clear();
        }
        if let Some(ttl) = patch.token_ttl_secs {
            store.settings.token_ttl_secs = ttl;
        }
        if let Some(max) = patch.max_login_attempts {
            store.settings.max_login_attempts = max;
        }
        if let Some(skips) = patch.listing_skips {
            store.settings.listing_skips = skips;
        }
        if let Some(offset) = patch.clock_offset_secs {
            store.settings.clock_offset_secs = offset;
        }
        store.settings.clone()
    }

    /// Lifts every login lockout.
    pub fn reset_lockouts(&self) {
        self.store().reset_lockouts();
    }

    /// Adds a user at run time.
    pub fn add_user(&self, user: UserSpec) -> Result<UserSummary, EmulatorError> {
        Ok(self.store().add_user(user)?)
    }

    /// Changes a user's password, as the user would on GHES.
    pub fn set_password(&self, login: &str, password: &str) -> Result<(), EmulatorError> {
        let mut store = self.store();
        let user = store
            .users
            .get_mut(login)
            .ok_or_else(|| EmulatorError::UnknownUser(login.to_owned()))?;
        user.password = password.to_owned();
        Ok(())
    }

    /// Adds an OAuth app at run time.
    pub fn add_app(&self, app: AppSpec) -> Result<AppSummary, EmulatorError> {
        Ok(self.store().add_app(app)?)
    }
}
