//! The reqwest implementation of [`GhesApi`]: Basic auth, two-factor codes, paging, typed
//! errors, retries with jittered backoff, a per-client rate limit, timeouts, and a `User-Agent`
//! naming the operator and its version.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use super::availability::Availability;
use super::error::{FieldError, GhesError, is_login_lockout};
use super::otp::TotpSeed;
use super::paging::{MAX_PAGES, PER_PAGE, next_link};
use super::rate_limit::{Deferred, RateLimiter};
use super::redacted::SecretValue;
use super::retry::{RetryPolicy, rate_limit_exhausted, server_requested_wait};
use super::types::{
    AppAuthorizationRequest, Authorization, AuthorizationUpdate, GetOrCreated, Grant,
    NewAuthorization, ScopeChange,
};
use super::{GhesApi, Operation, RequestObserver};

/// `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!(
    "ghes-oauth-operator/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/ghes-oauth-operator)"
);

/// The REST API version these endpoints are described for.
const API_VERSION: &str = "2022-11-28";

/// Who the client logs in as.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Login name.
    pub username: String,
    /// Password (or a token of the user, where GHES accepts one).
    pub password: SecretValue,
    /// TOTP seed, for accounts with two-factor authentication.
    pub totp: Option<TotpSeed>,
}

/// Everything a client needs; one client serves one account.
#[derive(Clone)]
pub struct ClientConfig {
    /// API root, e.g. `https://ghes.example.com/api/v3`.
    pub api_root: Url,
    /// Login.
    pub credentials: Credentials,
    /// Extra PEM certificates trusted besides the system roots. TLS is always verified.
    pub ca_bundle: Option<String>,
    /// Average request rate allowed.
    pub requests_per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
    /// Timeout of one request, from sending to the end of the body.
    pub timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Told about every response and rate-limit wait (metrics).
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// This operator instance's name (the pod name), added to the `User-Agent` so that GHES's
    /// logs tell replicas apart.
    pub instance: Option<String>,
    /// Whether the server answers at all, shared with whoever holds the client (the account):
    /// a failure about the server marks it unavailable, and nothing but [`GhesApi::probe`] is
    /// sent until a probe answers.
    pub availability: Arc<Availability>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_root", &self.api_root.as_str())
            .field("credentials", &self.credentials)
            .field("ca_bundle", &self.ca_bundle.as_ref().map(|_| "<PEM>"))
            .field("requests_per_second", &self.requests_per_second)
            .field("burst", &self.burst)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration with the defaults: 5 requests a second, burst 10, 10 s timeout.
    pub fn new(api_root: Url, credentials: Credentials) -> Self {
        Self {
            api_root,
            credentials,
            ca_bundle: None,
            requests_per_second: 5.0,
            burst: 10,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            observer: None,
            instance: None,
            availability: Arc::new(Availability::default()),
        }
    }
}

