//! The reconcile workers, shared between the accounts and sized from their budgets.
//!
//! `run --concurrency` is a ceiling. Within it, each account runs as many reconciles at once as
//! its `requestsPerSecond` needs at the latency measured (Little's law: the budget times the
//! worker time each GHES request costs, with headroom and two spare), so an account at 100 requests a second
//! keeps enough reconciles in flight to use its budget whatever the API server's latency, and
//! one at 1 request a second does not hold workers it cannot use. While several accounts have
//! work, the ceiling is divided max-min fairly: none holds more than its share while another
//! waits, and what one account cannot use goes to the others.
//!
//! A reconcile over its account's share is handed back before any call, holding no worker, with
//! its turn: turns are spaced by the account's measured pace, so those handed back come back one
//! by one as workers free up, in order, rather than all at once or over and over. A deletion
//! takes no turn ([`Priority::Urgent`]): it comes again soon and the backlog's turns stay put.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::api::AccountKey;
use crate::ghes::usage::Usage;

/// How long an account counts as having work after its last reconcile began or was handed
/// back.
const ACTIVE_WINDOW: Duration = Duration::from_secs(2);

/// Workers beyond the budget's exact need, for the spread of latencies: a share of the need ...
const HEADROOM: f64 = 1.25;
/// ... and a few more: one for the request queued at the rate limit while the others work, one
/// for a slow answer.
const SPARE: usize = 2;

/// Below this many GHES requests per reconcile (a resync that only reads its caches), the
/// budget does not bound the workers: the ceiling does.
const MIN_REQUESTS_PER_TURN: f64 = 0.05;

/// Weight of the newest reconcile in the measured averages.
const SMOOTHING: f64 = 0.2;

/// The spacing of handed-back turns: never tighter than this (a burst of hand-backs must not
/// all return within one scheduler tick) ...
const MIN_SPACING: Duration = Duration::from_millis(5);
/// ... nor looser than this (a slow first measurement must not strand a backlog).
const MAX_SPACING: Duration = Duration::from_secs(2);
/// Before an account's first reconcile ends.
const FIRST_SPACING: Duration = Duration::from_millis(100);

/// When a reconcile that must not wait its turn (a deletion) comes again: soon, spread so those
/// handed back together do not all return at once.
fn hand_back_delay() -> Duration {
    Duration::from_millis(rand::rng().random_range(200..=600))
}

/// How a reconcile over its account's share waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// In turn: turns are spaced by the account's pace.
    Paced,
    /// Soon, outside the turns (a deletion: its namespace waits for it, and its
    /// `revokeTimeout` runs).
    Urgent,
}

/// The reconciles each account runs now, and what they cost.
#[derive(Debug)]
pub struct FairShare {
    ceiling: usize,
    accounts: Arc<Mutex<HashMap<AccountKey, Busy>>>,
}

#[derive(Debug)]
struct Busy {
    running: usize,
    last_seen: Instant,
    /// When the latest turn handed back is due.
    next_turn: Option<Instant>,
    /// The account's budget, once a request asked its limiter.
    per_second: Option<f64>,
    /// Seconds a reconcile holds its worker.
    held: Average,
    /// Of those, seconds not spent waiting for the rate limiter.
    working: Average,
    /// GHES requests per reconcile.
    requests: Average,
}

/// An exponentially weighted average; none before the first sample.
#[derive(Clone, Copy, Debug, Default)]
struct Average(Option<f64>);

impl Average {
    fn add(&mut self, sample: f64) {
        self.0 = Some(match self.0 {
            None => sample,
            Some(average) => average + SMOOTHING * (sample - average),
        });
    }
}

impl Busy {
    fn new(now: Instant) -> Self {
        Self {
            running: 0,
            last_seen: now,
            next_turn: None,
            per_second: None,
            held: Average::default(),
            working: Average::default(),
            requests: Average::default(),
        }
    }

    /// The reconciles at once this account's budget needs: all of the ceiling until it is
    /// measured, or while its reconciles make (almost) no GHES request.
    fn wanted(&self, ceiling: usize) -> usize {
        let (Some(rate), Some(working), Some(requests)) =
            (self.per_second, self.working.0, self.requests.0)
        else {
            return ceiling;
        };
        if requests < MIN_REQUESTS_PER_TURN {
            return ceiling;
        }
        let needed = HEADROOM * rate * working / requests;
        let wanted = needed.ceil().min(ceiling as f64) as usize + SPARE;
        wanted.clamp(1, ceiling)
    }

    /// The time between two turns at `limit` reconciles at once.
    fn spacing(&self, limit: usize) -> Duration {
        let Some(held) = self.held.0 else {
            return FIRST_SPACING;
        };
        Duration::from_secs_f64(held / limit.max(1) as f64).clamp(MIN_SPACING, MAX_SPACING)
    }
}

