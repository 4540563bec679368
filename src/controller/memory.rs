//! What this process remembers of each object (Authorization, Account or ClusterAccount), by
//! uid, in one map that one `retain` prunes when the object is gone:
//!
//! - the newest resourceVersion it wrote or read, to tell a watch cache that lags behind the
//!   operator's own status write, and the versions it wrote, whose watch events trigger
//!   nothing; the Authorization as its newest write left it; whether its deletion finished;
//! - its transient failures in a row, behind exponential backoff;
//! - the request GHES refused as invalid, not sent again for the same generation and token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

use super::error::Error;
use crate::api::Authorization;
use crate::ghes::RetryPolicy;

/// First delay after a transient failure.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest delay after repeated transient failures.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The same jittered exponential backoff the GHES client uses, with reconcile-sized delays.
const RECONCILE_BACKOFF: RetryPolicy = RetryPolicy {
    max_retries: 0,
    base_delay: BACKOFF_BASE,
    max_delay: BACKOFF_MAX,
    max_wait: BACKOFF_MAX,
};

/// What this process remembers of each object, by uid.
#[derive(Default)]
pub struct ObjectMemory(Mutex<HashMap<String, Remembered>>);

/// What this process remembers of one object.
#[derive(Default)]
struct Remembered {
    /// Its versions, once this process wrote or read it.
    seen: Option<Seen>,
    /// Transient failures in a row.
    failures: u32,
    /// The last request GHES refused as invalid (boxed: rare, and every object has a slot).
    refusal: Option<Box<Refusal>>,
}

/// A request GHES refused with a configuration error.
struct Refusal {
    generation: Option<i64>,
    fingerprint: String,
    at: Instant,
    reason: &'static str,
    message: String,
}

/// The newest version this process knows of an object, and the versions it wrote itself
/// (the last few, newest last).
struct Seen {
    version: Version,
    /// Oldest first; `None` until that many writes.
    written: [Option<Version>; OWN_WRITES_REMEMBERED],
    /// The Authorization as this process's newest write left it, until the watch delivers
    /// that version: a reconcile that finds the watch cache behind uses it instead of a read.
    held: Option<Arc<Authorization>>,
    /// Its deletion finished here (cleanup done, finalizer removed): a copy the watch cache
    /// still holds is not cleaned up again.
    released: bool,
}

impl Seen {
    /// First known at `version`: nothing written, held or released yet.
    fn at(version: Version) -> Self {
        Self {
            version,
            written: [None; OWN_WRITES_REMEMBERED],
            held: None,
            released: false,
        }
    }

    /// Whether `version` is one of this process's writes, and nothing but its own writes came
    /// after it.
    fn only_own_writes_since(&self, version: Version) -> bool {
        self.written.contains(&Some(version)) && self.written.last() == Some(&Some(self.version))
    }

    /// Remembers `version` as written by this process, forgetting the oldest such write.
    fn wrote(&mut self, version: Version) {
        self.written.rotate_left(1);
        if let Some(newest) = self.written.last_mut() {
            *newest = Some(version);
        }
    }
}

/// A resourceVersion, by a hash: held for each object, and only ever compared for equality
/// (a collision, at 2^-64, would take someone else's change for one's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version(u64);

impl Version {
    fn of(version: &str) -> Self {
        Self(super::string_hash(version))
    }
}

/// How many of its own writes of one object this process remembers: a reconcile writes its
/// status at most twice, and the watch may deliver both events after both writes.
const OWN_WRITES_REMEMBERED: usize = 4;

