//! The lifecycle of an Authorization's token as one explicit state and one pure decision.
//!
//! A reconcile (and `plan`) first observes: the account's listing, a GET for a token the
//! listing does not show, the Secret. [`decide`] then says what to do next from the spec, the
//! [`State`] that status records and that observation: no I/O, no clock, nothing mutable. The
//! reconcile carries out the [`Step`] and records the new state; `plan` only describes it.
//!
//! ```text
//!                    ┌───────────── gone (GHES 404) ─────────────┐
//!                    v                                            │
//!   None ──intent──> Creating ──issued, Secret written──> Live ──┤── drift: Update (PATCH)
//!                      ^                                   │  ^   └── lost from the Secret:
//!                      │                          rotation │  │       Reissue (DELETE + create)
//!                      │                           due     v  │ previous revoked after grace
//!                      └──────────── Rotating { previous } ───┘ and rollouts
//! ```
//!
//! The rotation number in a fingerprint never goes back: a rotation records its next
//! fingerprint before anything is created, and a refusal keeps it.

use jiff::{SignedDuration, Timestamp};

use super::rotate::{Trigger, scheduled};
use super::{AuthorizationStatus, AuthorizationUpdate, GhesAuthorization, drift_update};
use crate::api::AuthorizationSpec;

/// Where an Authorization's token is in its lifecycle, as status records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No token recorded and no create started.
    None,
    /// A create was started under the recorded fingerprint; whether GHES made the token is
    /// known only from a listing.
    Creating,
    /// The current token, `id`.
    Live { id: u64 },
    /// A rotation: `previous` is being replaced; `current` is the new token once recorded;
    /// `switched`: the Secret holds the new token and `previous` waits for its revoke time.
    Rotating {
        previous: u64,
        current: Option<u64>,
        switched: bool,
    },
}

/// The state of one Authorization's token: its phase, and the status it was read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct State<'a> {
    /// The phase.
    pub(crate) phase: Phase,
    status: &'a AuthorizationStatus,
}

impl<'a> State<'a> {
    /// The state `status` records.
    pub(crate) fn of(status: &'a AuthorizationStatus) -> Self {
        let current = status
            .authorization_id
            .and_then(|id| u64::try_from(id).ok());
        let phase = match (&status.previous, current) {
            (Some(previous), current) => Phase::Rotating {
                previous: u64::try_from(previous.authorization_id).unwrap_or_default(),
                current,
                switched: previous.revoke_after.is_some(),
            },
            (None, Some(id)) => Phase::Live { id },
            (None, None) if status.fingerprint.is_some() => Phase::Creating,
            (None, None) => Phase::None,
        };
        Self { phase, status }
    }

    /// The status this state was read from.
    pub(crate) fn status(&self) -> &'a AuthorizationStatus {
        self.status
    }

    /// The token status names as current, if any.
    pub(crate) fn current(&self) -> Option<u64> {
        match self.phase {
            Phase::Live { id } => Some(id),
            Phase::Rotating { current, .. } => current,
            Phase::None | Phase::Creating => None,
        }
    }

    /// Whether the token is looked for by fingerprint: a create (a first one or a rotation's)
    /// was started and no id recorded.
    pub(crate) fn creating(&self) -> bool {
        self.status.fingerprint.is_some() && self.current().is_none()
    }

    /// Whether a rotation is under way and its new token not yet in the Secret.
    pub(crate) fn rotating(&self) -> bool {
        matches!(
            self.phase,
            Phase::Rotating {
                switched: false,
                ..
            }
        )
    }

    /// The tokens stranded when the account now logs in as `identity`, with the identity
    /// recorded for them: the tokens status records, when it records another identity.
    pub(crate) fn stranded_by(&self, identity: &str) -> Option<(&'a str, Vec<u64>)> {
        let recorded = self.status.identity.as_deref()?;
        let ids = self.status.token_ids();
        (recorded != identity && !ids.is_empty()).then_some((recorded, ids))
    }
}

/// What observation found of this resource's token on GHES. (One per run, short-lived: the
/// live token is held inline.)
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Found {
    /// Nothing: none recorded, and none under the fingerprint of a create that was started.
    Nothing,
    /// GHES says the token status names is gone.
    Gone(u64),
    /// Status names token `id`, which was not made for this resource, and none of its own
    /// is found.
    NotOwned { id: u64 },
    /// The live token, proven this resource's. `recorded`: status names it; otherwise it
    /// was found under the fingerprint (an interrupted create, or one whose answer was lost).
    Live {
        live: GhesAuthorization,
        recorded: bool,
    },
}

