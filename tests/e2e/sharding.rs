//! Sharding: several operator processes share the accounts through shard Leases. Each account
//! is served by exactly one process (its GHES user's requests carry one instance in their
//! `User-Agent`), a killed process's accounts move to the others within the Lease duration, no
//! account ever has two writers, and sharding costs no more GHES calls than one replica.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

use crate::harness::*;

const ACCOUNTS: usize = 30;
/// Short Leases, so that a takeover is quick: 8 s, renewed every 2 s (a busy 2-core machine
/// running three operators, the API server and GHES must still renew within 7 s).
const LEASE: [&str; 6] = [
    "--lease-duration",
    "8",
    "--lease-renew-period",
    "2",
    "--lease-retry-period",
    "1",
];

fn users() -> Vec<(String, String)> {
    (0..ACCOUNTS)
        .map(|i| (format!("shard-bot-{i:02}"), format!("shard-bot-{i:02}-pw")))
        .collect()
}

/// A world whose GHES has the 30 users.
async fn world() -> World {
    World::exclusive_with_users(&["a"], &users()).await
}

/// 30 Accounts, one GHES user each, and one personal token per account.
async fn declare(world: &World) {
    let ns = world.ns(0).to_owned();
    for (i, (login, password)) in users().iter().enumerate() {
        let account = format!("bot-{i:02}");
        world.account(&ns, &account, login, password, None).await;
        world
            .authorization(
                &ns,
                &format!("token-{i:02}"),
                json!({"accountRef": {"name": account}, "scopes": ["gist"]}),
            )
            .await;
    }
}

/// Waits until the shard Leases are spread as `per_replica` shards on each of `replicas`.
async fn balanced(world: &World, ns: &str, shards: usize, replicas: usize) {
    let per_replica = shards.div_ceil(replicas);
    wait_for("the shards spread over the replicas", || async {
        let holders = shard_holders(world, ns).await;
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for holder in holders.values() {
            *per.entry(holder.clone()).or_default() += 1;
        }
        (holders.len() == shards
            && per.len() == replicas
            && per.values().all(|n| *n == per_replica))
        .then_some(())
    })
    .await;
}

async fn all_ready(world: &World) {
    let ns = world.ns(0).to_owned();
    for i in 0..ACCOUNTS {
        world
            .wait_ready(&ns, &format!("token-{i:02}"), "True")
            .await;
    }
}

fn replica_args<'a>(ns: &'a str, shards: &'a str, instance: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "--shards",
        shards,
        "--instance",
        instance,
        "--leader-election-namespace",
        ns,
    ];
    args.extend(LEASE);
    args
}

/// The instance named in a request's `User-Agent` (`… instance/NAME`).
fn instance(user_agent: Option<&str>) -> String {
    user_agent
        .and_then(|ua| ua.split(" instance/").nth(1))
        .unwrap_or("-")
        .to_owned()
}

/// For each GHES login, the instances of its requests in arrival order (runs of one instance
/// collapsed), from `since` on.
fn servers_by_login(world: &World, since: u64) -> BTreeMap<String, Vec<String>> {
    let mut servers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in world.ghes.requests() {
        let (Some(login), true) = (request.user.clone(), request.seq > since) else {
            continue;
        };
        let runs = servers.entry(login).or_default();
        let name = instance(request.user_agent.as_deref());
        if runs.last() != Some(&name) {
            runs.push(name);
        }
    }
    servers
}

/// GHES requests as `login` that arrived after `after` and by `until`, with their instance.
fn heard(world: &World, login: &str, after: u64, until: u64) -> Vec<String> {
    world
        .ghes
        .requests()
        .iter()
        .filter(|r| r.arrived > after && r.arrived <= until)
        .filter(|r| r.user.as_deref() == Some(login))
        .map(|r| {
            format!(
                "{} {} ({})",
                r.method,
                r.path,
                instance(r.user_agent.as_deref())
            )
        })
        .collect()
}

