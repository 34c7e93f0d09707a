//! The brute-force limit on sign-in.

use serde_json::json;

use crate::helpers::{boom, spawn_with};

#[tokio::test]
async fn after_n_failures_sign_in_is_429_with_retry_after_and_no_bcrypt_work() {
    let app = spawn_with(|s| s.auth.max_failed_attempts = 3).await;
    app.new_user("mallory", "right-pass").await;
    for _ in 0..3 {
        let res = app
            .sign_in(&json!({"username": "mallory", "password": "wrong-pass"}))
            .await;
        boom(res, 403).await;
    }
    let before = app.state.hasher.verifications();
    for password in ["wrong-pass", "right-pass"] {
        let res = app
            .sign_in(&json!({"username": "mallory", "password": password}))
            .await;
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        let body = boom(res, 429).await;
        assert!(body["message"].as_str().unwrap().contains("Too many"));
    }
    assert_eq!(
        app.state.hasher.verifications(),
        before,
        "no bcrypt while locked out"
    );
}

#[tokio::test]
async fn a_success_resets_the_identifiers_count() {
    let app = spawn_with(|s| s.auth.max_failed_attempts = 4).await;
    app.new_user("oscar", "right-pass").await;
    let wrong = json!({"username": "oscar", "password": "wrong-pass"});
    for _ in 0..3 {
        boom(app.sign_in(&wrong).await, 403).await;
    }
    let res = app
        .sign_in(&json!({"username": "oscar", "password": "right-pass"}))
        .await;
    assert_eq!(res.status(), 200);
    // Without the reset this would be the identifier's fifth attempt: locked. The address
    // keeps its three failures (a success resets only the identifier), so one more is allowed.
    boom(app.sign_in(&wrong).await, 403).await;
    boom(app.sign_in(&wrong).await, 429).await;
}

#[tokio::test]
async fn a_locked_email_stays_locked_when_named_beside_another_username() {
    let app = spawn_with(|s| {
        s.auth.max_failed_attempts = 2;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    app.create_user("vic", "vic@example.com", "right-pass")
        .await;
    app.create_user("eve", "eve@example.com", "eve-pass").await;
    // Each guess from its own address behind a trusted proxy: only the identifiers limit here.
    let guess = |ip: &str, body: serde_json::Value| {
        app.client
            .post(format!("{}/user/auth", app.url))
            .header("X-Forwarded-For", ip)
            .json(&body)
            .send()
    };
    let wrong = || json!({"email": "vic@example.com", "password": "guess"});
    boom(guess("198.51.100.1", wrong()).await.unwrap(), 403).await;
    // Signing in to one's own account while naming the victim's email resets nothing.
    let res = guess(
        "198.51.100.2",
        json!({"username": "eve", "email": "vic@example.com", "password": "eve-pass"}),
    )
    .await;
    assert_eq!(res.unwrap().status(), 200);
    boom(guess("198.51.100.3", wrong()).await.unwrap(), 403).await;
    // Locked now, and a new username beside the email does not reopen it, even with the right
    // password.
    let res = guess(
        "198.51.100.4",
        json!({"username": "nobody", "email": "vic@example.com", "password": "right-pass"}),
    )
    .await;
    boom(res.unwrap(), 429).await;
}

#[tokio::test]
async fn one_address_guessing_many_names_is_limited_too() {
    let app = spawn_with(|s| s.auth.max_failed_attempts = 3).await;
    for name in ["n1", "n2", "n3"] {
        let res = app
            .sign_in(&json!({"username": name, "password": "guess-1"}))
            .await;
        boom(res, 403).await;
    }
    let res = app
        .sign_in(&json!({"username": "n4", "password": "guess-1"}))
        .await;
    boom(res, 429).await;
}

#[tokio::test]
async fn the_lockout_ends_with_its_window() {
    let app = spawn_with(|s| {
        s.auth.max_failed_attempts = 1;
        s.auth.lockout_window = appmixer_auth::settings::Timespan(1);
    })
    .await;
    app.new_user("pam", "right-pass").await;
    let res = app
        .sign_in(&json!({"username": "pam", "password": "wrong-pass"}))
        .await;
    boom(res, 403).await;
    let res = app
        .sign_in(&json!({"username": "pam", "password": "right-pass"}))
        .await;
    boom(res, 429).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = app
        .sign_in(&json!({"username": "pam", "password": "right-pass"}))
        .await;
    assert_eq!(res.status(), 200);
}