/// What a run observed, beyond status: what [`decide`] needs and nothing else.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    /// This resource's token on GHES.
    pub(crate) found: Found,
    /// A token status names (or the fingerprint finds) that was not made for this resource,
    /// and why not: it is left alone, whatever the step.
    pub(crate) disowned: Option<(u64, String)>,
    /// Whether the Secret holds the found token's value.
    pub(crate) held: bool,
    /// Why the Secret does not hold it, when it does not.
    pub(crate) lost_reason: &'static str,
    /// Whether the token can be read back from the Secret (a plain, not a rendered, Secret).
    pub(crate) readable: bool,
    /// Whether the Secret was rendered from another recipe than the spec's (or is rendered
    /// and should not be, or the reverse).
    pub(crate) render_anew: bool,
    /// The value of the `oauth.ghes.io/rotate` annotation.
    pub(crate) rotate_request: Option<String>,
    /// GHES's clock minus ours.
    pub(crate) clock_offset: SignedDuration,
    /// The note the token should carry (its rotation's).
    pub(crate) note: String,
}

/// What was there before a token is issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Before {
    /// No token: a first one, or the rotation's next one.
    Nothing,
    /// The recorded token is gone from GHES.
    Gone(u64),
    /// The recorded token is not this resource's: it is left alone.
    NotOwned(u64),
}

/// What to do next with an Authorization's token.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Issue a token (under the state's fingerprint).
    Issue { before: Before },
    /// The live token no Secret holds (`why`): revoke it and issue another.
    Reissue {
        lost: GhesAuthorization,
        why: &'static str,
    },
    /// Rotation is due (`trigger`): record the rotation, issue the next token; `live` is
    /// revoked once the Secret holds the new one, after the grace period and rollouts.
    Rotate {
        live: GhesAuthorization,
        trigger: Trigger,
    },
    /// Keep the live token the Secret holds; `adopted`: status does not name it yet;
    /// `update`: the one PATCH that repairs drift (empty: nothing drifted).
    Keep {
        live: GhesAuthorization,
        adopted: bool,
        update: AuthorizationUpdate,
    },
}

impl Step {
    /// Whether the Secret holds a live token of this resource while the step runs.
    pub(crate) fn secret_holds_token(&self) -> bool {
        matches!(self, Self::Rotate { .. } | Self::Keep { .. })
    }
}

/// What to do next: pure, shared by reconcile and `plan`.
pub(crate) fn decide(
    spec: &AuthorizationSpec,
    state: &State<'_>,
    observed: &Observed,
    now: Timestamp,
) -> Step {
    let (live, recorded) = match &observed.found {
        Found::Nothing => {
            return Step::Issue {
                before: Before::Nothing,
            };
        }
        // During a rotation the token to issue is the next one: nothing was lost.
        Found::Gone(_) if state.rotating() => {
            return Step::Issue {
                before: Before::Nothing,
            };
        }
        Found::Gone(id) => {
            return Step::Issue {
                before: Before::Gone(*id),
            };
        }
        Found::NotOwned { id } => {
            return Step::Issue {
                before: Before::NotOwned(*id),
            };
        }
        Found::Live { live, recorded } => (live, *recorded),
    };
    if !observed.held {
        return Step::Reissue {
            lost: live.clone(),
            why: observed.lost_reason,
        };
    }
    if let Some(trigger) = rotation_due(spec, state.status(), observed, live, now) {
        return Step::Rotate {
            live: live.clone(),
            trigger,
        };
    }
    Step::Keep {
        live: live.clone(),
        adopted: !recorded,
        update: drift_update(spec, state.status(), live, observed.note.clone()),
    }
}

