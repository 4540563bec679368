//! `ghes-oauth-operator demo`: a newcomer's first command, on a machine with no cluster and no
//! GHES. It starts the GHES emulator on loopback and takes the real GHES client through the
//! life of a token — two-factor login, app token get-or-create (twice: the second is a no-op),
//! a personal token, a scope edit, listings, revocation — printing what a user would check and
//! the number of GHES calls each step cost.

use std::io::Write;
use std::net::SocketAddr;

use crate::emulator::{AppSpec, Emulator, EmulatorConfig, UserSpec};
use crate::ghes::{
    AppAuthorizationRequest, AuthorizationUpdate, ClientConfig, Credentials, GhesApi, GhesError,
    HttpGhesClient, NewAuthorization, ScopeChange, SecretValue, TotpSeed,
};

/// Login of the demo's two-factor user.
const LOGIN: &str = "octo-bot";
/// Its TOTP seed (a well-known test value; the emulator only runs on loopback).
const TOTP_SEED: &str = "JBSWY3DPEHPK3PXP";
/// The demo OAuth app.
const CLIENT_ID: &str = "Iv1.0a1b2c3d4e5f6a7b";

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The emulator did not start.
    #[error("the GHES emulator did not start: {0}")]
    Emulator(String),
    /// A GHES call failed.
    #[error("{step}: {source}")]
    Ghes {
        /// The step that failed.
        step: &'static str,
        /// Why.
        source: GhesError,
    },
    /// Something the demo checks did not hold.
    #[error("check failed: {0}")]
    Check(String),
    /// Writing the report failed.
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs the demo, writing its report to `out`.
pub async fn run(out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
    let password = random_password();
    let app_secret = random_password();
    let config = EmulatorConfig {
        users: vec![UserSpec {
            login: LOGIN.into(),
            password: password.clone(),
            totp_seed: Some(TOTP_SEED.into()),
        }],
        apps: vec![AppSpec {
            client_id: CLIENT_ID.into(),
            client_secret: app_secret.clone(),
            name: "CI Bot".into(),
        }],
        ..EmulatorConfig::default()
    };
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let emulator = Emulator::start(config, listen)
        .await
        .map_err(|error| DemoError::Emulator(error.to_string()))?;
    let api_root = emulator.api_url();
    writeln!(out, "GHES emulator listening on {api_root}")?;
    writeln!(
        out,
        "user {LOGIN} (two-factor on), OAuth app {CLIENT_ID} \"CI Bot\"\n"
    )?;

    let totp = TotpSeed::parse(TOTP_SEED).map_err(|error| DemoError::Check(error.to_string()))?;
    let api_url = url::Url::parse(&api_root)
        .map_err(|error| DemoError::Emulator(format!("bad emulator URL: {error}")))?;
    let client = HttpGhesClient::new(ClientConfig::new(
        api_url,
        Credentials {
            username: LOGIN.into(),
            password: SecretValue::new(password),
            totp: Some(totp),
        },
    ))
    .map_err(|source| DemoError::Ghes {
        step: "client",
        source,
    })?;

    let mut calls = CallCounter::new(&emulator);
    let mut rows: Vec<[String; 5]> = Vec::new();
    let app_request = AppAuthorizationRequest {
        client_secret: SecretValue::new(app_secret),
        scopes: vec!["repo".into(), "read:org".into(), "repo".into()],
        note: Some("demo/ci-bot".into()),
        note_url: None,
    };

    let step = "app token: PUT /authorizations/clients/{client_id}/{fingerprint}";
    let issued = client
        .get_or_create_for_app_and_fingerprint(CLIENT_ID, "demo-ci-bot", &app_request)
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    let token = issued
        .authorization
        .token
        .clone()
        .ok_or_else(|| DemoError::Check("the 201 response carried no token".into()))?;
    if !issued.created || !issued.authorization.is_token(&token) {
        return Err(DemoError::Check(
            "the new app token does not match its hashed_token".into(),
        ));
    }
    writeln!(
        out,
        "{step}\n  201 Created, token …{}, SHA-256 matches hashed_token  [{}]",
        token.last_eight(),
        calls.since_last()
    )?;
    rows.push(row("app token", &issued.authorization));

    let again = client
        .get_or_create_for_app_and_fingerprint(CLIENT_ID, "demo-ci-bot", &app_request)
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    if again.created || again.authorization.id != issued.authorization.id {
        return Err(DemoError::Check(
            "the second get-or-create created a new token".into(),
        ));
    }
    writeln!(
        out,
        "same PUT again\n  200 OK, same authorization {}, no token in the response  [{}]",
        again.authorization.id,
        calls.since_last()
    )?;

    let step = "personal token: POST /authorizations";
    let personal = client
        .create_authorization(&NewAuthorization {
            scopes: vec!["read:user".into()],
            note: Some("demo/release-bot".into()),
            fingerprint: Some("demo-release-bot".into()),
            ..NewAuthorization::default()
        })
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    let personal_token = personal
        .token
        .clone()
        .ok_or_else(|| DemoError::Check("the personal token was not returned".into()))?;
    writeln!(
        out,
        "{step}\n  201 Created, token …{}  [{}]",
        personal_token.last_eight(),
        calls.since_last()
    )?;

    let step = "scope edit: PATCH /authorizations/{id}";
    let patched = client
        .update_authorization(
            personal.id,
            &AuthorizationUpdate {
                scopes: Some(ScopeChange::Replace(vec![
                    "user".into(),
                    "read:user".into(),
                    "gist".into(),
                ])),
                ..AuthorizationUpdate::default()
            },
        )
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    writeln!(
        out,
        "{step}\n  asked [user, read:user, gist], GHES normalized to {:?}  [{}]",
        patched.scopes,
        calls.since_last()
    )?;
    rows.push(row("personal token", &patched));

    let step = "listings: GET /authorizations, GET /applications/grants";
    let listed = client
        .list_authorizations(None)
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    let grants = client
        .list_grants(None)
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    writeln!(
        out,
        "{step}\n  {} authorizations, {} grant(s)  [{}]",
        listed.len(),
        grants.len(),
        calls.since_last()
    )?;

    writeln!(out)?;
    print_table(out, &rows)?;
    writeln!(out)?;

    let step = "revoke: DELETE /authorizations/{id}, DELETE /applications/grants/{id}";
    client
        .delete_authorization(personal.id)
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    for grant in &grants {
        client
            .delete_grant(grant.id)
            .await
            .map_err(|source| DemoError::Ghes { step, source })?;
    }
    let left = client
        .list_authorizations(None)
        .await
        .map_err(|source| DemoError::Ghes { step, source })?;
    if !left.is_empty() {
        return Err(DemoError::Check(format!(
            "{} authorizations left after revoking everything",
            left.len()
        )));
    }
    writeln!(
        out,
        "{step}\n  personal token deleted; deleting the grant revoked the app token; 0 left  [{}]",
        calls.since_last()
    )?;
    writeln!(
        out,
        "\n{} GHES calls in total (including one two-factor challenge).",
        calls.total()
    )?;
    writeln!(out, "This demo drives the GHES client directly.")?;
    emulator.shutdown().await;
    Ok(())
}