impl ObjectMemory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Remembered>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record<K: Resource>(&self, object: &K, written: bool) {
        if let (Some(uid), Some(version)) = (object.meta().uid.as_ref(), object.resource_version())
        {
            let version = Version::of(&version);
            let mut seen = self.lock();
            let entry = seen
                .entry(uid.clone())
                .or_default()
                .seen
                .get_or_insert_with(|| Seen::at(version));
            entry.held = None;
            if written {
                entry.wrote(version);
            }
            entry.version = version;
        }
    }

    /// Records the version of `object` as read by this process.
    pub fn saw<K: Resource>(&self, object: &K) {
        self.record(object, false);
    }

    /// Records the version of `object` as written by this process.
    #[cfg(test)]
    pub fn wrote<K: Resource>(&self, object: &K) {
        self.record(object, true);
    }

    /// Records `authorization` as this process has just written it, and holds it until the
    /// watch delivers that version (see [`Self::newer_own_write`]).
    pub fn wrote_authorization(&self, mut authorization: Authorization) {
        self.record(&authorization, true);
        let Some(uid) = authorization.metadata.uid.clone() else {
            return;
        };
        authorization.metadata.managed_fields = None;
        if let Some(seen) = self.lock().get_mut(&uid).and_then(|m| m.seen.as_mut()) {
            seen.held = Some(Arc::new(authorization));
        }
    }

    /// When `cached` is behind only by this process's own writes, the object as its newest
    /// write left it: what a read would return, without the read.
    pub fn newer_own_write(&self, cached: &Authorization) -> Option<Arc<Authorization>> {
        let uid = cached.metadata.uid.as_ref()?;
        let version = Version::of(cached.metadata.resource_version.as_ref()?);
        let seen = self.lock();
        let seen = seen.get(uid)?.seen.as_ref()?;
        seen.only_own_writes_since(version)
            .then(|| seen.held.clone())
            .flatten()
    }

    /// Whether `cached` is the newest version of its object this process knows of: true when
    /// it never wrote or read the object, or when that is the version it last wrote or read.
    pub fn is_current<K: Resource>(&self, cached: &K) -> bool {
        let Some(uid) = cached.meta().uid.as_ref() else {
            return false;
        };
        match self.lock().get(uid).and_then(|m| m.seen.as_ref()) {
            None => true,
            Some(seen) => {
                cached.meta().resource_version.as_deref().map(Version::of) == Some(seen.version)
            }
        }
    }

    /// Whether `object` is a version this process wrote itself and nothing changed after it
    /// but further writes of its own: the watch event of its own status write, which needs no
    /// reconcile (the one that wrote it chose what comes next). An earlier own write whose
    /// event arrives after a later one counts too: the later one's event follows.
    pub fn is_own_write<K: Resource>(&self, object: &K) -> bool {
        let (Some(uid), Some(version)) = (object.meta().uid.as_ref(), object.resource_version())
        else {
            return false;
        };
        let mut seen = self.lock();
        let Some(seen) = seen.get_mut(uid).and_then(|m| m.seen.as_mut()) else {
            return false;
        };
        let version = Version::of(&version);
        let own = seen.only_own_writes_since(version);
        // The watch has caught up with the newest write: the copy held for it can go.
        if own && version == seen.version {
            seen.held = None;
        }
        own
    }

    /// Records that the deletion of `object` finished here: its cleanup ran and its finalizer
    /// is off, so the API server lets it go.
    pub fn released<K: Resource>(&self, object: &K) {
        if let Some(uid) = object.meta().uid.as_ref() {
            self.lock()
                .entry(uid.clone())
                .or_default()
                .seen
                .get_or_insert_with(|| {
                    Seen::at(Version::of(
                        object.resource_version().as_deref().unwrap_or_default(),
                    ))
                })
                .released = true;
        }
    }

    /// Whether the deletion of `object` already finished here: a reconcile of the copy the
    /// watch cache holds until it delivers the removal has nothing left to do.
    pub fn is_released<K: Resource>(&self, object: &K) -> bool {
        object
            .meta()
            .uid
            .as_ref()
            .and_then(|uid| {
                self.lock()
                    .get(uid)
                    .and_then(|m| m.seen.as_ref())
                    .map(|seen| seen.released)
            })
            .unwrap_or(false)
    }

    /// Forgets every object (by uid) that no longer exists: the one place per-object memory
    /// goes.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.lock().retain(|uid, _| live(uid));
    }

    /// The delay before retrying `object` after another transient failure: exponential with
    /// jitter, per object, so one broken object does not slow the others.
    pub fn next_backoff<K: Resource>(&self, object: &K) -> Duration {
        let uid = object.meta().uid.clone().unwrap_or_default();
        let mut objects = self.lock();
        let count = &mut objects.entry(uid).or_default().failures;
        *count = count.saturating_add(1);
        RECONCILE_BACKOFF.backoff(*count - 1)
    }

    /// Forgets the failures of `object` after a success.
    pub fn reset_backoff<K: Resource>(&self, object: &K) {
        let Some(uid) = object.meta().uid.as_ref() else {
            return;
        };
        if let Some(remembered) = self.lock().get_mut(uid) {
            remembered.failures = 0;
        }
    }

    /// Remembers that GHES refused the request for the token `fingerprint` of the object
    /// `uid` at `generation` as invalid. Other errors are not remembered: a transient one is
    /// retried, and one of the account (its credentials) clears as soon as the account is
    /// fixed.
    pub fn remember_refusal(
        &self,
        uid: &str,
        generation: Option<i64>,
        fingerprint: &str,
        error: &Error,
    ) {
        if !(matches!(error, Error::InvalidSpec(_) | Error::Ghes(_)) && error.is_config()) {
            return;
        }
        let refusal = Refusal {
            generation,
            fingerprint: fingerprint.to_owned(),
            at: Instant::now(),
            reason: error.reason(),
            message: error.to_string(),
        };
        self.lock().entry(uid.to_owned()).or_default().refusal = Some(Box::new(refusal));
    }

    /// The refusal to answer again, without asking GHES, for the same request: same object,
    /// generation and token, within the period after which configuration errors are
    /// re-checked. Every status write triggers a reconcile; without this, each would send the
    /// refused request once more.
    pub fn refused_before(
        &self,
        uid: &str,
        generation: Option<i64>,
        fingerprint: &str,
        recheck: Duration,
    ) -> Option<Error> {
        let objects = self.lock();
        let refusal = objects.get(uid)?.refusal.as_ref()?;
        (refusal.generation == generation
            && refusal.fingerprint == fingerprint
            && refusal.at.elapsed() < recheck)
            .then(|| Error::RefusedBefore {
                reason: refusal.reason,
                message: refusal.message.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;

    fn secret(name: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn authorization(name: &str) -> Authorization {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accountRef": {"name": "bot"}, "secret": {"name": name}},
        }))
        .expect("authorization")
    }

    #[test]
    fn versions_trust_the_cache_only_at_the_version_last_seen() {
        let versions = ObjectMemory::default();
        let at = |rv: &str| {
            let mut secret = secret("s");
            secret.metadata.uid = Some("uid-1".into());
            secret.metadata.resource_version = Some(rv.into());
            secret
        };
        assert!(
            versions.is_current(&at("5")),
            "never seen: the cache is all there is"
        );
        versions.wrote(&at("7"));
        assert!(
            !versions.is_current(&at("5")),
            "older than this process's own write"
        );
        assert!(versions.is_current(&at("7")));
        assert!(versions.is_own_write(&at("7")));
        assert!(!versions.is_own_write(&at("8")), "someone else's change");
        assert!(
            !versions.is_current(&at("8")),
            "newer: read once, then trusted"
        );
        versions.saw(&at("8"));
        assert!(versions.is_current(&at("8")));
        assert!(!versions.is_own_write(&at("8")), "read, not written");
        versions.retain(|_| false);
        assert!(versions.is_current(&at("5")));

        // Two writes of one reconcile whose events arrive after both: neither triggers.
        versions.wrote(&at("10"));
        versions.wrote(&at("11"));
        assert!(versions.is_own_write(&at("10")) && versions.is_own_write(&at("11")));
        assert!(!versions.is_current(&at("10")), "not the newest");
        // Someone else's change after them: even the earlier own write's event triggers.
        versions.saw(&at("12"));
        assert!(!versions.is_own_write(&at("10")));
        assert!(!versions.is_own_write(&at("11")));

        // Only the last few own writes are remembered.
        for rv in ["20", "21", "22", "23", "24"] {
            versions.wrote(&at(rv));
        }
        assert!(!versions.is_own_write(&at("20")), "the oldest is forgotten");
        assert!(versions.is_own_write(&at("21")) && versions.is_own_write(&at("24")));
    }

    #[test]
    fn a_cache_behind_only_by_own_writes_is_answered_from_the_newest_write() {
        let versions = ObjectMemory::default();
        let at = |rv: &str| {
            let mut authorization = authorization("ci");
            authorization.metadata.uid = Some("uid-1".into());
            authorization.metadata.resource_version = Some(rv.into());
            authorization
        };
        versions.wrote_authorization(at("20"));
        versions.wrote_authorization(at("21"));
        let held = versions.newer_own_write(&at("20")).expect("held");
        assert_eq!(held.metadata.resource_version.as_deref(), Some("21"));
        assert!(versions.newer_own_write(&at("19")).is_none(), "not ours");
        // The watch delivers the newest write: nothing is held any more.
        assert!(versions.is_own_write(&at("21")));
        assert!(versions.newer_own_write(&at("20")).is_none());
        // Someone else's change: nothing is held either.
        versions.wrote_authorization(at("22"));
        versions.saw(&at("23"));
        assert!(versions.newer_own_write(&at("22")).is_none());
    }

    #[test]
    fn one_retain_forgets_every_kind_of_memory_of_a_gone_object() {
        let memory = ObjectMemory::default();
        let object = |uid: &str| {
            let mut secret = secret("s");
            secret.metadata.uid = Some(uid.into());
            secret
        };
        memory.next_backoff(&object("gone"));
        memory.next_backoff(&object("live"));
        let refused = Error::InvalidSpec("no".into());
        memory.remember_refusal("gone", Some(1), "fp", &refused);
        memory.retain(|uid| uid == "live");
        let recheck = Duration::from_secs(60);
        assert!(
            memory
                .refused_before("gone", Some(1), "fp", recheck)
                .is_none()
        );
        assert_eq!(memory.lock().len(), 1);
        // The failures of the live one were kept: its next delay is the second step.
        assert!(memory.next_backoff(&object("live")) >= BACKOFF_BASE);
        memory.reset_backoff(&object("live"));
        assert_eq!(memory.lock().get("live").map(|m| m.failures), Some(0));
    }
}
