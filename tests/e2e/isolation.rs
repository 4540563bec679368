//! Failure isolation: one GHES that is down — refusing connections, or accepting them and never
//! answering — costs the other accounts of the same operator nothing. Its account is marked
//! unavailable once, sends one probe per backoff step, and its Authorizations resume together
//! when the probe is answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

/// The dead GHES's user: its requests are told from the healthy account's in the emulator's log.
const DEAD_USER: &str = "dead-bot";
const DEAD_PASSWORD: &str = "dead-bot-password";
/// Authorizations on the dead GHES, and on the healthy one.
const DEAD: usize = 40;
const HEALTHY: usize = 5;

/// What the door in front of the dead GHES does with a connection.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Nothing listens: connections are refused.
    Refuse,
    /// Accepts, reads nothing and never answers.
    Stall,
    /// Forwards to the emulator: GHES is back.
    Open,
}

/// A loopback port in front of the emulator that can refuse, stall or forward connections.
struct Door {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Connections accepted while stalling.
    stalled: Arc<AtomicUsize>,
    target: SocketAddr,
    listening: Option<tokio::task::JoinHandle<()>>,
}

impl Door {
    fn new(mode: Mode, target: SocketAddr) -> Self {
        // A free loopback port; nothing listens on it until the door is opened or stalls.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut door = Self {
            port,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            stalled: Arc::default(),
            target,
            listening: None,
        };
        if mode != Mode::Refuse {
            door.listen();
        }
        door
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v3", self.port)
    }

    fn listen(&mut self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("bind door");
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = TcpListener::from_std(listener).expect("door listener");
        let (mode, stalled, target) = (self.mode.clone(), self.stalled.clone(), self.target);
        self.listening = Some(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if mode.load(Ordering::SeqCst) == Mode::Open as u8 {
                    held.clear();
                    tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                } else {
                    stalled.fetch_add(1, Ordering::SeqCst);
                    held.push(inbound);
                }
            }
        }));
    }

    /// GHES is back: forwards every new connection.
    fn open(&mut self) {
        self.mode.store(Mode::Open as u8, Ordering::SeqCst);
        if self.listening.is_none() {
            self.listen();
        }
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        if let Some(task) = self.listening.take() {
            task.abort();
        }
    }
}

/// The Account's Ready condition: (status, reason, message).
async fn account_ready(world: &World, ns: &str, name: &str) -> Option<(String, String, String)> {
    let status = world.account_status(ns, name).await?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        ready.message.clone(),
    ))
}

/// The next probe's time, from the unavailable Account's Ready message.
fn next_probe(message: &str) -> jiff::Timestamp {
    let (_, after) = message
        .split_once("the next is at ")
        .unwrap_or_else(|| panic!("no next probe in {message:?}"));
    let stamp = after.split_whitespace().next().unwrap_or_default();
    stamp
        .parse()
        .unwrap_or_else(|error| panic!("next probe {stamp:?}: {error}"))
}

/// Requests of the dead GHES's user the emulator answered (those the door forwarded).
fn dead_requests(world: &World) -> Vec<String> {
    world
        .ghes
        .requests()
        .iter()
        .filter(|r| r.user.as_deref() == Some(DEAD_USER))
        .map(|r| format!("{} {}?{} {}", r.method, r.path, r.query, r.status))
        .collect()
}

