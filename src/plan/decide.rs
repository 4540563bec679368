//! What the controller would do with each affected Authorization and account, decided by the
//! controller's own functions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::{AccountObjectRef, AccountPlan, DeletedAccount, Plan, World};
use crate::api::AccountKey;
use crate::api::GhesUser;
use crate::api::{
    AccountResource, Authorization, FINALIZER, IN_USE_FINALIZER, ManagementPolicy, PruneMode,
};
use crate::controller::account::registry::{AccountEntry, Snapshot};
use crate::controller::authorization::{
    self, Before, Listing, Release, Resolved, State, Step, account_error,
};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::identity::may_log_in_as;
use crate::controller::prune::{self, Claims, Target, Vantage};
use crate::ghes::{Authorization as GhesAuthorization, AuthorizationUpdate, ScopeChange};

/// What the controller would do with one Authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Issue a first token.
    Create,
    /// Record a token GHES already holds for it (an interrupted create).
    Adopt,
    /// Change the token's scopes, note or note URL (one PATCH).
    Update,
    /// Revoke a token no Secret holds and issue another.
    Reissue,
    /// Issue the next token; the previous one is revoked after the grace period.
    Rotate,
    /// Deleted: revoke its tokens.
    Revoke,
    /// Deleted with `deletionPolicy: Orphan`, or observed: its tokens stay on GHES.
    Release,
    /// Observed: read and reported, never written.
    Observe,
    /// Suspended (its own `spec.suspend` or its account's): left alone, no GHES call.
    Suspended,
    /// Nothing.
    Nothing,
    /// A configuration error the controller would report, with no GHES call.
    Error,
}

impl Decision {
    /// The word printed for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Adopt => "adopt",
            Self::Update => "update",
            Self::Reissue => "reissue",
            Self::Rotate => "rotate",
            Self::Revoke => "revoke",
            Self::Release => "release",
            Self::Observe => "observe",
            Self::Suspended => "suspended",
            Self::Nothing => "nothing",
            Self::Error => "error",
        }
    }
}

/// GHES writes, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Writes {
    /// `POST /authorizations` or `PUT /authorizations/clients/…`.
    pub create: u32,
    /// `PATCH /authorizations/{id}`.
    pub update: u32,
    /// `DELETE /authorizations/{id}` or `DELETE /applications/grants/{id}`.
    pub delete: u32,
}

impl Writes {
    /// One token replaced by another: a create and a delete.
    const REPLACE: Writes = Writes {
        create: 1,
        update: 0,
        delete: 1,
    };

    fn add(&mut self, other: Writes) {
        self.create += other.create;
        self.update += other.update;
        self.delete += other.delete;
    }

    /// All writes.
    pub fn total(&self) -> u32 {
        self.create + self.update + self.delete
    }
}

/// The plan of one Authorization.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPlan {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its account (`Account ns/name`, `ClusterAccount name`).
    pub account: String,
    /// What would happen.
    pub action: Decision,
    /// Why, and what exactly.
    pub detail: String,
    /// The GHES writes it would cost.
    pub writes: Writes,
}

/// An account as resolved for the change: its client and listing, or why it cannot be used.
type Listed = Result<(Arc<AccountEntry>, Snapshot), Error>;

