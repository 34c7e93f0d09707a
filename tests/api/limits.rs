//! The brute-force limit on sign-in.

use serde_json::json;

use crate::helpers::{TestApp, boom, spawn_with};

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

/// A server that locks a name after two failures, behind a trusted proxy: each request can
/// come from its own address, so only the names' counts limit.
async fn behind_a_proxy() -> TestApp {
    spawn_with(|s| {
        s.auth.max_failed_attempts = 2;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await
}

#[tokio::test]
async fn a_locked_email_stays_locked_when_named_beside_another_username() {
    let app = behind_a_proxy().await;
    app.create_user("vic", "vic@example.com", "right-pass")
        .await;
    app.create_user("eve", "eve@example.com", "eve-pass").await;
    let wrong = json!({"email": "vic@example.com", "password": "guess"});
    boom(app.sign_in_from("198.51.100.1", &wrong).await, 403).await;
    // Signing in to one's own account while naming the victim's email is a guess at the
    // victim too: it signs in, and the victim's failure is counted, not reset.
    let own = json!({"username": "eve", "email": "vic@example.com", "password": "eve-pass"});
    assert_eq!(app.sign_in_from("198.51.100.2", &own).await.status(), 200);
    boom(app.sign_in_from("198.51.100.3", &wrong).await, 429).await;
    // Locked now, and a new username beside the email does not reopen it, even with the right
    // password.
    let right = json!({"username": "nobody", "email": "vic@example.com", "password": "right-pass"});
    boom(app.sign_in_from("198.51.100.4", &right).await, 429).await;
}

#[tokio::test]
async fn signing_in_as_a_username_that_is_the_victims_email_resets_nothing() {
    let app = behind_a_proxy().await;
    app.create_user("vic", "vic@example.com", "right-pass")
        .await;
    // The attacker's own account, named with the victim's email address.
    app.create_user("vic@example.com", "mal@example.com", "mal-pass")
        .await;
    let guess = json!({"email": "vic@example.com", "password": "guess"});
    let own = [
        json!({"username": "vic@example.com", "password": "mal-pass"}),
        json!({"username": "vic@example.com", "email": "vic@example.com", "password": "mal-pass"}),
    ];
    let mut statuses = Vec::new();
    for (n, own) in (1..).step_by(2).zip(own.iter().cycle()).take(3) {
        let res = app.sign_in_from(&format!("198.51.100.{n}"), &guess).await;
        statuses.push(res.status().as_u16());
        // Each of the attacker's own sign-ins succeeds until the email is locked.
        let res = app
            .sign_in_from(&format!("198.51.100.{}", n + 1), own)
            .await;
        assert!(
            matches!(res.status().as_u16(), 200 | 429),
            "{}",
            res.status()
        );
    }
    assert_eq!(statuses, [403, 403, 429]);
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
