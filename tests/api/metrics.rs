//! Prometheus metrics: off by default, counters that move, a separate listener.

use serde_json::json;

use crate::helpers::{TestApp, boom, spawn_with};

/// The value of the sample whose line starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp, url: &str) -> String {
    let res = app.client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let app = spawn_with(|_| {}).await;
    boom(app.get("/metrics").await, 404).await;
}

#[tokio::test]
async fn counters_move_with_requests_and_sign_ins() {
    let app = spawn_with(|s| {
        s.metrics.enabled = true;
        s.auth.max_failed_attempts = 1;
    })
    .await;
    let url = format!("{}/metrics", app.url);
    app.new_user("metric", "secret-1").await;
    app.get("/").await;
    app.sign_in(&json!({"username": "metric", "password": "secret-1"}))
        .await;
    app.sign_in(&json!({"username": "metric", "password": "wrong-1"}))
        .await;
    app.sign_in(&json!({"username": "metric", "password": "wrong-1"}))
        .await;
    let text = scrape(&app, &url).await;
    assert_eq!(
        sample(
            &text,
            r#"appmixer_auth_http_requests_total{method="GET",route="/",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"appmixer_auth_sign_ins_total{outcome="success"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"appmixer_auth_sign_ins_total{outcome="failure"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"appmixer_auth_sign_ins_total{outcome="rate_limited"}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "appmixer_auth_users "), 1.0, "{text}");
    assert!(text.contains("appmixer_auth_password_hashes_waiting"));
    assert!(
        sample(
            &text,
            r#"appmixer_auth_http_request_duration_seconds_count{route="/user/auth"}"#
        ) >= 3.0
    );
    // Routes are labelled by pattern, never by raw path.
    app.get("/users/5c88c7cc04a917256c726c3d").await;
    app.get("/no/such/thing").await;
    let text = scrape(&app, &url).await;
    assert!(text.contains(r#"route="/users/{id}""#), "{text}");
    assert!(!text.contains("5c88c7cc04a917256c726c3d"));
    assert!(text.contains(r#"route="unmatched""#));
    assert_eq!(
        sample(
            &text,
            r#"appmixer_auth_http_requests_total{method="GET",route="/",status="200"}"#
        ),
        1.0
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn a_separate_listener_keeps_metrics_off_the_api_port() {
    let app = spawn_with(|s| {
        s.metrics.enabled = true;
        s.metrics.listen = Some("127.0.0.1:0".into());
    })
    .await;
    boom(app.get("/metrics").await, 404).await;
    let port = app.server.metrics_port().expect("metrics port");
    assert_ne!(port, app.server.port());
    app.get("/").await;
    let text = scrape(&app, &format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(text.contains(r#"route="/""#), "{text}");
}
