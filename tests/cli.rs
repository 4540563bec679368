//! The binary as a user runs it: `emulator` from the command line driven over HTTP, `crds`,
//! `demo`, `version`, `run`, and bad flags.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ghes-oauth-operator");

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_emulator(extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args(["emulator", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the emulator");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("GHES emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (running, url)
}

#[tokio::test]
async fn emulator_subcommand_serves_the_api_to_plain_http_clients() {
    let (_emulator, api) = start_emulator(&[
        "--user",
        "octo:s3cret",
        "--app",
        "Iv1.0123456789abcdef:app-secret:CI Bot",
    ]);
    assert!(
        api.starts_with("http://127.0.0.1:") && api.ends_with("/api/v3"),
        "{api}"
    );
    let http = reqwest::Client::new();

    let created = http
        .put(format!(
            "{api}/authorizations/clients/Iv1.0123456789abcdef/fp-1"
        ))
        .basic_auth("octo", Some("s3cret"))
        .json(&serde_json::json!({"client_secret": "app-secret", "scopes": ["repo"]}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.expect("json");
    assert!(
        body["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("gho_"))
    );

    let denied = http
        .get(format!("{api}/authorizations"))
        .basic_auth("octo", Some("wrong"))
        .send()
        .await
        .expect("GET");
    assert_eq!(denied.status(), 401);

    let log: serde_json::Value = http
        .get(api.replace("/api/v3", "/_emulator/requests"))
        .send()
        .await
        .expect("hook")
        .json()
        .await
        .expect("json");
    let statuses: Vec<u64> = log
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [201, 401]);
}

#[test]
fn emulator_rejects_malformed_user_flags_naming_the_problem() {
    let output = Command::new(BIN)
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--user",
            "no-password",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--user"), "{stderr}");
}

#[test]
fn crds_prints_the_committed_files() {
    let output = Command::new(BIN).arg("crds").output().expect("run");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    for name in [
        "oauth.ghes.io_accounts.yaml",
        "oauth.ghes.io_authorizations.yaml",
        "oauth.ghes.io_clusteraccounts.yaml",
    ] {
        let committed = std::fs::read_to_string(format!("{dir}/{name}")).expect("committed CRD");
        assert!(
            printed.contains(&committed),
            "{name} differs from `crds` output"
        );
    }
}

#[test]
fn demo_runs_to_completion() {
    let started = Instant::now();
    let logs = std::env::temp_dir().join(format!("cli-demo-{}.log", std::process::id()));
    let output = Command::new(BIN)
        .args(["demo", "--log-file"])
        .arg(&logs)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The output is the report: the table and the summary, no log line, no colour.
    assert!(stderr.is_empty(), "the demo logs into its file:\n{stderr}");
    assert!(
        !stdout.contains('\u{1b}'),
        "ANSI codes off a terminal:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("AUTHORIZATION") && line.contains("SECRET")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(" INFO ") && !stdout.contains(" WARN "),
        "{stdout}"
    );
    assert!(stdout.contains(&logs.display().to_string()), "{stdout}");
    let logged = std::fs::read_to_string(&logs).expect("the log file");
    let _ = std::fs::remove_file(&logs);
    assert!(logged.contains("controllers started"), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "ANSI codes in a file:\n{logged}"
    );
    for authorization in [
        "team-a/ci-bot",
        "team-a/release-bot",
        "team-a/deploy-bot",
        "team-b/deploy-bot",
    ] {
        assert!(
            stdout.contains(authorization),
            "{authorization} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("8 Authorizations Ready"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn version_and_run_without_a_cluster() {
    let version = Command::new(BIN).arg("version").output().expect("run");
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("ghes-oauth-operator {}", env!("CARGO_PKG_VERSION"))
    );
    let run = Command::new(BIN)
        .arg("run")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("cannot reach Kubernetes"), "{stderr}");
}

#[test]
fn json_logs_are_json() {
    let output = Command::new(BIN)
        .args([
            "--log-format",
            "json",
            "--log-level",
            "info",
            "demo",
            "--verbose",
        ])
        .output()
        .expect("run");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the demo logs at info");
    for line in lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

#[test]
fn bench_prints_its_figures_as_json() {
    let output = Command::new(BIN)
        .args([
            "--log-level",
            "error",
            "bench",
            "--n",
            "12",
            "--accounts",
            "2",
            "--unrelated-secrets",
            "20",
            "--json",
        ])
        .args(["--timeout", "60"])
        .output()
        .expect("run bench");
    assert!(output.status.success(), "{output:?}");
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(figures["n"], 12);
    assert_eq!(figures["ready"], 12, "{figures}");
    assert_eq!(figures["kubernetes"], "test server");
    assert_eq!(figures["ghesThrottled"], 0);
    // One create per token, plus the listings: never a call per resource at rest.
    assert!(
        figures["ghesCallsPerToken"]
            .as_f64()
            .is_some_and(|c| c >= 1.0)
    );
    assert_eq!(figures["perResourceCallsSteady"], 0, "{figures}");
    // Two accounts, each one page of tokens and one of grants per interval (the window's
    // edges may catch one listing more or less).
    let lists = figures["listCallsPerSyncInterval"]
        .as_f64()
        .expect("a number");
    assert!((2.0..=6.0).contains(&lists), "{figures}");
    assert!(
        figures["operatorPeakRssMb"]
            .as_f64()
            .is_some_and(|mb| mb > 1.0)
    );
    assert_eq!(figures["unrelatedSecrets"], 20);
    assert!(
        figures["operatorIdleRssMb"]
            .as_f64()
            .is_some_and(|mb| mb > 1.0),
        "{figures}"
    );
}

/// `demo --serve --stop-controllers` keeps its test doubles running with a kubeconfig for
/// `plan`, `status` and operators of one's own, as the README's "Plan a change" and
/// "Sharding" show, and stops cleanly on Ctrl-C (SIGINT).
#[test]
fn demo_serves_its_test_server_for_plan_and_sharded_replicas_until_interrupted() {
    let dir = std::env::temp_dir().join(format!("cli-demo-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let kubeconfig = dir.join("demo.kubeconfig");
    let mut child = Command::new(BIN)
        .args(["demo", "--serve", "--stop-controllers", "--log-file"])
        .arg(dir.join("demo.log"))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut demo = Running(child);
    // Read the report on a thread that keeps the pipe open: the demo writes after this.
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut report = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo did not serve:\n{report}"));
        report.push_str(&line);
        report.push('\n');
        if line.contains("ghes-oauth-operator plan -f") {
            break;
        }
    }
    assert!(report.contains("8 Authorizations Ready"), "{report}");
    assert!(
        report.contains(&kubeconfig.display().to_string()),
        "{report}"
    );

    let examples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/30-personal-token.yaml"
    );
    let plan = |file: &std::path::Path| {
        Command::new(BIN)
            .args(["plan", "-f"])
            .arg(file)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .expect("run plan")
    };
    let unchanged = plan(std::path::Path::new(examples));
    let text = String::from_utf8_lossy(&unchanged.stdout).into_owned();
    assert_eq!(unchanged.status.code(), Some(0), "{text}\n{unchanged:?}");
    assert!(text.starts_with("Authorizations: 1 unchanged.\n"), "{text}");
    // The README's change: one more scope.
    let changed = dir.join("release-bot.yaml");
    let example = std::fs::read_to_string(examples).expect("read the example");
    let edited = example.replace("[read:user, gist]", "[read:user, gist, repo]");
    assert_ne!(
        edited, example,
        "the example's scopes moved: update the README too"
    );
    std::fs::write(&changed, edited).expect("write the change");
    let update = plan(&changed);
    let text = String::from_utf8_lossy(&update.stdout).into_owned();
    assert_eq!(update.status.code(), Some(2), "{text}\n{update:?}");
    assert!(
        text.contains("update   team-a/release-bot")
            && text.contains("→ [read:user, gist, repo] (+repo)"),
        "{text}"
    );

    // Two sharded replicas take over the examples; status names their servers.
    let replicas: Vec<Running> = ["r-0", "r-1"]
        .iter()
        .map(|instance| {
            Running(
                Command::new(BIN)
                    .args(["run", "--shards", "2", "--instance", instance])
                    .args(["--cluster-resource-namespace", "ghes-system"])
                    .args(["--admin-address", "127.0.0.1:0"])
                    .env("KUBECONFIG", &kubeconfig)
                    .env("LOG_LEVEL", "warn")
                    .env_remove("POD_NAMESPACE")
                    .env_remove("POD_NAME")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start a replica"),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let table = loop {
        let status = Command::new(BIN)
            .args(["status", "-A", "--kubeconfig"])
            .arg(&kubeconfig)
            .output()
            .expect("run status");
        let table = String::from_utf8_lossy(&status.stdout).into_owned();
        let rows: Vec<&str> = table.lines().skip(1).collect();
        let served = table
            .lines()
            .next()
            .is_some_and(|h| h.ends_with("SERVED-BY"))
            && rows.len() == 8
            && rows
                .iter()
                .all(|row| row.contains(" (shard ") && row.contains(" True "));
        if served {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "the sharded replicas did not take over:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        table.contains("r-0 (shard ") || table.contains("r-1 (shard "),
        "{table}"
    );
    drop(replicas);

    let interrupted = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn linked_as_kubectl_ghes_it_is_a_kubectl_plugin() {
    let dir = std::env::temp_dir().join(format!("kubectl-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let link = dir.join("kubectl-ghes");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).expect("link the binary as kubectl-ghes");
    let help = Command::new(&link).arg("--help").output().expect("run");
    assert!(help.status.success(), "{help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Usage: kubectl ghes [OPTIONS] <COMMAND>"),
        "{text}"
    );
    assert!(text.contains("\n  suspend "), "{text}");
    assert!(!text.contains("\n  run "), "{text}");
    let rotate = Command::new(&link)
        .args(["rotate", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&rotate.stdout);
    assert!(text.contains("kubectl ghes rotate"), "{text}");
    // An error names the plugin too.
    let wrong = Command::new(&link).arg("rotat").output().expect("run");
    assert!(!wrong.status.success());
    let text = String::from_utf8_lossy(&wrong.stderr);
    assert!(text.contains("kubectl ghes"), "{text}");
    // Its version is the operator's.
    let version = Command::new(&link).arg("version").output().expect("run");
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("ghes-oauth-operator "),
        "{version:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
