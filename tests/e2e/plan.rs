//! `plan`: what a change of manifests would do, read with the permissions of
//! `examples/gitops/plan/rbac.yaml` only, with GETs only on GHES and reads only on Kubernetes.

use serde_json::{Value, json};

use crate::ctl::{ctl_as, stdout};
use crate::harness::*;

/// An Authorization of a personal token through the Account `bot`; `extra` adds to or replaces
/// fields of its spec.
fn personal(namespace: &str, name: &str, scopes: &[&str], extra: Value) -> Value {
    let mut spec = json!({"accountRef": {"name": "bot"}, "scopes": scopes});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// Writes `objects` as one multi-document YAML file.
fn write_manifests(path: &std::path::Path, objects: &[Value]) {
    let text: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("YAML"))
        .collect();
    std::fs::write(path, text.join("---\n")).expect("write manifests");
}

/// Asserts that the line of `namespace/name` in a text plan starts with `action` and says
/// `detail`.
fn expect_line(plan: &str, namespace: &str, name: &str, action: &str, detail: &str) {
    let key = format!(" {namespace}/{name} ");
    let line = plan
        .lines()
        .find(|line| line.contains(&key))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{plan}"));
    assert!(
        line.trim_start().starts_with(&format!("{action} ")),
        "{name}: not {action}: {line}"
    );
    assert!(line.contains(detail), "{name}: no {detail:?}: {line}");
}

/// The Account `bot` (pruning Enabled, `minAge: 0s`, and `extra`) and six personal
/// Authorizations applied, each of which a change will treat differently: `same`, `widen`,
/// `lost`, `turn`, `revoked`, `orphaned` (`deletionPolicy: Orphan`); returns `same` and all six.
async fn declare_six(world: &World, ns: &str, extra: Value) -> (Value, Vec<Value>) {
    let mut settings = json!({"prune": {"mode": "Enabled", "minAge": "0s"}});
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    world
        .account_with(ns, "bot", USER, PASSWORD, None, settings)
        .await;
    let unchanged = personal(ns, "same", &["gist"], json!({}));
    let declared = vec![
        unchanged.clone(),
        personal(ns, "widen", &["repo"], json!({})),
        personal(ns, "lost", &["gist"], json!({})),
        personal(ns, "turn", &["gist"], json!({})),
        personal(ns, "revoked", &["gist"], json!({})),
        personal(
            ns,
            "orphaned",
            &["gist"],
            json!({"deletionPolicy": "Orphan"}),
        ),
    ];
    for object in &declared {
        world.apply_json(ns, object.clone()).await;
    }
    (unchanged, declared)
}

