//! Watches: a chunked stream of `{"type": …, "object": …}` lines.
//!
//! - `resourceVersion` unset or `"0"`: synthetic `ADDED` events for the current objects first
//!   (unless `sendInitialEvents=false`), then changes;
//! - `resourceVersion=N`: the kept changes after `N`, then live changes; a version older than the
//!   kept history gets an `ERROR` event with a 410 `Expired` Status (`too old resource version`)
//!   in a 200 response, exactly as the API server's watch cache answers;
//! - `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan`): the current objects, then
//!   a `BOOKMARK` annotated `k8s.io/initial-events-end: "true"`;
//! - `allowWatchBookmarks=true`: a `BOOKMARK` with the latest version about once per bookmark
//!   interval while it moves on, and one before the watch times out;
//! - label and field selectors, with the watch cache's transitions: an object that starts
//!   matching arrives as `ADDED`, one that stops matching as `DELETED`;
//! - `timeoutSeconds` ends the stream; a watch that falls too far behind is closed, so its client
//!   resumes from its last version like it would after a dropped connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::errors::{ApiError, ApiResult, FieldError};
use super::read::{Output, parse_rv, render};
use super::resources::ResourceInfo;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Broadcast, Change, ChangeType, Store};

/// The parameters of a watch.
#[derive(Clone, Debug)]
pub(crate) struct WatchQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub version_match: Option<String>,
    pub allow_bookmarks: bool,
    pub timeout: Duration,
    pub send_initial_events: Option<bool>,
}

/// What one watch sees.
struct Filter {
    info: ResourceInfo,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    output: Output,
}

impl Filter {
    fn matches(&self, stored: &Value) -> bool {
        let obj = self.info.served(stored);
        self.labels.matches(&obj) && self.fields.matches(&self.info, &obj)
    }

    fn in_scope(&self, change: &Change) -> bool {
        change.storage == self.info.storage
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == change.namespace)
    }

    /// The event a change is for this watch, if any.
    fn event(&self, change: &Change) -> Option<Value> {
        if !self.in_scope(change) {
            return None;
        }
        let now_matches = change.kind != ChangeType::Deleted && self.matches(&change.object);
        let before_matched = change.prev.as_deref().is_some_and(|p| self.matches(p));
        let (kind, object) = match (now_matches, before_matched) {
            (true, false) => ("ADDED", (*change.object).clone()),
            (true, true) => ("MODIFIED", (*change.object).clone()),
            (false, true) => {
                let mut last = match change.kind {
                    ChangeType::Deleted => (*change.object).clone(),
                    _ => change.prev.as_deref().cloned().unwrap_or(Value::Null),
                };
                last["metadata"]["resourceVersion"] = Value::String(change.rv.to_string());
                ("DELETED", last)
            }
            (false, false) => return None,
        };
        Some(json!({"type": kind, "object": render(&self.info, &object, self.output)}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let (kind, api_version) = match self.output {
            Output::Metadata => (
                "PartialObjectMetadata".to_owned(),
                "meta.k8s.io/v1".to_owned(),
            ),
            Output::Full => (self.info.kind.clone(), self.info.api_version()),
        };
        let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}})
    }
}

fn line(event: &Value) -> Bytes {
    let mut bytes = event.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

struct WatchState {
    filter: Filter,
    pending: VecDeque<Bytes>,
    receiver: Option<broadcast::Receiver<Broadcast>>,
    deadline: Instant,
    shutdown: watch::Receiver<bool>,
    /// Everything up to this version has been looked at.
    seen: u64,
    bookmarked: u64,
    allow_bookmarks: bool,
    finished: bool,
}

impl WatchState {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.finished {
                return None;
            }
            let receiver = self.receiver.as_mut()?;
            tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => {
                    self.finished = true;
                    if self.allow_bookmarks && self.seen > self.bookmarked {
                        return Some(line(&self.filter.bookmark(self.seen, false)));
                    }
                    return None;
                }
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        return None;
                    }
                }
                message = receiver.recv() => match message {
                    Ok(Broadcast::Change(change)) => {
                        self.seen = self.seen.max(change.rv);
                        if let Some(event) = self.filter.event(&change) {
                            return Some(line(&event));
                        }
                    }
                    Ok(Broadcast::Tick(rv)) => {
                        self.seen = self.seen.max(rv);
                        if self.allow_bookmarks && self.seen > self.bookmarked {
                            self.bookmarked = self.seen;
                            return Some(line(&self.filter.bookmark(self.seen, false)));
                        }
                    }
                    Ok(Broadcast::Expire(floor)) => {
                        self.finished = true;
                        let status = ApiError::expired(format!(
                            "too old resource version: {} ({})",
                            self.seen,
                            floor + 1
                        ))
                        .status();
                        return Some(line(&json!({"type": "ERROR", "object": status})));
                    }
                    // Too far behind, or the server is going away: end the stream, the client
                    // resumes from the last version it saw.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// Starts a watch and answers with its stream.
pub(crate) fn watch(
    store: &Arc<Store>,
    info: ResourceInfo,
    namespace: Option<String>,
    query: WatchQuery,
    output: Output,
) -> ApiResult<Response> {
    if query.send_initial_events.is_some() && query.version_match.as_deref() != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    if query.send_initial_events.is_none() && query.version_match.is_some() {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )],
        ));
    }
    let filter = Filter {
        info,
        namespace,
        labels: query.labels,
        fields: query.fields,
        output,
    };
    let rv = query.resource_version.as_deref().filter(|r| !r.is_empty());
    let parsed = match rv {
        Some("0") | None => None,
        Some(rv) => Some(parse_rv(rv)?),
    };

    let mut pending = VecDeque::new();
    let (receiver, seen) = {
        let st = store.lock();
        let initial_events = match (query.send_initial_events, parsed) {
            (Some(send), _) => send,
            (None, None) => true,
            (None, Some(_)) => false,
        };
        let mut receiver = Some(st.subscribe());
        if initial_events {
            for (_, stored) in st.list(&filter.info.storage, filter.namespace.as_deref()) {
                if filter.matches(&stored) {
                    pending.push_back(line(&json!({
                        "type": "ADDED",
                        "object": render(&filter.info, &stored, filter.output),
                    })));
                }
            }
            if query.send_initial_events == Some(true) {
                pending.push_back(line(&filter.bookmark(st.rv, true)));
            }
        } else if let Some(rv) = parsed {
            match st.changes_since(rv) {
                Ok(changes) => {
                    for change in changes {
                        if let Some(event) = filter.event(&change) {
                            pending.push_back(line(&event));
                        }
                    }
                }
                Err(floor) => {
                    let status = ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        floor + 1
                    ))
                    .status();
                    pending.push_back(line(&json!({"type": "ERROR", "object": status})));
                    receiver = None;
                }
            }
        }
        (receiver, st.rv)
    };

    let state = WatchState {
        filter,
        pending,
        finished: receiver.is_none(),
        receiver,
        deadline: Instant::now() + query.timeout,
        shutdown: store.shutdown.clone(),
        seen,
        bookmarked: 0,
        allow_bookmarks: query.allow_bookmarks,
    };
    let body = stream::unfold(state, |mut state| async move {
        state
            .next()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), state))
    });
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(Body::from_stream(body))
        .map_err(ApiError::internal)
}
