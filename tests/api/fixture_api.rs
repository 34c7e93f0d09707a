//! The fixture API: off unless asked for, loopback only, all-or-nothing batches, the clock.

use appmixer_auth::settings::Settings;
use serde_json::{Value, json};

use crate::admin::admin_fixture;
use crate::helpers::{boom, spawn_with};

#[tokio::test]
async fn fixture_routes_do_not_exist_unless_enabled() {
    let app = spawn_with(|_| {}).await;
    for path in ["/_fixtures/reset", "/_fixtures/users", "/_fixtures/clock"] {
        let res = app.post_json(path, &json!({})).await;
        assert_eq!(boom(res, 404).await["message"], "Not Found", "{path}");
    }
}

#[test]
fn the_fixture_api_refuses_to_listen_beyond_loopback_unless_allowed() {
    let mut s = Settings::default();
    s.fixtures.api = true;
    s.server.host = "0.0.0.0".into();
    let err = s.validate().unwrap_err();
    assert!(err.contains("fixtures.allow_remote"), "{err}");
    s.fixtures.allow_remote = true;
    assert!(s.validate().is_ok());
    for host in ["127.0.0.1", "::1", "localhost", "127.0.0.2"] {
        let mut s = Settings::default();
        s.fixtures.api = true;
        s.server.host = host.into();
        assert!(s.validate().is_ok(), "{host}");
    }
}