#[tokio::test]
async fn plan_shows_each_change_and_sends_only_reads() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (unchanged, declared) = declare_six(&world, &ns, json!({})).await;
    world.start_operator();
    let mut ids = std::collections::HashMap::new();
    for object in &declared {
        let name = object["metadata"]["name"].as_str().expect("name");
        let ready = world.wait_ready(&ns, name, "True").await;
        let id = ready.status.and_then(|s| s.authorization_id).expect("id");
        ids.insert(name.to_owned(), id);
    }
    // The operator stops: nothing may change under the plan but the change itself.
    world.kill_operator();
    world
        .secrets(&ns)
        .delete("lost", &Default::default())
        .await
        .expect("delete the Secret of lost");

    let dir = world.dir().join("pull-request");
    std::fs::create_dir_all(&dir).expect("manifests dir");
    let mut turn = personal(&ns, "turn", &["gist"], json!({}));
    turn["metadata"]["annotations"] = json!({"oauth.ghes.io/rotate": "2026-11-30"});
    write_manifests(
        &dir.join("authorizations.yaml"),
        &[
            unchanged.clone(),
            personal(&ns, "widen", &["repo", "workflow"], json!({})),
            personal(&ns, "lost", &["gist"], json!({})),
            turn,
            personal(&ns, "fresh", &["gist"], json!({})),
        ],
    );
    // A ClusterAccount that allows no namespace of this test.
    let narrow = format!("{ns}-narrow");
    world
        .cluster_account(
            &narrow,
            &ns,
            "bot-credentials",
            json!({"matchLabels": {"never": "matches"}}),
        )
        .await;
    write_manifests(
        &dir.join("broken.yaml"),
        &[
            json!({
                "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Authorization",
                "metadata": {"name": "broken", "namespace": ns},
                "spec": {
                    "accountRef": {"name": "bot"},
                    "app": {"clientId": CLIENT_ID, "clientSecretRef": {"name": "nope"}},
                    "scopes": ["repo"],
                },
            }),
            personal(
                &ns,
                "elsewhere",
                &["repo"],
                json!({"accountRef": {"kind": "ClusterAccount", "name": narrow}}),
            ),
        ],
    );
    let ghes_mark = world.ghes_seq();
    let kube_mark = world.kube_seq();
    let dir_arg = dir.display().to_string();

    // Text, with a configuration error: exit 1, and every change listed.
    let output = ctl_as(
        world.plan_kubeconfig(),
        &[
            "plan",
            "-f",
            &dir_arg,
            "--prune",
            "--cluster-resource-namespace",
            &ns,
        ],
    )
    .await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}\n{output:?}");
    let id = |name: &str| ids[name].to_string();
    expect_line(&text, &ns, "same", "nothing", "");
    expect_line(
        &text,
        &ns,
        "widen",
        "update",
        "scopes [repo] → [repo, workflow] (+workflow)",
    );
    expect_line(
        &text,
        &ns,
        "lost",
        "reissue",
        &format!(
            "the Secret was missing: revoke GHES authorization {}",
            id("lost")
        ),
    );
    expect_line(
        &text,
        &ns,
        "turn",
        "rotate",
        "the oauth.ghes.io/rotate annotation asked for it",
    );
    expect_line(
        &text,
        &ns,
        "fresh",
        "create",
        "personal token, scopes [gist]",
    );
    expect_line(
        &text,
        &ns,
        "broken",
        "error",
        &format!("Secret {ns}/nope not found"),
    );
    // The namespace rule of the ClusterAccount.
    expect_line(&text, &ns, "elsewhere", "error", "allowedNamespaces");
    expect_line(
        &text,
        &ns,
        "revoked",
        "revoke",
        &format!("revoke GHES authorization {}", id("revoked")),
    );
    expect_line(&text, &ns, "orphaned", "release", "deletionPolicy Orphan");
    // The orphaned token is declared by nothing once the change is applied: pruning (Enabled,
    // every namespace seen) deletes it, and only it; the revoked one is not listed twice.
    assert!(
        text.contains(&format!(
            "Account {ns}/bot ({} at {}), prune Enabled:",
            USER.to_ascii_lowercase(),
            world.ghes.api_url().trim_end_matches('/')
        )),
        "{text}"
    );
    let deletions: Vec<&str> = text.lines().filter(|l| l.contains("delete: ")).collect();
    assert_eq!(deletions.len(), 1, "{text}");
    assert!(
        deletions[0].contains(&format!("personal token {} ", id("orphaned")))
            && deletions[0].ends_with("[new with this change]"),
        "{text}"
    );
    assert!(
        text.contains("GHES writes once applied: 8 (3 create, 1 update, 4 delete)"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).trim().is_empty(),
        "{output:?}"
    );

    // JSON, without the broken file: changes, exit 2.
    let file = dir.join("authorizations.yaml").display().to_string();
    let output = ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &file, "--prune", "-o", "json"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let plan: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let actions: Vec<(String, String)> = plan["authorizations"]
        .as_array()
        .expect("authorizations")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_owned(),
                a["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("fresh", "create"),
        ("lost", "reissue"),
        ("orphaned", "release"),
        ("revoked", "revoke"),
        ("same", "nothing"),
        ("turn", "rotate"),
        ("widen", "update"),
    ]
    .iter()
    .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
    .collect();
    assert_eq!(actions, expected, "{plan}");
    assert_eq!(
        plan["writes"],
        json!({"create": 3, "update": 1, "delete": 4})
    );
    assert!(plan["ghesReads"].as_u64().is_some_and(|n| n >= 2), "{plan}");

    // Markdown for a pull request.
    let output = ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &file, "--prune", "-o", "markdown"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let markdown = stdout(&output);
    assert!(
        markdown.starts_with("### 📝 ghes-oauth-operator plan\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| Action | Authorization | Account | Detail |"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("| **update** | `{ns}/widen` | Account {ns}/bot |")),
        "{markdown}"
    );

    // A change that adds a team's Namespace, labelled as the narrow ClusterAccount allows:
    // its Authorization is a create, not the error it would be without the Namespace.
    let team = format!("{ns}-newteam");
    let new_team = dir.join("new-team.yaml");
    write_manifests(
        &new_team,
        &[
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": team, "labels": {"never": "matches"}}}),
            personal(
                &team,
                "welcome",
                &["read:org"],
                json!({"accountRef": {"kind": "ClusterAccount", "name": narrow}}),
            ),
        ],
    );
    let new_team = new_team.display().to_string();
    let output = ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &new_team, "--cluster-resource-namespace", &ns],
    )
    .await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}\n{output:?}");
    expect_line(&text, &team, "welcome", "create", "");

    // What the cluster already holds: no change, exit 0.
    let same = dir.join("same.yaml");
    write_manifests(&same, &[unchanged]);
    let same = same.display().to_string();
    let output = ctl_as(world.plan_kubeconfig(), &["plan", "-f", &same]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        stdout(&output).starts_with("Authorizations: 1 unchanged.\n"),
        "{output:?}"
    );

    // Five plans: GHES saw reads only, Kubernetes too.
    let ghes = world.ghes_calls_since(ghes_mark);
    assert!(!ghes.is_empty());
    assert_eq!(world.ghes_writes_since(ghes_mark), Vec::<String>::new());
    let writes: Vec<String> = world
        .kube_requests()
        .into_iter()
        .filter(|r| r.seq > kube_mark && !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| format!("{} {} {}", r.user, r.verb, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    // rbac.yaml grants exactly what plan uses: nothing missing (the plans above would have
    // failed), nothing more.
    if let Some(used) = world.permissions_used(PLAN_USER) {
        let granted: std::collections::BTreeSet<_> = plan_permissions().into_iter().collect();
        assert_eq!(used, granted);
    }
    world.cleanup().await;
}

/// GHES writes that succeeded after `mark`, by the plan's kinds: create (POST, PUT), update
/// (PATCH), delete (DELETE).
fn writes_since(world: &World, mark: u64) -> Value {
    let mut writes = json!({"create": 0, "update": 0, "delete": 0});
    for call in world.ghes_writes_since(mark) {
        let mut parts = call.split(' ');
        let (method, status) = (parts.next().unwrap_or_default(), parts.next_back());
        if !status.is_some_and(|s| s.starts_with('2')) {
            continue;
        }
        let kind = match method {
            "POST" | "PUT" => "create",
            "PATCH" => "update",
            "DELETE" => "delete",
            _ => continue,
        };
        writes[kind] = json!(writes[kind].as_u64().unwrap_or(0) + 1);
    }
    writes
}

/// The plan of a change, then the change applied: GHES sees exactly the writes the plan
/// counted, kind by kind — plan and reconcile take one decision.
#[tokio::test]
async fn the_writes_a_plan_counts_are_the_writes_the_change_makes() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    let (unchanged, declared) = declare_six(&world, &ns, json!({"syncInterval": "30s"})).await;
    world.start_operator();
    for object in &declared {
        let name = object["metadata"]["name"].as_str().expect("name");
        world.wait_ready(&ns, name, "True").await;
    }
    world.kill_operator();
    world
        .secrets(&ns)
        .delete("lost", &Default::default())
        .await
        .expect("delete the Secret of lost");
    let mut turn = personal(&ns, "turn", &["gist"], json!({}));
    turn["metadata"]["annotations"] = json!({"oauth.ghes.io/rotate": "2026-12-07"});
    let change = [
        unchanged,
        personal(&ns, "widen", &["repo", "workflow"], json!({})),
        personal(&ns, "lost", &["gist"], json!({})),
        turn,
        personal(&ns, "fresh", &["gist"], json!({})),
    ];
    let file = world.dir().join("change.yaml");
    write_manifests(&file, &change);
    let file = file.display().to_string();
    // Planned as the operator runs: it watches this namespace only, so pruning leaves the
    // orphaned token alone (it cannot tell that no other namespace declares it).
    let output = ctl_as(
        world.plan_kubeconfig(),
        &[
            "plan",
            "-f",
            &file,
            "--prune",
            "-o",
            "json",
            "--watch-namespace",
            &ns,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let plan: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let planned = plan["writes"].clone();
    // A create and an update; a reissue and a rotation (a create and a delete each); a
    // deletion's revoke.
    assert_eq!(
        planned,
        json!({"create": 3, "update": 1, "delete": 3}),
        "{plan}"
    );

    // The change, as `kubectl apply --prune` makes it.
    let mark = world.ghes_seq();
    for object in &change {
        world.apply_json(&ns, object.clone()).await;
    }
    for name in ["revoked", "orphaned"] {
        world
            .authorizations(&ns)
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    world.start_operator();
    for object in &change {
        let name = object["metadata"]["name"].as_str().expect("name");
        world.wait_ready(&ns, name, "True").await;
    }
    world.wait_gone(&ns, "revoked").await;
    world.wait_gone(&ns, "orphaned").await;
    let total = planned.as_object().map_or(0, |kinds| {
        kinds.values().filter_map(Value::as_u64).sum::<u64>()
    });
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let made: u64 = writes_since(&world, mark)
            .as_object()
            .map_or(0, |kinds| kinds.values().filter_map(Value::as_u64).sum());
        if made >= total || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        writes_since(&world, mark),
        planned,
        "{:?}",
        world.ghes_writes_since(mark)
    );
    // Settled: a later pruning run finds nothing more to delete.
    let settled = jiff::Timestamp::now();
    wait_for("a pruning run that finds nothing more", || async {
        let prune = world.account_status(&ns, "bot").await?.prune?;
        let later = prune.last_run_time.as_ref().is_some_and(|t| t.0 > settled);
        (later && prune.candidate_count == 0).then_some(())
    })
    .await;
    assert_eq!(
        writes_since(&world, mark),
        planned,
        "{:?}",
        world.ghes_writes_since(mark)
    );
    world.cleanup().await;
}

/// One HTTP request a stub on loopback received: request line, headers, body.
struct Received {
    line: String,
    headers: String,
    body: String,
}

/// Answers the first request on `listener` with 201 and returns it.
async fn receive_one(listener: tokio::net::TcpListener) -> Received {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut stream, _) = listener.accept().await.expect("accept");
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head, length) = loop {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "the connection closed early");
        data.extend_from_slice(&buffer[..read]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().expect("length"))
                })
                .unwrap_or(0);
            data.drain(..end + 4);
            break (head, length);
        }
    };
    while data.len() < length {
        let read = stream.read(&mut buffer).await.expect("read body");
        assert!(read > 0, "the body ended early");
        data.extend_from_slice(&buffer[..read]);
    }
    stream
        .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        .await
        .expect("answer");
    let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    Received {
        line: line.to_owned(),
        headers: headers.to_owned(),
        body: String::from_utf8_lossy(&data).into_owned(),
    }
}