/// A worker held for one account; [`finish`](Turn::finish) it with what the reconcile cost, or
/// drop it (a cancelled reconcile) to free it unmeasured.
#[derive(Debug)]
pub struct Turn {
    account: AccountKey,
    started: Instant,
    accounts: Arc<Mutex<HashMap<AccountKey, Busy>>>,
}

impl Turn {
    /// Frees the worker and adds what this reconcile cost to its account's measurements. A
    /// reconcile the limiter handed back measures a full queue, not the account's need: it is
    /// left out.
    pub fn finish(self, usage: Usage) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(busy), false) = (accounts.get_mut(&self.account), usage.deferred) {
            let held = self.started.elapsed();
            busy.held.add(held.as_secs_f64());
            busy.working
                .add(held.saturating_sub(usage.waited).as_secs_f64());
            busy.requests.add(f64::from(usage.requests));
            if usage.per_second.is_some() {
                busy.per_second = usage.per_second;
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(busy) = accounts.get_mut(&self.account) {
            busy.running = busy.running.saturating_sub(1);
            busy.last_seen = Instant::now();
        }
    }
}

impl FairShare {
    /// Shares at most `ceiling` reconciles at once.
    pub fn new(ceiling: usize) -> Self {
        Self {
            ceiling: ceiling.max(1),
            accounts: Arc::default(),
        }
    }

    /// A worker for `account`, unless it already runs its share; then `Err` says when its turn
    /// is due.
    pub fn enter(&self, account: &AccountKey, priority: Priority) -> Result<Turn, Duration> {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.retain(|key, busy| {
            key == account || busy.running > 0 || now - busy.last_seen < ACTIVE_WINDOW
        });
        accounts
            .entry(account.clone())
            .or_insert_with(|| Busy::new(now))
            .last_seen = now;
        let limit = self.limit(&accounts, account);
        let Some(busy) = accounts.get_mut(account) else {
            return Err(FIRST_SPACING);
        };
        if busy.running < limit {
            busy.running += 1;
            return Ok(Turn {
                account: account.clone(),
                started: now,
                accounts: self.accounts.clone(),
            });
        }
        if priority == Priority::Urgent {
            // Outside the turns: the backlog's next turn stays where it was.
            return Err(hand_back_delay());
        }
        let due = busy.next_turn.filter(|due| *due > now).unwrap_or(now) + busy.spacing(limit);
        busy.next_turn = Some(due);
        Err(due - now)
    }

    /// The reconciles at once `account` may run now: the max-min fair division of the
    /// ceiling between the accounts with work by what each wants.
    fn limit(&self, accounts: &HashMap<AccountKey, Busy>, account: &AccountKey) -> usize {
        let mut wants: Vec<(usize, &AccountKey)> = accounts
            .iter()
            .map(|(key, busy)| (busy.wanted(self.ceiling), key))
            .collect();
        wants.sort_by_key(|(wanted, _)| *wanted);
        let mut left = self.ceiling;
        for (index, (wanted, key)) in wants.iter().enumerate() {
            let share = left.div_ceil(wants.len() - index).max(1);
            let given = (*wanted).min(share);
            if *key == account {
                return given;
            }
            left = left.saturating_sub(given);
        }
        1
    }