/// Shard Lease holders, by shard Lease name.
async fn shard_holders(world: &World, ns: &str) -> BTreeMap<String, String> {
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), ns);
    leases
        .list(&Default::default())
        .await
        .expect("list Leases")
        .items
        .into_iter()
        .filter_map(|lease| {
            let name = lease.metadata.name.clone()?;
            let holder = lease.spec?.holder_identity?;
            name.contains("-shard-").then_some((name, holder))
        })
        .collect()
}

#[tokio::test]
async fn three_replicas_share_thirty_accounts_and_take_over_a_dead_ones() {
    // One replica first: what the accounts cost unsharded.
    let mut alone = world().await;
    alone.start_operator();
    declare(&alone).await;
    all_ready(&alone).await;
    let single = alone.ghes.requests().len();
    alone.cleanup().await;

    let world = world().await;
    let ns = world.ns(0).to_owned();
    let names = ["op-0", "op-1", "op-2"];
    let mut replicas: BTreeMap<&str, Operator> = names
        .iter()
        .map(|name| (*name, world.spawn_replica(&replica_args(&ns, "3", name))))
        .collect();
    balanced(&world, &ns, 3, 3).await;
    declare(&world).await;
    all_ready(&world).await;

    // Every account is served by exactly one process, and each process serves some.
    let servers = servers_by_login(&world, 0);
    assert_eq!(servers.len(), ACCOUNTS, "{servers:?}");
    let mut served: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (login, runs) in &servers {
        assert_eq!(runs.len(), 1, "{login} had two servers: {runs:?}");
        served
            .entry(runs[0].clone())
            .or_default()
            .insert(login.clone());
    }
    assert_eq!(
        served.keys().cloned().collect::<Vec<_>>(),
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        "{served:?}"
    );
    // Each holds one shard (ceil(3 / 3)), and says so in the Accounts it serves.
    let holders = shard_holders(&world, &ns).await;
    assert_eq!(holders.len(), 3, "{holders:?}");
    assert_eq!(
        holders.values().cloned().collect::<BTreeSet<_>>().len(),
        3,
        "{holders:?}"
    );
    for (i, (login, _)) in users().iter().enumerate() {
        let served_by = wait_for("the Account's status.servedBy", || async {
            world
                .account_status(&ns, &format!("bot-{i:02}"))
                .await?
                .served_by
        })
        .await;
        let server = &servers[login][0];
        assert!(
            served_by.starts_with(&format!("{server} (shard ")) && served_by.ends_with(" of 3)"),
            "{login}: servedBy {served_by:?}, served by {server}"
        );
    }
    // `status` shows which replica serves each Authorization's account.
    let output = crate::ctl::ctl(&world, &["status", "-n", &ns]).await;
    assert!(output.status.success(), "{output:?}");
    let table = crate::ctl::stdout(&output);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.ends_with("SERVED-BY")),
        "{table}"
    );
    for (i, (login, _)) in users().iter().enumerate() {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("token-{i:02} ")))
            .unwrap_or_else(|| panic!("no row for token-{i:02}:\n{table}"));
        assert!(
            row.contains(&format!("{} (shard ", servers[login][0])),
            "{row}"
        );
    }
    // Sharding costs no more GHES calls than one replica did.
    let sharded = world.ghes.requests().len();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for request in world.ghes.requests() {
        let path = if request.path.starts_with("/api/v3/authorizations/") {
            "/api/v3/authorizations/{id}"
        } else {
            request.path.as_str()
        };
        *kinds
            .entry(format!("{} {path} {}", request.method, request.status))
            .or_default() += 1;
    }
    assert!(
        sharded <= single,
        "3 replicas made {sharded} GHES calls, 1 replica {single}: {kinds:?}"
    );

    // Kill the replica serving the most accounts; change all of its tokens' scopes.
    let (victim, moved) = served
        .iter()
        .max_by_key(|(_, logins)| logins.len())
        .map(|(name, logins)| (name.clone(), logins.clone()))
        .expect("a victim");
    let killed_at = world.ghes_seq();
    drop(replicas.remove(victim.as_str()));
    let killed = Instant::now();
    for (i, (login, _)) in users().iter().enumerate() {
        if moved.contains(login) {
            world
                .patch_authorization(
                    &ns,
                    &format!("token-{i:02}"),
                    json!({"spec": {"scopes": ["gist", "repo"]}}),
                )
                .await;
        }
    }
    for (i, (login, _)) in users().iter().enumerate() {
        if !moved.contains(login) {
            continue;
        }
        let name = format!("token-{i:02}");
        wait_for_within(
            "the moved token's new scopes",
            Duration::from_secs(60),
            || async {
                world.authorizations(&ns).get(&name).await.ok().filter(|a| {
                    a.status.as_ref().is_some_and(|s| {
                        s.observed_generation == a.metadata.generation
                            && s.scopes.contains(&"repo".to_owned())
                    })
                })
            },
        )
        .await;
    }
    let took = killed.elapsed();
    // Within the Lease duration (8 s), plus the time a survivor needs to notice and the
    // reconcile itself; far from the 60 s a lost shard would wait.
    assert!(
        took < Duration::from_secs(30),
        "the shards of {victim} moved in {took:?}"
    );
    // The moved accounts are served by one survivor each after the kill, never the victim.
    let after = servers_by_login(&world, killed_at);
    for login in &moved {
        let runs = &after[login];
        assert_eq!(runs.len(), 1, "{login} after the kill: {runs:?}");
        assert_ne!(runs[0], victim, "{login}");
    }
    // No account ever had two writers: each login's requests switch server at most once, from
    // the victim to a survivor.
    for (login, runs) in servers_by_login(&world, 0) {
        match runs.as_slice() {
            [_] => {}
            [first, second] => {
                assert!(
                    *first == victim && moved.contains(&login) && *second != victim,
                    "{login}: {runs:?}"
                );
            }
            _ => panic!("{login} had servers {runs:?}"),
        }
    }
    drop(replicas);
    world.cleanup().await;
}