/// Decides every affected Authorization and account.
pub(super) async fn decide(ctx: &Context, world: &World) -> anyhow::Result<Plan> {
    let now = Timestamp::now();
    let mut plan = Plan::default();
    // Accounts whose pruning the change may move: those of changed or deleted Authorizations,
    // and changed accounts.
    let mut affected: BTreeSet<String> = BTreeSet::new();
    // Tokens the deletions revoke: pruning has nothing left to say about them.
    let mut revoked: HashSet<u64> = HashSet::new();

    for (authorization, changed) in &world.authorizations {
        let key = AccountKey::referenced_by(authorization);
        if !changed && !world.changed_accounts.contains(&key) {
            continue;
        }
        let one = judge(ctx, authorization, &key, world.terminating(&key), now).await?;
        // A configuration error issues, changes and revokes nothing: the account's pruning
        // (and its listing) is planned only when the change moves what the Authorization
        // claims.
        if one.action != Decision::Error || claims_moved(world, authorization) {
            affected.insert(key.to_string());
        }
        plan.writes.add(one.writes);
        plan.authorizations.push(one);
    }
    for authorization in &world.deleted {
        let key = AccountKey::referenced_by(authorization);
        affected.insert(key.to_string());
        let (one, ids) = judge_deletion(ctx, authorization, &key).await?;
        revoked.extend(ids);
        plan.writes.add(one.writes);
        plan.authorizations.push(one);
    }
    for key in &world.changed_accounts {
        affected.insert(key.to_string());
    }

    let objects = world.account_objects();
    for deleted in &world.deleted_accounts {
        plan.accounts.push(deletion(ctx, world, &objects, deleted));
    }
    let deleted: HashSet<String> = world
        .deleted_accounts
        .iter()
        .map(|d| d.key.to_string())
        .collect();
    for name in affected {
        // An account being deleted prunes nothing.
        if deleted.contains(&name) {
            continue;
        }
        let Some(object) = objects.get(&name).copied() else {
            continue;
        };
        // The registry keeps each account's client and listing: no second listing.
        let listed = resolve_object(ctx, object).await;
        let account = plan_pruning(ctx, world, &objects, &name, &listed, &revoked, now).await?;
        plan.writes.delete += u32::try_from(match account.mode.as_str() {
            "Enabled" => account.new_deletions.len(),
            _ => 0,
        })
        .unwrap_or(u32::MAX);
        plan.accounts.push(account);
    }
    plan.authorizations
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(plan)
}

/// Whether what `authorization` claims for pruning differs from what the cluster's version
/// of it claims.
fn claims_moved(world: &World, authorization: &Authorization) -> bool {
    let key = (authorization.namespace(), authorization.name_any());
    let before = world
        .before
        .iter()
        .filter(|a| (a.namespace(), a.name_any()) == key);
    Claims::of([authorization]) != Claims::of(before)
}

/// The account of `authorization`, resolved as a reconcile resolves it (namespace rules,
/// credentials, refused credentials).
async fn entry_of(
    ctx: &Context,
    authorization: &Authorization,
) -> Result<Arc<AccountEntry>, Error> {
    ctx.accounts
        .resolve(
            &ctx.caches,
            &authorization.namespace().unwrap_or_default(),
            &authorization.spec.account_ref,
        )
        .await
}

async fn list(entry: &AccountEntry) -> Result<Snapshot, Error> {
    entry
        .ensure_synced()
        .await
        .map_err(|error| account_error(&entry.key, error))
}

/// An account resolved for its own pruning (no Authorization's namespace rules).
async fn resolve_object(ctx: &Context, object: AccountObjectRef<'_>) -> Listed {
    let entry = match object {
        AccountObjectRef::Account(a) => ctx.accounts.entry_for(&ctx.caches.secrets, a).await?,
        AccountObjectRef::ClusterAccount(a) => {
            ctx.accounts.entry_for(&ctx.caches.secrets, a).await?
        }
    };
    let snapshot = list(&entry).await?;
    Ok((entry, snapshot))
}

fn plan_of(authorization: &Authorization, key: &AccountKey) -> AuthorizationPlan {
    AuthorizationPlan {
        namespace: authorization.namespace().unwrap_or_default(),
        name: authorization.name_any(),
        account: key.to_string(),
        action: Decision::Nothing,
        detail: String::new(),
        writes: Writes::default(),
    }
}

/// A configuration error ends the judgement; any other error ends the plan.
fn config_error(mut plan: AuthorizationPlan, error: Error) -> anyhow::Result<AuthorizationPlan> {
    if !error.is_config() && !matches!(error, Error::AccountNotReady { .. }) {
        return Err(anyhow::anyhow!("{}/{}: {error}", plan.namespace, plan.name));
    }
    plan.action = Decision::Error;
    plan.detail = error.to_string();
    Ok(plan)
}