/// The API root for a server: `{server}/api/v3`, or `api_url` when given. The one check of a
/// GHES URL, before any request: `https`, or plain `http` to a loopback host only (Basic
/// credentials would otherwise cross the network in clear); no user-info, query or fragment.
pub fn api_root(server: &str, api_url: Option<&str>) -> Result<Url, GhesError> {
    // GHES serves at the root of its host: a path in `server` is an API URL pasted there, which
    // would become `<path>/api/v3`.
    if let Ok(base) = Url::parse(server.trim())
        && !matches!(base.path(), "" | "/")
    {
        return Err(GhesError::Config(format!(
            "server must be the GHES base URL such as https://{}, without a path (got {:?}); \
             the operator adds /api/v3, or set apiUrl for an API root elsewhere",
            base.host_str().unwrap_or("ghes.example.com"),
            base.path()
        )));
    }
    let (field, raw) = match api_url {
        Some(api_url) => ("apiUrl", api_url.to_owned()),
        None => (
            "server",
            format!("{}/api/v3", server.trim().trim_end_matches('/')),
        ),
    };
    let url = Url::parse(raw.trim())
        .map_err(|error| GhesError::Config(format!("{field} is not a valid URL: {error}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(GhesError::Config(format!(
            "{field} must be an https:// URL, got scheme {:?}",
            url.scheme()
        )));
    }
    let loopback = match url.host() {
        None => return Err(GhesError::Config(format!("{field} has no host"))),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
    };
    if url.scheme() == "http" && !loopback {
        return Err(GhesError::Config(format!(
            "{field} uses plain http:// to {}, which would send the credentials in clear; use \
             https:// (plain http is only for a loopback test double)",
            url.host_str().unwrap_or_default()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GhesError::Config(format!(
            "{field} must not contain credentials; use the credentials Secret"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(GhesError::Config(format!(
            "{field} must not have a query or fragment"
        )));
    }
    Ok(url)
}

/// What an HTTP transport (a connection pool with its TLS set-up) is made of: every client
/// with the same settings shares one.
#[derive(Clone, PartialEq, Eq, Hash)]
struct TransportKey {
    user_agent: String,
    timeout: Duration,
    connect_timeout: Duration,
    /// The extra PEM certificates trusted, if any.
    ca_bundle: Option<String>,
}

/// One HTTP transport, shared by the clients of every account with the same settings.
struct Transport {
    http: reqwest::Client,
}

/// The transports in use. Setting TLS up loads and parses the system's root certificates:
/// tens of milliseconds of one thread (seconds on a loaded machine) and a copy of them kept per
/// transport. A client per account would repeat both for every account; with this, a process
/// does it once per CA bundle. Credentials travel per request, never in the transport: it keeps
/// no cookies and follows no redirects.
static TRANSPORTS: std::sync::LazyLock<
    Mutex<std::collections::HashMap<TransportKey, std::sync::Weak<Transport>>>,
> = std::sync::LazyLock::new(Default::default);

impl Transport {
    /// The transport for `key`: the one in use, or a new one.
    fn shared(key: TransportKey) -> Result<Arc<Self>, GhesError> {
        let mut transports = TRANSPORTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(transport) = transports.get(&key).and_then(std::sync::Weak::upgrade) {
            return Ok(transport);
        }
        transports.retain(|_, transport| transport.strong_count() > 0);
        let transport = Arc::new(Self::build(&key)?);
        transports.insert(key, Arc::downgrade(&transport));
        Ok(transport)
    }

    fn build(key: &TransportKey) -> Result<Self, GhesError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(key.user_agent.as_str())
            .timeout(key.timeout)
            .connect_timeout(key.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // Never follow redirects: Basic credentials must not travel to another location.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &key.ca_bundle {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| {
                    GhesError::Config(
                        "the CA bundle (caBundle or caBundleRef) is not valid PEM".into(),
                    )
                })?;
            if certificates.is_empty() {
                return Err(GhesError::Config(
                    "the CA bundle (caBundle or caBundleRef) holds no PEM certificate".into(),
                ));
            }
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder
            .build()
            .map_err(|error| GhesError::Config(format!("cannot build the HTTP client: {error}")))?;
        Ok(Self { http })
    }
}

/// A GHES client over HTTP(S).
pub struct HttpGhesClient {
    transport: Arc<Transport>,
    root: Url,
    credentials: Credentials,
    limiter: RateLimiter,
    retry: RetryPolicy,
    observer: Option<Arc<dyn RequestObserver>>,
    /// Set once GHES has asked for a two-factor code: later requests send one up front.
    otp_expected: AtomicBool,
    /// Set when GHES refused the credentials: no further request is sent with them.
    refused: Mutex<Option<Refusal>>,
    /// How many answers that may refuse the credentials (401, 403) are being read: no request
    /// leaves until they are decided, so a refusal the client holds is never followed by a send.
    deciding: watch::Sender<usize>,
    /// Whether the server answers; while it does not, only probes are sent.
    availability: Arc<Availability>,
    /// How far GHES's clock is ahead of ours, in milliseconds, from the `Date` of its last
    /// answer that had one; `i64::MIN` before any.
    clock_offset_ms: AtomicI64,
}

/// One answer that may refuse the credentials, being read; dropping it lets requests leave.
struct Deciding<'a>(&'a watch::Sender<usize>);

impl Drop for Deciding<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}

/// Why GHES refused the credentials: later calls fail with the same error, hint included,
/// without a request.
#[derive(Clone, Debug)]
enum Refusal {
    /// A wrong login or password, or a lock-out: GHES's message.
    Credentials(String),
    /// A two-factor challenge the client could not answer.
    Otp {
        /// Delivery method GHES named.
        method: String,
        /// What to do about it.
        detail: String,
    },
}

impl Refusal {
    /// The error of the refused call, or (`again`) of every later call.
    fn error(&self, again: bool) -> GhesError {
        let until = if again {
            "; no further request is sent until the credentials change"
        } else {
            ""
        };
        match self {
            Self::Credentials(reason) => GhesError::InvalidCredentials {
                message: format!("{reason}{until}"),
            },
            Self::Otp { method, detail } => GhesError::OtpRequired {
                method: method.clone(),
                detail: format!("{detail}{until}"),
            },
        }
    }
}

impl std::fmt::Debug for HttpGhesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGhesClient")
            .field("root", &self.root.as_str())
            .field("username", &self.credentials.username)
            .finish_non_exhaustive()
    }
}

/// One logical request, as its attempts share it.
struct Request {
    operation: Operation,
    method: Method,
    url: Url,
    /// Whether sending it twice is harmless (GET, PUT, PATCH, DELETE of GHES's API).
    idempotent: bool,
    /// A probe of an unavailable server: sent once, whatever the availability, and its outcome
    /// decides it.
    probe: bool,
}

/// What one attempt leads to.
enum Next {
    /// GHES answered 2xx.
    Answer(Answer),
    /// The request failed for good.
    Fail(GhesError),
    /// GHES asked for a two-factor code: send again with one (not a retry).
    SendOtp,
    /// Send again after this wait (a retry).
    Retry(Duration),
}

/// A response that passed status classification.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes_body::Body,
}

mod bytes_body {
    /// Response bytes, kept private so no code path formats them into an error by accident.
    pub struct Body(pub Vec<u8>);
}

