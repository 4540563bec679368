//! Kubernetes Events (`events.k8s.io/v1`) about the operator's resources.
//!
//! An Event repeated within [`SERIES_WINDOW`] (same object, type, reason, action and note)
//! updates the first one's `series` (count, last seen) instead of creating another, as
//! client-go's recorder does. What is kept to do that is a hash and the Event's name per
//! distinct Event, not the Event: kube's `Recorder` keeps every Event it published in full and
//! scans them all on each publish, which at 10,000 Authorizations was the operator's largest
//! use of memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

pub use kube::runtime::events::EventType;

/// How long a repeated Event counts in the first one's series; after that it is a new Event.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// At most this many distinct Events are remembered; beyond, the memory starts afresh (a
/// repeat then makes a new Event rather than a series: nothing is lost).
const REMEMBERED: usize = 100_000;

/// The controllers' Events: about their objects, or about the operator itself (its pod, in
/// its namespace) for what must outlive the namespace it concerns.
pub struct Events {
    publisher: EventPublisher,
    operator: ObjectReference,
}

impl Events {
    /// Events published as `instance` (the pod name), the operator's own in `namespace`.
    pub fn new(client: Client, instance: Option<String>, namespace: String) -> Self {
        let operator = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(
                instance
                    .clone()
                    .unwrap_or_else(|| "ghes-oauth-operator".into()),
            ),
            namespace: Some(namespace),
            ..ObjectReference::default()
        };
        Self {
            publisher: EventPublisher::new(client, "ghes-oauth-operator", instance),
            operator,
        }
    }

    /// Publishes an Event about `object`, its note cut to what the API server takes. A
    /// failure to publish is logged, never fatal.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let note = truncate(note, 1024);
        if let Err(error) = self
            .publisher
            .publish(object, type_, reason, action, &note)
            .await
        {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
    }

    /// Publishes an Event in the operator's own namespace, about the operator: for what must
    /// outlive the namespace it concerns (a token abandoned while its namespace is deleted).
    pub async fn publish_to_operator(&self, type_: EventType, reason: &str, note: String) {
        self.publish(&self.operator, type_, reason, "Delete", note)
            .await;
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Publishes Events as one controller instance.
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    hasher: RandomState,
    sent: Mutex<Sent>,
}

#[derive(Default)]
struct Sent {
    /// Hash of (object, type, reason, action, note) → the Event that started its series.
    series: HashMap<u64, Series>,
    /// When entries older than the window were last dropped.
    swept: Option<Instant>,
}

struct Series {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

impl EventPublisher {
    /// A publisher reporting as `controller`, instance `instance` (the pod name; the
    /// controller's name without one).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            hasher: RandomState::new(),
            sent: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sent> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        (
            &regarding.api_version,
            &regarding.kind,
            &regarding.namespace,
            &regarding.name,
            &regarding.uid,
        )
            .hash(&mut hasher);
        (type_ == EventType::Warning, reason, action, note).hash(&mut hasher);
        hasher.finish()
    }

    /// Publishes an Event about `regarding` (in its namespace; `default` for a cluster-scoped
    /// object), or counts a repeat in the series of the same Event published within the window.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let key = self.key(regarding, type_, reason, action, note);
        let now = Instant::now();
        let repeat = {
            let mut sent = self.lock();
            if sent
                .swept
                .is_none_or(|swept| now.duration_since(swept) >= SERIES_WINDOW)
            {
                sent.series
                    .retain(|_, series| now.duration_since(series.last) < SERIES_WINDOW);
                sent.swept = Some(now);
            }
            sent.series
                .get_mut(&key)
                .filter(|series| now.duration_since(series.last) < SERIES_WINDOW)
                .map(|series| {
                    series.count = series.count.saturating_add(1);
                    series.last = now;
                    (series.namespace.clone(), series.name.clone(), series.count)
                })
        };
        let stamp = MicroTime(jiff::Timestamp::now());
        if let Some((namespace, name, count)) = repeat {
            let patch = json!({"series": {"count": count, "lastObservedTime": stamp}});
            let events = Api::<Event>::namespaced(self.client.clone(), &namespace);
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // The first Event is gone (Events expire): start a new series.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            stamp.0.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note.to_owned()),
            event_time: Some(stamp),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        let mut sent = self.lock();
        if sent.series.len() >= REMEMBERED {
            sent.series.clear();
        }
        sent.series.insert(
            key,
            Series {
                namespace,
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// How many distinct Events are remembered for their series.
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.lock().series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::{DeleteParams, ListParams};
    use kube_testkit::TestApiServer;

    fn regarding(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("oauth.ghes.io/v1alpha1".into()),
            kind: Some("Authorization".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    #[tokio::test]
    async fn a_repeat_counts_in_the_series_of_the_first_event() {
        let server = TestApiServer::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("server");
        let client = server.client("operator").expect("client");
        let events = EventPublisher::new(client.clone(), "ctl", Some("pod-1".into()));
        let api = Api::<Event>::namespaced(client, "default");
        let list = || async { api.list(&ListParams::default()).await.expect("list").items };
        let a = regarding("a");
        let warn = EventType::Warning;
        for _ in 0..3 {
            events
                .publish(&a, warn, "Failed", "Reconcile", "one")
                .await
                .expect("publish");
        }
        let published = list().await;
        assert_eq!(published.len(), 1, "{published:?}");
        let first = &published[0];
        assert_eq!(first.series.as_ref().map(|s| s.count), Some(3));
        assert_eq!(first.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
        assert_eq!(first.regarding.as_ref(), Some(&a));
        // Another note, another object: new Events.
        events
            .publish(&a, warn, "Failed", "Reconcile", "two")
            .await
            .expect("publish");
        events
            .publish(&regarding("b"), warn, "Failed", "Reconcile", "one")
            .await
            .expect("publish");
        assert_eq!(list().await.len(), 3);
        assert_eq!(events.remembered(), 3);
        // The first Event gone: a repeat makes a new one instead of failing.
        let name = first.metadata.name.clone().expect("name");
        api.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
        events
            .publish(&a, warn, "Failed", "Reconcile", "one")
            .await
            .expect("publish");
        let published = list().await;
        assert_eq!(published.len(), 3);
        assert!(
            published
                .iter()
                .all(|e| e.metadata.name.as_ref() != Some(&name))
        );
    }
}