/// 40 Authorizations on a GHES behind `mode`, 5 on a healthy one; default flags.
async fn one_dead_ghes_costs_the_others_nothing(mode: Mode) {
    let mut world = World::exclusive_with_users(
        &["iso"],
        &[(DEAD_USER.to_owned(), DEAD_PASSWORD.to_owned())],
    )
    .await;
    let ns = world.ns(0).to_owned();
    let emulator: SocketAddr = {
        let url = url::Url::parse(&world.ghes.api_url()).expect("emulator url");
        format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().expect("port")
        )
        .parse()
        .expect("emulator address")
    };
    let mut door = Door::new(mode, emulator);
    world
        .account_with(
            &ns,
            "dead",
            DEAD_USER,
            DEAD_PASSWORD,
            None,
            json!({"apiUrl": door.api_url()}),
        )
        .await;
    world.account(&ns, "healthy", USER, PASSWORD, None).await;
    for i in 0..DEAD {
        world
            .authorization(
                &ns,
                &format!("dead-{i}"),
                json!({"accountRef": {"name": "dead"}, "scopes": ["read:user"]}),
            )
            .await;
    }
    let admin = world.start_operator_with_admin();
    let started = Instant::now();
    // The dead GHES is being asked (a stalled connection held, or refused ones counted).
    wait_for("the dead GHES to be asked", || async {
        let asked = match mode {
            Mode::Stall => door.stalled.load(Ordering::SeqCst) as f64,
            _ => transport_errors(admin).await.unwrap_or_default(),
        };
        (asked >= 1.0).then_some(())
    })
    .await;
    // A healthy account's new Authorizations 20 s after the operator started, as a team
    // would add them while another team's GHES is down (the scenario of the issue that asked
    // for isolation: before it, none was Ready after 120 s).
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(started.elapsed())).await;
    let applied = Instant::now();
    for i in 0..HEALTHY {
        world
            .authorization(
                &ns,
                &format!("healthy-{i}"),
                json!({"accountRef": {"name": "healthy"}, "scopes": ["read:user"]}),
            )
            .await;
    }
    wait_for_within(
        "every healthy Authorization Ready",
        Duration::from_secs(15),
        || async { (world.ready_with_prefix(&ns, "healthy-").await == HEALTHY).then_some(()) },
    )
    .await;
    eprintln!(
        "isolation ({}): {HEALTHY} healthy Authorizations Ready {:.1?} after they were applied",
        if mode == Mode::Stall {
            "stalled"
        } else {
            "refused"
        },
        applied.elapsed()
    );
    // The dead account says so, with when it tries next; its Authorizations wait, not Ready.
    let (status, _, message) = wait_for("the dead Account to report GhesUnavailable", || async {
        account_ready(&world, &ns, "dead")
            .await
            .filter(|(_, reason, _)| reason == "GhesUnavailable")
    })
    .await;
    assert_eq!(status, "False", "{message}");
    next_probe(&message);
    let parked = world
        .authorizations(&ns)
        .get("dead-0")
        .await
        .expect("dead-0");
    let condition = parked
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
    assert!(
        condition
            .as_ref()
            .is_some_and(|c| c.status == "False" && c.reason == "GhesUnavailable"),
        "a parked Authorization: {condition:?}"
    );
    // Over the next stretch, the whole account asks the dead GHES about once per backoff
    // step (1 s, then doubling), not once per Authorization.
    let before = asked(mode, &door, admin).await;
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let during = asked(mode, &door, admin).await - before;
    let seconds = watched.elapsed().as_secs_f64();
    // Steps of at least 0.5, 1, 2, 4, 8 s (jitter halves them at most): six fit in 12 s, with
    // room for one already under way.
    assert!(
        during <= 7.0,
        "the dead GHES was asked {during} times in {seconds:.0} s: more than one per backoff step"
    );
    assert_eq!(
        world.ready_with_prefix(&ns, "dead-").await,
        0,
        "nothing on the dead GHES is Ready"
    );
    // GHES comes back: the next probe is answered, and all 40 resume at once.
    // Opened while no probe is under way, so the next one meets the open door.
    let due = wait_for("a probe due in more than two seconds", || async {
        let (_, _, message) = account_ready(&world, &ns, "dead").await?;
        let due = next_probe(&message);
        (due > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2)).then_some(due)
    })
    .await;
    let reopened = Instant::now();
    door.open();
    let budget = Duration::try_from(due.duration_since(jiff::Timestamp::now())).unwrap_or_default()
        + Duration::from_secs(15);
    wait_for_within(
        "all 40 Authorizations Ready once GHES answers",
        budget,
        || async { (world.ready_with_prefix(&ns, "dead-").await == DEAD).then_some(()) },
    )
    .await;
    eprintln!(
        "isolation: all {DEAD} Authorizations Ready {:.1?} after GHES came back (next probe \
         was due in {:.1?})",
        reopened.elapsed(),
        budget - Duration::from_secs(15)
    );
    // The first request the recovered GHES saw was the probe.
    let seen = dead_requests(&world);
    assert!(
        seen.first()
            .is_some_and(|first| first.starts_with("GET /api/v3/authorizations?per_page=1 ")),
        "{seen:?}"
    );
    world.cleanup().await;
}

/// GHES requests of the operator at `admin` that got no answer at all (no connection, timeout).
async fn transport_errors(admin: SocketAddr) -> Option<f64> {
    let samples = crate::metrics::scrape_quietly(admin).await?;
    Some(
        samples
            .iter()
            .filter(|(series, _)| {
                series.starts_with("ghes_oauth_operator_ghes_requests_total{")
                    && series.contains(r#"status="error""#)
            })
            .map(|(_, value)| *value)
            .sum(),
    )
}

/// How many requests the dead GHES got so far.
async fn asked(mode: Mode, door: &Door, admin: SocketAddr) -> f64 {
    match mode {
        Mode::Stall => door.stalled.load(Ordering::SeqCst) as f64,
        _ => transport_errors(admin).await.expect("scrape"),
    }
}

#[tokio::test]
async fn a_ghes_that_refuses_connections_costs_other_accounts_nothing() {
    one_dead_ghes_costs_the_others_nothing(Mode::Refuse).await;
}

#[tokio::test]
async fn a_ghes_that_never_answers_costs_other_accounts_nothing() {
    one_dead_ghes_costs_the_others_nothing(Mode::Stall).await;
}
