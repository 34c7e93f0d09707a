//! What third-party clients send (Go clients such as the Terraform providers): `username`
//! without `email`, `null` for what they leave out, fields only admins may set at creation,
//! vendors as lists, and the dates of admin answers.

use serde_json::{Value, json};

use crate::admin::{admin_app, send};
use crate::helpers::{boom, spawn_app};

#[tokio::test]
async fn an_address_as_username_is_the_email_when_no_email_is_sent() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/user",
            &json!({"username": "tf@example.com", "password": "abc321"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "tf@example.com");
    assert_eq!(body["user"]["username"], "tf@example.com");

    let res = app
        .post_json(
            "/user",
            &json!({"username": "not-an-address", "password": "abc321"}),
        )
        .await;
    let err = boom(res, 400).await;
    assert_eq!(err["validation"]["keys"], json!(["email"]));
}

#[tokio::test]
async fn null_is_not_given_everywhere_a_body_is_read() {
    let (app, admin) = admin_app().await;
    let res = app
        .post_json(
            "/user",
            &json!({"username": "a@example.com", "email": null, "password": "abc321",
                    "metadata": null, "scope": null, "plan": null, "isActive": null,
                    "vendor": null}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let user: Value = res.json().await.unwrap();
    assert_eq!(
        user["user"],
        json!({"id": user["user"]["id"], "username": "a@example.com", "email": "a@example.com",
               "isActive": false, "scope": ["user"], "plan": "free", "vendor": null,
               "metadata": {}})
    );
    let id = user["user"]["id"].as_str().unwrap();
    // PUT: a null field is left as it is.
    let put = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{id}"),
        Some(&admin),
        Some(json!({"plan": "pro", "vendor": null, "metadata": null, "scope": null})),
    )
    .await;
    assert_eq!(put.status(), 200);
    let put: Value = put.json().await.unwrap();
    assert_eq!(put["plan"], "pro");
    assert_eq!(put["metadata"], json!({}));
    assert_eq!(put["scope"], json!(["user"]));
}

#[tokio::test]
async fn only_an_admin_may_ask_for_more_than_the_defaults_at_creation() {
    let (app, admin) = admin_app().await;
    let (_, plain) = app.new_user("plain", "secret-1").await;
    let asks = [
        json!({"scope": ["user", "admin"]}),
        json!({"plan": "enterprise"}),
        json!({"isActive": true}),
        json!({"vendor": "acme"}),
    ];
    for (i, ask) in asks.iter().enumerate() {
        let mut body = json!({"username": format!("x{i}@example.com"), "password": "abc321"});
        body.as_object_mut()
            .unwrap()
            .extend(ask.as_object().unwrap().clone());
        // Anonymous, and a plain user's token: refused, never silently dropped.
        let res = app.post_json("/user", &body).await;
        assert_eq!(
            boom(res, 403).await["message"],
            "Insufficient scope",
            "{ask}"
        );
        let res = send(
            &app,
            reqwest::Method::POST,
            "/user",
            Some(&plain),
            Some(body.clone()),
        )
        .await;
        assert_eq!(res.status(), 403, "{ask}");
        // An admin's: applied.
        let res = send(
            &app,
            reqwest::Method::POST,
            "/user",
            Some(&admin),
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 200, "{ask}");
        let user: Value = res.json().await.unwrap();
        let (key, value) = ask.as_object().unwrap().iter().next().unwrap();
        assert_eq!(&user["user"][key], value);
    }
    // Asking for exactly the defaults is no privilege.
    let res = app
        .post_json(
            "/user",
            &json!({"username": "d@example.com", "password": "abc321", "scope": ["user"],
                    "plan": "free", "isActive": false}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_vendor_list_is_kept_as_given_and_found_by_any_of_its_names() {
    let (app, admin) = admin_app().await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user",
        Some(&admin),
        Some(json!({"username": "v@example.com", "password": "abc321", "vendor": ["a", "b"]})),
    )
    .await;
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["user"]["vendor"], json!(["a", "b"]));
    let id = user["user"]["id"].as_str().unwrap().to_owned();
    let found: Value = send(
        &app,
        reqwest::Method::GET,
        "/users?filter=vendor:b",
        Some(&admin),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], id.as_str());
    let put: Value = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{id}"),
        Some(&admin),
        Some(json!({"vendor": "c"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(put["vendor"], "c");
    let bad = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{id}"),
        Some(&admin),
        Some(json!({"vendor": ["ok", 7]})),
    )
    .await;
    assert_eq!(
        boom(bad, 400).await["validation"]["keys"],
        json!(["vendor"])
    );
}

#[tokio::test]
async fn admin_answers_carry_iso_dates_and_public_ones_do_not() {
    let (app, admin) = admin_app().await;
    let (id, token) = app.new_user("dated", "secret-1").await;
    let iso = regex_like_iso;
    let one: Value = send(
        &app,
        reqwest::Method::GET,
        &format!("/users/{id}"),
        Some(&admin),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(iso(&one["created"]) && iso(&one["mtime"]), "{one}");
    let list: Value = send(&app, reqwest::Method::GET, "/users", Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(list.as_array().unwrap().iter().all(|u| iso(&u["created"])));
    let own: Value = app
        .get_with_token("/user", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(own.get("created").is_none() && own.get("mtime").is_none());
}

/// `2026-12-02T15:04:05.123Z`, and about now.
fn regex_like_iso(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && s.ends_with('Z')
        && s.starts_with("20")
}
