//! Shared fixtures for the integration tests: an emulator on loopback with known users and apps,
//! and GHES clients with test-sized retry delays.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::time::Duration;

use ghes_emulator::{AppSpec, Emulator, EmulatorConfig, RunningEmulator, UserSpec};
use ghes_oauth_operator::ghes::{
    ClientConfig, Credentials, HttpGhesClient, RetryPolicy, SecretValue, TotpSeed,
};

/// A plain user.
pub const USER: &str = "ci-bot";
/// Its password.
pub const PASSWORD: &str = "correct-horse-battery-staple";
/// A user with two-factor authentication.
pub const OTP_USER: &str = "otp-bot";
/// Its password.
pub const OTP_PASSWORD: &str = "otp-bot-password-1";
/// Its TOTP seed.
pub const OTP_SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DP";
/// An OAuth app.
pub const CLIENT_ID: &str = "Iv1.aaaabbbbccccdddd";
/// Its client secret.
pub const CLIENT_SECRET: &str = "app-client-secret-0123456789abcdef";
/// A second app.
pub const OTHER_CLIENT_ID: &str = "Iv1.eeeeffff00001111";
/// Its client secret.
pub const OTHER_CLIENT_SECRET: &str = "other-client-secret-0123456789abcd";

/// Starts an emulator on 127.0.0.1 with the users and apps above.
pub async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        users: vec![
            UserSpec::parse(&format!("{USER}:{PASSWORD}")).expect("user"),
            UserSpec::parse(&format!("{OTP_USER}:{OTP_PASSWORD}:{OTP_SEED}")).expect("otp user"),
        ],
        apps: vec![
            AppSpec::parse(&format!("{CLIENT_ID}:{CLIENT_SECRET}:CI Bot")).expect("app"),
            AppSpec::parse(&format!(
                "{OTHER_CLIENT_ID}:{OTHER_CLIENT_SECRET}:Deploy Bot"
            ))
            .expect("other app"),
        ],
        ..EmulatorConfig::default()
    };
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    Emulator::start(config, loopback)
        .await
        .expect("emulator starts")
}

/// Client settings for tests: real behaviour, short delays.
pub fn config(
    emulator: &RunningEmulator,
    username: &str,
    password: &str,
    totp: Option<&str>,
) -> ClientConfig {
    let mut config = ClientConfig::new(
        url::Url::parse(&emulator.api_url()).expect("api url"),
        Credentials {
            username: username.into(),
            password: SecretValue::new(password),
            totp: totp.map(|seed| TotpSeed::parse(seed).expect("seed")),
        },
    );
    config.requests_per_second = 1000.0;
    config.burst = 1000;
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_wait: Duration::from_secs(5),
    };
    config
}

/// A client logged in as the plain user.
pub fn client(emulator: &RunningEmulator) -> HttpGhesClient {
    HttpGhesClient::new(config(emulator, USER, PASSWORD, None)).expect("client")
}

/// `METHOD STATUS` of every request in the emulator's log, in order.
pub fn calls(emulator: &RunningEmulator) -> Vec<String> {
    emulator
        .requests()
        .iter()
        .map(|record| format!("{} {}", record.method, record.status))
        .collect()
}
