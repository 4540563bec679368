//! Pruning: what no Authorization declares goes — but never a human's token by accident, and
//! never everything after a bad sync.
//!
//! A run plans first, from the account's listing and the Authorizations that use the account,
//! as a pure function ([`plan`]); then, in `Enabled` mode, deletes at most
//! `maxDeletionsPerRun` candidates ([`execute`]). A run refuses to prune at all while an
//! Authorization of the account is being created (its token may be one of the "undeclared"
//! ones), and when no Authorization uses the account although GHES holds tokens the operator
//! created (a cache that lost everything, or resources deleted while the operator was down).

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::account::registry::{AccountEntry, Snapshot, is_personal};
use super::fingerprint::{Fingerprint, InstallationId, Provenance};
use crate::api::{
    Authorization, PruneCandidate, PruneMode, PruneSkip, PruneSpec, PruneStatus, PruneTarget,
};
use crate::ghes::redacted::TokenHash;
use crate::ghes::{Authorization as GhesAuthorization, Grant};
use crate::metrics::PruneOutcome;

/// The most candidates and skipped entries listed in status.
const MAX_LISTED: usize = crate::api::account::MAX_LISTED_PRUNE_CANDIDATES;

/// What the Authorizations of one GHES identity (API root and login) claim on GHES.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// How many Authorizations use the identity.
    pub resources: usize,
    /// Authorization ids (current and previous tokens).
    ids: HashSet<u64>,
    /// Uids of the Authorizations: a token whose operator fingerprint names one is claimed.
    uids: HashSet<String>,
    /// Fingerprints recorded in status.
    fingerprints: HashSet<String>,
    /// Client ids of the OAuth apps the Authorizations use.
    client_ids: HashSet<String>,
    /// Authorizations whose create is under way (fingerprint recorded, no id yet).
    creating: Vec<String>,
}

impl Claims {
    /// The claims of the Authorizations that use the identity.
    pub fn of<'a>(authorizations: impl IntoIterator<Item = &'a Authorization>) -> Self {
        let mut claims = Self::default();
        for authorization in authorizations {
            claims.add(authorization);
        }
        claims
    }

    /// Adds the claims of one Authorization that uses the identity.
    pub fn add(&mut self, authorization: &Authorization) {
        self.resources += 1;
        if let Some(uid) = authorization.uid() {
            self.uids.insert(uid);
        }
        if let Some(app) = &authorization.spec.app {
            self.client_ids.insert(app.client_id.clone());
        }
        // What an observer names is declared by its spec, before any status says so.
        if let Some(observe) = &authorization.spec.observe {
            self.ids
                .extend(observe.id.and_then(|id| u64::try_from(id).ok()));
            self.fingerprints.extend(observe.fingerprint.clone());
        }
        let Some(status) = &authorization.status else {
            return;
        };
        self.ids.extend(status.token_ids());
        if let Some(fingerprint) = &status.fingerprint {
            self.fingerprints.insert(fingerprint.clone());
            if status.authorization_id.is_none() {
                self.creating.push(format!(
                    "{}/{}",
                    authorization.namespace().unwrap_or_default(),
                    authorization.name_any()
                ));
            }
        }
    }

    fn claims(&self, authorization: &GhesAuthorization) -> bool {
        let fingerprint = authorization.fingerprint.as_deref();
        self.ids.contains(&authorization.id)
            || fingerprint.is_some_and(|fingerprint| self.fingerprints.contains(fingerprint))
            || fingerprint
                .and_then(Fingerprint::parse)
                .is_some_and(|parsed| self.uids.contains(parsed.uid()))
    }
}

/// Where a run stands: which installation it is, and whether it sees every Authorization that
/// could use the identity.
#[derive(Clone, Debug)]
pub struct Vantage {
    /// This installation: tokens another one made are never candidates.
    pub installation: InstallationId,
    /// Whether the operator reads every namespace. When it watches only some, a token this
    /// installation made for a resource it cannot see may belong to a namespace it does not
    /// watch: such tokens are left alone.
    pub sees_every_namespace: bool,
}