/// What the controller would do with `authorization` as the change leaves it; `deleting`: the
/// change leaves its account Terminating.
async fn judge(
    ctx: &Context,
    authorization: &Authorization,
    key: &AccountKey,
    deleting: bool,
    now: Timestamp,
) -> anyhow::Result<AuthorizationPlan> {
    let mut plan = plan_of(authorization, key);
    let spec = &authorization.spec;
    // The reconcile's first step: a suspended Authorization, or one of a suspended account, is
    // left alone before anything is read.
    if !deleting {
        match authorization::suspension(authorization, ctx).await {
            Ok(Some(why)) => {
                plan.action = Decision::Suspended;
                plan.detail = why;
                return Ok(plan);
            }
            Ok(None) => {}
            Err(error) => return config_error(plan, error),
        }
    }
    // The reconcile's own next steps: Kubernetes first (a missing Secret costs no GHES call),
    // then the account's listing.
    let Resolved {
        entry,
        secret: secret_state,
        snapshot,
        fingerprint,
        ..
    } = match authorization::resolve(ctx, authorization).await {
        Ok(resolved) => resolved,
        Err(error) => return config_error(plan, error),
    };
    // The reconcile's next step: an account being deleted serves no reconcile.
    if deleting {
        let account = key.to_string();
        return config_error(plan, Error::AccountDeleting { account });
    }
    if spec.management_policy == ManagementPolicy::Observe {
        plan.action = Decision::Observe;
        plan.detail = "managementPolicy Observe: read and reported, never written".into();
        return Ok(plan);
    }
    let kind = if spec.app.is_some() {
        "app"
    } else {
        "personal"
    };
    let create = |plan: &mut AuthorizationPlan, detail: String| {
        plan.action = Decision::Create;
        plan.detail = detail;
        plan.writes.create = 1;
    };
    let scopes = spec.scopes.join(", ");
    let stored = authorization.status.clone().unwrap_or_default();
    let uid = authorization.uid().unwrap_or_default();
    if uid.is_empty() {
        create(&mut plan, format!("{kind} token, scopes [{scopes}]"));
        return Ok(plan);
    }
    // The account's credentials moved to another GHES user: its tokens are stranded.
    let state = State::of(&stored);
    if let Some(identity) = entry.identity(&snapshot)
        && let Some((recorded, ids)) = state.stranded_by(&identity.to_string())
    {
        let ids = id_list(ids);
        plan.action = Decision::Reissue;
        plan.detail = format!(
            "the account now logs in as {identity}: GHES authorization {ids} of {recorded} is \
             left live (these credentials cannot revoke it) and a new {kind} token is issued"
        );
        plan.writes.create = 1;
        return Ok(plan);
    }
    // The reconcile's own observation (from the cached listing) and its own decision.
    let observed = match authorization::observe(
        &entry,
        &snapshot,
        authorization,
        &state,
        &fingerprint,
        &secret_state,
        ctx.installation(),
        Listing::Cached,
    )
    .await
    {
        Ok(observed) => observed,
        Err(error) => return config_error(plan, error),
    };
    match authorization::decide(spec, &state, &observed, now) {
        Step::Issue {
            before: Before::Nothing,
        } => create(&mut plan, format!("{kind} token, scopes [{scopes}]")),
        Step::Issue {
            before: Before::Gone(id),
        } => {
            plan.action = Decision::Reissue;
            plan.detail =
                format!("GHES authorization {id} is gone: a new {kind} token, scopes [{scopes}]");
            plan.writes.create = 1;
        }
        Step::Issue {
            before: Before::NotOwned(id),
        } => create(
            &mut plan,
            format!(
                "status names GHES authorization {id}, which was not made for this resource: \
                 it is left alone and a {kind} token is issued"
            ),
        ),
        Step::Reissue { lost, why } => {
            plan.action = Decision::Reissue;
            plan.detail = format!(
                "{why}: revoke GHES authorization {} and issue a new {kind} token",
                lost.id
            );
            plan.writes = Writes::REPLACE;
        }
        Step::Rotate { live, trigger } => {
            plan.action = Decision::Rotate;
            plan.detail = format!(
                "{}: a new token replaces GHES authorization {}, revoked after \
                 rotation.gracePeriod",
                trigger.describe(),
                live.id
            );
            plan.writes = Writes::REPLACE;
        }
        Step::Keep {
            live,
            adopted,
            update,
        } => {
            let changes = changes(&live, &update);
            plan.detail = match (adopted, changes.is_empty()) {
                (true, _) => format!(
                    "an earlier create left GHES authorization {} without a status, and the \
                     Secret holds its token: it is recorded{}",
                    live.id,
                    if changes.is_empty() {
                        String::new()
                    } else {
                        format!("; {changes}")
                    }
                ),
                (false, true) => format!(
                    "GHES authorization {} as declared{}",
                    live.id,
                    authorization::schedule(
                        spec,
                        stored.issued_at.as_ref().map(|t| t.0),
                        live.expires_at.or(stored.expires_at.as_ref().map(|t| t.0)),
                    )
                    .map(|next| format!("; next rotation {} ({})", next.at, next.describe()))
                    .unwrap_or_default()
                ),
                (false, false) => format!("GHES authorization {}: {changes}", live.id),
            };
            plan.action = match (adopted, changes.is_empty()) {
                (true, _) => Decision::Adopt,
                (false, true) => Decision::Nothing,
                (false, false) => Decision::Update,
            };
            if !update.is_empty() {
                plan.writes.update = 1;
            }
        }
    }
    Ok(plan)
}