#[tokio::test]
async fn six_shards_over_three_replicas_give_each_two() {
    let world = world().await;
    let ns = world.ns(0).to_owned();
    let names = ["op-a", "op-b", "op-c"];
    let replicas: Vec<Operator> = names
        .iter()
        .map(|name| world.spawn_replica(&replica_args(&ns, "6", name)))
        .collect();
    // ceil(6 / 3) = 2 shards each, once all three are up.
    balanced(&world, &ns, 6, 3).await;
    declare(&world).await;
    all_ready(&world).await;
    let servers = servers_by_login(&world, 0);
    assert_eq!(servers.len(), ACCOUNTS);
    let mut serving: BTreeSet<String> = BTreeSet::new();
    for (login, runs) in &servers {
        assert_eq!(runs.len(), 1, "{login} had two servers: {runs:?}");
        serving.insert(runs[0].clone());
    }
    assert_eq!(serving.len(), 3, "{servers:?}");
    balanced(&world, &ns, 6, 3).await;

    // A ClusterAccount that logs in as bot-00's GHES user lands in bot-00's shard: one replica
    // speaks for each GHES user.
    world
        .namespaces_api()
        .patch(
            &ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"tokens": "shared"}}})),
        )
        .await
        .expect("label the namespace");
    let (login, password) = users()[0].clone();
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "shared-credentials", "namespace": ns},
                "stringData": {"username": login, "password": password},
            }),
        )
        .await;
    let shared = format!("{ns}-shared");
    world
        .cluster_account(
            &shared,
            &ns,
            "shared-credentials",
            json!({"matchLabels": {"tokens": "shared"}}),
        )
        .await;
    world
        .authorization(
            &ns,
            "shared-token",
            json!({"accountRef": {"kind": "ClusterAccount", "name": shared}, "scopes": ["read:org"]}),
        )
        .await;
    world.wait_ready(&ns, "shared-token", "True").await;
    let label = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels.and_then(|l| l.get("oauth.ghes.io/shard").cloned())
    };
    let cluster_accounts: Api<ghes_oauth_operator::api::ClusterAccount> =
        Api::all(world.client.clone());
    let accounts: Api<ghes_oauth_operator::api::Account> =
        Api::namespaced(world.client.clone(), &ns);
    let shared_shard = label(
        cluster_accounts
            .get(&shared)
            .await
            .expect("the ClusterAccount")
            .metadata
            .labels
            .as_ref(),
    );
    let bot_shard = label(
        accounts
            .get("bot-00")
            .await
            .expect("bot-00")
            .metadata
            .labels
            .as_ref(),
    );
    assert!(shared_shard.is_some());
    assert_eq!(shared_shard, bot_shard);
    let runs = &servers_by_login(&world, 0)[&login];
    assert_eq!(runs.len(), 1, "{login}: {runs:?}");
    cluster_accounts
        .delete(&shared, &Default::default())
        .await
        .expect("delete the ClusterAccount");

    // A replica stopped the way a rollout stops it (SIGTERM) gives back its shards and its
    // member Lease: the other two count two replicas at once and take three shards each.
    let mut replicas = replicas;
    let exited = replicas.pop().expect("op-c").terminate().await;
    assert!(exited.success(), "op-c exited with {exited}");
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &ns);
    let member = leases
        .get("ghes-oauth-operator-member-op-c")
        .await
        .expect("op-c's member Lease");
    assert_eq!(
        member.spec.and_then(|spec| spec.holder_identity),
        None,
        "op-c's member Lease is released"
    );
    balanced(&world, &ns, 6, 2).await;
    drop(replicas);
    world.cleanup().await;
}

