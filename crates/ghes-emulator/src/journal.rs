//! The request log tests assert call counts with: method, path, query, status, who and whether an
//! OTP was sent — never the `Authorization` header, passwords or tokens.

use std::collections::VecDeque;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::Emulator;
use super::auth::{Credentials, OTP_HEADER};
use super::faults::ConnectionReset;

/// Oldest records are dropped beyond this many, so a long-running emulator stays bounded.
const CAPACITY: usize = 10_000;

/// One API request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position since start (keeps counting across clears).
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/api/v3/authorizations`.
    pub path: String,
    /// Raw query string, `""` when none.
    pub query: String,
    /// Status answered; `0` when an injected reset dropped the connection unanswered.
    pub status: u16,
    /// The Basic login when it names a known user (whether or not the password was right).
    pub user: Option<String>,
    /// Whether an `X-GitHub-OTP` header was sent.
    pub otp: bool,
    /// Where the request stands in the same count as `seq`, taken when it arrived: a request
    /// whose `arrived` is above another's `seq` was sent after that one was answered (`seq`
    /// is taken when the answer is, so concurrent requests can finish in another order).
    #[serde(default)]
    pub arrived: u64,
    /// The `User-Agent` sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Recorded requests, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    last_seq: u64,
    records: VecDeque<RequestRecord>,
}

impl Journal {
    /// Counts a request's arrival; returns its place.
    fn arrive(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    fn push(&mut self, mut record: RequestRecord) {
        self.last_seq += 1;
        record.seq = self.last_seq;
        if self.records.len() == CAPACITY {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// A copy of the records.
    pub(crate) fn records(&self) -> Vec<RequestRecord> {
        self.records.iter().cloned().collect()
    }

    /// Forgets the records (sequence numbers keep counting).
    pub(crate) fn clear(&mut self) {
        self.records.clear();
    }
}

/// Middleware: records every API request with the status it got.
pub(crate) async fn record(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let credentials = Credentials::from_headers(request.headers());
    // Only logins of known users are kept: a token sent as the username must not be logged.
    let user = credentials
        .login()
        .filter(|login| emulator.store().users.contains_key(*login))
        .map(str::to_owned);
    let mut record = RequestRecord {
        seq: 0,
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        status: 0,
        user,
        otp: request.headers().contains_key(OTP_HEADER),
        arrived: emulator.journal().arrive(),
        user_agent: request
            .headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    let response = next.run(request).await;
    if response.extensions().get::<ConnectionReset>().is_none() {
        record.status = response.status().as_u16();
    }
    emulator.journal().push(record);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_survives_clear_and_capacity_is_bounded() {
        let mut journal = Journal::default();
        let record = RequestRecord {
            seq: 0,
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            status: 200,
            user: None,
            otp: false,
            arrived: 0,
            user_agent: None,
        };
        journal.push(record.clone());
        journal.clear();
        journal.push(record.clone());
        assert_eq!(journal.records()[0].seq, 2);
        for _ in 0..CAPACITY {
            journal.push(record.clone());
        }
        assert_eq!(journal.records().len(), CAPACITY);
    }
}