/// What a run decided about one authorization.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    /// An Authorization declares it.
    Claimed,
    /// Nothing declares it and nothing protects it.
    Candidate,
    /// Nothing declares it, but it is kept, and why.
    Protected(String),
    /// Another installation of the operator made it.
    Foreign,
    /// This installation made it for a resource in a namespace it may not see.
    Unattributed,
}

/// One thing to delete.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// An authorization (one token).
    Authorization(GhesAuthorization),
    /// A grant (every token of its app).
    Grant(Grant),
}

impl Target {
    fn kind(&self) -> PruneTarget {
        match self {
            Self::Authorization(_) => PruneTarget::Authorization,
            Self::Grant(_) => PruneTarget::Grant,
        }
    }

    fn id(&self) -> u64 {
        match self {
            Self::Authorization(a) => a.id,
            Self::Grant(g) => g.id,
        }
    }

    fn candidate(&self) -> PruneCandidate {
        let (client_id, app_name, note, created_at) = match self {
            Self::Authorization(a) => (
                (!is_personal(a)).then(|| a.app.client_id.clone()),
                (!is_personal(a)).then(|| a.app.name.clone()),
                a.note.clone(),
                a.created_at,
            ),
            Self::Grant(g) => (
                Some(g.app.client_id.clone()),
                Some(g.app.name.clone()),
                None,
                g.created_at,
            ),
        };
        PruneCandidate {
            kind: self.kind(),
            id: i64::try_from(self.id()).unwrap_or(i64::MAX),
            client_id,
            app_name,
            note,
            created_at: Some(Time(created_at)),
        }
    }

    /// A short description for Events.
    pub fn describe(&self) -> String {
        match self {
            Self::Authorization(a) if is_personal(a) => format!(
                "personal token {} ({:?}, …{})",
                a.id,
                a.note.as_deref().unwrap_or(""),
                a.token_last_eight.as_deref().unwrap_or("")
            ),
            Self::Authorization(a) => format!(
                "token {} of app {} ({}, …{})",
                a.id,
                a.app.name,
                a.app.client_id,
                a.token_last_eight.as_deref().unwrap_or("")
            ),
            Self::Grant(g) => format!(
                "grant {} of app {} ({}) and all its tokens",
                g.id, g.app.name, g.app.client_id
            ),
        }
    }
}

/// What one prune run selects: the candidates, what it protects, and why it holds back.
#[derive(Debug, Default)]
pub struct Selection {
    /// What to delete (in Enabled mode), oldest first; grants after authorizations.
    pub candidates: Vec<Target>,
    /// What is protected, and why.
    pub protected: Vec<PruneSkip>,
    /// Why nothing at all may be pruned, if so.
    pub refused: Option<String>,
    /// Why some tokens the operator made are left alone although nothing here declares them.
    pub withheld: Option<String>,
    /// How many tokens another installation of the operator made.
    pub foreign: usize,
}

impl Selection {
    /// What this run found: candidates of each kind, and whether it refused to prune or
    /// withheld tokens (both reported in the account's `status.prune.refused`).
    pub fn outcome(&self) -> PruneOutcome {
        let grants = self
            .candidates
            .iter()
            .filter(|c| matches!(c, Target::Grant(_)))
            .count();
        PruneOutcome {
            authorizations: self.candidates.len() - grants,
            grants,
            refused: usize::from(self.refused.is_some() || self.withheld.is_some()),
        }
    }

    fn protect(&mut self, kind: PruneTarget, id: u64, reason: String) {
        self.protected.push(PruneSkip {
            kind,
            id: i64::try_from(id).unwrap_or(i64::MAX),
            reason,
        });
    }
}

