//! API points of issue 12: unlocking a developer's box, methods that hapi answers.

use serde_json::json;

use crate::helpers::{boom, spawn_with};

#[tokio::test]
async fn the_fixture_api_clears_the_brute_force_counters_without_a_restart() {
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.auth.max_failed_attempts = 2;
    })
    .await;
    app.create_user("dev", "dev@example.com", "right-pass")
        .await;
    let wrong = json!({"username": "dev", "password": "typo-pass"});
    boom(app.sign_in(&wrong).await, 403).await;
    boom(app.sign_in(&wrong).await, 403).await;
    let right = json!({"username": "dev", "password": "right-pass"});
    boom(app.sign_in(&right).await, 429).await;
    let res = app.post_json("/_fixtures/limits/reset", &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.sign_in(&right).await.status(), 200);
    // /_fixtures/reset starts afresh too.
    boom(app.sign_in(&wrong).await, 403).await;
    boom(app.sign_in(&wrong).await, 403).await;
    assert_eq!(
        app.post_json("/_fixtures/reset", &json!({})).await.status(),
        200
    );
    assert_eq!(app.state.limiter.counted().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn wrong_methods_on_fixture_routes_are_405_and_head_is_answered_for_get_routes() {
    let app = spawn_with(|s| s.fixtures.api = true).await;
    for path in [
        "/_fixtures/reset",
        "/_fixtures/users",
        "/_fixtures/clock",
        "/_fixtures/limits/reset",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["allow"], "POST", "{path}");
        boom(res, 405).await;
    }
    let (_, token) = app.new_user("heady", "pass-word").await;
    for path in ["/", "/openapi.json", "/signin", "/user"] {
        let get = app.get_with_token(path, &token).await;
        let head = app
            .client
            .head(format!("{}{path}", app.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-length"),
            get.headers().get("content-length"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
}
