//! What one task's GHES requests cost: how many it sent, how long they waited for the account's
//! rate limiter, and the rate that limiter allows. The controller measures each reconcile with
//! [`measure`] to size its workers from the accounts' budgets; outside [`measure`] nothing is
//! recorded.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static USAGE: Cell<Usage>;
}

/// The GHES requests of one measured task.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Requests that took a permit of the rate limiter (attempts, retries included).
    pub requests: u32,
    /// Time spent waiting for those permits.
    pub waited: Duration,
    /// The requests a second the account's limiter allows (`requestsPerSecond`), once a request
    /// asked it.
    pub per_second: Option<f64>,
    /// A request was handed back by the limiter: the account's queue was already full.
    pub deferred: bool,
}

/// Runs `task`, returning its output and what its GHES requests cost.
pub async fn measure<F: Future>(task: F) -> (F::Output, Usage) {
    USAGE
        .scope(Cell::new(Usage::default()), async move {
            let output = task.await;
            (output, USAGE.with(Cell::get))
        })
        .await
}

/// One request took a permit after `waited`.
pub(crate) fn permitted(per_second: f64, waited: Duration) {
    update(|usage| {
        usage.requests = usage.requests.saturating_add(1);
        usage.waited += waited;
        usage.per_second = Some(per_second);
    });
}

/// One request was handed back by the limiter.
pub(crate) fn deferred(per_second: f64) {
    update(|usage| {
        usage.deferred = true;
        usage.per_second = Some(per_second);
    });
}

fn update(change: impl FnOnce(&mut Usage)) {
    // Outside `measure` (an Account's reconcile, a probe, a test): nothing to record.
    let _ = USAGE.try_with(|cell| {
        let mut usage = cell.get();
        change(&mut usage);
        cell.set(usage);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_measured_task_counts_its_permits_and_waits() {
        let ((), usage) = measure(async {
            permitted(10.0, Duration::from_millis(30));
            permitted(10.0, Duration::from_millis(20));
        })
        .await;
        assert_eq!(
            usage,
            Usage {
                requests: 2,
                waited: Duration::from_millis(50),
                per_second: Some(10.0),
                deferred: false,
            }
        );
        let ((), usage) = measure(async { deferred(5.0) }).await;
        assert!(usage.deferred);
        assert_eq!(usage.per_second, Some(5.0));
    }

    #[tokio::test]
    async fn nothing_is_recorded_outside_a_measure() {
        permitted(10.0, Duration::from_secs(1));
        let ((), usage) = measure(async {}).await;
        assert_eq!(usage, Usage::default());
    }
}