/// Plans a run for one GHES identity. `credential_hash` is the SHA-256 of the account's
/// password: when the password is a token, that token is never a candidate, nor the grant of
/// its app. A grant is a candidate only when every token of its app is one: deleting it
/// revokes them all.
pub fn plan(
    spec: &PruneSpec,
    snapshot: &Snapshot,
    claims: &Claims,
    credential_hash: &TokenHash,
    vantage: &Vantage,
    now: Timestamp,
) -> Selection {
    let mut plan = Selection::default();
    if spec.mode == PruneMode::Disabled {
        return plan;
    }
    if let Some(first) = claims.creating.first() {
        plan.refused = Some(format!(
            "Authorization {first} is being created{}; pruning waits until it has its token",
            match claims.creating.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            }
        ));
        return plan;
    }
    let provenance =
        |a: &GhesAuthorization| Provenance::of(a.fingerprint.as_deref(), &vantage.installation);
    let operator_made = snapshot
        .iter()
        .filter(|a| matches!(provenance(a), Provenance::Ours(_) | Provenance::Legacy(_)))
        .count();
    if claims.resources == 0 && operator_made > 0 {
        plan.refused = Some(format!(
            "no Authorization uses this account, but GHES holds {operator_made} token(s) the \
             operator created; refusing to prune them (recreate the Authorizations, or delete the \
             tokens on GHES by hand)"
        ));
        return plan;
    }
    let min_age = spec.min_age.as_std();
    // Ages on GHES's clock, which made `created_at`: a clock ahead or behind ours never makes
    // a new token look old.
    let ghes_now = snapshot.ghes_time(now);
    // `minAge: 0s` protects nothing by age, even a token that reads a little ahead: the
    // offset comes from `Date`, which has whole seconds.
    let too_young = |created: Timestamp| {
        let age = ghes_now.duration_since(created);
        !min_age.is_zero() && (age.is_negative() || age.unsigned_abs() < min_age)
    };

    let logs_in_with = |a: &GhesAuthorization| {
        a.hashed_token
            .as_deref()
            .is_some_and(|hash| credential_hash.matches(hash))
    };
    // The app of the login credential, when the password is an OAuth app token.
    let login_app: Option<&str> = snapshot
        .iter()
        .find(|a| logs_in_with(a))
        .filter(|a| !is_personal(a))
        .map(|a| a.app.client_id.as_str());

    let verdict = |authorization: &GhesAuthorization| -> Verdict {
        if claims.claims(authorization) {
            return Verdict::Claimed;
        }
        if logs_in_with(authorization) {
            return Verdict::Protected("the account logs in with this token".into());
        }
        match provenance(authorization) {
            Provenance::Foreign => return Verdict::Foreign,
            Provenance::Legacy(_) => {
                return Verdict::Protected(
                    "made by an operator before installation ids, for a resource no \
                     Authorization here is: it may be another cluster's"
                        .into(),
                );
            }
            Provenance::Ours(_) if !vantage.sees_every_namespace => {
                return Verdict::Unattributed;
            }
            Provenance::Ours(_) | Provenance::Unknown => {}
        }
        let client_id =
            (!is_personal(authorization)).then_some(authorization.app.client_id.as_str());
        if spec.keep.keeps(
            i64::try_from(authorization.id).unwrap_or(i64::MAX),
            client_id,
            authorization.note.as_deref(),
        ) {
            Verdict::Protected("kept by prune.keep".into())
        } else if too_young(authorization.created_at) {
            Verdict::Protected(format!("younger than minAge ({})", spec.min_age))
        } else if !spec.authorizations {
            Verdict::Protected("prune.authorizations is off".into())
        } else {
            Verdict::Candidate
        }
    };
    let mut authorizations: Vec<&GhesAuthorization> = snapshot.iter().collect();
    authorizations.sort_by_key(|a| (a.created_at, a.id));
    let verdicts: HashMap<u64, Verdict> =
        authorizations.iter().map(|a| (a.id, verdict(a))).collect();
    let mut unattributed = 0;
    for authorization in &authorizations {
        let id = authorization.id;
        match &verdicts[&id] {
            Verdict::Claimed => {}
            Verdict::Candidate => plan
                .candidates
                .push(Target::Authorization((*authorization).clone())),
            Verdict::Protected(reason) if spec.authorizations => {
                plan.protect(PruneTarget::Authorization, id, reason.clone());
            }
            Verdict::Protected(_) => {}
            Verdict::Foreign => plan.foreign += 1,
            Verdict::Unattributed => {
                unattributed += 1;
                plan.protect(
                    PruneTarget::Authorization,
                    id,
                    "made by this installation for an Authorization the operator cannot see \
                     (it watches only some namespaces)"
                        .into(),
                );
            }
        }
    }
    if unattributed > 0 {
        plan.withheld = Some(format!(
            "{unattributed} token(s) made by this installation belong to no Authorization in \
             the namespaces the operator watches; they may be declared in a namespace it does \
             not watch, so they are left alone (watch every namespace to prune them)"
        ));
    }
    if spec.grants {
        let mut grants: Vec<&Grant> = snapshot
            .grants
            .iter()
            .filter(|g| !claims.client_ids.contains(&g.app.client_id))
            .collect();
        grants.sort_by_key(|g| (g.created_at, g.id));
        for grant in grants {
            let id = grant.id;
            // Deleting a grant revokes every token of its app: each must be a candidate.
            let kept_token = authorizations
                .iter()
                .filter(|a| a.app.client_id == grant.app.client_id)
                .find_map(|a| match &verdicts[&a.id] {
                    Verdict::Candidate => None,
                    Verdict::Claimed => Some(format!("its token {} is declared", a.id)),
                    Verdict::Protected(reason) => {
                        Some(format!("its token {} is kept: {reason}", a.id))
                    }
                    Verdict::Foreign => Some(format!(
                        "its token {} was made by another installation of the operator",
                        a.id
                    )),
                    Verdict::Unattributed => Some(format!(
                        "its token {} belongs to an Authorization the operator cannot see",
                        a.id
                    )),
                });
            if login_app == Some(grant.app.client_id.as_str()) {
                plan.protect(
                    PruneTarget::Grant,
                    id,
                    "the account logs in with a token of this app".into(),
                );
            } else if let Some(reason) = kept_token {
                plan.protect(PruneTarget::Grant, id, reason);
            } else if spec.keep.keeps(
                i64::try_from(id).unwrap_or(i64::MAX),
                Some(&grant.app.client_id),
                None,
            ) {
                plan.protect(PruneTarget::Grant, id, "kept by prune.keep".into());
            } else if too_young(grant.created_at) {
                plan.protect(
                    PruneTarget::Grant,
                    id,
                    format!("younger than minAge ({})", spec.min_age),
                );
            } else {
                // Deleting the grant takes the app's tokens with it: no separate candidates.
                plan.candidates.retain(|target| match target {
                    Target::Authorization(a) => a.app.client_id != grant.app.client_id,
                    Target::Grant(_) => true,
                });
                plan.candidates.push(Target::Grant(grant.clone()));
            }
        }
    }
    plan
}

