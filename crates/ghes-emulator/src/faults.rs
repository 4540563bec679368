//! Injected faults: latency, error statuses (with `Retry-After` and exhausted rate-limit headers)
//! and connection resets, for the next N matching requests or a share of them.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::Emulator;
use super::errors::{DOCUMENTATION_URL, json};
use super::ratelimit::{RateHeaders, unix_now};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Delay the request by `latency_ms`, then serve it normally.
    Latency,
    /// Answer `status` without touching the emulator's state.
    Status,
    /// Close the connection without any response.
    Reset,
}

/// A fault to inject, as `POST /_emulator/faults` takes it.
///
/// Without `count` or `ratio` it hits every matching request until cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Delay before the fault (any kind), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Status of a `status` fault (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds on a `status` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// On a `status` fault: `x-ratelimit-remaining: 0` and `x-ratelimit-reset` this many seconds ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimit_reset_in: Option<u64>,
    /// `message` of a `status` fault's body (default: GitHub's wording for the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Hit only the next `count` matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Hit this share (0.0–1.0) of matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Seed that makes `ratio` deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Only requests with this method (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose path starts with this (e.g. `/api/v3/authorizations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Only requests whose HTTP Basic credentials claim this login (right password or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// On a `status` fault: `X-GitHub-OTP: required; <value>` (`app` or `sms`), GHES's
    /// two-factor challenge (use with status 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_required: Option<String>,
    /// Strike after the request was carried out: its effect stays, but the latency holds the
    /// answer, or the reset or status replaces it. This is the lost answer of a real outage:
    /// GHES created the token, the client never heard.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_processing: bool,
    /// Send the answer's status and headers at once and its body this many milliseconds later
    /// (a slow link or a buffering proxy): the client knows the status before it can read why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_delay_ms: Option<u64>,
    /// Send the answer's status and headers, then cut the connection instead of the body: the
    /// client knows the status and nothing else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_lost: bool,
}

/// A fault description that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// `status` outside 100–599.
    #[error("status must be between 100 and 599, got {0}")]
    Status(u16),
    /// A latency fault without `latency_ms`.
    #[error("a latency fault needs latency_ms")]
    MissingLatency,
    /// `ratio` outside 0–1.
    #[error("ratio must be between 0 and 1")]
    Ratio,
    /// `count: 0`.
    #[error("count must be at least 1")]
    Count,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            latency_ms: None,
            status: None,
            retry_after: None,
            ratelimit_reset_in: None,
            message: None,
            count: None,
            ratio: None,
            seed: None,
            method: None,
            path_prefix: None,
            login: None,
            otp_required: None,
            after_processing: false,
            body_delay_ms: None,
            body_lost: false,
        }
    }

    /// Delay matching requests by `latency`.
    pub fn latency(latency: Duration) -> Self {
        Self::new(FaultKind::Latency).with_latency(latency)
    }

    /// Answer matching requests with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(FaultKind::Status)
        }
    }

    /// Close matching connections without a response.
    pub fn reset() -> Self {
        Self::new(FaultKind::Reset)
    }

    /// Wait `latency` before the fault takes effect.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Only the next `count` matching requests.
    pub fn times(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }

    /// Only this share of matching requests, deterministic for a given `seed`.
    pub fn ratio(mut self, ratio: f64, seed: Option<u64>) -> Self {
        self.ratio = Some(ratio);
        self.seed = seed;
        self
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests under this path.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    /// Only requests of this login.
    pub fn login(mut self, login: &str) -> Self {
        self.login = Some(login.to_owned());
        self
    }

    /// Send `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Send exhausted rate-limit headers resetting in `secs`.
    pub fn ratelimit_reset_in(mut self, secs: u64) -> Self {
        self.ratelimit_reset_in = Some(secs);
        self
    }

    /// Strikes after the request was carried out (see [`Fault::after_processing`]).
    /// Answer with GHES's two-factor challenge header (`app` or `sms`).
    pub fn otp_required(mut self, method: &str) -> Self {
        self.otp_required = Some(method.to_owned());
        self
    }

    /// Strike after the request was carried out.
    pub fn after_processing(mut self) -> Self {
        self.after_processing = true;
        self
    }

    /// Send the answer's body `delay` after its status and headers.
    pub fn body_delay(mut self, delay: Duration) -> Self {
        self.body_delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Cut the connection where the answer's body should be.
    pub fn body_lost(mut self) -> Self {
        self.body_lost = true;
        self
    }

    fn validate(&self) -> Result<(), FaultError> {
        if let Some(status) = self.status
            && !(100..=599).contains(&status)
        {
            return Err(FaultError::Status(status));
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err(FaultError::MissingLatency);
        }
        if self.ratio.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err(FaultError::Ratio);
        }
        if self.count == Some(0) {
            return Err(FaultError::Count);
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str, login: Option<&str>) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
            && self.login.as_deref().is_none_or(|l| Some(l) == login)
    }
}

