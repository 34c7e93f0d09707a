//! The client address behind a reverse proxy: forwarding headers only from trusted peers.

use serde_json::json;

use crate::helpers::{TestApp, boom, spawn_with};

async fn sign_in_from(app: &TestApp, forwarded_for: &str, username: &str) -> u16 {
    app.sign_in_from(
        forwarded_for,
        &json!({"username": username, "password": "guess-1"}),
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxies: every request is from 127.0.0.1, whatever the header says, so one
    // failure locks the address for every other name.
    let app = spawn_with(|s| s.auth.max_failed_attempts = 1).await;
    assert_eq!(sign_in_from(&app, "198.51.100.1", "u1").await, 403);
    assert_eq!(sign_in_from(&app, "198.51.100.2", "u2").await, 429);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    let app = spawn_with(|s| {
        s.auth.max_failed_attempts = 1;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    // Two clients behind the proxy are limited separately...
    assert_eq!(sign_in_from(&app, "198.51.100.1", "u1").await, 403);
    assert_eq!(sign_in_from(&app, "198.51.100.2", "u2").await, 403);
    // ...and the first is locked out under any name.
    assert_eq!(sign_in_from(&app, "198.51.100.1", "u3").await, 429);
    // A hop the client wrote before its real address does not help it.
    assert_eq!(
        sign_in_from(&app, "203.0.113.7, 198.51.100.1", "u4").await,
        429
    );
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .header("forwarded", "for=198.51.100.1")
        .json(&json!({"username": "u5", "password": "guess-1"}))
        .send()
        .await
        .unwrap();
    boom(res, 429).await;
}