/// The outcome of deleting one candidate.
pub struct Deletion {
    /// What was (or was not) deleted.
    pub target: Target,
    /// `None` when deleted (or already gone); the error message otherwise.
    pub error: Option<String>,
}

/// Carries out a plan: in `Enabled` mode deletes up to `maxDeletionsPerRun` candidates. Returns
/// the status block and the deletions made (for Events and metrics).
pub async fn execute(
    spec: &PruneSpec,
    entry: &AccountEntry,
    plan: Selection,
    now: Timestamp,
) -> (PruneStatus, Vec<Deletion>) {
    let mut status = PruneStatus {
        mode: spec.mode,
        // Written again by every sync until the next run: it must read back as written.
        last_run_time: Some(super::status::as_stored(now)),
        candidate_count: i64::try_from(plan.candidates.len()).unwrap_or(i64::MAX),
        candidates: plan
            .candidates
            .iter()
            .take(MAX_LISTED)
            .map(Target::candidate)
            .collect(),
        deleted: 0,
        refused: plan.refused.clone().or_else(|| plan.withheld.clone()),
        foreign: i64::try_from(plan.foreign).unwrap_or(i64::MAX),
        skipped: plan.protected.iter().take(MAX_LISTED).cloned().collect(),
    };
    let mut deletions = Vec::new();
    if spec.mode != PruneMode::Enabled || plan.refused.is_some() {
        return (status, deletions);
    }
    let limit = usize::try_from(spec.max_deletions_per_run).unwrap_or(usize::MAX);
    for (index, target) in plan.candidates.into_iter().enumerate() {
        if index >= limit {
            push_skip(
                &mut status,
                &target,
                format!("maxDeletionsPerRun ({limit}) reached; next run"),
            );
            continue;
        }
        let result = match &target {
            Target::Authorization(a) => entry.client.delete_authorization(a.id).await,
            Target::Grant(g) => entry.client.delete_grant(g.id).await,
        };
        let error = match result {
            Ok(()) => None,
            Err(error) if error.is_not_found() => None,
            Err(error) => Some(error.to_string()),
        };
        if error.is_none() {
            crate::failpoint::hit("prune.deleted");
        }
        match &error {
            None => {
                status.deleted += 1;
                match &target {
                    Target::Authorization(a) => entry.forget(a.id),
                    Target::Grant(g) => entry.forget_grant(g),
                }
            }
            Some(message) => push_skip(&mut status, &target, format!("GHES refused: {message}")),
        }
        deletions.push(Deletion { target, error });
    }
    (status, deletions)
}