#[tokio::test]
async fn the_example_ci_script_posts_the_plan_on_the_pull_request() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    let declared = personal(&ns, "docs", &["repo"], json!({}));
    world.apply_json(&ns, declared).await;
    world.start_operator();
    world.wait_ready(&ns, "docs", "True").await;
    world.kill_operator();
    let manifests = world.dir().join("change.yaml");
    write_manifests(
        &manifests,
        &[personal(&ns, "docs", &["repo", "workflow"], json!({}))],
    );

    // GitHub's API, as far as the script uses it: one comment.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!("http://{}", listener.local_addr().expect("address"));
    let comment = tokio::spawn(tokio::time::timeout(WAIT, receive_one(listener)));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gitops/plan/plan-comment.sh"
    );
    let mut command = std::process::Command::new("bash");
    command
        .arg(script)
        .env("MANIFESTS", &manifests)
        .env("GHES_OAUTH_OPERATOR", BIN)
        .env("KUBECONFIG", world.plan_kubeconfig())
        .env("GITHUB_API_URL", &api)
        .env("GITHUB_REPOSITORY", "platform/tokens")
        .env("GITHUB_TOKEN", "pr-commenter-token")
        .env("PR_NUMBER", "42")
        .env_remove("POD_NAMESPACE")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY");
    let output = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || command.output().expect("run the script")),
    )
    .await
    .expect("the script ends")
    .expect("the script's thread");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output).trim(),
        "posted the plan on pull request #42"
    );
    let received = comment
        .await
        .expect("the stub's task")
        .expect("a comment within the wait");
    assert_eq!(
        received.line,
        "POST /repos/platform/tokens/issues/42/comments HTTP/1.1"
    );
    assert!(
        received
            .headers
            .to_ascii_lowercase()
            .contains("authorization: bearer pr-commenter-token"),
        "{}",
        received.headers
    );
    let body: Value = serde_json::from_str(&received.body).expect("a JSON body");
    let markdown = body["body"].as_str().expect("body.body");
    assert!(
        markdown.starts_with("### 📝 ghes-oauth-operator plan\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("| **update** | `{ns}/docs` |")),
        "{markdown}"
    );
    assert!(markdown.contains("(+workflow)"), "{markdown}");
    world.cleanup().await;
}