/// An injected fault with its id, as `GET /_emulator/faults` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Id given when injected.
    pub id: u64,
    /// Requests it may still hit (`None`: unlimited).
    pub remaining: Option<u32>,
    /// Requests it has hit so far.
    #[serde(default)]
    pub hits: u64,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

#[derive(Debug)]
struct Entry {
    active: ActiveFault,
    rng: Option<StdRng>,
}

/// The active faults, first-injected first.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    last_id: u64,
    entries: Vec<Entry>,
}

impl FaultBook {
    /// Adds a fault; returns its id.
    pub(crate) fn add(&mut self, fault: Fault) -> Result<ActiveFault, FaultError> {
        fault.validate()?;
        self.last_id += 1;
        let active = ActiveFault {
            id: self.last_id,
            remaining: fault.count,
            hits: 0,
            fault,
        };
        let rng = active.fault.seed.map(StdRng::seed_from_u64);
        self.entries.push(Entry {
            active: active.clone(),
            rng,
        });
        Ok(active)
    }

    /// Removes every fault.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Removes one fault; whether it was still active.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.active.id != id);
        self.entries.len() != before
    }

    /// The active faults.
    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        self.entries.iter().map(|e| e.active.clone()).collect()
    }

    /// The first fault that matches and fires for this request, using up one of its hits.
    pub(crate) fn take(&mut self, method: &str, path: &str, login: Option<&str>) -> Option<Fault> {
        let index = self.entries.iter_mut().position(|entry| {
            if !entry.active.fault.matches(method, path, login) {
                return false;
            }
            match (entry.active.fault.ratio, entry.rng.as_mut()) {
                (None, _) => true,
                (Some(ratio), Some(rng)) => rng.random_bool(ratio),
                (Some(ratio), None) => rand::rng().random_bool(ratio),
            }
        })?;
        let entry = &mut self.entries[index];
        let fault = entry.active.fault.clone();
        entry.active.hits += 1;
        if let Some(remaining) = entry.active.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.entries.remove(index);
            }
        }
        Some(fault)
    }
}

/// Marks a response whose connection is dropped instead of answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionReset;

/// A response whose body fails before a byte is written: hyper then closes the connection
/// without sending the buffered head, so the client sees a reset, not a response.
fn connection_reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    let mut response = Response::new(Body::from_stream(failing));
    response.extensions_mut().insert(ConnectionReset);
    response
}

fn default_message(status: StatusCode, rate_limited: bool) -> String {
    match status.as_u16() {
        403 if rate_limited => "API rate limit exceeded.".into(),
        429 => "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.".into(),
        500 => "Server Error".into(),
        _ => status.canonical_reason().unwrap_or("Error").into(),
    }
}

fn status_response(fault: &Fault, rate_limit: u32) -> Response {
    let status = fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = fault
        .message
        .clone()
        .unwrap_or_else(|| match fault.otp_required {
            Some(_) => "Must specify two-factor authentication OTP code.".into(),
            None => default_message(status, fault.ratelimit_reset_in.is_some()),
        });
    let body = serde_json::json!({ "message": message, "documentation_url": DOCUMENTATION_URL });
    let mut response = json(status, &body);
    let headers = response.headers_mut();
    if let Some(secs) = fault.retry_after {
        headers.insert("retry-after", HeaderValue::from(secs));
    }
    if let Some(method) = &fault.otp_required
        && let Ok(value) = HeaderValue::from_str(&format!("required; {method}"))
    {
        headers.insert(super::auth::OTP_HEADER, value);
    }
    if let Some(secs) = fault.ratelimit_reset_in {
        RateHeaders {
            limit: rate_limit,
            used: rate_limit,
            reset_at: unix_now().saturating_add(secs),
        }
        .apply(headers);
    }
    response
}

