//! The fault matrix: every fault the emulator can inject, crossed with every GHES operation the
//! operator makes, each cell on a GHES user of its own so that all cells run side by side
//! against one operator process.
//!
//! A cell sets its operation up, injects its fault for its user, lets the operator meet it,
//! clears it (and, where only a person can help, changes the credentials as that person would),
//! then checks what a user would: the resource converged, no Secret holds a revoked token, and
//! GHES holds no token that nothing accounts for. A refused password costs exactly one request
//! until it changes.
//!
//! The matrix is printed and must equal the README's "Reliability" table; with
//! `UPDATE_README=1` the test writes it there instead.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ghes_emulator::{Fault, UserSpec};
use kube::api::DeleteParams;
use serde_json::json;

use crate::harness::*;

/// How a fault ends.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    /// By itself: the operator retries.
    Transient,
    /// GHES refused the credentials: the operator sends nothing more until the user changes
    /// them (a new password).
    RefusedPassword,
    /// GHES asked for a two-factor code the account has no seed for: nothing more until the
    /// user adds the seed.
    RefusedOtp,
    /// The API is disabled on the whole server: the account reports it and rechecks.
    Disabled,
}

struct Row {
    key: &'static str,
    label: &'static str,
    fault: fn() -> Fault,
    class: Class,
}

