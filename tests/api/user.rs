//! The three core endpoints and the version route.

use serde_json::{Value, json};

use crate::helpers::{boom, claims, header, spawn_app, spawn_with};

#[tokio::test]
async fn version_route_answers_the_configured_version() {
    let app = spawn_with(|s| s.tenant.version = "6.5.1".into()).await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"version": "6.5.1"}));
}

#[tokio::test]
async fn creating_a_user_returns_a_token_and_the_public_user() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/user",
            &json!({"username": "abc@example.com", "email": "abc@example.com", "password": "abc321"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let user = &body["user"];
    let id = user["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(
        id.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(
        user,
        &json!({
            "id": id, "username": "abc@example.com", "email": "abc@example.com",
            "isActive": false, "scope": ["user"], "plan": "free", "vendor": null, "metadata": {}
        })
    );
    let token = body["token"].as_str().unwrap();
    assert_eq!(header(token), json!({"alg": "HS256", "typ": "JWT"}));
    let c = claims(token);
    assert_eq!(c["id"], id);
    assert_eq!(c["scope"], json!(["user"]));
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        2_592_000,
        "30 days by default"
    );
}

#[tokio::test]
async fn new_users_get_the_tenant_vendor_and_their_metadata() {
    let app = spawn_with(|s| s.tenant.default_user_vendor = Some("acme".into())).await;
    let res = app
        .post_json(
            "/user",
            &json!({"username": "v1", "email": "v1@example.com", "password": "abc321",
                    "metadata": {"team": "blue", "n": 3}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["vendor"], "acme");
    assert_eq!(body["user"]["metadata"], json!({"team": "blue", "n": 3}));
}

#[tokio::test]
async fn sign_in_works_with_username_and_with_email() {
    let app = spawn_app().await;
    app.create_user("alice", "alice@example.com", "secret-1")
        .await;
    for body in [
        json!({"username": "alice", "password": "secret-1"}),
        json!({"email": "alice@example.com", "password": "secret-1"}),
    ] {
        let res = app.sign_in(&body).await;
        assert_eq!(res.status(), 200, "{body}");
        let out: Value = res.json().await.unwrap();
        assert_eq!(out["user"]["username"], "alice");
        assert_eq!(out["user"]["email"], "alice@example.com");
        assert!(out["user"].get("password").is_none());
        assert!(out["user"].get("passwordHash").is_none());
        let c = claims(out["token"].as_str().unwrap());
        assert_eq!(c["id"], out["user"]["id"]);
        assert_eq!(c["scope"], json!(["user"]));
    }
}

#[tokio::test]
async fn sign_in_with_both_fields_checks_the_username_and_the_email_users() {
    let app = spawn_app().await;
    // Someone took dan's email address as a username.
    app.create_user("dan@example.com", "squatter@example.com", "secret-1")
        .await;
    app.create_user("dan", "dan@example.com", "secret-2").await;
    let as_both = |login: &str, password: &str| json!({"username": login, "email": login, "password": password});
    let signed_in = async |body: Value| {
        let res = app.sign_in(&body).await;
        assert_eq!(res.status(), 200, "{body}");
        let out: Value = res.json().await.unwrap();
        out["user"]["username"].as_str().unwrap().to_owned()
    };
    // Each signs in with their own password: the username's user, then the email's.
    assert_eq!(
        signed_in(as_both("dan@example.com", "secret-1")).await,
        "dan@example.com"
    );
    assert_eq!(
        signed_in(as_both("dan@example.com", "secret-2")).await,
        "dan"
    );
    assert_eq!(
        signed_in(as_both("squatter@example.com", "secret-1")).await,
        "dan@example.com"
    );
    let mixed = json!({"username": "nobody", "email": "dan@example.com", "password": "secret-2"});
    assert_eq!(signed_in(mixed).await, "dan");
    boom(
        app.sign_in(&as_both("dan@example.com", "wrong-1")).await,
        403,
    )
    .await;

    // The same work whoever the fields name: two verifications for two fields.
    for body in [
        as_both("dan@example.com", "wrong-1"),
        as_both("squatter@example.com", "wrong-1"),
        as_both("nobody@example.com", "wrong-1"),
        as_both("dan@example.com", "secret-1"),
    ] {
        let before = app.state.hasher.verifications();
        let _ = app.sign_in(&body).await;
        assert_eq!(app.state.hasher.verifications() - before, 2, "{body}");
    }
}

#[tokio::test]
async fn sign_in_returns_403_for_unknown_user_and_wrong_password_alike() {
    let app = spawn_app().await;
    app.new_user("bob", "right-password").await;
    let before = app.state.hasher.verifications();
    let wrong = app
        .sign_in(&json!({"username": "bob", "password": "wrong-password"}))
        .await;
    let wrong = boom(wrong, 403).await;
    let unknown = app
        .sign_in(&json!({"username": "nobody", "password": "wrong-password"}))
        .await;
    let unknown = boom(unknown, 403).await;
    assert_eq!(wrong, unknown, "the two failures must not be told apart");
    // Both did one bcrypt verification: the unknown user against the dummy hash.
    assert_eq!(app.state.hasher.verifications() - before, 2);
    // The email path fails the same way.
    let by_email = app
        .sign_in(&json!({"email": "nobody@example.com", "password": "wrong-password"}))
        .await;
    assert_eq!(boom(by_email, 403).await, wrong);
}

#[tokio::test]
async fn sign_in_matches_usernames_exactly_and_emails_without_regard_to_case() {
    let app = spawn_app().await;
    app.create_user("Carol", "carol@example.com", "secret-1")
        .await;
    let res = app
        .sign_in(&json!({"username": "carol", "password": "secret-1"}))
        .await;
    boom(res, 403).await;
    let res = app
        .sign_in(&json!({"email": "CAROL@Example.com", "password": "secret-1"}))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn current_user_returns_the_public_user() {
    let app = spawn_app().await;
    let (id, token) = app.new_user("dave", "secret-1").await;
    let res = app.get_with_token("/user", &token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["username"], "dave");
    assert_eq!(body["scope"], json!(["user"]));
    assert_eq!(body.as_object().unwrap().len(), 8, "{body}");
}

#[tokio::test]
async fn the_bearer_scheme_word_is_case_insensitive() {
    let app = spawn_app().await;
    let (_, token) = app.new_user("erin", "secret-1").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let res = app
            .client
            .get(format!("{}/user", app.url))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn current_user_tells_missing_invalid_expired_and_deleted_apart() {
    let app = spawn_app().await;
    let (_, token) = app.new_user("frank", "secret-1").await;

    let missing = boom(app.get("/user").await, 401).await;
    assert_eq!(missing["message"], "Missing authentication");

    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let bad = boom(app.get_with_token("/user", &tampered).await, 401).await;
    assert_eq!(bad["message"], "Invalid JWT: key or signature is invalid");

    // A valid token for a user that does not exist (never created, or deleted).
    let ghost = appmixer_auth::domain::UserId::generate();
    let ghost_token = app
        .state
        .tokens
        .issue(ghost.as_str(), &["user".into()])
        .unwrap();
    let gone = boom(app.get_with_token("/user", &ghost_token).await, 404).await;
    assert_eq!(gone["message"], "User not found");

    // Thirty days and a minute later the token has expired.
    app.state.tokens.clock.set_offset(2_592_000 + 60);
    let expired = boom(app.get_with_token("/user", &token).await, 401).await;
    assert_eq!(expired["message"], "Token expired");
}

#[tokio::test]
async fn expiry_is_enforced_to_the_second_not_minutes() {
    let app =
        spawn_with(|s| s.auth.token_expiration = appmixer_auth::settings::Timespan(3600)).await;
    let (_, token) = app.new_user("gina", "secret-1").await;
    assert_eq!(
        claims(&token)["exp"].as_u64().unwrap() - claims(&token)["iat"].as_u64().unwrap(),
        3600
    );
    app.state.tokens.clock.set_offset(3600 - 2);
    assert_eq!(app.get_with_token("/user", &token).await.status(), 200);
    // jwt-simple would forgive 15 minutes; this server forgives a few seconds.
    app.state.tokens.clock.set_offset(3600 + 30);
    boom(app.get_with_token("/user", &token).await, 401).await;
}

#[tokio::test]
async fn a_taken_username_or_email_is_409() {
    let app = spawn_app().await;
    app.new_user("hank", "secret-1").await;
    let res = app
        .create_user("hank", "other@example.com", "secret-1")
        .await;
    let body = boom(res, 409).await;
    assert!(body["message"].as_str().unwrap().contains("Username"));
    let res = app
        .create_user("hank2", "hank@example.com", "secret-1")
        .await;
    let body = boom(res, 409).await;
    assert!(body["message"].as_str().unwrap().contains("Email"));
}

#[tokio::test]
async fn of_fifty_concurrent_creates_of_one_username_exactly_one_succeeds() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/user", app.url);
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"username": "race", "email": format!("race{i}@example.com"), "password": "secret-1"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    let mut conflict = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            409 => conflict += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, conflict), (1, 49));
}

#[tokio::test]
async fn tokens_and_users_survive_a_restart_with_a_generated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(&dir);
    settings.auth.jwt_secret = None;
    let app = crate::helpers::start(settings.clone(), dir);
    let (id, token) = app.new_user("ivan", "secret-1").await;
    let dir = app.stop().await;

    let again = crate::helpers::start(settings, dir);
    let res = again.get_with_token("/user", &token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    let res = again
        .sign_in(&json!({"username": "ivan", "password": "secret-1"}))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn each_database_generates_its_own_secret() {
    let a = spawn_with(|s| s.auth.jwt_secret = None).await;
    let b = spawn_with(|s| s.auth.jwt_secret = None).await;
    let (_, token) = a.new_user("judy", "secret-1").await;
    let res = b.get_with_token("/user", &token).await;
    assert_eq!(
        boom(res, 401).await["message"],
        "Invalid JWT: key or signature is invalid"
    );
}

#[tokio::test]
async fn the_configured_secret_string_is_the_hmac_key() {
    use jwt_simple::prelude::*;
    let secret = "a-shared-secret-other-services-know";
    let app =
        spawn_with(|s| s.auth.jwt_secret = Some(appmixer_auth::settings::Secret::new(secret)))
            .await;
    let (id, token) = app.new_user("kate", "secret-1").await;
    let key = HS256Key::from_bytes(secret.as_bytes());
    let verified = key
        .verify_token::<Value>(&token, None)
        .expect("another service can verify with the same string");
    assert_eq!(verified.custom["id"], id.as_str());
}

#[tokio::test]
async fn the_database_file_is_readable_only_by_its_owner() {
    if crate::helpers::skip_on_postgres("the database file's mode") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.new_user("leo", "secret-1").await;
    let path = app.dir.path().join("test.db");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn creation_needs_a_scoped_token_when_the_tenant_says_so() {
    let app = spawn_with(|s| {
        s.tenant.api_user_create_scope = vec!["admin".into()];
        s.users = vec![crate::admin::admin_fixture()];
    })
    .await;
    let body = json!({"username": "m1", "email": "m1@example.com", "password": "secret-1"});
    let res = app.post_json("/user", &body).await;
    assert_eq!(boom(res, 401).await["message"], "Missing authentication");

    let create = |token: String| {
        app.client
            .post(format!("{}/user", app.url))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // A plain user's token: no scope for it.
    let user_token = app
        .state
        .tokens
        .issue(crate::admin::ADMIN_ID, &["user".into()])
        .unwrap();
    let res = create(user_token).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the stored user is an admin, whatever the token says"
    );

    let root = app
        .sign_in(&json!({"username": "root", "password": "root-password"}))
        .await;
    let root: Value = root.json().await.unwrap();
    let admin_token = root["token"].as_str().unwrap().to_owned();
    let body2 = json!({"username": "m2", "email": "m2@example.com", "password": "secret-1"});
    let res = app
        .client
        .post(format!("{}/user", app.url))
        .bearer_auth(&admin_token)
        .json(&body2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_demoted_or_deleted_creator_loses_the_right_at_once_whatever_its_token_says() {
    // The review's finding: a demoted, then deleted admin kept creating users with its old
    // token for up to 30 days. The stored user's scope decides, as on the admin routes.
    let app = spawn_with(|s| {
        s.tenant.api_user_create_scope = vec!["admin".into()];
        s.users = vec![crate::admin::admin_fixture()];
    })
    .await;
    let root = app
        .sign_in(&json!({"username": "root", "password": "root-password"}))
        .await;
    let root: Value = root.json().await.unwrap();
    let token = root["token"].as_str().unwrap().to_owned();
    let create = |name: &str| {
        app.client
            .post(format!("{}/user", app.url))
            .bearer_auth(&token)
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": "secret-1"}))
            .send()
    };
    assert_eq!(create("d1").await.unwrap().status(), 200);
    // Demote root (its token still says admin).
    let res = app
        .client
        .put(format!("{}/users/{}", app.url, crate::admin::ADMIN_ID))
        .bearer_auth(&token)
        .json(&json!({"scope": ["user"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        boom(create("d2").await.unwrap(), 403).await["message"],
        "Insufficient scope"
    );
    // Deleted: the token names nobody.
    let id = appmixer_auth::domain::UserId::parse(crate::admin::ADMIN_ID).unwrap();
    app.state
        .store
        .write(move |ops| ops.delete_user(&id))
        .await
        .map_err(|e: appmixer_auth::db::StoreError| e)
        .unwrap();
    assert_eq!(create("d3").await.unwrap().status(), 404);
}
