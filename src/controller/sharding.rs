//! What a controller of one shard needs to know of sharding: which objects are its own (the
//! shard label) and how long to leave one alone after it moved here. Holding shards (Leases)
//! and labelling objects belong to the `shard` module, above the controllers.

use std::time::Duration;

use jiff::Timestamp;

/// The label that assigns an object to a shard.
pub const SHARD_LABEL: &str = "oauth.ghes.io/shard";

/// When the shard label last moved the object to another shard (RFC 3339).
pub const MOVED_AT_ANNOTATION: &str = "oauth.ghes.io/shard-moved-at";

/// How long after a move the new shard leaves an object alone: the old shard's replica stops
/// its reconcile as soon as its watch drops the object (well within this), so the two never
/// write at once.
pub const HANDOFF: Duration = Duration::from_secs(10);

/// How long to wait before writing for an object its shard label moved here less than
/// [`HANDOFF`] ago; `None` when it may be reconciled now.
pub fn handoff_wait(meta: &kube::core::ObjectMeta) -> Option<Duration> {
    let moved: Timestamp = meta
        .annotations
        .as_ref()?
        .get(MOVED_AT_ANNOTATION)?
        .parse()
        .ok()?;
    let since = Timestamp::now().duration_since(moved);
    let since = Duration::try_from(since).unwrap_or_default();
    HANDOFF.checked_sub(since).filter(|left| !left.is_zero())
}

/// The most shards: the shard id is a metric label, and a bounded one.
pub const MAX_SHARDS: u32 = 64;

/// One shard of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Its index, from 0.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

impl Shard {
    /// The label selector of its objects.
    pub fn selector(&self) -> String {
        format!("{SHARD_LABEL}={}", self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}