#[tokio::test]
async fn reset_removes_undeclared_users_and_restores_declared_ones() {
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.users = vec![admin_fixture()];
    })
    .await;
    app.new_user("temp1", "secret-1").await;
    app.new_user("temp2", "secret-1").await;
    let res = app.post_json("/_fixtures/reset", &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"users": 1}));
    boom(
        app.sign_in(&json!({"username": "temp1", "password": "secret-1"}))
            .await,
        403,
    )
    .await;
    assert_eq!(
        app.sign_in(&json!({"username": "root", "password": "root-password"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_batch_of_users_is_created_in_one_transaction_or_not_at_all() {
    let app = spawn_with(|s| s.fixtures.api = true).await;
    let hash = bcrypt::hash("hashed-pw", 4).unwrap();
    let res = app
        .post_json(
            "/_fixtures/users",
            &json!([
                {"id": "aaaaaaaaaaaaaaaaaaaaaaaa", "username": "b1", "email": "b1@example.com",
                 "password": "batch-pw", "scope": ["user", "tester"], "plan": "pro"},
                {"username": "b2", "email": "b2@example.com", "passwordHash": hash, "isActive": true}
            ]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let users: Value = res.json().await.unwrap();
    assert_eq!(users[0]["id"], "aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(users[0]["scope"], json!(["user", "tester"]));
    assert_eq!(users[1]["isActive"], true);
    assert!(!users.to_string().contains("$2b$"));
    assert_eq!(
        app.sign_in(&json!({"username": "b2", "password": "hashed-pw"}))
            .await
            .status(),
        200
    );

    // One bad entry: nothing of the batch is written.
    let res = app
        .post_json(
            "/_fixtures/users",
            &json!([
                {"username": "c1", "email": "c1@example.com", "password": "batch-pw"},
                {"username": "c2", "email": "not-an-email", "password": "batch-pw"}
            ]),
        )
        .await;
    let body = boom(res, 400).await;
    assert!(
        body["message"].as_str().unwrap().contains("users[1]"),
        "{body}"
    );
    // A clash with a stored user in the second entry: the first is not written either.
    let res = app
        .post_json(
            "/_fixtures/users",
            &json!([
                {"username": "c1", "email": "c1@example.com", "password": "batch-pw"},
                {"username": "c3", "email": "b1@example.com", "password": "batch-pw"}
            ]),
        )
        .await;
    boom(res, 409).await;
    boom(
        app.sign_in(&json!({"username": "c1", "password": "batch-pw"}))
            .await,
        403,
    )
    .await;
    boom(
        app.post_json("/_fixtures/users", &json!({"not": "an array"}))
            .await,
        400,
    )
    .await;
}

#[tokio::test]
async fn the_clock_advances_sets_and_resets_token_time() {
    let app = spawn_with(|s| s.fixtures.api = true).await;
    let (_, token) = app.new_user("tick", "secret-1").await;
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let res = app
        .post_json("/_fixtures/clock", &json!({"advance": "31d"}))
        .await;
    let now = res.json::<Value>().await.unwrap()["now"].as_u64().unwrap();
    assert!(now.abs_diff(real_now + 31 * 86_400) <= 5);
    let expired = boom(app.get_with_token("/user", &token).await, 401).await;
    assert_eq!(expired["message"], "Token expired");
    // Tokens issued now carry the moved time.
    let res = app
        .sign_in(&json!({"username": "tick", "password": "secret-1"}))
        .await;
    let fresh: Value = res.json().await.unwrap();
    let iat = crate::helpers::claims(fresh["token"].as_str().unwrap())["iat"]
        .as_u64()
        .unwrap();
    assert!(iat.abs_diff(now) <= 5);

    let res = app
        .post_json("/_fixtures/clock", &json!({"reset": true}))
        .await;
    let now = res.json::<Value>().await.unwrap()["now"].as_u64().unwrap();
    assert!(now.abs_diff(real_now) <= 5);
    assert_eq!(app.get_with_token("/user", &token).await.status(), 200);

    let res = app
        .post_json("/_fixtures/clock", &json!({"set": real_now + 100_000_000}))
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["now"].as_u64().unwrap(),
        real_now + 100_000_000
    );
    boom(app.get_with_token("/user", &token).await, 401).await;

    for bad in [
        json!({}),
        json!({"advance": "soon"}),
        json!({"set": -1}),
        json!({"advance": "1d", "reset": true}),
    ] {
        boom(app.post_json("/_fixtures/clock", &bad).await, 400).await;
    }
}

/// Token times end in February 2106 (jwt-simple counts 1/2^32 s in a u64): the clock cannot be
/// moved past that, and a lifetime reaching past it is capped, never wrapped into the past.
#[tokio::test]
async fn times_past_2106_are_refused_or_capped_never_wrapped() {
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.auth.token_expiration = appmixer_auth::settings::Timespan(100 * 365 * 86_400);
    })
    .await;
    let (_, token) = app.new_user("long", "secret-1").await;
    let exp = crate::helpers::claims(&token)["exp"].as_u64().unwrap();
    assert_eq!(exp, u64::from(u32::MAX));
    assert_eq!(app.get_with_token("/user", &token).await.status(), 200);

    for bad in [
        json!({"set": 9_223_372_036_854_775_807_u64}),
        json!({"set": 4_294_967_295_u64}),
        json!({"advance": "36500d"}),
        json!({"advance": 18_446_744_073_709_551_615_u64}),
    ] {
        let refused = boom(app.post_json("/_fixtures/clock", &bad).await, 400).await;
        assert!(
            refused["message"].as_str().unwrap().contains("2106"),
            "{bad}: {refused}"
        );
    }
    // The clock is where it was: the token still works, and a late but valid time is taken.
    assert_eq!(app.get_with_token("/user", &token).await.status(), 200);
    let res = app
        .post_json("/_fixtures/clock", &json!({"set": 4_102_444_800_u64}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["now"], 4_102_444_800_u64);
    let res = app
        .sign_in(&json!({"username": "long", "password": "secret-1"}))
        .await;
    let late: Value = res.json().await.unwrap();
    let late = late["token"].as_str().unwrap();
    assert_eq!(
        crate::helpers::claims(late)["exp"].as_u64().unwrap(),
        u64::from(u32::MAX)
    );
    assert_eq!(app.get_with_token("/user", late).await.status(), 200);
}
