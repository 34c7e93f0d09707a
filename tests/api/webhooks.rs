//! `user.created` webhooks through the outbox, delivered to real receivers.

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::admin::{admin_fixture, send};
use crate::helpers::{boom, spawn_with};
use crate::receiver::{Answer, Receiver};

#[tokio::test]
async fn a_created_user_is_posted_with_standard_webhooks_headers_and_a_valid_signature() {
    let hook = Receiver::start(Answer::Statuses(vec![])).await;
    let url = hook.url.clone();
    let app = spawn_with(|s| {
        s.webhooks.user_created = Some(url);
        s.webhooks.secret = Some(appmixer_auth::settings::Secret::new(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ));
    })
    .await;
    let (id, _) = app.new_user("hooked", "secret-1").await;
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "one delivery");
    let req = &got[0];
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["event"], "user.created");
    assert_eq!(body["user"]["id"], id.as_str());
    assert_eq!(body["user"]["username"], "hooked");
    assert!(body["user"].get("passwordHash").is_none() && !req.body.contains("$2"));
    let msg_id = req.header("webhook-id").expect("webhook-id");
    let ts = req.header("webhook-timestamp").expect("webhook-timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((ts.parse::<i64>().unwrap() - now).abs() < 30);
    let key = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{msg_id}.{ts}.{}", req.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(req.header("webhook-signature"), Some(expected.as_str()));
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_message_again_until_it_answers_2xx() {
    let hook = Receiver::start(Answer::Statuses(vec![500, 500])).await;
    let url = hook.url.clone();
    let app = spawn_with(|s| {
        s.webhooks.user_created = Some(url);
        s.metrics.enabled = true;
    })
    .await;
    app.new_user("retried", "secret-1").await;
    // 1 s then 2 s of backoff: the third attempt comes about 3 s after the first.
    let got = hook.wait_for(3, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 3, "two failures and a success");
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one id across retries: {ids:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(hook.received().len(), 3, "nothing after the 200");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("appmixer_auth_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("appmixer_auth_webhook_deliveries_total{outcome=\"delivered\"} 1"));
}

#[tokio::test]
async fn a_receiver_that_never_answers_delays_no_request_and_is_tried_again() {
    let hook = Receiver::start(Answer::Never).await;
    let url = hook.url.clone();
    let app = spawn_with(|s| {
        s.webhooks.user_created = Some(url);
        s.webhooks.timeout = appmixer_auth::settings::Timespan(1);
    })
    .await;
    // Many sign-ups at once: each answers without waiting for the receiver.
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..50).map(|i| {
        let app = &app;
        async move {
            let t = Instant::now();
            let res = app
                .create_user(&format!("n{i}"), &format!("n{i}@example.com"), "secret-1")
                .await;
            (res.status().as_u16(), t.elapsed())
        }
    }))
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    // The receiver holds each delivery for an hour; a request that waited for it would take at
    // least the 1 s delivery timeout.
    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest sign-up {slowest:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Each timed-out delivery is tried again (same ids).
    let got = hook.wait_for(51, Duration::from_secs(15)).await;
    assert!(got.len() > 50, "retried after the timeout: {}", got.len());
}

/// 200 concurrent sign-ups with a receiver that takes 5 s to answer each message: every one is
/// answered without waiting for it (the benchmark measures the throughput ratio against no
/// webhook at all), and every message arrives, each with an id of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sign_ups_do_not_wait_for_a_slow_receiver_and_all_are_announced() {
    let hook = Receiver::start(Answer::After(Duration::from_secs(5))).await;
    let url = hook.url.clone();
    let app = spawn_with(|s| {
        s.webhooks.user_created = Some(url);
        s.webhooks.timeout = appmixer_auth::settings::Timespan(10);
    })
    .await;
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..200).map(|i| {
        let app = &app;
        async move {
            let t = Instant::now();
            let res = app
                .create_user(&format!("s{i}"), &format!("s{i}@example.com"), "secret-1")
                .await;
            (res.status().as_u16(), t.elapsed())
        }
    }))
    .await;
    let all = started.elapsed();
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
    // Had any sign-up waited for its delivery, it would have taken the receiver's 5 s.
    assert!(
        slowest < Duration::from_secs(5),
        "slowest {slowest:?}, all {all:?}"
    );
    // 64 deliveries at a time, 5 s each: 200 take about 20 s.
    let got = hook.wait_for(200, Duration::from_secs(60)).await;
    let mut ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "one message per user");
}