fn push_skip(status: &mut PruneStatus, target: &Target, reason: String) {
    if status.skipped.len() < MAX_LISTED {
        status.skipped.push(PruneSkip {
            kind: target.kind(),
            id: i64::try_from(target.id()).unwrap_or(i64::MAX),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::api::{AccountRef, AuthorizationSpec, AuthorizationStatus, PruneKeep};
    use crate::ghes::AppRef;

    const NOW: i64 = 1_800_000_000;

    fn at(seconds_ago: i64) -> Timestamp {
        Timestamp::from_second(NOW - seconds_ago).expect("timestamp")
    }

    fn token(id: u64, client_id: &str, fingerprint: Option<&str>, age: i64) -> GhesAuthorization {
        GhesAuthorization {
            id,
            scopes: vec!["repo".into()],
            token: None,
            token_last_eight: Some("abcdefgh".into()),
            hashed_token: Some(format!("hash-{id}")),
            app: AppRef {
                client_id: client_id.into(),
                name: format!("app {client_id}"),
            },
            note: Some(format!("note {id}")),
            note_url: None,
            fingerprint: fingerprint.map(str::to_owned),
            created_at: at(age),
            updated_at: at(age),
            expires_at: None,
            user: None,
        }
    }

    fn grant(id: u64, client_id: &str, age: i64) -> Grant {
        Grant {
            id,
            url: String::new(),
            app: AppRef {
                client_id: client_id.into(),
                name: format!("app {client_id}"),
            },
            created_at: at(age),
            updated_at: at(age),
            scopes: vec![],
            user: None,
        }
    }

    const PERSONAL: &str = "00000000000000000000";

    fn snapshot(authorizations: Vec<GhesAuthorization>, grants: Vec<Grant>) -> Snapshot {
        Snapshot::new(at(0), authorizations, grants, None)
    }

    fn declared(
        uid: &str,
        id: Option<i64>,
        fingerprint: Option<&str>,
        client_id: Option<&str>,
    ) -> Authorization {
        let mut authorization = Authorization::new(
            uid,
            AuthorizationSpec {
                account_ref: AccountRef::account("bot"),
                app: client_id.map(|c| {
                    serde_json::from_value(
                        serde_json::json!({"clientId": c, "clientSecretRef": {"name": "s"}}),
                    )
                    .expect("app")
                }),
                scopes: vec![],
                note: None,
                note_url: None,
                secret: Default::default(),
                rotation: None,
                deletion_policy: Default::default(),
                management_policy: Default::default(),
                observe: None,
                suspend: false,
            },
        );
        authorization.metadata.uid = Some(uid.to_owned());
        authorization.metadata.namespace = Some("team-a".into());
        authorization.status = Some(AuthorizationStatus {
            authorization_id: id,
            fingerprint: fingerprint.map(str::to_owned),
            ..AuthorizationStatus::default()
        });
        authorization
    }

    fn spec(mode: PruneMode) -> PruneSpec {
        PruneSpec {
            mode,
            ..PruneSpec::default()
        }
    }

    fn ids(plan: &Selection) -> Vec<u64> {
        plan.candidates.iter().map(Target::id).collect()
    }

    const HOUR: i64 = 3600;

    const HERE: &str = "here";

    /// This installation, watching every namespace.
    /// The password the tests' accounts log in with.
    const LOGIN: &str = "ghp_login-token";

    fn login_hash() -> TokenHash {
        TokenHash::of(LOGIN.as_bytes())
    }

    fn vantage() -> Vantage {
        Vantage {
            installation: InstallationId::parse(HERE).expect("id"),
            sees_every_namespace: true,
        }
    }

    fn made_here(uid: &str) -> String {
        Fingerprint::new(uid, &vantage().installation).to_string()
    }

    fn made_elsewhere(uid: &str) -> String {
        Fingerprint::new(uid, &InstallationId::parse("elsewhere").expect("id")).to_string()
    }

    #[test]
    fn what_an_observer_names_is_claimed_before_its_status_says_so() {
        let mut by_id = declared("u1", None, None, None);
        by_id.status = None;
        by_id.spec.management_policy = crate::api::ManagementPolicy::Observe;
        by_id.spec.observe = Some(Box::new(crate::api::ObserveTarget {
            id: Some(1),
            fingerprint: None,
        }));
        let mut by_fingerprint = by_id.clone();
        by_fingerprint.spec.observe = Some(Box::new(crate::api::ObserveTarget {
            id: None,
            fingerprint: Some("other-tool".into()),
        }));
        let snapshot = snapshot(
            vec![
                token(1, PERSONAL, None, HOUR),
                token(2, PERSONAL, Some("other-tool"), HOUR),
                token(3, PERSONAL, None, HOUR),
            ],
            vec![],
        );
        let plan = plan(
            &spec(PruneMode::Enabled),
            &snapshot,
            &Claims::of([&by_id, &by_fingerprint]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [3], "only the token nothing names");
    }

    #[test]
    fn tokens_of_another_installation_are_never_candidates() {
        let claimed = declared("u1", Some(1), None, None);
        let snapshot = snapshot(
            vec![
                token(1, PERSONAL, Some(&made_here("u1")), HOUR),
                token(2, PERSONAL, Some(&made_elsewhere("u2")), HOUR),
                token(3, PERSONAL, Some(&made_here("gone")), HOUR),
            ],
            vec![],
        );
        let plan = plan(
            &spec(PruneMode::Enabled),
            &snapshot,
            &Claims::of([&claimed]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [3], "this installation's orphan only");
        assert_eq!(plan.foreign, 1);
    }

    #[test]
    fn a_namespaced_run_leaves_this_installations_unattributed_tokens_alone() {
        let claimed = declared("u1", Some(1), None, None);
        let snapshot = snapshot(
            vec![
                token(1, PERSONAL, Some(&made_here("u1")), HOUR),
                token(2, PERSONAL, Some(&made_here("elsewhere-ns")), HOUR),
                token(3, PERSONAL, None, HOUR),
                token(4, PERSONAL, Some("k8s-legacy-uid"), HOUR),
            ],
            vec![],
        );
        let namespaced = Vantage {
            sees_every_namespace: false,
            ..vantage()
        };
        let plan = plan(
            &spec(PruneMode::Enabled),
            &snapshot,
            &Claims::of([&claimed]),
            &login_hash(),
            &namespaced,
            at(0),
        );
        assert_eq!(ids(&plan), [3], "only the hand-made token");
        let reasons: Vec<(i64, &str)> = plan
            .protected
            .iter()
            .map(|p| (p.id, p.reason.as_str()))
            .collect();
        assert!(
            reasons
                .iter()
                .any(|(id, r)| *id == 2 && r.contains("cannot see")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|(id, r)| *id == 4 && r.contains("before installation ids")),
            "{reasons:?}"
        );
        assert!(
            plan.withheld
                .as_deref()
                .is_some_and(|w| w.starts_with("1 token(s)"))
        );
    }

    #[test]
    fn a_grant_is_no_candidate_while_any_token_of_its_app_is_kept() {
        let uses_app = declared("u1", Some(1), None, Some("Iv1.declared"));
        let snapshot = snapshot(
            vec![
                token(1, "Iv1.declared", Some(&made_here("u1")), HOUR),
                token(17, "Iv1.undeclared", None, HOUR),
                token(18, "Iv1.undeclared", None, HOUR),
                token(20, "Iv1.foreign", Some(&made_elsewhere("u9")), HOUR),
                token(30, "Iv1.young", None, 60),
            ],
            vec![
                grant(10, "Iv1.undeclared", HOUR),
                grant(11, "Iv1.foreign", HOUR),
                grant(12, "Iv1.young", HOUR),
            ],
        );
        let mut spec = spec(PruneMode::Enabled);
        spec.keep.ids = vec![17];
        let plan = plan(
            &spec,
            &snapshot,
            &Claims::of([&uses_app]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [18], "token 18 alone; no grant");
        let grant_reasons: Vec<(i64, &str)> = plan
            .protected
            .iter()
            .filter(|p| p.kind == PruneTarget::Grant)
            .map(|p| (p.id, p.reason.as_str()))
            .collect();
        assert_eq!(
            grant_reasons,
            [
                (10, "its token 17 is kept: kept by prune.keep"),
                (
                    11,
                    "its token 20 was made by another installation of the operator"
                ),
                (12, "its token 30 is kept: younger than minAge (10m)"),
            ]
        );
    }

    #[test]
    fn undeclared_tokens_are_candidates_declared_ones_are_not() {
        let claimed = declared("u1", Some(1), Some("k8s-u1"), None);
        let by_fingerprint_only = declared("u2", None, None, None);
        let snapshot = snapshot(
            vec![
                token(1, PERSONAL, Some("k8s-u1"), HOUR),
                token(2, PERSONAL, Some("k8s-u2"), HOUR),
                token(3, PERSONAL, None, HOUR),
            ],
            vec![],
        );
        let plan = plan(
            &spec(PruneMode::DryRun),
            &snapshot,
            &Claims::of([&claimed, &by_fingerprint_only]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [3]);
        assert!(plan.refused.is_none());
    }

    #[test]
    fn keep_min_age_and_the_login_token_protect() {
        let claimed = declared("u1", Some(1), Some("k8s-u1"), None);
        let mut login = token(4, PERSONAL, None, HOUR);
        login.hashed_token = Some(crate::ghes::redacted::sha256_hex(LOGIN.as_bytes()));
        let snapshot = snapshot(
            vec![
                token(1, PERSONAL, Some("k8s-u1"), HOUR),
                token(2, PERSONAL, None, 60),
                token(3, PERSONAL, None, HOUR),
                login,
                token(5, PERSONAL, None, HOUR),
            ],
            vec![],
        );
        let mut spec = spec(PruneMode::Enabled);
        spec.keep = PruneKeep {
            ids: vec![5],
            ..PruneKeep::default()
        };
        let plan = plan(
            &spec,
            &snapshot,
            &Claims::of([&claimed]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [3]);
        let reasons: Vec<(i64, &str)> = plan
            .protected
            .iter()
            .map(|p| (p.id, p.reason.as_str()))
            .collect();
        assert!(
            reasons.contains(&(2, "younger than minAge (10m)")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&(4, "the account logs in with this token")),
            "{reasons:?}"
        );
        assert!(reasons.contains(&(5, "kept by prune.keep")), "{reasons:?}");
    }

    /// `minAge: 0s` protects nothing by age: a token whose `created_at` reads a second ahead
    /// (GHES's `Date` has whole seconds, so the clock offset is known to about a second) is
    /// still a candidate.
    #[test]
    fn min_age_zero_protects_no_token_by_age() {
        let snapshot = snapshot(vec![token(7, PERSONAL, None, -1)], vec![]);
        let mut spec = spec(PruneMode::Enabled);
        spec.min_age = "0s".parse().expect("duration");
        let plan = plan(
            &spec,
            &snapshot,
            &Claims::of([]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [7], "{:?}", plan.protected);
    }

    /// GHES may report `hashed_token` in uppercase hex or in base64: the login token is still
    /// recognised, and never a candidate.
    #[test]
    fn the_login_token_is_protected_in_every_hash_encoding() {
        use sha2::{Digest, Sha256};
        let password = "ghp_the-token-the-account-logs-in-with";
        let digest = Sha256::digest(password.as_bytes());
        let claimed = declared("u1", Some(1), Some("k8s-u1"), None);
        for reported in [
            data_encoding::HEXLOWER.encode(&digest),
            data_encoding::HEXUPPER.encode(&digest),
            data_encoding::BASE64.encode(&digest),
        ] {
            let mut login = token(4, PERSONAL, None, HOUR);
            login.hashed_token = Some(reported.clone());
            let snapshot = snapshot(
                vec![token(1, PERSONAL, Some("k8s-u1"), HOUR), login],
                vec![],
            );
            let plan = plan(
                &spec(PruneMode::Enabled),
                &snapshot,
                &Claims::of([&claimed]),
                &TokenHash::of(password.as_bytes()),
                &vantage(),
                at(0),
            );
            assert_eq!(ids(&plan), Vec::<u64>::new(), "hashed_token {reported}");
            assert!(
                plan.protected
                    .iter()
                    .any(|p| p.id == 4 && p.reason == "the account logs in with this token"),
                "hashed_token {reported}: {:?}",
                plan.protected
            );
        }
    }

    #[test]
    fn a_create_under_way_stops_the_run() {
        let creating = declared("u1", None, Some("k8s-u1"), None);
        let snapshot = snapshot(vec![token(9, PERSONAL, None, HOUR)], vec![]);
        let plan = plan(
            &spec(PruneMode::Enabled),
            &snapshot,
            &Claims::of([&creating]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert!(plan.candidates.is_empty());
        assert!(
            plan.refused
                .as_deref()
                .is_some_and(|r| r.contains("team-a/u1 is being created"))
        );
    }

    #[test]
    fn no_resources_but_operator_tokens_on_ghes_is_refused() {
        let snapshot = snapshot(vec![token(1, PERSONAL, Some("k8s-gone"), HOUR)], vec![]);
        let plan = plan(
            &spec(PruneMode::Enabled),
            &snapshot,
            &Claims::default(),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert!(plan.candidates.is_empty());
        assert!(
            plan.refused
                .as_deref()
                .is_some_and(|r| r.contains("no Authorization uses this account"))
        );
        // Without operator-made tokens there is nothing to protect: a human's tokens are candidates.
        let snapshot_2 = super::tests::snapshot(vec![token(2, PERSONAL, None, HOUR)], vec![]);
        let plan = plan_for(&snapshot_2);
        assert_eq!(ids(&plan), [2]);
    }

    fn plan_for(snapshot: &Snapshot) -> Selection {
        plan(
            &spec(PruneMode::Enabled),
            snapshot,
            &Claims::default(),
            &login_hash(),
            &vantage(),
            at(0),
        )
    }

    #[test]
    fn grants_of_undeclared_apps_are_candidates_and_absorb_their_tokens() {
        let uses_app = declared("u1", Some(1), Some("k8s-u1"), Some("Iv1.declared"));
        let snapshot = snapshot(
            vec![
                token(1, "Iv1.declared", Some("k8s-u1"), HOUR),
                token(2, "Iv1.undeclared", None, HOUR),
                token(3, "Iv1.undeclared", None, HOUR),
            ],
            vec![
                grant(10, "Iv1.declared", HOUR),
                grant(11, "Iv1.undeclared", HOUR),
            ],
        );
        let plan = plan(
            &spec(PruneMode::Enabled),
            &snapshot,
            &Claims::of([&uses_app]),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert_eq!(ids(&plan), [11], "the grant takes tokens 2 and 3 with it");
        assert!(matches!(plan.candidates[0], Target::Grant(_)));
    }

    #[test]
    fn disabled_mode_plans_nothing() {
        let snapshot = snapshot(vec![token(2, PERSONAL, None, HOUR)], vec![]);
        let plan = plan(
            &spec(PruneMode::Disabled),
            &snapshot,
            &Claims::default(),
            &login_hash(),
            &vantage(),
            at(0),
        );
        assert!(plan.candidates.is_empty() && plan.refused.is_none());
    }
}