impl HttpGhesClient {
    /// Builds a client. Fails on a bad CA bundle, never on network problems.
    pub fn new(config: ClientConfig) -> Result<Self, GhesError> {
        let mut root = config.api_root.clone();
        // Normalize the root to end without a slash so paths can be appended.
        let trimmed = root.path().trim_end_matches('/').to_owned();
        root.set_path(&trimmed);
        let transport = Transport::shared(TransportKey {
            user_agent: match &config.instance {
                Some(instance) => format!("{USER_AGENT} instance/{instance}"),
                None => USER_AGENT.to_owned(),
            },
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            ca_bundle: config.ca_bundle.filter(|pem| !pem.trim().is_empty()),
        })?;
        Ok(Self {
            transport,
            root,
            credentials: config.credentials,
            limiter: RateLimiter::new(config.requests_per_second, config.burst),
            retry: config.retry,
            observer: config.observer,
            otp_expected: AtomicBool::new(false),
            refused: Mutex::new(None),
            deciding: watch::Sender::new(0),
            availability: config.availability,
            clock_offset_ms: AtomicI64::new(i64::MIN),
        })
    }

    /// Notes GHES's clock from an answer's `Date` (whole seconds: the offset is known to a
    /// second or so, plenty for ages counted in minutes).
    fn observe_clock(&self, headers: &HeaderMap) {
        let Some(date) = headers
            .get(http::header::DATE)
            .and_then(|value| value.to_str().ok())
        else {
            return;
        };
        let Ok(ghes) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(date) else {
            return;
        };
        let offset = ghes.duration_since(jiff::Timestamp::now()).as_millis();
        let offset = i64::try_from(offset).unwrap_or(0).max(i64::MIN + 1);
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
    }

    /// The API root this client talks to.
    pub fn api_root(&self) -> &Url {
        &self.root
    }