/// What the PATCH `update` changes of `live`, as `scopes [a] → [a, b] (+b); note "x" → "y"`.
fn changes(live: &GhesAuthorization, update: &AuthorizationUpdate) -> String {
    let mut changes = Vec::new();
    if let Some(ScopeChange::Replace(scopes)) = &update.scopes {
        changes.push(scope_diff(live, scopes));
    }
    if let Some(note) = &update.note {
        changes.push(format!(
            "note {:?} → {note:?}",
            live.note.as_deref().unwrap_or_default()
        ));
    }
    if let Some(url) = &update.note_url {
        changes.push(format!(
            "note URL {:?} → {url:?}",
            live.note_url.as_deref().unwrap_or_default()
        ));
    }
    changes.join("; ")
}

/// GHES authorization ids as `1, 2, 3`.
fn id_list(ids: impl IntoIterator<Item = u64>) -> String {
    ids.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `scopes [a, b] → [a, c] (+c, −b)`.
fn scope_diff(live: &GhesAuthorization, desired: &[String]) -> String {
    let before: BTreeSet<&str> = live.scopes.iter().map(String::as_str).collect();
    let after: BTreeSet<&str> = desired.iter().map(String::as_str).collect();
    let mut delta: Vec<String> = after.difference(&before).map(|s| format!("+{s}")).collect();
    delta.extend(before.difference(&after).map(|s| format!("−{s}")));
    format!(
        "scopes [{}] → [{}]{}",
        live.scopes.join(", "),
        desired.join(", "),
        if delta.is_empty() {
            String::new()
        } else {
            format!(" ({})", delta.join(", "))
        }
    )
}

/// What deleting `authorization` would do, and the ids it would revoke: the deletion's own
/// decision and observation.
async fn judge_deletion(
    ctx: &Context,
    authorization: &Authorization,
    key: &AccountKey,
) -> anyhow::Result<(AuthorizationPlan, Vec<u64>)> {
    let mut plan = plan_of(authorization, key);
    let status = authorization.status.clone().unwrap_or_default();
    let state = State::of(&status);
    plan.action = Decision::Release;
    match authorization::released(&authorization.spec, &state) {
        Some(Release::Observed) => {
            plan.detail = "deleted; managementPolicy Observe: the token stays on GHES".into();
            return Ok((plan, Vec::new()));
        }
        Some(Release::Orphan) => {
            plan.detail = "deleted; deletionPolicy Orphan: the token stays on GHES".into();
            return Ok((plan, Vec::new()));
        }
        Some(Release::NeverIssued) => {
            plan.detail = "deleted; it never issued a token".into();
            return Ok((plan, Vec::new()));
        }
        None => {}
    }
    let remains = match entry_of(ctx, authorization).await {
        Ok(entry) => {
            authorization::remains(
                &entry,
                authorization,
                &state,
                ctx.installation(),
                Listing::Cached,
            )
            .await
        }
        Err(error) => Err(error),
    };
    let remains = match remains {
        Ok(remains) => remains,
        Err(error) => {
            plan.detail = format!(
                "deleted, but its account cannot be used ({error}): its finalizer is released \
                 and its tokens are left to pruning"
            );
            return Ok((plan, Vec::new()));
        }
    };
    let revoked: Vec<u64> = remains.proven.iter().map(|owned| owned.id()).collect();
    if revoked.is_empty() && remains.unproven.is_empty() {
        plan.detail = "deleted; it holds no live token".into();
        return Ok((plan, Vec::new()));
    }
    plan.action = Decision::Revoke;
    plan.detail = format!(
        "deleted: revoke GHES authorization {}",
        id_list(revoked.iter().copied())
    );
    if !remains.unproven.is_empty() {
        plan.detail.push_str(&format!(
            "; {} not proven this resource's and left alone",
            id_list(remains.unproven.iter().map(|(id, _)| *id))
        ));
    }
    plan.writes.delete = u32::try_from(revoked.len()).unwrap_or(u32::MAX);
    Ok((plan, revoked))
}

/// What deleting an account does: its in-use finalizer holds it, and its credentials Secret,
/// while an Authorization that uses it still holds a token (carries its cleanup finalizer).
fn deletion(
    ctx: &Context,
    world: &World,
    objects: &BTreeMap<String, AccountObjectRef<'_>>,
    deleted: &DeletedAccount,
) -> AccountPlan {
    let name = deleted.key.to_string();
    let uses = |a: &&Authorization| AccountKey::referenced_by(a) == deleted.key;
    let holds = |a: &&Authorization| uses(a) && a.finalizers().iter().any(|f| f == FINALIZER);
    let mut staying: Vec<String> = world
        .authorizations
        .iter()
        .map(|(a, _)| a)
        .filter(holds)
        .map(|a| format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any()))
        .collect();
    staying.sort();
    let revoking = world.deleted.iter().filter(holds).count();
    let object = objects.get(&name).copied();
    let settings = object.map(|object| match object {
        AccountObjectRef::Account(a) => AccountResource::settings(a),
        AccountObjectRef::ClusterAccount(a) => AccountResource::settings(a),
    });
    let secret = object.and_then(|object| {
        let (namespace, secret) = match object {
            AccountObjectRef::Account(a) => (
                ctx.accounts.credentials_namespace(a),
                AccountResource::credentials_secret_ref(a),
            ),
            AccountObjectRef::ClusterAccount(a) => (
                ctx.accounts.credentials_namespace(a),
                AccountResource::credentials_secret_ref(a),
            ),
        };
        namespace.ok().map(|ns| format!("{ns}/{}", secret.name))
    });
    let credentials = match &secret {
        Some(secret) => format!("; its credentials Secret {secret} is held as long"),
        None => String::new(),
    };
    let detail = if !deleted.held || (staying.is_empty() && revoking == 0) {
        let users = world
            .authorizations
            .iter()
            .map(|(a, _)| a)
            .filter(uses)
            .count();
        let mut detail = if deleted.held {
            format!(
                "deleted at once: no Authorization holds a token through it any more, so its \
                 {IN_USE_FINALIZER} finalizer goes"
            )
        } else {
            "deleted at once: no Authorization has issued a token through it".to_owned()
        };
        if users > 0 && !deleted.held {
            detail.push_str(&format!(
                "; {users} Authorization(s) that stay then fail with AccountNotFound"
            ));
        }
        detail
    } else if staying.is_empty() {
        format!(
            "held by its {IN_USE_FINALIZER} finalizer until the {revoking} Authorization(s) this \
             change deletes have revoked their tokens through it (each tries for at most \
             spec.revokeTimeout, {}), then deleted{credentials}",
            settings.map_or("10m", |s| s.revoke_timeout.as_str())
        )
    } else {
        const SHOWN: usize = 5;
        let mut names = staying
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if staying.len() > SHOWN {
            names.push_str(&format!(" and {} more", staying.len() - SHOWN));
        }
        format!(
            "held by its {IN_USE_FINALIZER} finalizer: {} Authorization(s) that stay hold tokens \
             through it ({names}); it stays Terminating, reason Deleting, and they issue no new \
             token (AccountDeleting) until they are deleted too{credentials}",
            staying.len()
        )
    };
    AccountPlan {
        account: name,
        mode: settings
            .map(|s| s.prune.mode.to_string())
            .unwrap_or_default(),
        deletion: Some(detail),
        ..AccountPlan::default()
    }
}