#[tokio::test]
async fn a_receiver_that_is_down_then_comes_up_gets_the_message() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app =
        spawn_with(|s| s.webhooks.user_created = Some(format!("http://127.0.0.1:{port}/hook")))
            .await;
    let (id, _) = app.new_user("patient", "secret-1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hook = Receiver::start_on(port, Answer::Statuses(vec![])).await;
    let got = hook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains(&id));
}

#[tokio::test]
async fn users_created_by_the_fixture_api_are_announced_too() {
    let hook = Receiver::start(Answer::Statuses(vec![])).await;
    let url = hook.url.clone();
    let app = spawn_with(|s| {
        s.webhooks.user_created = Some(url);
        s.fixtures.api = true;
    })
    .await;
    let res = app
        .post_json(
            "/_fixtures/users",
            &json!([{"username": "f1", "email": "f1@example.com", "password": "secret-1"}]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains("\"username\":\"f1\""));
}

#[tokio::test]
async fn config_keys_round_trip_win_over_the_file_and_survive_a_restart() {
    let file_hook = Receiver::start(Answer::Statuses(vec![])).await;
    let db_hook = Receiver::start(Answer::Statuses(vec![])).await;
    let file_url = file_hook.url.clone();
    let settings_change = move |s: &mut appmixer_auth::settings::Settings| {
        s.users = vec![admin_fixture()];
        s.webhooks.user_created = Some(file_url.clone());
    };
    let app = spawn_with(settings_change.clone()).await;
    // The declared admin, created at start, was announced to the file's receiver.
    assert_eq!(
        file_hook.wait_for(1, Duration::from_secs(10)).await.len(),
        1
    );
    let admin = app.token("root", "root-password").await;
    let post = |body: Value| {
        send(
            &app,
            reqwest::Method::POST,
            "/config",
            Some(&admin),
            Some(body),
        )
    };
    let res = post(json!({"key": "WEBHOOK_USER_CREATED", "value": db_hook.url})).await;
    assert_eq!(res.status(), 200);
    let listed: Value = send(&app, reqwest::Method::GET, "/config", Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([{"key": "WEBHOOK_USER_CREATED", "value": db_hook.url}])
    );
    // The next sign-up goes to the stored receiver, not the file's.
    app.new_user("after", "secret-1").await;
    assert_eq!(db_hook.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    assert_eq!(file_hook.received().len(), 1);

    // Refusals.
    let (_, user_token) = app.new_user("plain", "secret-1").await;
    let no_token = send(&app, reqwest::Method::GET, "/config", None, None).await;
    assert_eq!(no_token.status(), 401);
    let not_admin = send(
        &app,
        reqwest::Method::GET,
        "/config",
        Some(&user_token),
        None,
    )
    .await;
    assert_eq!(boom(not_admin, 403).await["message"], "Insufficient scope");
    let secret = post(json!({"key": "JWTSecret", "value": "x"})).await;
    assert_eq!(secret.status(), 400);
    let bad = boom(
        post(json!({"key": "WEBHOOK_USER_CREATED", "value": "not a url"})).await,
        400,
    )
    .await;
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("WEBHOOK_USER_CREATED")
    );
    let bad = boom(
        post(json!({"key": "API_USER_CREATE_SCOPE", "value": 7})).await,
        400,
    )
    .await;
    assert_eq!(bad["validation"]["keys"], json!(["value"]));
    let missing = send(
        &app,
        reqwest::Method::DELETE,
        "/config/NOPE",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(missing.status(), 404);

    // Durable: the key is there after a restart.
    let dir = app.stop().await;
    let mut settings = crate::helpers::test_settings(&dir);
    settings_change(&mut settings);
    let app = crate::helpers::start(settings, dir);
    let admin = app.token("root", "root-password").await;
    let listed: Value = send(&app, reqwest::Method::GET, "/config", Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["key"], "WEBHOOK_USER_CREATED");
    let res = send(
        &app,
        reqwest::Method::DELETE,
        "/config/WEBHOOK_USER_CREATED",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"ok": true}));
    // Deleted: the file's receiver is used again.
    app.new_user("later", "secret-1").await;
    assert_eq!(
        file_hook.wait_for(2, Duration::from_secs(10)).await.len(),
        2
    );
}