    /// A URL under the API root from literal segments; each segment is percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn refusal(&self) -> Option<Refusal> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Holds every request back until the answer being read is decided.
    fn deciding(&self) -> Deciding<'_> {
        self.deciding.send_modify(|count| *count += 1);
        Deciding(&self.deciding)
    }

    /// Waits until no answer that may refuse the credentials is being read, then fails if GHES
    /// refused them, or (but for a probe) if the server is marked unavailable: checked before
    /// every attempt, retries and two-factor answers included.
    async fn clear_to_send(&self, request: &Request) -> Result<(), GhesError> {
        let mut decided = self.deciding.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = decided.wait_for(|count| *count == 0).await;
        if let Some(refusal) = self.refusal() {
            return Err(refusal.error(true));
        }
        if !request.probe {
            self.availability.check()?;
        }
        Ok(())
    }

    /// Remembers a refusal; returns the error of the refused call.
    fn refuse(&self, refusal: Refusal) -> GhesError {
        let error = refusal.error(false);
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
        error
    }

    fn observe_response(&self, operation: Operation, status: Option<u16>) {
        if let Some(observer) = &self.observer {
            observer.on_response(operation, status);
        }
    }

    fn observe_wait(&self, operation: Operation, waited: Duration) {
        if let (Some(observer), false) = (&self.observer, waited.is_zero()) {
            observer.on_rate_limit_wait(operation, waited);
        }
    }

    /// Sends one logical request, with two-factor answers, retries and rate limiting: each
    /// attempt takes a rate-limit token ([`Self::take_turn`]), is sent ([`Self::send`]), and its
    /// outcome ([`Self::after_transport_error`], [`Self::after_response`]) says whether to answer,
    /// fail, send the two-factor code, or retry after a wait.
    async fn execute(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, GhesError> {
        let request = Request {
            operation,
            method,
            url,
            idempotent: operation.is_idempotent(),
            probe: false,
        };
        self.execute_request(&request, body).await
    }

    /// [`Self::execute`] for a built request; a failure about the server marks it unavailable
    /// (a probe's failure moves the probe's backoff on, its answer makes it available again).
    async fn execute_request(
        &self,
        request: &Request,
        body: Option<&Value>,
    ) -> Result<Answer, GhesError> {
        let result = self.attempts(request, body).await;
        match &result {
            Err(error) if error.is_server_failure() => {
                if request.probe {
                    self.availability.probe_failed(error);
                } else {
                    self.availability.failed(error);
                }
            }
            // Answered (a refusal of the credentials included): the server is there. A probe
            // that never left (its credentials refused before) proves nothing.
            Err(GhesError::Unavailable { .. } | GhesError::Queued { .. }) => {}
            _ if request.probe => {
                self.availability.recovered();
            }
            _ => {}
        }
        result
    }

    /// The attempts of one request: see [`Self::execute`].
    async fn attempts(&self, request: &Request, body: Option<&Value>) -> Result<Answer, GhesError> {
        if let Some(refusal) = self.refusal() {
            return Err(refusal.error(true));
        }
        let mut retries = 0u32;
        let mut otp_challenges = 0u32;
        loop {
            if request.probe {
                // One request per backoff step: it waits for the account's budget rather than
                // being handed back.
                let waited = self.limiter.acquire().await;
                self.observe_wait(request.operation, waited);
            } else {
                self.take_turn(request.operation).await?;
            }
            self.clear_to_send(request).await?;
            let started = Instant::now();
            let next = match self.send(request, body).await {
                Err(error) => self.after_transport_error(request, &error, retries),
                Ok(response) => {
                    self.after_response(request, response, started, retries, otp_challenges)
                        .await
                }
            };
            match next {
                Next::Answer(answer) => return Ok(answer),
                Next::Fail(error) => return Err(error),
                Next::SendOtp => {
                    // Answer the challenge once; not a retry, GHES expects it.
                    otp_challenges += 1;
                }
                Next::Retry(wait) => {
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
            }
        }
    }

    /// Waits for this client's rate limiter; a reset an hour away is the caller's to wait for
    /// (a requeue), not a worker's.
    async fn take_turn(&self, operation: Operation) -> Result<(), GhesError> {
        let waited = self
            .limiter
            .acquire_within(self.retry.max_wait)
            .await
            .map_err(|deferred| {
                super::usage::deferred(self.limiter.per_second());
                match deferred {
                    Deferred::Paused(left) => GhesError::RateLimited { retry_after: left },
                    Deferred::Queued(turn) => GhesError::Queued { retry_after: turn },
                }
            })?;
        super::usage::permitted(self.limiter.per_second(), waited);
        self.observe_wait(operation, waited);
        Ok(())
    }

    /// Sends one attempt: credentials, API headers, the two-factor code once GHES asked for one.
    async fn send(
        &self,
        request: &Request,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut builder = self
            .transport
            .http
            .request(request.method.clone(), request.url.clone())
            .basic_auth(
                &self.credentials.username,
                Some(self.credentials.password.expose()),
            )
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if self.otp_expected.load(Ordering::Relaxed)
            && let Some(seed) = &self.credentials.totp
        {
            builder = builder.header("X-GitHub-OTP", seed.current_code());
        }
        if let Some(body) = body {
            builder = builder.json(body);
        }
        builder.send().await
    }

    /// No response: retried when GHES cannot have acted on it (idempotent, or never connected).
    fn after_transport_error(
        &self,
        request: &Request,
        error: &reqwest::Error,
        retries: u32,
    ) -> Next {
        self.observe_response(request.operation, None);
        // A refused connection never reached GHES: safe to send again even for POST.
        let sent = !error.is_connect();
        let message = describe_transport_error(error);
        tracing::debug!(
            operation = request.operation.as_str(),
            method = %request.method,
            path = request.url.path(),
            error = %message,
            attempt = retries + 1,
            "GHES request failed"
        );
        let failure = GhesError::Transient {
            status: None,
            message: format!("{} {}: {message}", request.method, request.url.path()),
            outcome_unknown: sent && !request.idempotent,
        };
        // No connection, or no answer within the timeout: the server is down or stalled, and
        // the account stops at once rather than holding a worker through retries.
        let unreachable = error.is_connect() || error.is_timeout();
        if (request.idempotent || !sent) && !unreachable {
            self.retry_or_fail(request, retries, self.retry.backoff(retries), failure)
        } else {
            Next::Fail(failure)
        }
    }

    /// A response: read its body, honour its rate-limit headers, map its status.
    async fn after_response(
        &self,
        request: &Request,
        response: reqwest::Response,
        started: Instant,
        retries: u32,
        otp_challenges: u32,
    ) -> Next {
        let status = response.status();
        let headers = response.headers().clone();
        self.observe_response(request.operation, Some(status.as_u16()));
        self.observe_clock(&headers);
        tracing::debug!(
            operation = request.operation.as_str(),
            method = %request.method,
            path = request.url.path(),
            status = status.as_u16(),
            attempt = retries + 1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "GHES request"
        );
        if rate_limit_exhausted(&headers)
            && let Some(wait) = server_requested_wait(&headers)
        {
            // The budget is spent: hold every request of this client until the reset.
            self.limiter.pause_until(Instant::now() + wait);
        }
        // A 401 or 403 may refuse the credentials: nothing leaves until its body says whether.
        let _deciding = matches!(status.as_u16(), 401 | 403).then(|| self.deciding());
        let body = match response.bytes().await {
            Ok(bytes) => bytes.to_vec(),
            // The status alone refuses the credentials (a two-factor challenge is in the
            // headers): a lost or stalled body must not make the password go out again.
            Err(error) if status == StatusCode::UNAUTHORIZED => {
                let message = format!(
                    "GHES answered 401; its reason did not arrive ({})",
                    describe_transport_error(&error)
                );
                return self.after_unauthorized(&headers, message, otp_challenges);
            }
            Err(error) => {
                let what = if status.is_success() {
                    format!(
                        "the response body was lost: {}",
                        describe_transport_error(&error)
                    )
                } else {
                    "reading the response failed".to_owned()
                };
                let failure = GhesError::Transient {
                    status: Some(status.as_u16()),
                    message: format!("{} {}: {what}", request.method, request.url.path()),
                    outcome_unknown: !request.idempotent,
                };
                // Sent again only when that cannot act twice: GHES may have carried out a
                // write that it answered with any status, a 5xx included.
                return if request.idempotent && !error.is_timeout() {
                    self.retry_or_fail(request, retries, self.retry.backoff(retries), failure)
                } else {
                    Next::Fail(failure)
                };
            }
        };
        if status.is_success() {
            return Next::Answer(Answer {
                status,
                headers,
                body: bytes_body::Body(body),
            });
        }
        self.after_refusal(request, status, &headers, &body, retries, otp_challenges)
    }

    /// Maps a status GHES answered with other than 2xx to what happens next.
    fn after_refusal(
        &self,
        request: &Request,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        retries: u32,
        otp_challenges: u32,
    ) -> Next {
        let message = error_message(body);
        let what = || format!("{} {}", request.method, request.url.path());
        Next::Fail(match status.as_u16() {
            401 => return self.after_unauthorized(headers, message, otp_challenges),
            403 | 429 if status.as_u16() == 429 || is_rate_limit(headers, &message) => {
                let wait =
                    server_requested_wait(headers).unwrap_or_else(|| self.retry.backoff(retries));
                if !request.probe && retries < self.retry.max_retries && wait <= self.retry.max_wait
                {
                    tracing::info!(
                        operation = request.operation.as_str(),
                        wait_ms = wait.as_millis() as u64,
                        "GHES rate limit: waiting"
                    );
                    self.observe_wait(request.operation, wait);
                    return Next::Retry(wait);
                }
                GhesError::RateLimited { retry_after: wait }
            }
            403 => {
                if is_login_lockout(&message) {
                    self.refuse(Refusal::Credentials(
                        "GHES locked the login after too many failed attempts (403)".into(),
                    ));
                }
                GhesError::Forbidden { message }
            }
            400 => GhesError::BadRequest { message },
            404 => GhesError::NotFound { what: what() },
            410 => GhesError::ApiDisabled { message },
            422 => GhesError::Validation {
                message,
                errors: field_errors(body),
            },
            500..=599 => {
                let failure = GhesError::Transient {
                    status: Some(status.as_u16()),
                    message: format!("{}: {status} {message}", what()),
                    outcome_unknown: !request.idempotent,
                };
                if request.idempotent {
                    return self.retry_or_fail(
                        request,
                        retries,
                        self.retry.backoff(retries),
                        failure,
                    );
                }
                failure
            }
            _ => GhesError::Protocol(format!("{} answered {status}: {message}", what())),
        })
    }

    /// 401: a two-factor challenge is answered once with a code from the seed; anything else
    /// refuses these credentials until they change.
    fn after_unauthorized(
        &self,
        headers: &HeaderMap,
        message: String,
        otp_challenges: u32,
    ) -> Next {
        let Some(method_name) = otp_challenge(headers) else {
            return Next::Fail(self.refuse(Refusal::Credentials(message)));
        };
        let detail = match &self.credentials.totp {
            Some(_) if otp_challenges == 0 => {
                // Set before the answer is decided: no request leaves without the code now.
                self.otp_expected.store(true, Ordering::Relaxed);
                return Next::SendOtp;
            }
            Some(_) => {
                "; the code generated from the TOTP seed was refused: check the seed and this \
                 machine's clock"
            }
            None => {
                "; no TOTP seed is configured: add the user's base32 TOTP seed to the credentials \
                 Secret under the key `totpSecret`, or name its key in \
                 spec.credentialsSecretRef.totpSecretKey"
            }
        };
        Next::Fail(self.refuse(Refusal::Otp {
            method: method_name,
            detail: detail.into(),
        }))
    }

    /// Retries after `wait` while retries are left, else fails with `failure`. A probe is
    /// never retried: it is one request per backoff step.
    fn retry_or_fail(
        &self,
        request: &Request,
        retries: u32,
        wait: Duration,
        failure: GhesError,
    ) -> Next {
        if !request.probe && retries < self.retry.max_retries {
            Next::Retry(wait)
        } else {
            Next::Fail(failure)
        }
    }

    /// A request whose answer is one JSON object.
    async fn call<T: DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, T), GhesError> {
        let answer = self.execute(operation, method, url, body).await?;
        let value = parse(operation, &answer.body.0)?;
        Ok((answer.status, value))
    }

    /// A request whose answer is `204 No Content`.
    async fn call_no_content(&self, operation: Operation, url: Url) -> Result<(), GhesError> {
        self.execute(operation, Method::DELETE, url, None).await?;
        Ok(())
    }

    /// Lists every item, following `rel="next"` links; ceil(N/100) requests for N items.
    async fn list_all<T: DeserializeOwned + Send>(
        &self,
        operation: Operation,
        segments: &[&str],
        client_id: Option<&str>,
    ) -> Result<Vec<T>, GhesError> {
        let mut items = Vec::new();
        self.list_pages(operation, segments, client_id, &mut |page| {
            items.extend(page)
        })
        .await?;
        Ok(items)
    }

    /// Every page of a list, each handed to `each` as it is parsed.
    async fn list_pages<T: DeserializeOwned>(
        &self,
        operation: Operation,
        segments: &[&str],
        client_id: Option<&str>,
        each: &mut (dyn FnMut(Vec<T>) + Send),
    ) -> Result<(), GhesError> {
        let mut url = self.url(segments);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("per_page", &PER_PAGE.to_string());
            if let Some(client_id) = client_id {
                query.append_pair("client_id", client_id);
            }
        }
        for _ in 0..MAX_PAGES {
            let answer = self.execute(operation, Method::GET, url, None).await?;
            each(parse(operation, &answer.body.0)?);
            match next_link(&answer.headers) {
                None => return Ok(()),
                Some(next) => url = self.checked_next_url(&next)?,
            }
        }
        Err(GhesError::Protocol(format!(
            "{} kept answering with a next page after {MAX_PAGES} pages",
            operation.as_str()
        )))
    }

    /// A `Link` target must stay under the API root: credentials never go anywhere else.
    fn checked_next_url(&self, next: &str) -> Result<Url, GhesError> {
        let url = Url::parse(next).map_err(|_| {
            GhesError::Protocol("the Link header's next URL is not a valid URL".into())
        })?;
        let same_origin = url.scheme() == self.root.scheme()
            && url.host_str() == self.root.host_str()
            && url.port_or_known_default() == self.root.port_or_known_default();
        if !same_origin || !url.path().starts_with(self.root.path()) {
            return Err(GhesError::Protocol(format!(
                "the Link header's next page {}://{}{} is outside the API root; not following it",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.path()
            )));
        }
        Ok(url)
    }

    async fn get_or_create(
        &self,
        operation: Operation,
        url: Url,
        body: Value,
    ) -> Result<GetOrCreated, GhesError> {
        let (status, authorization): (_, Authorization) =
            self.call(operation, Method::PUT, url, Some(&body)).await?;
        let created = status == StatusCode::CREATED;
        if created && authorization.token.is_none() {
            return Err(GhesError::Protocol(format!(
                "{} answered 201 Created without a token",
                operation.as_str()
            )));
        }
        Ok(GetOrCreated {
            authorization,
            created,
        })
    }
}