const ROWS: &[Row] = &[
    Row {
        key: "500",
        label: "500 Internal Server Error",
        fault: || Fault::status(500),
        class: Class::Transient,
    },
    Row {
        key: "502",
        label: "502 Bad Gateway",
        fault: || Fault::status(502),
        class: Class::Transient,
    },
    Row {
        key: "503",
        label: "503 Service Unavailable",
        fault: || Fault::status(503),
        class: Class::Transient,
    },
    Row {
        key: "reset",
        label: "connection reset before GHES acts",
        fault: Fault::reset,
        class: Class::Transient,
    },
    Row {
        key: "reset-after",
        label: "connection reset after GHES acted (answer lost)",
        fault: || Fault::reset().after_processing(),
        class: Class::Transient,
    },
    Row {
        key: "timeout",
        label: "timeout after GHES acted (answer later than `--ghes-timeout`)",
        fault: || Fault::latency(Duration::from_secs(4)).after_processing(),
        class: Class::Transient,
    },
    Row {
        key: "429",
        label: "429 with `Retry-After`",
        fault: || Fault::status(429).retry_after(2),
        class: Class::Transient,
    },
    Row {
        key: "403-retry",
        label: "403 secondary rate limit with `Retry-After`",
        fault: || {
            let mut fault = Fault::status(403).retry_after(2);
            fault.message = Some(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you \
                 try again."
                    .into(),
            );
            fault
        },
        class: Class::Transient,
    },
    Row {
        key: "403-exhausted",
        label: "403 primary rate limit exhausted (`x-ratelimit-remaining: 0`)",
        fault: || Fault::status(403).ratelimit_reset_in(2),
        class: Class::Transient,
    },
    Row {
        key: "410",
        label: "410 API disabled (whole server; re-enabled later)",
        fault: || {
            let mut fault = Fault::status(410);
            fault.message = Some("The OAuth Authorizations API is disabled.".into());
            fault
        },
        class: Class::Disabled,
    },
    Row {
        key: "otp",
        label: "401 two-factor code required (user adds the TOTP seed)",
        fault: || Fault::status(401).otp_required("app"),
        class: Class::RefusedOtp,
    },
    Row {
        key: "401",
        label: "401 bad credentials (user changes the password)",
        fault: || Fault::status(401),
        class: Class::RefusedPassword,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Op {
    CreateApp,
    CreatePersonal,
    Update,
    Delete,
    Prune,
    Sync,
}

const OPS: &[(Op, &str, &str)] = &[
    (Op::CreateApp, "app", "create app token"),
    (Op::CreatePersonal, "personal", "create personal token"),
    (Op::Update, "update", "update scopes"),
    (Op::Delete, "delete", "revoke on delete"),
    (Op::Prune, "prune", "prune"),
    (Op::Sync, "sync", "account sync"),
];

impl Op {
    /// The request the fault strikes: method and path prefix.
    fn target(self) -> (&'static str, &'static str) {
        match self {
            Op::CreateApp => ("PUT", "/api/v3/authorizations/clients/"),
            Op::CreatePersonal => ("POST", "/api/v3/authorizations"),
            Op::Update => ("PATCH", "/api/v3/authorizations/"),
            Op::Delete | Op::Prune => ("DELETE", "/api/v3/authorizations/"),
            Op::Sync => ("GET", "/api/v3/authorizations"),
        }
    }
}

/// How a passing cell ended.
#[derive(Debug, PartialEq)]
enum Pass {
    /// Converged: every token accounted for.
    Converged,
    /// Deleted while GHES refused: the finalizer let go, a `RevokeAbandoned` Warning names the
    /// token, which stays on GHES for pruning or a person.
    Reported,
}

struct Cell<'w> {
    world: &'w World,
    ns: String,
    row: &'static Row,
    op: Op,
    login: String,
    name: String,
    password: String,
}

const SYNC_INTERVAL: &str = "30s";
/// The longest a cell waits for one thing.
const CELL_WAIT: Duration = Duration::from_secs(100);
/// How often a cell looks (78 cells poll one test server).
const POLL: Duration = Duration::from_millis(500);

async fn poll<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if started.elapsed() > limit {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Cell<'_> {
    fn account_extra(&self) -> serde_json::Value {
        let mut extra = json!({"syncInterval": SYNC_INTERVAL});
        if self.op == Op::Prune {
            extra["prune"] = json!({"mode": "Enabled"});
        }
        extra
    }

    fn spec(&self, scopes: &[&str]) -> serde_json::Value {
        let mut spec = json!({"accountRef": {"name": self.name}, "scopes": scopes});
        if matches!(self.op, Op::CreateApp | Op::Prune) {
            spec["app"] = json!({"clientId": CLIENT_ID, "clientSecretRef": {"name": "oauth-app"}});
        }
        spec
    }

    async fn ready(&self) -> Result<ghes_oauth_operator::api::Authorization, String> {
        let api = self.world.authorizations(&self.ns);
        poll(&format!("{} Ready=True", self.name), CELL_WAIT, || async {
            let object = api.get_opt(&self.name).await.ok().flatten()?;
            let status = object.status.as_ref()?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status == "True" && status.observed_generation == object.metadata.generation)
                .then_some(object.clone())
        })
        .await
    }

    fn inject(&self) -> u64 {
        let (method, path) = self.op.target();
        let mut fault = (self.row.fault)().login(&self.login);
        // The API is disabled for every request; the rest strike the operation's request.
        if self.row.class != Class::Disabled {
            fault = fault.method(method).path_prefix(path);
        }
        self.world.ghes.inject(fault).expect("inject").id
    }

    fn hits(&self, id: u64) -> u64 {
        self.world
            .ghes
            .active_faults()
            .iter()
            .find(|f| f.id == id)
            .map_or(0, |f| f.hits)
    }

    /// Requests of this cell's user sent after the request `seq` was answered (one already in
    /// flight then may finish later: that is not sending again).
    fn requests_after(&self, seq: u64) -> Vec<(u64, u16)> {
        self.world
            .ghes
            .requests()
            .iter()
            .filter(|r| r.arrived > seq && r.user.as_deref() == Some(self.login.as_str()))
            .map(|r| (r.seq, r.status))
            .collect()
    }

    async fn account_ready_reason(&self) -> Option<String> {
        let status = self.world.account_status(&self.ns, &self.name).await?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        Some(format!("{}/{}", ready.status, ready.reason))
    }

    async fn run(&self) -> Result<Pass, String> {
        let world = self.world;
        world
            .ghes
            .add_user(UserSpec::parse(&format!("{}:{}", self.login, self.password)).expect("user"))
            .map_err(|e| e.to_string())?;
        world
            .account_with(
                &self.ns,
                &self.name,
                &self.login,
                &self.password,
                None,
                self.account_extra(),
            )
            .await;
        let mut abandoned = None;
        let fault = match self.op {
            Op::CreateApp | Op::CreatePersonal => {
                let fault = self.inject();
                world
                    .authorization(&self.ns, &self.name, self.spec(&["gist"]))
                    .await;
                fault
            }
            Op::Update | Op::Delete | Op::Sync | Op::Prune => {
                world
                    .authorization(&self.ns, &self.name, self.spec(&["gist"]))
                    .await;
                // Converged first: the fault meets the operation alone, not a create that
                // happens to be on the wire at the same moment.
                let ready = self.ready().await?;
                let fault = self.inject();
                match self.op {
                    Op::Update => {
                        world
                            .authorization(&self.ns, &self.name, self.spec(&["gist", "repo"]))
                            .await
                    }
                    Op::Delete => {
                        abandoned = ready.status.and_then(|s| s.authorization_id);
                        world
                            .authorizations(&self.ns)
                            .delete(&self.name, &DeleteParams::default())
                            .await
                            .map_err(|e| format!("delete: {e}"))?;
                    }
                    Op::Prune => {
                        // A hand-made token no resource declares: the next listing's prune
                        // run deletes it, and its DELETE meets the fault.
                        world
                            .ghes
                            .seed_authorization(ghes_emulator::SeedAuthorization {
                                login: self.login.clone(),
                                scopes: vec!["repo".into()],
                                note: Some("made by hand".into()),
                                created_at: Some(
                                    jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2),
                                ),
                                ..Default::default()
                            })
                            .map_err(|e| e.to_string())?;
                    }
                    _ => {}
                }
                fault
            }
        };
        poll("the fault to strike", CELL_WAIT, || async {
            (self.hits(fault) >= 1).then_some(())
        })
        .await?;
        let first_hit = Instant::now();
        match self.row.class {
            Class::Transient => {
                // Let the operator meet it again (a retry, a rate-limit wait), then clear it.
                poll("a second hit", CELL_WAIT, || async {
                    (self.hits(fault) >= 2 || first_hit.elapsed() > Duration::from_secs(10))
                        .then_some(())
                })
                .await?;
                world.ghes.remove_fault(fault);
            }
            Class::Disabled => {
                poll("the Account to report ApiDisabled", CELL_WAIT, || async {
                    (self.account_ready_reason().await.as_deref() == Some("False/ApiDisabled"))
                        .then_some(())
                })
                .await?;
                world.ghes.remove_fault(fault);
            }
            Class::RefusedPassword | Class::RefusedOtp => {
                poll("the Account to record the refusal", CELL_WAIT, || async {
                    let status = world.account_status(&self.ns, &self.name).await?;
                    status.refused_credentials.map(|_| ())
                })
                .await?;
                // Nothing more is sent with these credentials: not by the Account's sync, not
                // by the Authorization's retries.
                let refused_at = world
                    .ghes
                    .requests()
                    .iter()
                    .rev()
                    .find(|r| r.user.as_deref() == Some(self.login.as_str()) && r.status == 401)
                    .map(|r| r.seq)
                    .ok_or("no 401 in the request log")?;
                // That no later reconcile sends them is tests/reconcile.rs's
                // a_refused_password_is_sent_once; here, nothing followed the refusal.
                let after = self.requests_after(refused_at);
                if self.hits(fault) != 1 || !after.is_empty() {
                    return Err(format!(
                        "refused credentials were sent again: {} hits, then {after:?}",
                        self.hits(fault)
                    ));
                }
                world.ghes.remove_fault(fault);
                let totp = match self.row.class {
                    Class::RefusedOtp => Some(OTP_SEED),
                    _ => None,
                };
                let password = match self.row.class {
                    Class::RefusedPassword => {
                        let new = format!("{}-changed", self.password);
                        world
                            .ghes
                            .set_password(&self.login, &new)
                            .map_err(|e| e.to_string())?;
                        new
                    }
                    _ => self.password.clone(),
                };
                world
                    .account_with(
                        &self.ns,
                        &self.name,
                        &self.login,
                        &password,
                        totp,
                        self.account_extra(),
                    )
                    .await;
            }
        }
        // Converged, as a user would check it.
        match self.op {
            Op::CreateApp | Op::CreatePersonal | Op::Update | Op::Sync | Op::Prune => {
                self.ready().await?;
            }
            Op::Delete => {
                let api = world.authorizations(&self.ns);
                poll("the Authorization to go", CELL_WAIT, || async {
                    api.get_opt(&self.name).await.ok()?.is_none().then_some(())
                })
                .await?;
            }
        }
        match self.op {
            Op::Sync => {
                poll("the Account to be Ready again", CELL_WAIT, || async {
                    (self.account_ready_reason().await.as_deref() == Some("True/Synced"))
                        .then_some(())
                })
                .await?;
            }
            Op::Prune => {
                poll("the hand-made token to be pruned", CELL_WAIT, || async {
                    (world.live_tokens(&self.login).len() == 1).then_some(())
                })
                .await?;
            }
            _ => {}
        }
        let reported = self.op == Op::Delete && self.row.class != Class::Transient;
        let expected_left: BTreeSet<i64> = if reported {
            let reasons = world.event_reasons(&self.ns, &self.name).await;
            if !reasons.iter().any(|r| r == "RevokeAbandoned") {
                return Err(format!("no RevokeAbandoned Event: {reasons:?}"));
            }
            abandoned.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        // The invariants may take a listing to hold (an orphan found by its fingerprint).
        let want: &[&str] = if self.op == Op::Update {
            &["gist", "repo"]
        } else {
            &["gist"]
        };
        let held: Vec<(&str, &[&str])> = if self.op == Op::Delete {
            Vec::new()
        } else {
            vec![(self.name.as_str(), want)]
        };
        world
            .settle_tokens(
                &self.ns,
                &self.login,
                &held,
                &expected_left,
                Duration::from_secs(40),
            )
            .await?;
        Ok(if reported {
            Pass::Reported
        } else {
            Pass::Converged
        })
    }
}

