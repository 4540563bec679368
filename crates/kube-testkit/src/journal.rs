//! The request log tests assert on ([`RequestRecord`]), and injected faults ([`FaultSpec`]).
//! Neither ever holds a request or response body, so no Secret data can end up in them.

use std::collections::VecDeque;

use serde::Serialize;

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Arrival order, from 1.
    pub seq: u64,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`
    /// (discovery and other non-resource requests: `get`).
    pub verb: String,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// The HTTP status answered (watches: 200 when the stream started).
    pub status: u16,
    /// The bearer token, which is the user's name here.
    pub user: String,
    /// The resource (plural, with `/status` for the status subresource); empty for
    /// non-resource requests.
    pub resource: String,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name in the path, if any.
    pub name: Option<String>,
    /// The `fieldManager` query parameter, if given.
    pub field_manager: Option<String>,
    /// The request's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// A fault to inject into matching requests.
///
/// Note that `kube::Client` retries 429, 503 and 504 answers by itself (up to 15 times, with
/// backoff and `Retry-After`), so a fault with one of those statuses and a small `count` is
/// usually invisible to the code under test: use it to test that retry, or another status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultSpec {
    /// The verb to match (see [`RequestRecord::verb`]), or `*` for any.
    pub verb: String,
    /// The resource to match: a plural (`secrets`, matching its subresources too), a
    /// `plural/subresource` (`authorizations/status`), or `*` for any.
    pub resource: String,
    /// Only requests in this namespace, if set.
    pub namespace: Option<String>,
    /// Only requests for this object name, if set.
    pub name: Option<String>,
    /// Only requests by this user (the bearer token's name), if set.
    pub user: Option<String>,
    /// Wait this long before answering.
    pub delay_ms: Option<u64>,
    /// Answer with a `Status` error of this HTTP code instead of doing the request.
    pub status: Option<u16>,
    /// How many matching requests the fault applies to.
    pub count: u32,
}

impl FaultSpec {
    /// Whether a request matches.
    pub(crate) fn matches(
        &self,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
        user: Option<&str>,
    ) -> bool {
        let verb_ok = self.verb == "*" || self.verb == verb;
        let plural = resource.split('/').next().unwrap_or_default();
        let resource_ok =
            self.resource == "*" || self.resource == resource || self.resource == plural;
        let namespace_ok = self.namespace.is_none() || self.namespace.as_deref() == namespace;
        let name_ok = self.name.is_none() || self.name.as_deref() == name;
        let user_ok = self.user.is_none() || self.user.as_deref() == user;
        verb_ok && resource_ok && namespace_ok && name_ok && user_ok && !resource.is_empty()
    }
}

/// The most requests kept in the log.
const MAX_RECORDS: usize = 100_000;

/// The request log and the active faults.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    records: VecDeque<RequestRecord>,
    faults: Vec<FaultSpec>,
}

impl Journal {
    pub fn record(&mut self, record: RequestRecord) {
        self.records.push_back(record);
        while self.records.len() > MAX_RECORDS {
            self.records.pop_front();
        }
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        let mut records: Vec<RequestRecord> = self.records.iter().cloned().collect();
        records.sort_by_key(|r| r.seq);
        records
    }

    pub fn clear(&mut self) {
        self.records.clear();
    }

    pub fn inject(&mut self, fault: FaultSpec) {
        if fault.count > 0 {
            self.faults.push(fault);
        }
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The fault for a request, if one matches (using up one of its count).
    pub fn take_fault(
        &mut self,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
        user: Option<&str>,
    ) -> Option<FaultSpec> {
        let index = self
            .faults
            .iter()
            .position(|f| f.matches(verb, resource, namespace, name, user))?;
        let fault = self.faults[index].clone();
        self.faults[index].count -= 1;
        if self.faults[index].count == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_match_and_run_out() {
        let mut journal = Journal::default();
        journal.inject(FaultSpec {
            verb: "patch".into(),
            resource: "authorizations".into(),
            status: Some(500),
            count: 2,
            ..FaultSpec::default()
        });
        assert!(
            journal
                .take_fault("get", "authorizations", None, None, None)
                .is_none()
        );
        assert!(
            journal
                .take_fault(
                    "patch",
                    "authorizations/status",
                    Some("ns"),
                    Some("a"),
                    None
                )
                .is_some()
        );
        assert!(
            journal
                .take_fault("patch", "authorizations", None, None, None)
                .is_some()
        );
        assert!(
            journal
                .take_fault("patch", "authorizations", None, None, None)
                .is_none()
        );
    }
}