#[async_trait]
impl GhesApi for HttpGhesClient {
    async fn probe(&self) -> Result<(), GhesError> {
        let mut url = self.url(&["authorizations"]);
        url.query_pairs_mut().append_pair("per_page", "1");
        let request = Request {
            operation: Operation::ListAuthorizations,
            method: Method::GET,
            url,
            idempotent: true,
            probe: true,
        };
        self.execute_request(&request, None).await.map(|_| ())
    }

    fn refused(&self) -> Option<GhesError> {
        self.refusal().map(|refusal| refusal.error(false))
    }

    fn clock_offset(&self) -> Option<jiff::SignedDuration> {
        match self.clock_offset_ms.load(Ordering::Relaxed) {
            i64::MIN => None,
            ms => Some(jiff::SignedDuration::from_millis(ms)),
        }
    }

    async fn list_grants(&self, client_id: Option<&str>) -> Result<Vec<Grant>, GhesError> {
        self.list_all(
            Operation::ListGrants,
            &["applications", "grants"],
            client_id,
        )
        .await
    }

    async fn get_grant(&self, grant_id: u64) -> Result<Grant, GhesError> {
        let url = self.url(&["applications", "grants", &grant_id.to_string()]);
        let (_, grant) = self
            .call(Operation::GetGrant, Method::GET, url, None)
            .await?;
        Ok(grant)
    }

