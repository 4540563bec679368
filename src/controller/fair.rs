//! A fair share of the reconcile workers per account: while several accounts have work, none
//! holds more than its share, so one slow or stalled GHES cannot take every worker from the
//! others. A reconcile over its account's share is handed back at once, holding no worker, and
//! comes back a moment later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::account::registry::AccountKey;

/// How long an account counts as having work after its last reconcile began or was handed
/// back.
const ACTIVE_WINDOW: Duration = Duration::from_secs(2);

/// When a reconcile handed back comes again: soon, spread so those handed back together do
/// not all return at once.
pub fn hand_back_delay() -> Duration {
    Duration::from_millis(rand::rng().random_range(200..=600))
}

/// The reconciles each account runs now.
#[derive(Debug)]
pub struct FairShare {
    workers: usize,
    accounts: Arc<Mutex<HashMap<AccountKey, Busy>>>,
}

#[derive(Debug)]
struct Busy {
    running: usize,
    last_seen: Instant,
}

/// A worker held for one account; giving it back (drop) frees it.
#[derive(Debug)]
pub struct Turn {
    account: AccountKey,
    accounts: Arc<Mutex<HashMap<AccountKey, Busy>>>,
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
    /// A share of `workers` reconciles at once.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            accounts: Arc::default(),
        }
    }

    /// A worker for `account`, unless it already holds its share: `ceil(workers / accounts with
    /// work)`, and all of them while it is the only one.
    pub fn enter(&self, account: &AccountKey) -> Option<Turn> {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.retain(|key, busy| {
            key == account || busy.running > 0 || now - busy.last_seen < ACTIVE_WINDOW
        });
        // This account counts as one with work, whether or not it gets the worker.
        let with_work = accounts.len() + usize::from(!accounts.contains_key(account));
        let share = self.workers.div_ceil(with_work);
        let busy = accounts.entry(account.clone()).or_insert(Busy {
            running: 0,
            last_seen: now,
        });
        busy.last_seen = now;
        if busy.running >= share {
            return None;
        }
        busy.running += 1;
        Some(Turn {
            account: account.clone(),
            accounts: self.accounts.clone(),
        })
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

    #[test]
    fn one_account_alone_takes_every_worker() {
        let share = FairShare::new(4);
        let turns: Vec<Turn> = (0..4).filter_map(|_| share.enter(&key("a"))).collect();
        assert_eq!(turns.len(), 4);
        assert!(share.enter(&key("a")).is_none(), "no fifth worker");
    }

    #[test]
    fn a_second_account_with_work_limits_the_first_to_its_share() {
        let share = FairShare::new(4);
        let mut a: Vec<Turn> = (0..4).filter_map(|_| share.enter(&key("a"))).collect();
        // b has work: it gets a worker as soon as one frees, and a no more than half.
        let b = share.enter(&key("b")).expect("b's first turn");
        a.pop();
        a.pop();
        assert!(share.enter(&key("a")).is_none(), "a holds its share of 2");
        let b2 = share.enter(&key("b")).expect("b's second turn");
        assert!(share.enter(&key("b")).is_none(), "b holds its share of 2");
        drop((b, b2));
        a.pop();
        assert!(share.enter(&key("a")).is_some(), "a below its share again");
    }
}