    /// What each account with work may run now, for the record.
    #[cfg(test)]
    fn limit_of(&self, account: &AccountKey) -> usize {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        self.limit(&accounts, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AccountKind;

    fn key(name: &str) -> AccountKey {
        AccountKey {
            kind: AccountKind::Account,
            namespace: Some("team".into()),
            name: name.into(),
        }
    }

    /// Ends `turn` as a reconcile that held its worker `held`, waited `waited` of it for the
    /// limiter and sent `requests` requests to an account at `rate` a second.
    fn finish(turn: Turn, held: Duration, waited: Duration, requests: u32, rate: f64) {
        let mut turn = turn;
        turn.started = Instant::now() - held;
        turn.finish(Usage {
            requests,
            waited,
            per_second: Some(rate),
            deferred: false,
        });
    }

    /// Runs `count` reconciles of `account` one after the other, each holding its worker
    /// `held_ms`, `waited_ms` of it for the limiter, and sending one request at `rate` a second.
    fn run(
        share: &FairShare,
        account: &str,
        count: usize,
        held_ms: u64,
        waited_ms: u64,
        rate: f64,
    ) {
        for _ in 0..count {
            let turn = share.enter(&key(account), Priority::Paced).expect("turn");
            let ms = Duration::from_millis;
            finish(turn, ms(held_ms), ms(waited_ms), 1, rate);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_hand_back_takes_no_turn_from_the_backlog() {
        let share = FairShare::new(2);
        let _running: Vec<Turn> = (0..2)
            .filter_map(|_| share.enter(&key("a"), Priority::Paced).ok())
            .collect();
        let first = share.enter(&key("a"), Priority::Paced).expect_err("over");
        // Deletions handed back over and over while the account runs its share ...
        for _ in 0..10 {
            let again = share.enter(&key("a"), Priority::Urgent).expect_err("over");
            assert!(
                (Duration::from_millis(200)..=Duration::from_millis(600)).contains(&again),
                "a deletion comes again soon: {again:?}"
            );
        }
        // ... do not push the backlog's next turn back.
        let second = share.enter(&key("a"), Priority::Paced).expect_err("over");
        assert_eq!(second, first * 2, "the next paced turn follows the first");
    }

    #[tokio::test]
    async fn one_account_alone_takes_every_worker_until_measured() {
        let share = FairShare::new(4);
        let turns: Vec<Turn> = (0..4)
            .filter_map(|_| share.enter(&key("a"), Priority::Paced).ok())
            .collect();
        assert_eq!(turns.len(), 4);
        assert!(
            share.enter(&key("a"), Priority::Paced).is_err(),
            "no fifth worker"
        );
    }

    #[tokio::test]
    async fn a_second_account_with_work_limits_the_first_to_its_share() {
        let share = FairShare::new(4);
        let mut a: Vec<Turn> = (0..4)
            .filter_map(|_| share.enter(&key("a"), Priority::Paced).ok())
            .collect();
        // b has work: it gets a worker as soon as one frees, and a no more than half.
        let b = share
            .enter(&key("b"), Priority::Paced)
            .expect("b's first turn");
        a.pop();
        a.pop();
        assert!(
            share.enter(&key("a"), Priority::Paced).is_err(),
            "a holds its share of 2"
        );
        let b2 = share
            .enter(&key("b"), Priority::Paced)
            .expect("b's second turn");
        assert!(
            share.enter(&key("b"), Priority::Paced).is_err(),
            "b holds its share of 2"
        );
        drop((b, b2));
        a.pop();
        assert!(
            share.enter(&key("a"), Priority::Paced).is_ok(),
            "a below its share again"
        );
    }

    #[tokio::test]
    async fn an_account_runs_what_its_budget_needs_at_the_latency_measured() {
        let share = FairShare::new(64);
        // 100 requests a second, one request per reconcile, 79 ms of work each: 8 in flight
        // use the budget; with headroom and spares, 12.
        run(&share, "fast", 20, 79, 0, 100.0);
        assert_eq!(share.limit_of(&key("fast")), 12);
        // The same account behind a slower API server (188 ms a reconcile) keeps its pace with
        // more reconciles in flight, never a fixed number.
        run(&share, "fast", 60, 188, 0, 100.0);
        assert_eq!(share.limit_of(&key("fast")), 26);
        // Time waiting for the limiter is not work: it does not raise the need.
        run(&share, "fast", 60, 1188, 1000, 100.0);
        assert_eq!(share.limit_of(&key("fast")), 26);
        // An account at one request a second needs one reconcile, and the spares.
        run(&share, "slow", 20, 80, 0, 1.0);
        assert_eq!(share.limit_of(&key("slow")), 3);
    }

    #[tokio::test]
    async fn what_one_account_cannot_use_goes_to_the_others() {
        let share = FairShare::new(17);
        run(&share, "slow", 20, 80, 0, 1.0);
        // Unmeasured, b wants the ceiling: it gets all that "slow" (3) leaves.
        let _b = share.enter(&key("b"), Priority::Paced).expect("b's turn");
        assert_eq!(share.limit_of(&key("slow")), 3);
        assert_eq!(share.limit_of(&key("b")), 14);
        // A third account wanting everything splits the rest with b.
        let _c = share.enter(&key("c"), Priority::Paced).expect("c's turn");
        assert_eq!(share.limit_of(&key("b")), 7);
        assert_eq!(share.limit_of(&key("c")), 7);
    }

    #[tokio::test]
    async fn those_handed_back_come_back_one_by_one_at_the_accounts_pace() {
        let share = FairShare::new(64);
        run(&share, "a", 20, 79, 0, 100.0);
        let held: Vec<Turn> = (0..12)
            .filter_map(|_| share.enter(&key("a"), Priority::Paced).ok())
            .collect();
        assert_eq!(held.len(), 12);
        let due: Vec<Duration> = (0..5)
            .filter_map(|_| share.enter(&key("a"), Priority::Paced).err())
            .collect();
        assert_eq!(due.len(), 5, "over the share: each handed back");
        // 79 ms a reconcile, 12 at once: a turn frees about every 6.6 ms.
        let steps: Vec<u128> = due.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        assert!(steps.iter().all(|step| (5..=8).contains(step)), "{due:?}");
    }

    #[tokio::test]
    async fn a_reconcile_the_limiter_handed_back_is_not_measured() {
        let share = FairShare::new(64);
        run(&share, "a", 20, 79, 0, 100.0);
        for _ in 0..50 {
            let turn = share.enter(&key("a"), Priority::Paced).expect("turn");
            turn.finish(Usage {
                requests: 0,
                waited: Duration::ZERO,
                per_second: Some(100.0),
                deferred: true,
            });
        }
        assert_eq!(share.limit_of(&key("a")), 12);
    }
}