    async fn delete_grant(&self, grant_id: u64) -> Result<(), GhesError> {
        let url = self.url(&["applications", "grants", &grant_id.to_string()]);
        self.call_no_content(Operation::DeleteGrant, url).await
    }

    async fn list_authorization_pages(
        &self,
        client_id: Option<&str>,
        each: &mut (dyn FnMut(Vec<Authorization>) + Send),
    ) -> Result<(), GhesError> {
        self.list_pages(
            Operation::ListAuthorizations,
            &["authorizations"],
            client_id,
            each,
        )
        .await
    }

    async fn create_authorization(
        &self,
        request: &NewAuthorization,
    ) -> Result<Authorization, GhesError> {
        let mut body = Map::new();
        body.insert("scopes".into(), json!(request.scopes));
        insert_opt(&mut body, "note", request.note.as_deref());
        insert_opt(&mut body, "note_url", request.note_url.as_deref());
        insert_opt(&mut body, "fingerprint", request.fingerprint.as_deref());
        if let Some(app) = &request.app {
            body.insert("client_id".into(), json!(app.client_id));
            body.insert("client_secret".into(), json!(app.client_secret.expose()));
        }
        let body = Value::Object(body);
        let url = self.url(&["authorizations"]);
        let (_, authorization): (_, Authorization) = self
            .call(
                Operation::CreateAuthorization,
                Method::POST,
                url,
                Some(&body),
            )
            .await?;
        if authorization.token.is_none() {
            return Err(GhesError::Protocol(
                "create-authorization answered without a token".into(),
            ));
        }
        Ok(authorization)
    }

