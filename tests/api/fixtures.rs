//! Declared users: fixed ids, re-seeding, bad fixtures, the ephemeral database.

use appmixer_auth::fixtures::FixtureUser;
use appmixer_auth::settings::Secret;
use serde_json::{Value, json};

use crate::admin::{ADMIN_ID, admin_fixture};
use crate::helpers::{boom, spawn_with, start, test_settings};

fn plain(username: &str) -> FixtureUser {
    FixtureUser::with_password(username, &format!("{username}@example.com"), "fixture-pw")
}

#[tokio::test]
async fn fixture_users_sign_in_with_their_fixed_ids_and_fields() {
    let hash = bcrypt::hash("hashed-pw", 4).unwrap();
    let mut hashed = plain("hashed");
    hashed.password = None;
    hashed.password_hash = Some(Secret::new(hash));
    hashed.plan = Some("beta".into());
    hashed.metadata = Some(json!({"team": "qa"}));
    let app = spawn_with(|s| s.users = vec![admin_fixture(), hashed]).await;

    let res = app
        .sign_in(&json!({"username": "root", "password": "root-password"}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["id"], ADMIN_ID);
    assert_eq!(body["user"]["scope"], json!(["user", "admin"]));
    assert_eq!(body["user"]["isActive"], true);

    let res = app
        .sign_in(&json!({"email": "hashed@example.com", "password": "hashed-pw"}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["plan"], "beta");
    assert_eq!(body["user"]["metadata"], json!({"team": "qa"}));
    assert_eq!(body["user"]["scope"], json!(["user"]));
}

#[tokio::test]
async fn restarting_brings_fixture_users_back_to_what_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&dir);
    settings.users = vec![admin_fixture(), plain("gus")];
    let app = start(settings.clone(), dir);
    let res = app
        .sign_in(&json!({"username": "gus", "password": "fixture-pw"}))
        .await;
    let gus: Value = res.json().await.unwrap();
    let gus_id = gus["user"]["id"].as_str().unwrap().to_owned();
    let token = gus["token"].as_str().unwrap().to_owned();
    let res = app.post_json("/user/change-password", &json!({})).await;
    boom(res, 401).await;
    let res = app
        .client
        .post(format!("{}/user/change-password", app.url))
        .bearer_auth(&token)
        .json(&json!({"oldPassword": "fixture-pw", "newPassword": "changed-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The change refused the earlier token (revocation.rs); a token from after it is kept.
    let before = token;
    let token = app.token("gus", "changed-pw").await;
    let dir = app.stop().await;

    // The file now says gus is on plan "pro"; the password goes back to the declared one.
    settings.users[1].plan = Some("pro".into());
    let app = start(settings, dir);
    let res = app
        .sign_in(&json!({"username": "gus", "password": "fixture-pw"}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["user"]["id"],
        gus_id.as_str(),
        "matched by username, id kept"
    );
    assert_eq!(body["user"]["plan"], "pro");
    boom(
        app.sign_in(&json!({"username": "gus", "password": "changed-pw"}))
            .await,
        403,
    )
    .await;
    // A token from before the restart still works: same user, same secret. Putting the
    // declared password back is no password change by the user: nothing more is revoked.
    assert_eq!(app.get_with_token("/user", &token).await.status(), 200);
    assert_eq!(app.get_with_token("/user", &before).await.status(), 401);
}

#[tokio::test]
async fn a_fixture_clashing_with_a_stored_user_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&dir);
    let app = start(settings.clone(), dir);
    app.new_user("hal", "secret-1").await;
    let dir = app.stop().await;
    let mut settings = settings;
    let mut clash = plain("other");
    clash.email = "hal@example.com".into();
    settings.users = vec![clash];
    let err = appmixer_auth::startup::Application::build(settings)
        .err()
        .expect("must refuse to start")
        .to_string();
    assert!(err.contains("users[0]") && err.contains("Email"), "{err}");
    drop(dir);
}

#[tokio::test]
async fn the_in_memory_database_is_shared_by_every_request_and_seeded() {
    let app = spawn_with(|s| {
        s.database.path = ":memory:".into();
        s.users = vec![admin_fixture()];
    })
    .await;
    let (_, token) = app.new_user("ivy", "secret-1").await;
    for _ in 0..20 {
        assert_eq!(app.get_with_token("/user", &token).await.status(), 200);
    }
    assert_eq!(
        app.sign_in(&json!({"username": "root", "password": "root-password"}))
            .await
            .status(),
        200
    );
    assert!(!app.dir.path().join("test.db").exists());
}