/// The Account `name` as a manifest, as [`World::account`] applies it.
fn account_manifest(world: &World, namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "oauth.ghes.io/v1alpha1", "kind": "Account",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "server": "https://ghes.invalid",
            "apiUrl": world.ghes.api_url(),
            "credentialsSecretRef": {"name": format!("{name}-credentials")},
            "requestsPerSecond": 50,
            "burst": 50,
        },
    })
}

#[tokio::test]
async fn plan_shows_an_account_deletion_held_by_the_tokens_issued_through_it() {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world.account(&ns, "spare", USER, PASSWORD, None).await;
    world.account(&ns, "idle", USER, PASSWORD, None).await;
    let keep = personal(&ns, "keep", &["gist"], json!({}));
    let gone = personal(&ns, "gone", &["repo"], json!({}));
    world.apply_json(&ns, keep.clone()).await;
    world.apply_json(&ns, gone.clone()).await;
    world.start_operator();
    let mut ids = Vec::new();
    for name in ["gone", "keep"] {
        let ready = world.wait_ready(&ns, name, "True").await;
        ids.push(ready.status.and_then(|s| s.authorization_id).expect("id"));
    }
    world.kill_operator();
    let dir = world.dir().join("account-deletion");
    std::fs::create_dir_all(&dir).expect("manifests dir");
    let ghes_mark = world.ghes_seq();
    let kube_mark = world.kube_seq();

    // Two Accounts leave the manifests, the Authorizations stay: `bot`, which issued both
    // tokens, is held by its in-use finalizer and both Authorizations fail (AccountDeleting,
    // as the controller reports it): exit 1. `spare` issued nothing and goes at once.
    let idle = account_manifest(&world, &ns, "idle");
    let stay = dir.join("stay.yaml");
    write_manifests(&stay, &[keep.clone(), gone.clone(), idle.clone()]);
    let output = ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &stay.display().to_string(), "--prune"],
    )
    .await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}\n{output:?}");
    for name in ["keep", "gone"] {
        expect_line(
            &text,
            &ns,
            name,
            "error",
            &format!("Account {ns}/bot is being deleted; it issues no new token"),
        );
    }
    assert!(text.contains(" Accounts: 2 to delete."), "{text}");
    let bot = format!(
        "Account {ns}/bot, deleted:\n  held by its oauth.ghes.io/in-use finalizer: 2 \
         Authorization(s) that stay hold tokens through it ({ns}/gone, {ns}/keep); it stays \
         Terminating, reason Deleting, and they issue no new token (AccountDeleting) until they \
         are deleted too; its credentials Secret {ns}/bot-credentials is held as long\n"
    );
    assert!(text.contains(&bot), "{text}");
    assert!(
        text.contains(&format!(
            "Account {ns}/spare, deleted:\n  deleted at once: no Authorization has issued a \
             token through it\n"
        )),
        "{text}"
    );

    // Only `idle` stays, with a new Authorization: both tokens are revoked first, through
    // `bot`, which goes after them: exit 2, and the JSON says the same.
    let last = dir.join("last.yaml");
    let fresh = personal(
        &ns,
        "fresh",
        &["gist"],
        json!({"accountRef": {"name": "idle"}}),
    );
    write_manifests(&last, &[idle, fresh]);
    let output = ctl_as(
        world.plan_kubeconfig(),
        &[
            "plan",
            "-f",
            &last.display().to_string(),
            "--prune",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let plan: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let actions: Vec<&str> = plan["authorizations"]
        .as_array()
        .expect("authorizations")
        .iter()
        .map(|a| a["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["create", "revoke", "revoke"], "{plan}");
    let accounts = plan["accounts"].as_array().expect("accounts");
    let bot = accounts
        .iter()
        .find(|a| a["account"] == json!(format!("Account {ns}/bot")))
        .unwrap_or_else(|| panic!("no plan of bot: {plan}"));
    assert_eq!(
        bot["deletion"],
        json!(format!(
            "held by its oauth.ghes.io/in-use finalizer until the 2 Authorization(s) this change \
             deletes have revoked their tokens through it (each tries for at most \
             spec.revokeTimeout, 10m), then deleted; its credentials Secret {ns}/bot-credentials \
             is held as long"
        )),
        "{plan}"
    );
    let spare = accounts
        .iter()
        .find(|a| a["account"] == json!(format!("Account {ns}/spare")))
        .unwrap_or_else(|| panic!("no plan of spare: {plan}"));
    assert_eq!(
        spare["deletion"],
        json!("deleted at once: no Authorization has issued a token through it")
    );
    assert_eq!(
        plan["writes"],
        json!({"create": 1, "update": 0, "delete": 2})
    );

    // Plans only read.
    assert_eq!(world.ghes_writes_since(ghes_mark), Vec::<String>::new());
    let writes: Vec<String> = world
        .kube_requests()
        .into_iter()
        .filter(|r| r.seq > kube_mark && !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| format!("{} {} {}", r.user, r.verb, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    // What the plan said is what happens: applied with pruning, both tokens are revoked and
    // `bot` goes after them.
    world.start_operator();
    let accounts: kube::Api<ghes_oauth_operator::api::Account> =
        kube::Api::namespaced(world.client.clone(), &ns);
    accounts
        .delete("bot", &Default::default())
        .await
        .expect("delete bot");
    for name in ["keep", "gone"] {
        world.delete_authorization(&ns, name).await;
    }
    wait_for("bot to go", || async {
        accounts.get_opt("bot").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(world.live_tokens(USER), Vec::new(), "{ids:?}");
    world.cleanup().await;
}

/// A world whose Account `bot` issued the personal token `docs` (scopes `[repo]`), its
/// operator stopped since: what a plan is made against. Returns it and its namespace.
async fn docs_issued() -> (World, String) {
    let mut world = World::new(&["a"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    world
        .apply_json(&ns, personal(&ns, "docs", &["repo"], json!({})))
        .await;
    world.start_operator();
    world.wait_ready(&ns, "docs", "True").await;
    world.kill_operator();
    (world, ns)
}

#[tokio::test]
async fn a_plan_whose_only_change_is_a_configuration_error_calls_no_ghes() {
    let (world, ns) = docs_issued().await;
    let manifests = world.dir().join("typo.yaml");
    write_manifests(
        &manifests,
        &[personal(&ns, "docs", &["repo", "wrokflow"], json!({}))],
    );
    let mark = world.ghes_seq();
    let output = ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &manifests.display().to_string()],
    )
    .await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}\n{output:?}");
    expect_line(&text, &ns, "docs", "error", "spec.scopes[1]: \"wrokflow\"");
    assert_eq!(world.ghes_calls_since(mark), Vec::<String>::new(), "{text}");
    assert!(text.contains("this plan made 0 GHES calls"), "{text}");
    world.cleanup().await;
}

#[tokio::test]
async fn a_plan_leaves_a_suspended_authorization_alone() {
    let (world, ns) = docs_issued().await;
    // A scope change and a new token, both suspended: the controller would do nothing.
    let manifests = world.dir().join("suspended.yaml");
    write_manifests(
        &manifests,
        &[
            personal(&ns, "docs", &["repo", "gist"], json!({"suspend": true})),
            personal(&ns, "later", &["gist"], json!({"suspend": true})),
        ],
    );
    let mark = world.ghes_seq();
    let output = ctl_as(
        world.plan_kubeconfig(),
        &["plan", "-f", &manifests.display().to_string()],
    )
    .await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{output:?}");
    expect_line(&text, &ns, "docs", "suspended", "spec.suspend is true");
    expect_line(&text, &ns, "later", "suspended", "spec.suspend is true");
    assert!(text.contains("GHES writes once applied: 0 "), "{text}");
    // The account's listing (what pruning would do) is read as for any plan; nothing else.
    assert_eq!(
        world.ghes_writes_since(mark),
        Vec::<String>::new(),
        "{text}"
    );
    world.cleanup().await;
}