fn row(kind: &str, authorization: &crate::ghes::Authorization) -> [String; 5] {
    [
        kind.to_owned(),
        authorization.id.to_string(),
        authorization
            .token_last_eight
            .clone()
            .unwrap_or_else(|| "-".into()),
        authorization.scopes.join(","),
        authorization.app.name.clone(),
    ]
}

fn print_table(out: &mut (dyn Write + Send), rows: &[[String; 5]]) -> std::io::Result<()> {
    let header = ["KIND", "GHES-ID", "LAST-8", "SCOPES", "APP"];
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| -> String {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header).trim_end())?;
    for row in rows {
        let cells = [
            row[0].as_str(),
            row[1].as_str(),
            row[2].as_str(),
            row[3].as_str(),
            row[4].as_str(),
        ];
        writeln!(out, "{}", line(cells).trim_end())?;
    }
    Ok(())
}

/// Counts requests in the emulator's log between steps.
struct CallCounter<'a> {
    emulator: &'a crate::emulator::RunningEmulator,
    seen: usize,
}

impl<'a> CallCounter<'a> {
    fn new(emulator: &'a crate::emulator::RunningEmulator) -> Self {
        Self { emulator, seen: 0 }
    }

    fn total(&self) -> usize {
        self.emulator.requests().len()
    }

    fn since_last(&mut self) -> String {
        let requests = self.emulator.requests();
        let new = &requests[self.seen.min(requests.len())..];
        self.seen = requests.len();
        let described: Vec<String> = new
            .iter()
            .map(|request| format!("{} {}", request.method, request.status))
            .collect();
        format!("{} call(s): {}", new.len(), described.join(", "))
    }
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}
