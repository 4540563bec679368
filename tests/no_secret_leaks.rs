//! No password, client secret, TOTP seed or token reaches a log line (at TRACE, including
//! reqwest's, hyper's and the emulator's) or the `Debug` output of any value the client returns.
//! This binary installs a global subscriber, so it holds this one test only.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ghes_emulator::Fault;
use ghes_oauth_operator::ghes::{
    AppAuthorizationRequest, ClientConfig, GhesApi, HttpGhesClient, NewAuthorization, SecretValue,
};
use support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let emulator = emulator().await;
    let mut debug = String::new();
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        OTP_PASSWORD.into(),
        OTP_SEED.into(),
        CLIENT_SECRET.into(),
        OTHER_CLIENT_SECRET.into(),
        "wrong-password-do-not-log".into(),
    ];
    // Basic credentials as they travel in the Authorization header.
    for (user, password) in [
        (USER, PASSWORD),
        (OTP_USER, OTP_PASSWORD),
        (USER, "wrong-password-do-not-log"),
    ] {
        secrets.push(data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes()));
    }

    let configs: Vec<ClientConfig> = vec![
        config(&emulator, USER, PASSWORD, None),
        config(&emulator, OTP_USER, OTP_PASSWORD, Some(OTP_SEED)),
    ];
    for config in configs {
        debug.push_str(&format!("{config:?}\n"));
        let client = HttpGhesClient::new(config).expect("client");
        debug.push_str(&format!("{client:?}\n"));
        let request = AppAuthorizationRequest {
            client_secret: SecretValue::new(CLIENT_SECRET),
            scopes: vec!["repo".into()],
            note: None,
            note_url: None,
        };
        debug.push_str(&format!("{request:?}\n"));
        let issued = client
            .get_or_create_for_app_and_fingerprint(CLIENT_ID, "leak-test", &request)
            .await
            .expect("app token");
        let token = issued.authorization.token.clone().expect("token");
        secrets.push(token.expose().to_owned());
        debug.push_str(&format!("{issued:?}\n{token:?}\n"));

        let personal = client
            .create_authorization(&NewAuthorization {
                scopes: vec!["gist".into()],
                note: Some("leak-test personal".into()),
                ..NewAuthorization::default()
            })
            .await
            .expect("personal token");
        secrets.push(personal.token.clone().expect("token").expose().to_owned());
        debug.push_str(&format!("{personal:?}\n"));

        // Error paths: duplicate note (422), a reset connection, a 5xx.
        let duplicate = client
            .create_authorization(&NewAuthorization {
                note: Some("leak-test personal".into()),
                ..NewAuthorization::default()
            })
            .await
            .expect_err("duplicate");
        debug.push_str(&format!("{duplicate:?}\n{duplicate}\n"));
        emulator.inject(Fault::reset().times(1)).expect("fault");
        emulator.inject(Fault::status(500).times(1)).expect("fault");
        let listed = client.list_authorizations(None).await.expect("retried");
        debug.push_str(&format!("{listed:?}\n"));
    }

    let wrong = HttpGhesClient::new(config(&emulator, USER, "wrong-password-do-not-log", None))
        .expect("client");
    let error = wrong.list_grants(None).await.expect_err("401");
    debug.push_str(&format!("{error:?}\n{error}\n"));
    debug.push_str(&format!("{:?}\n", emulator.state()));
    debug.push_str(&format!("{:?}\n", emulator.requests()));

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("GHES request"),
        "the capture works: client request lines are present"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret value reached the logs"
        );
        assert!(
            !debug.contains(secret.as_str()),
            "a secret value reached Debug/Display output"
        );
    }
}
