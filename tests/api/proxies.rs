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
    // A client's own `Forwarded` header, which proxies pass through, names nobody: only the
    // X-Forwarded-For the proxy appends to is read.
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .header("forwarded", "for=203.0.113.99")
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"username": "u5", "password": "guess-1"}))
        .send()
        .await
        .unwrap();
    boom(res, 429).await;
}

#[tokio::test]
async fn random_forwarded_headers_from_behind_a_proxy_do_not_dodge_the_limit() {
    // The review's bypass: 30 sign-ins, each with a fresh `Forwarded: for=`, through a proxy
    // that writes X-Forwarded-For. All come from one client, so the limit holds.
    let app = spawn_with(|s| {
        s.auth.max_failed_attempts = 3;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let res = app
            .client
            .post(format!("{}/user/auth", app.url))
            .header("forwarded", format!("for=203.0.113.{i}"))
            .header("x-forwarded-for", "198.51.100.50")
            .json(&json!({"username": format!("n{i}"), "password": "guess-1"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [403, 403, 403, 429, 429, 429]);
}

#[tokio::test]
async fn the_forwarded_header_is_read_when_the_settings_name_it() {
    let app = spawn_with(|s| {
        s.auth.max_failed_attempts = 1;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
        s.server.forwarded_header = "Forwarded".into();
    })
    .await;
    let from = |who: &'static str, name: &'static str| {
        app.client
            .post(format!("{}/user/auth", app.url))
            .header("forwarded", format!("for={who}"))
            .header("x-forwarded-for", "203.0.113.1")
            .json(&json!({"username": name, "password": "guess-1"}))
            .send()
    };
    assert_eq!(from("198.51.100.1", "a").await.unwrap().status(), 403);
    assert_eq!(from("198.51.100.2", "b").await.unwrap().status(), 403);
    assert_eq!(from("198.51.100.1", "c").await.unwrap().status(), 429);
}