    async fn get_or_create_for_app(
        &self,
        client_id: &str,
        fingerprint: Option<&str>,
        request: &AppAuthorizationRequest,
    ) -> Result<GetOrCreated, GhesError> {
        let mut body = app_request_body(request);
        insert_opt(&mut body, "fingerprint", fingerprint);
        let url = self.url(&["authorizations", "clients", client_id]);
        self.get_or_create(Operation::GetOrCreateForApp, url, Value::Object(body))
            .await
    }

    async fn get_or_create_for_app_and_fingerprint(
        &self,
        client_id: &str,
        fingerprint: &str,
        request: &AppAuthorizationRequest,
    ) -> Result<GetOrCreated, GhesError> {
        if fingerprint.is_empty() {
            return Err(GhesError::Config(
                "the fingerprint must not be empty".into(),
            ));
        }
        let url = self.url(&["authorizations", "clients", client_id, fingerprint]);
        self.get_or_create(
            Operation::GetOrCreateForAppAndFingerprint,
            url,
            Value::Object(app_request_body(request)),
        )
        .await
    }

    async fn get_authorization(&self, id: u64) -> Result<Authorization, GhesError> {
        let url = self.url(&["authorizations", &id.to_string()]);
        let (_, authorization) = self
            .call(Operation::GetAuthorization, Method::GET, url, None)
            .await?;
        Ok(authorization)
    }

    async fn update_authorization(
        &self,
        id: u64,
        update: &AuthorizationUpdate,
    ) -> Result<Authorization, GhesError> {
        let mut body = Map::new();
        match &update.scopes {
            Some(ScopeChange::Replace(scopes)) => {
                body.insert("scopes".into(), json!(scopes));
            }
            Some(ScopeChange::Add(scopes)) => {
                body.insert("add_scopes".into(), json!(scopes));
            }
            Some(ScopeChange::Remove(scopes)) => {
                body.insert("remove_scopes".into(), json!(scopes));
            }
            None => {}
        }
        insert_opt(&mut body, "note", update.note.as_deref());
        insert_opt(&mut body, "note_url", update.note_url.as_deref());
        insert_opt(&mut body, "fingerprint", update.fingerprint.as_deref());
        let url = self.url(&["authorizations", &id.to_string()]);
        let (_, authorization) = self
            .call(
                Operation::UpdateAuthorization,
                Method::PATCH,
                url,
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(authorization)
    }

    async fn delete_authorization(&self, id: u64) -> Result<(), GhesError> {
        let url = self.url(&["authorizations", &id.to_string()]);
        self.call_no_content(Operation::DeleteAuthorization, url)
            .await
    }
}

fn app_request_body(request: &AppAuthorizationRequest) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert(
        "client_secret".into(),
        json!(request.client_secret.expose()),
    );
    body.insert("scopes".into(), json!(request.scopes));
    insert_opt(&mut body, "note", request.note.as_deref());
    insert_opt(&mut body, "note_url", request.note_url.as_deref());
    body
}

fn insert_opt(body: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        body.insert(key.into(), json!(value));
    }
}

/// Parses a JSON body. The error names the operation and position but never quotes the body,
/// which may hold a token.
fn parse<T: DeserializeOwned>(operation: Operation, body: &[u8]) -> Result<T, GhesError> {
    serde_json::from_slice(body).map_err(|error| {
        GhesError::Protocol(format!(
            "{} response is not the expected JSON ({:?} error at line {} column {})",
            operation.as_str(),
            error.classify(),
            error.line(),
            error.column()
        ))
    })
}

/// GHES's `message` from an error body, or a placeholder. Bounded in length.
fn error_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "no message".to_owned());
    message.chars().take(300).collect()
}

fn field_errors(body: &[u8]) -> Vec<FieldError> {
    #[derive(serde::Deserialize)]
    struct ValidationBody {
        #[serde(default)]
        errors: Vec<FieldError>,
    }
    serde_json::from_slice::<ValidationBody>(body)
        .map(|parsed| parsed.errors)
        .unwrap_or_default()
}

/// `X-GitHub-OTP: required; app` → `Some("app")`.
fn otp_challenge(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-github-otp")?.to_str().ok()?;
    let mut parts = value.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("required") {
        return None;
    }
    Some(parts.next().unwrap_or("app").to_owned())
}