/// Why the token `live`, which the Secret holds, must be rotated at `now`, if it must: the
/// rotate annotation's new value, a Secret to render anew, or the schedule. Never while a
/// rotation's previous token is still pending.
fn rotation_due(
    spec: &AuthorizationSpec,
    stored: &AuthorizationStatus,
    observed: &Observed,
    live: &GhesAuthorization,
    now: Timestamp,
) -> Option<Trigger> {
    if stored.previous.is_some() {
        return None;
    }
    if observed.rotate_request.is_some() && observed.rotate_request != stored.rotate_request {
        return Some(Trigger::Requested);
    }
    if !observed.readable && observed.render_anew {
        return Some(Trigger::Template);
    }
    let issued_at = stored.issued_at.as_ref().map(|t| t.0);
    // GHES's clock made expires_at: on ours it is that much earlier when GHES runs ahead.
    let offset = observed.clock_offset;
    let expires_at = live
        .expires_at
        .or(stored.expires_at.as_ref().map(|t| t.0))
        .map(|at| at.checked_sub(offset).unwrap_or(at));
    scheduled(spec, issued_at, expires_at)
        .filter(|(at, _)| *at <= now)
        .map(|(_, trigger)| trigger)
}

/// Why deleting an Authorization leaves its tokens on GHES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// `managementPolicy: Observe`: it never owned them.
    Observed,
    /// `deletionPolicy: Orphan`.
    Orphan,
    /// A personal token is only created after its fingerprint is in status: with neither an
    /// id nor a fingerprint, none was ever made. (An app token's get-or-create needs no record
    /// first, so an app token is always looked for.)
    NeverIssued,
}