#[tokio::test]
async fn an_account_moved_to_another_shard_has_one_writer_at_a_time() {
    let world = world().await;
    let ns = world.ns(0).to_owned();
    let _replicas: Vec<Operator> = ["op-a", "op-b"]
        .iter()
        .map(|name| world.spawn_replica(&replica_args(&ns, "2", name)))
        .collect();
    balanced(&world, &ns, 2, 2).await;
    // Two GHES users in different shards.
    let api_root = world.ghes.api_url();
    let shard = |login: &str| {
        ghes_oauth_operator::shard::shard_of_identity(
            &ghes_oauth_operator::api::GhesUser::new(api_root.trim_end_matches('/'), login),
            2,
        )
    };
    let all = users();
    let (from, from_password) = all[0].clone();
    let (to, to_password) = all
        .iter()
        .find(|(login, _)| shard(login) != shard(&from))
        .cloned()
        .expect("a user in the other shard");
    world.account(&ns, "bot", &from, &from_password, None).await;
    world
        .authorization(
            &ns,
            "token",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.wait_ready(&ns, "token", "True").await;

    // The credentials now name a user of the other shard; shard 0's labeller moves the account
    // and its Authorization at its next sweep.
    world
        .apply_json(
            &ns,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "bot-credentials", "namespace": ns},
                "stringData": {"username": to, "password": to_password},
            }),
        )
        .await;
    let target = shard(&to).to_string();
    let authorizations = world.authorizations(&ns);
    wait_for_within(
        "the move to the other shard",
        Duration::from_secs(90),
        || async {
            let token = authorizations.get_opt("token").await.ok().flatten()?;
            let labels = token.metadata.labels?;
            (labels.get("oauth.ghes.io/shard") == Some(&target)).then_some(())
        },
    )
    .await;
    // The new shard's replica leaves the objects alone for the hand-over (10 s): the new user
    // is not heard from before; the old shard's replica stops within its watch's delay: the
    // old user is not heard from after.
    let moved_at = world.ghes_seq();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = world.ghes_seq();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let handed_over = world.ghes_seq();
    wait_for("a token as the new user", || async {
        let token = world.wait_ready(&ns, "token", "True").await;
        token
            .status?
            .identity?
            .starts_with(&format!("{to} at "))
            .then_some(())
    })
    .await;
    assert_eq!(
        heard(&world, &to, moved_at, handed_over),
        Vec::<String>::new(),
        "the new user during the hand-over"
    );
    assert_eq!(
        heard(&world, &from, settled, u64::MAX),
        Vec::<String>::new(),
        "the old user after the move"
    );
    world.cleanup().await;
}