/// A 403 is a rate limit when GHES says so in its headers or message; anything else is a refusal.
fn is_rate_limit(headers: &HeaderMap, message: &str) -> bool {
    rate_limit_exhausted(headers)
        || headers.contains_key(http::header::RETRY_AFTER)
        || message.to_ascii_lowercase().contains("rate limit")
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which holds no secret (credentials travel in headers).
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "response body broken"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_root_from_server_or_override() {
        assert_eq!(
            api_root("https://ghes.example.com/", None)
                .expect("valid")
                .as_str(),
            "https://ghes.example.com/api/v3"
        );
        assert_eq!(
            api_root("https://x", Some("https://api.example.com/v3"))
                .expect("valid")
                .as_str(),
            "https://api.example.com/v3"
        );
        let error = api_root("ftp://ghes", None).expect_err("scheme");
        assert!(error.to_string().contains("server must be an https:// URL"));
        let error = api_root("https://u:p@ghes", None).expect_err("userinfo");
        assert!(error.to_string().contains("must not contain credentials"));
        let error = api_root("x", Some("not a url")).expect_err("apiUrl");
        assert!(error.to_string().contains("apiUrl is not a valid URL"));
        let error = api_root("x", Some("http://ghes.example.com/api/v3")).expect_err("http");
        assert!(error.to_string().contains("in clear"), "{error}");
        let error = api_root("x", Some("http://10.0.0.7/api/v3")).expect_err("http");
        assert!(error.to_string().contains("in clear"), "{error}");
        for loopback in [
            "http://127.0.0.1:8080/api/v3",
            "http://127.3.2.1/api/v3",
            "http://localhost:9/api/v3",
            "http://[::1]:8080/api/v3",
        ] {
            assert!(api_root("x", Some(loopback)).is_ok(), "{loopback}");
        }
        let error = api_root("x", Some("https://u@ghes/api/v3")).expect_err("userinfo");
        assert!(error.to_string().contains("must not contain credentials"));
        // An API URL pasted into server: refused, whether or not apiUrl is set.
        for api_url in [None, Some("https://ghes.example.com/api/v3")] {
            let error = api_root("https://ghes.example.com/api/v3", api_url).expect_err("path");
            assert!(error.to_string().contains("without a path"), "{error}");
        }
    }

    #[test]
    fn otp_challenge_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(otp_challenge(&headers), None);
        headers.insert(
            "x-github-otp",
            http::HeaderValue::from_static("required; sms"),
        );
        assert_eq!(otp_challenge(&headers).as_deref(), Some("sms"));
    }

    /// Setting TLS up loads the system's root certificates: one transport serves every
    /// account with the same settings, whatever its server and login.
    #[test]
    fn clients_with_the_same_settings_share_one_transport() {
        // A self-signed CA (test data only: it signs nothing), shared with the e2e suite.
        const CA: &str = include_str!("../../tests/support/test-ca.pem");
        let client = |root: &str, login: &str, ca: Option<&str>| {
            let mut config = ClientConfig::new(
                Url::parse(root).expect("url"),
                Credentials {
                    username: login.into(),
                    password: SecretValue::new("pw"),
                    totp: None,
                },
            );
            // Tests run side by side: an instance of this test's own.
            config.instance = Some("transport-test".into());
            config.ca_bundle = ca.map(str::to_owned);
            HttpGhesClient::new(config).expect("client")
        };
        let a = client("https://a.example.com/api/v3", "bot-a", None);
        let b = client("https://b.example.com/api/v3", "bot-b", Some(" \n"));
        assert!(Arc::ptr_eq(&a.transport, &b.transport));
        let c = client("https://a.example.com/api/v3", "bot-a", Some(CA));
        let d = client("https://c.example.com/api/v3", "bot-c", Some(CA));
        assert!(!Arc::ptr_eq(&a.transport, &c.transport));
        assert!(Arc::ptr_eq(&c.transport, &d.transport));
        // A transport goes with its last client.
        let unused = Arc::downgrade(&c.transport);
        drop((c, d));
        assert!(unused.upgrade().is_none());
        // A bad bundle is still refused, naming the field.
        let mut config = ClientConfig::new(
            Url::parse("https://a.example.com/api/v3").expect("url"),
            Credentials {
                username: "bot".into(),
                password: SecretValue::new("pw"),
                totp: None,
            },
        );
        config.ca_bundle = Some("not a certificate".into());
        let error = HttpGhesClient::new(config).expect_err("a bad bundle");
        assert!(error.to_string().contains("caBundle"), "{error}");
    }

    #[test]
    fn path_segments_are_escaped() {
        let client = HttpGhesClient::new(ClientConfig::new(
            Url::parse("https://ghes.example.com/api/v3/").expect("url"),
            Credentials {
                username: "bot".into(),
                password: SecretValue::new("pw"),
                totp: None,
            },
        ))
        .expect("client");
        let url = client.url(&["authorizations", "clients", "abc", "fp/../x y"]);
        assert_eq!(
            url.as_str(),
            "https://ghes.example.com/api/v3/authorizations/clients/abc/fp%2F..%2Fx%20y"
        );
        assert!(
            client
                .checked_next_url("https://evil.example.com/api/v3/authorizations?page=2")
                .is_err()
        );
        assert!(
            client
                .checked_next_url("https://ghes.example.com/other?page=2")
                .is_err()
        );
        assert!(
            client
                .checked_next_url("https://ghes.example.com/api/v3/authorizations?page=2")
                .is_ok()
        );
    }

    #[test]
    fn parse_errors_never_quote_the_body() {
        let body = br#"{"id": "ghp_secretsecretsecret"}"#;
        let error = parse::<Authorization>(Operation::GetAuthorization, body).expect_err("bad");
        assert!(!error.to_string().contains("ghp_"), "{error}");
    }
}