/// Whether deleting an Authorization in `state` leaves its tokens without looking for them,
/// and why; `None`: they are looked for and each one proven its own is revoked. Pure, shared
/// by the deletion and `plan`.
pub(crate) fn released(spec: &AuthorizationSpec, state: &State<'_>) -> Option<Release> {
    if spec.management_policy == crate::api::ManagementPolicy::Observe {
        return Some(Release::Observed);
    }
    if spec.deletion_policy == crate::api::DeletionPolicy::Orphan {
        return Some(Release::Orphan);
    }
    (state.phase == Phase::None && spec.is_personal()).then_some(Release::NeverIssued)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{PreviousAuthorization, Rotation};
    use crate::ghes::{AppRef, ScopeChange};

    const NOW: i64 = 1_800_000_000;

    fn at(seconds_ago: i64) -> Timestamp {
        Timestamp::from_second(NOW - seconds_ago).expect("timestamp")
    }

    fn spec(scopes: &[&str]) -> AuthorizationSpec {
        serde_json::from_value(serde_json::json!({
            "accountRef": {"name": "bot"},
            "scopes": scopes,
        }))
        .expect("spec")
    }

    fn live(id: u64, scopes: &[&str], note: &str) -> GhesAuthorization {
        GhesAuthorization {
            id,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            token: None,
            token_last_eight: Some("abcdefgh".into()),
            hashed_token: Some(format!("hash-{id}")),
            app: AppRef {
                client_id: "00000000000000000000".into(),
                name: "GraphQL API Explorer".into(),
            },
            note: Some(note.into()),
            note_url: None,
            fingerprint: Some("fp".into()),
            created_at: at(3600),
            updated_at: at(3600),
            expires_at: None,
            user: None,
        }
    }

    fn recorded(id: u64, scopes: &[&str]) -> AuthorizationStatus {
        AuthorizationStatus {
            authorization_id: Some(i64::try_from(id).expect("id")),
            fingerprint: Some("fp".into()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            requested_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            issued_at: Some(Time(at(3600))),
            ..AuthorizationStatus::default()
        }
    }

    fn observed(found: Found) -> Observed {
        Observed {
            found,
            disowned: None,
            held: true,
            lost_reason: "the Secret was missing",
            readable: true,
            render_anew: false,
            rotate_request: None,
            clock_offset: SignedDuration::ZERO,
            note: "note".into(),
        }
    }

    fn found(live: GhesAuthorization) -> Found {
        Found::Live {
            live,
            recorded: true,
        }
    }

    #[test]
    fn phases_follow_status() {
        let none = AuthorizationStatus::default();
        assert_eq!(State::of(&none).phase, Phase::None);
        let creating = AuthorizationStatus {
            fingerprint: Some("fp".into()),
            ..AuthorizationStatus::default()
        };
        assert_eq!(State::of(&creating).phase, Phase::Creating);
        assert!(State::of(&creating).creating());
        let live = recorded(7, &["repo"]);
        assert_eq!(State::of(&live).phase, Phase::Live { id: 7 });
        let mut rotating = creating.clone();
        rotating.previous = Some(Box::new(PreviousAuthorization {
            authorization_id: 7,
            ..PreviousAuthorization::default()
        }));
        let state = State::of(&rotating);
        assert_eq!(
            state.phase,
            Phase::Rotating {
                previous: 7,
                current: None,
                switched: false
            }
        );
        assert!(state.rotating() && state.creating());
        rotating.authorization_id = Some(8);
        if let Some(previous) = rotating.previous.as_mut() {
            previous.revoke_after = Some(Time(at(0)));
        }
        let state = State::of(&rotating);
        assert!(!state.rotating() && !state.creating());
        assert_eq!(state.current(), Some(8));
    }

    #[test]
    fn a_held_token_as_declared_is_kept_without_a_write() {
        let status = recorded(7, &["repo"]);
        let step = decide(
            &spec(&["repo"]),
            &State::of(&status),
            &observed(found(live(7, &["repo"], "note"))),
            at(0),
        );
        let Step::Keep {
            live,
            adopted,
            update,
        } = step
        else {
            panic!("{step:?}");
        };
        assert_eq!((live.id, adopted, update.is_empty()), (7, false, true));
    }

    #[test]
    fn a_scope_change_is_one_update() {
        let status = recorded(7, &["repo"]);
        let step = decide(
            &spec(&["repo", "gist"]),
            &State::of(&status),
            &observed(found(live(7, &["repo"], "note"))),
            at(0),
        );
        let Step::Keep { update, .. } = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            update.scopes,
            Some(ScopeChange::Replace(vec!["repo".into(), "gist".into()]))
        );
        assert!(update.note.is_none());
    }

    #[test]
    fn a_token_the_secret_lost_is_reissued() {
        let status = recorded(7, &["repo"]);
        let mut seen = observed(found(live(7, &["repo"], "note")));
        seen.held = false;
        let step = decide(&spec(&["repo"]), &State::of(&status), &seen, at(0));
        assert!(
            matches!(&step, Step::Reissue { lost, why } if lost.id == 7 && *why == "the Secret was missing"),
            "{step:?}"
        );
        assert!(!step.secret_holds_token());
    }

    #[test]
    fn a_gone_token_is_issued_again_but_a_rotation_is_not_a_loss() {
        let status = recorded(7, &["repo"]);
        let step = decide(
            &spec(&["repo"]),
            &State::of(&status),
            &observed(Found::Gone(7)),
            at(0),
        );
        assert!(
            matches!(
                &step,
                Step::Issue {
                    before: Before::Gone(7)
                }
            ),
            "{step:?}"
        );

        let rotating = AuthorizationStatus {
            fingerprint: Some("fp.1".into()),
            previous: Some(Box::new(PreviousAuthorization {
                authorization_id: 7,
                ..PreviousAuthorization::default()
            })),
            ..AuthorizationStatus::default()
        };
        let step = decide(
            &spec(&["repo"]),
            &State::of(&rotating),
            &observed(Found::Nothing),
            at(0),
        );
        assert!(
            matches!(
                &step,
                Step::Issue {
                    before: Before::Nothing
                }
            ),
            "{step:?}"
        );
    }

    #[test]
    fn a_token_found_by_fingerprint_is_adopted_only_when_the_secret_holds_it() {
        let creating = AuthorizationStatus {
            fingerprint: Some("fp".into()),
            ..AuthorizationStatus::default()
        };
        let by_fingerprint = Found::Live {
            live: live(9, &["repo"], "note"),
            recorded: false,
        };
        let step = decide(
            &spec(&["repo"]),
            &State::of(&creating),
            &observed(by_fingerprint.clone()),
            at(0),
        );
        assert!(
            matches!(&step, Step::Keep { adopted: true, live, .. } if live.id == 9),
            "{step:?}"
        );
        let mut unheld = observed(by_fingerprint);
        unheld.held = false;
        let step = decide(&spec(&["repo"]), &State::of(&creating), &unheld, at(0));
        assert!(
            matches!(&step, Step::Reissue { lost, .. } if lost.id == 9),
            "{step:?}"
        );
    }

    #[test]
    fn rotation_is_due_once_per_annotation_value_and_never_during_another() {
        let mut status = recorded(7, &["repo"]);
        let mut seen = observed(found(live(7, &["repo"], "note")));
        seen.rotate_request = Some("1".into());
        let step = decide(&spec(&["repo"]), &State::of(&status), &seen, at(0));
        assert!(
            matches!(
                &step,
                Step::Rotate {
                    trigger: Trigger::Requested,
                    ..
                }
            ),
            "{step:?}"
        );
        status.rotate_request = Some("1".into());
        let step = decide(&spec(&["repo"]), &State::of(&status), &seen, at(0));
        assert!(matches!(&step, Step::Keep { .. }), "{step:?}");
        // A pending previous token: no second rotation, whatever the schedule says.
        status.rotate_request = None;
        status.previous = Some(Box::new(PreviousAuthorization {
            authorization_id: 6,
            revoke_after: Some(Time(at(-60))),
            ..PreviousAuthorization::default()
        }));
        let step = decide(&spec(&["repo"]), &State::of(&status), &seen, at(0));
        assert!(matches!(&step, Step::Keep { .. }), "{step:?}");
    }

    #[test]
    fn the_schedule_counts_expiry_on_our_clock() {
        let mut spec = spec(&["repo"]);
        spec.rotation = Some(Box::new(Rotation {
            renew_before_expiry: Some("10m".parse().expect("duration")),
            ..Rotation::default()
        }));
        let status = recorded(7, &["repo"]);
        let mut token = live(7, &["repo"], "note");
        // GHES runs an hour ahead: its `expires_at` an hour and 15 minutes from now is 15
        // minutes from now on ours, so renewal (10 minutes before) is due in 5 minutes.
        token.expires_at = Some(at(-15 * 60 - 3600));
        let mut seen = observed(found(token));
        seen.clock_offset = SignedDuration::from_hours(1);
        let step = decide(&spec, &State::of(&status), &seen, at(0));
        assert!(matches!(&step, Step::Keep { .. }), "{step:?}");
        let step = decide(&spec, &State::of(&status), &seen, at(-6 * 60));
        assert!(
            matches!(
                &step,
                Step::Rotate {
                    trigger: Trigger::Expiry,
                    ..
                }
            ),
            "{step:?}"
        );
    }

    #[test]
    fn a_rendered_secret_from_another_recipe_rotates() {
        let status = recorded(7, &["repo"]);
        let mut seen = observed(found(live(7, &["repo"], "note")));
        seen.readable = false;
        seen.render_anew = true;
        let step = decide(&spec(&["repo"]), &State::of(&status), &seen, at(0));
        assert!(
            matches!(
                &step,
                Step::Rotate {
                    trigger: Trigger::Template,
                    ..
                }
            ),
            "{step:?}"
        );
        // A plain Secret holds the token readably: rendering it anew needs no new token.
        seen.readable = true;
        let step = decide(&spec(&["repo"]), &State::of(&status), &seen, at(0));
        assert!(matches!(&step, Step::Keep { .. }), "{step:?}");
    }

    #[test]
    fn a_deletion_looks_for_tokens_unless_none_can_exist_or_they_stay() {
        let none = AuthorizationStatus::default();
        let mut personal = spec(&["repo"]);
        assert_eq!(
            released(&personal, &State::of(&none)),
            Some(Release::NeverIssued)
        );
        let creating = AuthorizationStatus {
            fingerprint: Some("fp".into()),
            ..AuthorizationStatus::default()
        };
        assert_eq!(released(&personal, &State::of(&creating)), None);
        let mut app = personal.clone();
        app.app = Some(
            serde_json::from_value(
                serde_json::json!({"clientId": "Iv1.abc", "clientSecretRef": {"name": "s"}}),
            )
            .expect("app"),
        );
        assert_eq!(released(&app, &State::of(&none)), None);
        personal.deletion_policy = crate::api::DeletionPolicy::Orphan;
        assert_eq!(
            released(&personal, &State::of(&creating)),
            Some(Release::Orphan)
        );
        personal.management_policy = crate::api::ManagementPolicy::Observe;
        assert_eq!(
            released(&personal, &State::of(&creating)),
            Some(Release::Observed)
        );
    }

    #[test]
    fn stranded_tokens_are_the_recorded_ones_of_another_identity() {
        let mut status = recorded(7, &["repo"]);
        status.identity = Some("ghes.example/alice".into());
        let state = State::of(&status);
        assert_eq!(state.stranded_by("ghes.example/alice"), None);
        assert_eq!(
            state.stranded_by("ghes.example/bob"),
            Some(("ghes.example/alice", vec![7]))
        );
        let nothing = AuthorizationStatus {
            identity: Some("ghes.example/alice".into()),
            ..AuthorizationStatus::default()
        };
        assert_eq!(State::of(&nothing).stranded_by("ghes.example/bob"), None);
    }
}