/// Pruning of one account's GHES user under the new manifests, and what the change adds to
/// it, by the controller's own pure planning function.
async fn plan_pruning(
    ctx: &Context,
    world: &World,
    objects: &BTreeMap<String, AccountObjectRef<'_>>,
    name: &str,
    resolved: &Listed,
    revoked: &HashSet<u64>,
    now: Timestamp,
) -> anyhow::Result<AccountPlan> {
    let settings = match objects[name] {
        AccountObjectRef::Account(a) => AccountResource::settings(a),
        AccountObjectRef::ClusterAccount(a) => AccountResource::settings(a),
    };
    let mut account = AccountPlan {
        account: name.to_owned(),
        mode: settings.prune.mode.to_string(),
        ..AccountPlan::default()
    };
    let (entry, snapshot) = match resolved {
        Ok(resolved) => resolved,
        Err(error) => {
            account.error = Some(error.to_string());
            return Ok(account);
        }
    };
    let login = snapshot.login.as_deref().unwrap_or(&entry.username);
    let identity = GhesUser::new(&settings.api_root(), login);
    account.identity = identity.to_string();
    if settings.prune.mode == PruneMode::Disabled {
        return Ok(account);
    }
    // Which accounts log in as this user: the same rule as the controller's.
    let mut uses: HashMap<String, bool> = HashMap::new();
    for (key, object) in objects {
        let logs_in = match object {
            AccountObjectRef::Account(a) => may_log_in_as(ctx, *a, &identity).await,
            AccountObjectRef::ClusterAccount(a) => may_log_in_as(ctx, *a, &identity).await,
        };
        uses.insert(key.clone(), logs_in);
    }
    let users = |key: &AccountKey| uses.get(&key.to_string()).copied().unwrap_or(true);
    let after = Claims::of(
        world
            .authorizations
            .iter()
            .map(|(a, _)| a)
            .filter(|a| users(&AccountKey::referenced_by(a))),
    );
    let before = Claims::of(
        world
            .before
            .iter()
            .filter(|a| users(&AccountKey::referenced_by(a))),
    );
    let vantage = Vantage {
        installation: ctx.installation().clone(),
        sees_every_namespace: ctx.watched_namespaces().is_empty(),
    };
    let spec = &settings.prune;
    let mut planned = prune::plan(
        spec,
        snapshot,
        &after,
        &entry.credential_hash,
        &vantage,
        now,
    );
    planned.candidates.retain(|target| match target {
        Target::Authorization(a) => !revoked.contains(&a.id),
        Target::Grant(_) => true,
    });
    planned.protected.retain(|skip| {
        skip.kind != crate::api::PruneTarget::Authorization
            || u64::try_from(skip.id).is_ok_and(|id| !revoked.contains(&id))
    });
    let earlier = prune::plan(
        spec,
        snapshot,
        &before,
        &entry.credential_hash,
        &vantage,
        now,
    );
    let earlier: HashSet<String> = earlier.candidates.iter().map(Target::describe).collect();
    account.candidates = planned.candidates.iter().map(Target::describe).collect();
    account.new_deletions = account
        .candidates
        .iter()
        .filter(|c| !earlier.contains(*c))
        .cloned()
        .collect();
    account.kept = planned
        .protected
        .iter()
        .map(|skip| format!("{:?} {}: {}", skip.kind, skip.id, skip.reason))
        .collect();
    account.refused = planned.refused.or(planned.withheld);
    account.foreign = planned.foreign;
    Ok(account)
}
