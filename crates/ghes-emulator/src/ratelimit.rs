//! Optional primary rate limiting (off by default, as on GHES): a fixed window per login, the
//! `x-ratelimit-*` headers on every API answer, and 403 once the window's budget is spent.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::Emulator;
use super::auth::Credentials;
use super::errors::json;
use super::store::Store;

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

/// One login's current window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateWindow {
    reset_at: u64,
    used: u32,
}

/// The `x-ratelimit-*` values of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub(crate) limit: u32,
    pub(crate) used: u32,
    pub(crate) reset_at: u64,
}

impl RateHeaders {
    /// Writes the five headers GitHub sends.
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        let remaining = self.limit.saturating_sub(self.used);
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        headers.insert("x-ratelimit-used", HeaderValue::from(self.used));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset_at));
        headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    }
}

/// Whether a request may proceed, and the headers to send either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateDecision {
    pub(crate) allowed: bool,
    pub(crate) headers: RateHeaders,
}

impl Store {
    /// Counts one request of `key` at `now` (Unix seconds); `None` when rate limiting is off.
    pub(crate) fn consume_rate(&mut self, key: &str, now: u64) -> Option<RateDecision> {
        let limit = self.settings.rate_limit?;
        let window = self
            .rate_windows
            .entry(key.to_owned())
            .or_insert(RateWindow {
                reset_at: 0,
                used: 0,
            });
        if now >= window.reset_at {
            *window = RateWindow {
                reset_at: now.saturating_add(limit.window_secs),
                used: 0,
            };
        }
        let allowed = window.used < limit.limit;
        if allowed {
            window.used += 1;
        }
        Some(RateDecision {
            allowed,
            headers: RateHeaders {
                limit: limit.limit,
                used: window.used,
                reset_at: window.reset_at,
            },
        })
    }
}

/// Middleware: counts the request against its login's window (unknown logins share one
/// anonymous window) and answers 403 once the budget is spent.
pub(crate) async fn enforce(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let credentials = Credentials::from_headers(request.headers());
    let decision = {
        let mut store = emulator.store();
        let user = credentials
            .login()
            .and_then(|login| store.users.get(login))
            .map(|user| (user.login.clone(), user.id));
        let key = user.as_ref().map_or("", |(login, _)| login.as_str());
        store
            .consume_rate(key, unix_now())
            .map(|decision| (decision, user.map(|(_, id)| id)))
    };
    let Some((decision, user_id)) = decision else {
        return next.run(request).await;
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let subject = user_id.map_or_else(
            || "anonymous requests".to_owned(),
            |id| format!("user ID {id}"),
        );
        let body = serde_json::json!({
            "message": format!("API rate limit exceeded for {subject}."),
            "documentation_url": "https://docs.github.com/enterprise-server@3.22/rest/using-the-rest-api/rate-limits-for-the-rest-api",
        });
        json(StatusCode::FORBIDDEN, &body)
    };
    decision.headers.apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;

    #[test]
    fn fixed_window_counts_then_refuses_then_resets() {
        let mut store = Store::default();
        assert_eq!(store.consume_rate("alice", 100), None);
        store.settings.rate_limit = Some(RateLimit {
            limit: 2,
            window_secs: 60,
        });
        let first = store.consume_rate("alice", 100).unwrap();
        assert!(first.allowed);
        assert_eq!(first.headers.reset_at, 160);
        assert!(store.consume_rate("alice", 101).unwrap().allowed);
        let refused = store.consume_rate("alice", 102).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.headers.used, 2);
        assert!(store.consume_rate("bob", 102).unwrap().allowed);
        let next_window = store.consume_rate("alice", 160).unwrap();
        assert!(next_window.allowed);
        assert_eq!(
            (next_window.headers.used, next_window.headers.reset_at),
            (1, 220)
        );
    }

    #[test]
    fn headers_show_remaining_budget() {
        let mut headers = HeaderMap::new();
        RateHeaders {
            limit: 10,
            used: 3,
            reset_at: 42,
        }
        .apply(&mut headers);
        assert_eq!(headers["x-ratelimit-remaining"], "7");
        assert_eq!(headers["x-ratelimit-used"], "3");
        assert_eq!(headers["x-ratelimit-reset"], "42");
        assert_eq!(headers["x-ratelimit-resource"], "core");
    }
}
