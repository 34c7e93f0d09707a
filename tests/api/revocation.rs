//! Token revocation: a password change of any kind, or a sign-out everywhere, refuses every
//! earlier token of that user; tokens issued after (the same second included) work.

use serde_json::{Value, json};

use crate::admin::{ADMIN_ID, admin_app, admin_fixture, send};
use crate::helpers::{boom, spawn_with};

async fn revoked(res: reqwest::Response) {
    assert_eq!(boom(res, 401).await["message"], "Token revoked");
}

#[tokio::test]
async fn a_password_change_refuses_earlier_tokens_on_every_route_and_a_new_sign_in_works_at_once() {
    let (app, _) = admin_app().await;
    let old = app.token("root", "root-password").await;
    let other_old = app.token("root", "root-password").await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/change-password",
        Some(&old),
        Some(json!({"oldPassword": "root-password", "newPassword": "new-password-1"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    // Right away, in the same second: the new password signs in, and that token works.
    let new = app.token("root", "new-password-1").await;
    assert_eq!(app.get_with_token("/user", &new).await.status(), 200);
    let id = ADMIN_ID;
    let routes: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, "/user".into(), None),
        (
            reqwest::Method::POST,
            "/user/change-password".into(),
            Some(json!({"oldPassword": "new-password-1", "newPassword": "x-password-2"})),
        ),
        (reqwest::Method::POST, "/user/revoke-tokens".into(), None),
        (reqwest::Method::GET, "/users".into(), None),
        (reqwest::Method::GET, "/users/count".into(), None),
        (reqwest::Method::GET, format!("/users/{id}"), None),
        (
            reqwest::Method::PUT,
            format!("/users/{id}"),
            Some(json!({"plan": "pro"})),
        ),
        (
            reqwest::Method::POST,
            format!("/users/{id}/revoke-tokens"),
            None,
        ),
        (reqwest::Method::GET, "/config".into(), None),
        (
            reqwest::Method::POST,
            "/user/reset-password".into(),
            Some(json!({"email": "root@example.com", "password": "y-password-3"})),
        ),
    ];
    for token in [&old, &other_old] {
        for (method, path, body) in &routes {
            let res = send(&app, method.clone(), path, Some(token), body.clone()).await;
            assert_eq!(res.status(), 401, "{method} {path}");
            revoked(res).await;
        }
    }
    // A body asking for admin fields, with the old token: refused as revoked, not granted.
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user",
        Some(&old),
        Some(json!({"username": "z@example.com", "password": "abc321", "plan": "pro"})),
    )
    .await;
    revoked(res).await;
    // The new token still works on all of them (GET ones shown).
    for path in ["/user", "/users", "/users/count", "/config"] {
        assert_eq!(app.get_with_token(path, &new).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn an_admin_reset_and_sign_out_everywhere_revoke_too() {
    let (app, admin) = admin_app().await;
    let (id, token) = app.new_user("bob", "secret-1").await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/reset-password",
        Some(&admin),
        Some(json!({"email": "bob@example.com", "password": "secret-2"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    revoked(app.get_with_token("/user", &token).await).await;

    // Sign out everywhere, with the user's own token: that token goes too.
    let a = app.token("bob", "secret-2").await;
    let b = app.token("bob", "secret-2").await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/revoke-tokens",
        Some(&a),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["revokedBefore"].as_str().unwrap().ends_with('Z'));
    revoked(app.get_with_token("/user", &a).await).await;
    revoked(app.get_with_token("/user", &b).await).await;

    // By an admin.
    let c = app.token("bob", "secret-2").await;
    assert_eq!(app.get_with_token("/user", &c).await.status(), 200);
    let res = send(
        &app,
        reqwest::Method::POST,
        &format!("/users/{id}/revoke-tokens"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    revoked(app.get_with_token("/user", &c).await).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/users/5c88c7cc04a917256c726c00/revoke-tokens",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    // Not an admin's to do for others.
    let d = app.token("bob", "secret-2").await;
    let res = send(
        &app,
        reqwest::Method::POST,
        &format!("/users/{ADMIN_ID}/revoke-tokens"),
        Some(&d),
        None,
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_automatic_rule_can_be_turned_off() {
    let app = spawn_with(|s| {
        s.users = vec![admin_fixture()];
        s.auth.revoke_on_password_change = false;
    })
    .await;
    let old = app.token("root", "root-password").await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/change-password",
        Some(&old),
        Some(json!({"oldPassword": "root-password", "newPassword": "new-password-1"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_with_token("/user", &old).await.status(), 200);
    // Sign-out everywhere still works on demand.
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/revoke-tokens",
        Some(&old),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    revoked(app.get_with_token("/user", &old).await).await;
}

/// A sign-in still checking the old password when the password changes must not end with a
/// token that outlives the change. The user's hash is made slow (cost 12, hundreds of ms) so
/// the change lands while the sign-in hashes.
#[tokio::test]
async fn a_sign_in_in_flight_across_a_password_change_gets_no_lasting_token() {
    let slow = bcrypt::hash("old-password-1", 12).unwrap();
    let app = spawn_with(|s| {
        s.users = vec![
            admin_fixture(),
            appmixer_auth::fixtures::FixtureUser {
                password: None,
                password_hash: Some(appmixer_auth::settings::Secret::new(slow)),
                ..appmixer_auth::fixtures::FixtureUser::with_password(
                    "slow",
                    "slow@example.com",
                    "unused-1",
                )
            },
        ];
    })
    .await;
    let admin = app.token("root", "root-password").await;
    let signing_in = {
        let (client, url) = (app.client.clone(), app.url.clone());
        tokio::spawn(async move {
            client
                .post(format!("{url}/user/auth"))
                .json(&json!({"username": "slow", "password": "old-password-1"}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/reset-password",
        Some(&admin),
        Some(json!({"email": "slow@example.com", "password": "new-password-2"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = signing_in.await.unwrap();
    match res.status().as_u16() {
        403 => {}
        200 => {
            let token = res.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(app.get_with_token("/user", &token).await.status(), 401);
        }
        other => panic!("sign-in answered {other}"),
    }
}

#[tokio::test]
async fn a_password_change_or_sign_out_everywhere_cancels_a_pending_reset_code() {
    let app = spawn_with(|s| {
        s.users = vec![admin_fixture()];
        s.fixtures.api = true;
    })
    .await;
    let admin = app.token("root", "root-password").await;
    let (_, token) = app.new_user("ivy", "secret-1").await;
    let code = || async {
        app.post_json(
            "/user/forgot-password",
            &json!({"email": "ivy@example.com"}),
        )
        .await;
        let inbox: Value = app
            .get("/_fixtures/messages?to=ivy@example.com")
            .await
            .json()
            .await
            .unwrap();
        inbox.as_array().unwrap().last().unwrap()["body"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let app = &app;
    let reset = |code: String| async move {
        app.post_json(
            "/user/forgot-password/reset",
            &json!({"code": code, "password": "taken-over-1"}),
        )
        .await
    };
    let first = code().await;
    let res = send(
        app,
        reqwest::Method::POST,
        "/user/change-password",
        Some(&token),
        Some(json!({"oldPassword": "secret-1", "newPassword": "secret-2"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    boom(reset(first).await, 400).await;

    let second = code().await;
    let res = send(
        app,
        reqwest::Method::POST,
        "/users/5c88c7cc04a917256c726c3d/revoke-tokens",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    // (That was the admin's own sign-out; ivy's code still stands.)
    let admin = app.token("root", "root-password").await;
    let ivy = app
        .sign_in(&json!({"username": "ivy", "password": "secret-2"}))
        .await
        .json::<Value>()
        .await
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = send(
        app,
        reqwest::Method::POST,
        &format!("/users/{ivy}/revoke-tokens"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    boom(reset(second).await, 400).await;
}
