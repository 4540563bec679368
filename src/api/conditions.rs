//! `metav1.Condition`s in the status of every resource: the condition types this operator sets, and
//! how a new observation is merged into the list so that `lastTransitionTime` only moves when the
//! status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// `Ready=True`: the resource is in the state its spec declares (for an `Authorization`: its Secret
/// holds a live token matching the spec; for an account: the credentials work).
pub const READY: &str = "Ready";

/// `Synced=True`: the last reconcile reached GHES and applied every change it needed.
pub const SYNCED: &str = "Synced";

/// `Reconciling=True` (the kstatus convention): work for the current generation is under way or
/// being retried after a transient failure. Absent otherwise.
pub const RECONCILING: &str = "Reconciling";

/// `Stalled=True` (the kstatus convention): a configuration error that waits for a change by a
/// human. Absent otherwise.
pub const STALLED: &str = "Stalled";

/// The reason of `Ready=False` (and `Synced=False`) while a resource is suspended
/// (`spec.suspend`, its own or its account's): deliberately not kept in line with its spec.
pub const SUSPENDED: &str = "Suspended";

/// The API server's limit on `Condition.message` (bytes).
pub const MAX_MESSAGE_BYTES: usize = 32_768;

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The operator cannot tell (yet).
    Unknown,
}

impl ConditionStatus {
    /// The wire form: `True`, `False` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds a condition observed at `now`. The message is cut to [`MAX_MESSAGE_BYTES`] (on a
/// character boundary) so a long error can never make the status update fail.
pub fn new_condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.to_owned(),
        message: truncate_message(message),
        observed_generation,
        last_transition_time: now,
    }
}

fn truncate_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

/// Merges `new` into `conditions`, replacing the condition of the same type or appending it.
///
/// `lastTransitionTime` keeps its old value unless the status changed, so a controller can set the
/// same condition on every reconcile without churning the status. Returns whether anything other
/// than `lastTransitionTime` changed (the caller can skip a status write when it did not).
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            conditions.push(new);
            true
        }
        Some(existing) => {
            let changed = existing.status != new.status
                || existing.reason != new.reason
                || existing.message != new.message
                || existing.observed_generation != new.observed_generation;
            let last_transition_time = if existing.status == new.status {
                existing.last_transition_time.clone()
            } else {
                new.last_transition_time.clone()
            };
            *existing = Condition {
                last_transition_time,
                ..new
            };
            changed
        }
    }
}

/// The condition of the given type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True.as_str())
}

/// Whether the condition of the given type is present with this reason.
pub fn has_reason(conditions: &[Condition], type_: &str, reason: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.reason == reason)
}

/// Removes the condition of the given type; returns whether it was present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + second).unwrap())
    }

    fn ready(status: ConditionStatus, reason: &str, generation: i64, now: Time) -> Condition {
        new_condition(READY, status, reason, "message", Some(generation), now)
    }

    #[test]
    fn a_new_condition_type_is_appended() {
        let mut conditions = vec![new_condition(
            SYNCED,
            ConditionStatus::True,
            "Synced",
            "",
            Some(1),
            at(0),
        )];
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "Pending", 1, at(5))
        ));
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[1].type_, READY);
        assert_eq!(conditions[1].last_transition_time, at(5));
    }

    #[test]
    fn same_status_keeps_last_transition_time_and_reports_no_change() {
        let mut conditions = vec![ready(ConditionStatus::True, "TokenIssued", 1, at(0))];
        assert!(!set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "TokenIssued", 1, at(60))
        ));
        assert_eq!(conditions[0].last_transition_time, at(0));
    }

    #[test]
    fn same_status_with_new_reason_or_generation_updates_but_keeps_transition_time() {
        let mut conditions = vec![ready(ConditionStatus::False, "AccountNotFound", 1, at(0))];
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "SecretConflict", 2, at(60))
        ));
        assert_eq!(conditions[0].reason, "SecretConflict");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, at(0));
    }

    #[test]
    fn status_change_moves_last_transition_time() {
        let mut conditions = vec![ready(ConditionStatus::False, "Pending", 1, at(0))];
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "TokenIssued", 1, at(60))
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, at(60));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE_BYTES); // two bytes each
        let c = new_condition(READY, ConditionStatus::False, "Failed", &long, None, at(0));
        assert!(c.message.len() <= MAX_MESSAGE_BYTES);
        assert!(c.message.len() >= MAX_MESSAGE_BYTES - 1);
        assert!(c.message.chars().all(|ch| ch == 'é'));
    }

    #[test]
    fn lookups_and_removal() {
        let mut conditions = vec![ready(ConditionStatus::True, "TokenIssued", 1, at(0))];
        assert!(is_true(&conditions, READY));
        assert!(!is_true(&conditions, SYNCED));
        assert_eq!(
            find_condition(&conditions, READY).map(|c| c.reason.as_str()),
            Some("TokenIssued")
        );
        assert!(remove_condition(&mut conditions, READY));
        assert!(!remove_condition(&mut conditions, READY));
        assert!(conditions.is_empty());
        assert_eq!(ConditionStatus::from(false).to_string(), "False");
    }
}
