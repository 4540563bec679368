//! Behind a proxy: the operator's GHES requests go through `HTTP_PROXY` (as the chart's
//! `httpProxy`/`httpsProxy` values set it), and `NO_PROXY` (`noProxy`) bypasses it; the
//! commands for people (`status`, ...) reach the API server of a kubeconfig through
//! `HTTPS_PROXY`, or directly when `NO_PROXY` names it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::harness::*;

/// Longest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;
/// Longest a connection may take to send its head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections the proxy serves in one test.
const MAX_CONNECTIONS: usize = 256;

/// A forward HTTP proxy on loopback that records the first request line of each connection and
/// relays it to its (loopback) origin: absolute-form requests, and `CONNECT` tunnels.
struct Proxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(relay(client, seen.clone()));
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the head of a proxied request (`GET http://host:port/path HTTP/1.1`), records its
/// request line, sends it on in origin form and relays both ways until either side closes.
async fn relay(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = client.read(&mut buffer).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        Some(())
    })
    .await;
    if !matches!(read, Ok(Some(()))) {
        return;
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    seen.lock().unwrap().push(line.clone());
    let mut parts = line.splitn(3, ' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let tunnel = method == "CONNECT";
    let (authority, path) = if tunnel {
        (target, "")
    } else {
        let Some(rest) = target.strip_prefix("http://") else {
            return;
        };
        rest.split_at(rest.find('/').unwrap_or(rest.len()))
    };
    let Ok(origin) = authority.parse::<SocketAddr>() else {
        return;
    };
    assert!(
        origin.ip().is_loopback(),
        "the proxy relays to loopback only"
    );
    let Ok(mut upstream) = TcpStream::connect(origin).await else {
        return;
    };
    if tunnel {
        // Whatever followed the CONNECT head is the tunnel's first bytes.
        let end = text.find("\r\n\r\n").map_or(head.len(), |at| at + 4);
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
            || upstream.write_all(&head[end..]).await.is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    let path = if path.is_empty() { "/" } else { path };
    let rewritten = text.replacen(&line, &format!("{method} {path} {version}"), 1);
    if upstream.write_all(rewritten.as_bytes()).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[tokio::test]
async fn ghes_requests_go_through_the_proxy_unless_no_proxy_names_ghes() {
    let proxy = Proxy::start().await;
    let mut world = World::new(&["proxy"]).await;
    let ns = world.ns(0).to_owned();
    world.account(&ns, "bot", USER, PASSWORD, None).await;
    let ghes = url::Url::parse(&world.ghes.api_url()).expect("emulator URL");
    let authority = format!(
        "{}:{}",
        ghes.host_str().expect("host"),
        ghes.port().expect("port")
    );

    // Through the proxy: the token is issued, and the proxy relayed the GHES requests.
    world.start_operator_env(&[], &[("HTTP_PROXY", &proxy.url())]);
    world
        .authorization(
            &ns,
            "first",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.wait_ready(&ns, "first", "True").await;
    let relayed = proxy.requests();
    assert!(
        !relayed.is_empty() && relayed.iter().all(|line| line.contains(&authority)),
        "the proxy saw {relayed:?}, expected requests to {authority}"
    );
    assert!(
        relayed.iter().any(|line| line.contains("/api/v3/")),
        "{relayed:?}"
    );
    world.kill_operator();

    // NO_PROXY names GHES's host: the next token is issued without the proxy.
    let before = proxy.requests().len();
    world.start_operator_env(
        &[],
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("NO_PROXY", "127.0.0.1,localhost"),
        ],
    );
    world
        .authorization(
            &ns,
            "second",
            json!({"accountRef": {"name": "bot"}, "scopes": ["gist"]}),
        )
        .await;
    world.wait_ready(&ns, "second", "True").await;
    assert_eq!(
        proxy.requests().len(),
        before,
        "NO_PROXY did not bypass the proxy: {:?}",
        proxy.requests()
    );
    world.cleanup().await;
}

/// `ghes-oauth-operator ARGS` with `env`; its exit success and output. (On a blocking thread:
/// the test server answering it runs on this test's runtime.)
async fn operator(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ghes-oauth-operator"))
            .args(&args)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env_remove("https_proxy")
            .envs(env)
            .output()
            .expect("run the binary")
    })
    .await
    .expect("the binary's thread");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn a_kubeconfig_api_server_is_reached_through_https_proxy_unless_no_proxy_names_it() {
    let proxy = Proxy::start().await;
    let world = World::new(&["kubeproxy"]).await;
    let kubeconfig = world.user_kubeconfig();
    let kubeconfig = kubeconfig.to_str().expect("a UTF-8 path");
    let args = ["status", "-A", "--kubeconfig", kubeconfig];
    // NO_PROXY names the API server: no proxy, even one that is down.
    let (ok, output) = operator(
        &args,
        &[
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
            ("NO_PROXY", "127.0.0.1"),
        ],
    )
    .await;
    assert!(ok, "{output}");
    assert!(proxy.requests().is_empty());
    // Through the proxy: a CONNECT tunnel to the API server.
    let (ok, output) = operator(&args, &[("HTTPS_PROXY", &proxy.url())]).await;
    assert!(ok, "{output}");
    let relayed = proxy.requests();
    assert!(
        !relayed.is_empty()
            && relayed
                .iter()
                .all(|line| line.starts_with("CONNECT 127.0.0.1:")),
        "{relayed:?}"
    );
    world.cleanup().await;
}