#[tokio::test]
async fn fault_matrix() {
    let mut world = World::exclusive(&["m"]).await;
    let ns = world.ns(0).to_owned();
    world.app_secret(&ns).await;
    world.start_operator_with(&["--ghes-timeout", "2", "--concurrency", "16"]);
    let cells: Vec<Cell> = ROWS
        .iter()
        .flat_map(|row| {
            let (world, ns) = (&world, &ns);
            OPS.iter().map(move |(op, key, _)| Cell {
                world,
                ns: ns.clone(),
                row,
                op: *op,
                login: format!("m-{}-{key}", row.key),
                name: format!("c-{}-{key}", row.key),
                password: format!("m-{}-{key}-password", row.key),
            })
        })
        .collect();
    let started = Instant::now();
    let results = futures::future::join_all(cells.iter().map(Cell::run)).await;
    eprintln!(
        "fault matrix: {} cells in {:.0?}",
        results.len(),
        started.elapsed()
    );
    let mut failures = Vec::new();
    let mut table = String::from("| Fault | ");
    table += &OPS
        .iter()
        .map(|(_, _, label)| *label)
        .collect::<Vec<_>>()
        .join(" | ");
    table += " |\n|---|";
    table += &"---|".repeat(OPS.len());
    table += "\n";
    for (index, row) in ROWS.iter().enumerate() {
        let _ = write!(table, "| {} |", row.label);
        for (column, (_, key, _)) in OPS.iter().enumerate() {
            let mark = match &results[index * OPS.len() + column] {
                Ok(Pass::Converged) => "✓",
                Ok(Pass::Reported) => "✓ reported",
                Err(problem) => {
                    failures.push(format!("{} × {key}: {problem}", row.key));
                    "✗"
                }
            };
            let _ = write!(table, " {mark} |");
        }
        table.push('\n');
    }
    eprintln!("{table}");
    assert!(
        failures.is_empty(),
        "failing cells:\n{}",
        failures.join("\n")
    );
    crate::generated::check_section(
        "README.md",
        "fault-matrix",
        "cargo test --test e2e fault_matrix",
        &table,
    );
    world.cleanup().await;
}
