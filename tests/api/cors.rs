//! CORS as hapi's `cors: true`, on every response including errors.

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn the_request_origin_is_echoed_with_vary_even_on_errors() {
    let app = spawn_app().await;
    for (path, status) in [("/", 200), ("/user", 401), ("/nowhere", 404)] {
        let res = app
            .client
            .get(format!("{}{path}", app.url))
            .header("origin", "https://customer.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://customer.example.com",
            "{path}"
        );
        let vary = res.headers()["vary"].to_str().unwrap().to_ascii_lowercase();
        assert!(vary.contains("origin"), "{vary}");
    }
    // A failed sign-in (403) is readable by the browser SDK too.
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .header("origin", "https://customer.example.com")
        .json(&serde_json::json!({"username": "x", "password": "y1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://customer.example.com"
    );
}

#[tokio::test]
async fn preflights_allow_the_sdk_headers_for_a_day() {
    let app = spawn_app().await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/user", app.url))
        .header("origin", "https://customer.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, accept, if-none-match",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let h = res.headers();
    assert_eq!(
        h["access-control-allow-origin"],
        "https://customer.example.com"
    );
    assert_eq!(h["access-control-max-age"], "86400");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["accept", "authorization", "content-type", "if-none-match"] {
        assert!(allowed.contains(name), "{allowed}");
    }
}

#[tokio::test]
async fn only_listed_origins_are_allowed_when_the_setting_names_them() {
    let app =
        spawn_with(|s| s.cors.allowed_origins = vec!["https://good.example.com".into()]).await;
    let res = app
        .client
        .get(format!("{}/", app.url))
        .header("origin", "https://good.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://good.example.com"
    );
    let res = app
        .client
        .get(format!("{}/", app.url))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ct.starts_with("application/json"),
        "refusals are Boom JSON too: {ct}"
    );
}