/// Middleware: applies the first matching fault before the request reaches the API.
pub(crate) async fn inject(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let credentials = super::auth::Credentials::from_headers(request.headers());
    let fault = emulator.faults().take(
        request.method().as_str(),
        request.uri().path(),
        credentials.login(),
    );
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    // Either the request still to serve, or (after_processing) the answer it already got.
    let pending = if fault.after_processing {
        Err(next.run(request).await)
    } else {
        Ok((request, next))
    };
    if let Some(ms) = fault.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let response = match fault.kind {
        FaultKind::Latency => match pending {
            Ok((request, next)) => next.run(request).await,
            Err(served) => served,
        },
        FaultKind::Reset => return connection_reset(),
        FaultKind::Status => {
            let limit = emulator
                .store()
                .settings
                .rate_limit
                .map_or(5000, |r| r.limit);
            status_response(&fault, limit)
        }
    };
    if fault.body_lost {
        return lose_body(response);
    }
    match fault.body_delay_ms {
        Some(ms) => delay_body(response, Duration::from_millis(ms)).await,
        None => response,
    }
}

/// The answer's status and headers and the first bytes of its body, then a cut connection.
fn lose_body(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    use futures::StreamExt;
    let start = futures::stream::once(async { Ok(Bytes::from_static(b"{\"message\": \"")) });
    let cut = futures::stream::once(async {
        // After the status, headers and first bytes have gone out.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the body was cut off",
        ))
    });
    Response::from_parts(parts, Body::from_stream(start.chain(cut)))
}

/// The same answer, its body held back `delay` after the status and headers go out.
async fn delay_body(response: Response, delay: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: io::Result<Bytes> = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(io::Error::other);
    let late = futures::stream::once(async move {
        tokio::time::sleep(delay).await;
        bytes
    });
    Response::from_parts(parts, Body::from_stream(late))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limits_hits_and_filters_apply() {
        let mut book = FaultBook::default();
        book.add(
            Fault::status(502)
                .times(2)
                .method("post")
                .path_prefix("/api/v3/authorizations"),
        )
        .unwrap();
        assert_eq!(book.take("GET", "/api/v3/authorizations", None), None);
        assert_eq!(book.take("POST", "/api/v3/applications/grants", None), None);
        assert!(book.take("POST", "/api/v3/authorizations", None).is_some());
        assert!(
            book.take("POST", "/api/v3/authorizations/clients/x", None)
                .is_some()
        );
        assert_eq!(book.take("POST", "/api/v3/authorizations", None), None);
        assert!(book.list().is_empty());
    }

    #[test]
    fn seeded_ratio_is_deterministic() {
        let run = || {
            let mut book = FaultBook::default();
            book.add(Fault::status(500).ratio(0.3, Some(7))).unwrap();
            (0..100)
                .map(|_| book.take("GET", "/", None).is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let hits = first.iter().filter(|hit| **hit).count();
        assert!((10..=50).contains(&hits), "{hits}");
    }

    #[test]
    fn invalid_faults_are_refused() {
        let mut book = FaultBook::default();
        assert_eq!(book.add(Fault::status(700)), Err(FaultError::Status(700)));
        assert_eq!(
            book.add(Fault::reset().ratio(1.5, None)),
            Err(FaultError::Ratio)
        );
        assert_eq!(book.add(Fault::reset().times(0)), Err(FaultError::Count));
        let latency: Fault = serde_json::from_str(r#"{"kind":"latency"}"#).unwrap();
        assert_eq!(book.add(latency), Err(FaultError::MissingLatency));
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"reset","retry-after":1}"#).is_err());
    }

    #[test]
    fn status_fault_sets_retry_after_and_rate_limit_headers() {
        let fault = Fault::status(403).retry_after(3).ratelimit_reset_in(5);
        let response = status_response(&fault, 60);
        let headers = response.headers();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset >= unix_now() + 4);
    }
}
