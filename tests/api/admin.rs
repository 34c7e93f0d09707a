//! The administration routes, with an admin, a plain user and no token.

use appmixer_auth::fixtures::FixtureUser;
use serde_json::{Value, json};

use crate::helpers::{TestApp, boom, spawn_with};

pub const ADMIN_ID: &str = "5c88c7cc04a917256c726c3d";

pub fn admin_fixture() -> FixtureUser {
    FixtureUser {
        id: Some(ADMIN_ID.into()),
        scope: Some(vec!["user".into(), "admin".into()]),
        is_active: Some(true),
        ..FixtureUser::with_password("root", "root@example.com", "root-password")
    }
}

/// A server with one fixture admin; returns it and the admin's token.
pub async fn admin_app() -> (TestApp, String) {
    let app = spawn_with(|s| s.users = vec![admin_fixture()]).await;
    let token = app.token("root", "root-password").await;
    (app, token)
}

pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, format!("{}{path}", app.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_admin_route_needs_a_token_with_the_admin_scope() {
    let (app, _) = admin_app().await;
    let (id, user_token) = app.new_user("plain", "secret-1").await;
    let routes = [
        (reqwest::Method::GET, "/users".to_owned(), None),
        (reqwest::Method::GET, "/users/count".to_owned(), None),
        (reqwest::Method::GET, format!("/users/{id}"), None),
        (
            reqwest::Method::PUT,
            format!("/users/{id}"),
            Some(json!({"plan": "pro"})),
        ),
        (reqwest::Method::DELETE, format!("/users/{id}"), None),
        (
            reqwest::Method::GET,
            format!("/users/{id}/delete-status/00000000-0000-0000-0000-000000000000"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/user/reset-password".to_owned(),
            Some(json!({"email": "plain@example.com", "password": "other-1"})),
        ),
    ];
    for (method, path, body) in routes {
        let res = send(&app, method.clone(), &path, None, body.clone()).await;
        assert_eq!(
            boom(res, 401).await["message"],
            "Missing authentication",
            "{method} {path}"
        );
        let res = send(&app, method.clone(), &path, Some(&user_token), body).await;
        assert_eq!(
            boom(res, 403).await["message"],
            "Insufficient scope",
            "{method} {path}"
        );
    }
    // The plain user is untouched by all of that.
    let res = app
        .sign_in(&json!({"username": "plain", "password": "secret-1"}))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn admins_list_count_sort_filter_and_page_users() {
    let (app, admin) = admin_app().await;
    for name in ["ann", "bea", "cid", "dan"] {
        app.new_user(name, "secret-1").await;
    }
    let list = |q: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let res = app.get_with_token(&format!("/users{q}"), &admin).await;
            assert_eq!(res.status(), 200, "{q}");
            let v: Value = res.json().await.unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, ["root", "ann", "bea", "cid", "dan"]);
    assert_eq!(
        list("?sort=username:-1").await,
        ["root", "dan", "cid", "bea", "ann"]
    );
    assert_eq!(
        list("?sort=username:1&limit=2&offset=1").await,
        ["bea", "cid"]
    );
    assert_eq!(list("?pattern=AN").await, ["ann", "dan"]);
    // PostgreSQL searches the two names joined by a newline: a pattern across that joint
    // ("ann" + "\n" + "ann@…") is in neither name, so it matches nobody.
    assert!(list("?pattern=n%0Aa").await.is_empty());
    assert!(list("?pattern=n%20a").await.is_empty());
    assert_eq!(list("?filter=scope:admin").await, ["root"]);
    assert_eq!(
        list("?filter=isActive:false&sort=created:-1&limit=1").await,
        ["dan"]
    );

    let res = app
        .get_with_token("/users/count?filter=scope:user", &admin)
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"count": 5}));
    let res = app.get_with_token("/users/count?pattern=xyz", &admin).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"count": 0}));
    // Public users only: no hash ever.
    let res = app.get_with_token("/users", &admin).await;
    let text = res.text().await.unwrap();
    assert!(!text.contains("$2b$") && !text.to_lowercase().contains("hash"));
}

#[tokio::test]
async fn bad_query_values_are_400_not_500() {
    let (app, admin) = admin_app().await;
    for q in [
        "?limit=-1",
        "?limit=abc",
        "?limit=0",
        "?offset=-5",
        "?sort=password:1",
        "?sort=created:2",
        "?filter=nocolon",
        "?filter=hash:x",
        "?filter=isActive:maybe",
    ] {
        let res = app.get_with_token(&format!("/users{q}"), &admin).await;
        boom(res, 400).await;
        let res = app
            .get_with_token(&format!("/users/count{q}"), &admin)
            .await;
        if !q.starts_with("?limit") && !q.starts_with("?offset") && !q.starts_with("?sort") {
            boom(res, 400).await;
        }
    }
    for id in [
        "nope",
        "5c88c7cc04a917256c726c3",
        "zz88c7cc04a917256c726c3d",
    ] {
        let res = app.get_with_token(&format!("/users/{id}"), &admin).await;
        boom(res, 400).await;
    }
    let res = app
        .get_with_token("/users/5c88c7cc04a917256c726c3e", &admin)
        .await;
    assert_eq!(boom(res, 404).await["message"], "User not found");
}

#[tokio::test]
async fn admins_read_update_and_delete_users_with_a_ticket() {
    let (app, admin) = admin_app().await;
    let (id, token) = app.new_user("eve", "secret-1").await;
    let res = app.get_with_token(&format!("/users/{id}"), &admin).await;
    assert_eq!(res.json::<Value>().await.unwrap()["username"], "eve");

    let res = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{id}"),
        Some(&admin),
        Some(
            json!({"email": "eve2@example.com", "scope": ["user", "acme1"], "vendor": "acme",
                    "metadata": {"k": 1}, "isActive": true, "plan": "pro"}),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut body: Value = res.json().await.unwrap();
    // Admin answers also carry the dates, as ISO-8601 strings (see bodies.rs).
    let fields = body.as_object_mut().unwrap();
    let (created, mtime) = (fields.remove("created"), fields.remove("mtime"));
    assert!(created.is_some_and(|c| c.is_string()) && mtime.is_some_and(|m| m.is_string()));
    assert_eq!(
        body,
        json!({"id": id, "username": "eve", "email": "eve2@example.com", "isActive": true,
               "scope": ["user", "acme1"], "plan": "pro", "vendor": "acme", "metadata": {"k": 1}})
    );
    // The user sees the change.
    let me: Value = app
        .get_with_token("/user", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["plan"], "pro");
    // Bad updates.
    for body in [
        json!({}),
        json!({"username": "renamed"}),
        json!({"email": "bad"}),
        json!({"scope": "admin"}),
        json!({"isActive": "yes"}),
    ] {
        let res = send(
            &app,
            reqwest::Method::PUT,
            &format!("/users/{id}"),
            Some(&admin),
            Some(body.clone()),
        )
        .await;
        boom(res, 400).await;
    }
    let res = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{id}"),
        Some(&admin),
        Some(json!({"email": "root@example.com"})),
    )
    .await;
    boom(res, 409).await;

    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/users/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let ticket = res.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ticket.len(), 36);
    let res = app
        .get_with_token(&format!("/users/{id}/delete-status/{ticket}"), &admin)
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "completed", "stepsDone": 1, "stepsTotal": 1})
    );
    // The deleted user's token now finds no user.
    boom(app.get_with_token("/user", &token).await, 404).await;
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/users/{id}"),
        Some(&admin),
        None,
    )
    .await;
    boom(res, 404).await;
    let res = app
        .get_with_token(&format!("/users/{id}/delete-status/not-a-ticket"), &admin)
        .await;
    boom(res, 404).await;
}

#[tokio::test]
async fn admins_reset_passwords_and_users_change_their_own() {
    let (app, admin) = admin_app().await;
    let (_, token) = app.new_user("fay", "secret-1").await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/reset-password",
        Some(&admin),
        Some(json!({"email": "fay@example.com", "password": "reset-pw"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    boom(
        app.sign_in(&json!({"username": "fay", "password": "secret-1"}))
            .await,
        403,
    )
    .await;
    let fresh = app.token("fay", "reset-pw").await;
    // The reset refused fay's earlier token (revocation.rs); the new one is used below.
    assert_eq!(app.get_with_token("/user", &token).await.status(), 401);
    let token = fresh;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/reset-password",
        Some(&admin),
        Some(json!({"email": "nobody@example.com", "password": "reset-pw"})),
    )
    .await;
    boom(res, 404).await;

    let change = |old: &str, new: &str| json!({"oldPassword": old, "newPassword": new});
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/change-password",
        None,
        Some(change("reset-pw", "mine-1")),
    )
    .await;
    boom(res, 401).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/change-password",
        Some(&token),
        Some(change("wrong-1", "mine-1")),
    )
    .await;
    boom(res, 403).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/change-password",
        Some(&token),
        Some(change("reset-pw", "abc")),
    )
    .await;
    boom(res, 400).await;
    let res = send(
        &app,
        reqwest::Method::POST,
        "/user/change-password",
        Some(&token),
        Some(change("reset-pw", "mine-1")),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.sign_in(&json!({"username": "fay", "password": "mine-1"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn taking_the_admin_scope_away_takes_effect_at_once() {
    let (app, admin) = admin_app().await;
    // The admin demotes itself; its token still says admin, the database does not.
    let res = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{ADMIN_ID}"),
        Some(&admin),
        Some(json!({"scope": ["user"]})),
    )
    .await;
    assert_eq!(res.status(), 200);
    boom(app.get_with_token("/users", &admin).await, 403).await;
}

/// Beyond the first rows in order, through the indexes: rare and common patterns, filters on
/// scope and vendor names, a count that samples, a deep page, and a write that moves a user
/// in and out of a search, all as a scan of every row would answer.
#[tokio::test]
async fn search_and_filters_answer_alike_on_the_first_rows_and_far_beyond() {
    let app = spawn_with(|s| {
        s.users = vec![admin_fixture()];
        s.fixtures.api = true;
    })
    .await;
    let admin = app.token("root", "root-password").await;
    let hash = bcrypt::hash("pass-word-1", 4).unwrap();
    let n = 6_200;
    let mut batch = Vec::with_capacity(n);
    for i in 0..n {
        let rare = i == 10 || i == 6_100;
        let name = if rare {
            format!("Needle-{i:05}@example.com")
        } else {
            format!("user-{i:05}@example.com")
        };
        let mut u = json!({"username": name, "email": name, "passwordHash": hash});
        if rare {
            u["scope"] = json!(["user", "rare"]);
            u["vendor"] = json!(["acme", "initech"]);
        }
        batch.push(u);
    }
    let res = send(
        &app,
        reqwest::Method::POST,
        "/_fixtures/users",
        None,
        Some(Value::Array(batch)),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let get = |q: String| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let res = app.get_with_token(&q, &admin).await;
            assert_eq!(res.status(), 200, "{q}");
            res.json::<Value>().await.unwrap()
        }
    };
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let rare = ["Needle-00010@example.com", "Needle-06100@example.com"];
    for q in ["needle", "NEEDLE", "eedle-06", "le-0"] {
        let found = names(get(format!("/users?pattern={q}")).await);
        let want: Vec<&str> = rare
            .iter()
            .copied()
            .filter(|r| r.to_lowercase().contains(&q.to_lowercase()))
            .collect();
        assert_eq!(found, want, "pattern {q}");
        let count = get(format!("/users/count?pattern={q}")).await;
        assert_eq!(count["count"], want.len(), "count of {q}");
    }
    // Common: a page fills from the first rows; the count is every one of them.
    let page = names(get("/users?pattern=user-&limit=3&offset=2".into()).await);
    assert_eq!(
        page,
        [
            "user-00002@example.com",
            "user-00003@example.com",
            "user-00004@example.com"
        ]
    );
    // Everyone, root@example.com too.
    assert_eq!(
        get("/users/count?pattern=example.com".into()).await["count"],
        n + 1
    );
    assert_eq!(get("/users/count?pattern=nomatch".into()).await["count"], 0);
    // A page deep in the list, by creation and by name.
    let deep = names(get("/users?offset=6150&limit=2".into()).await);
    assert_eq!(deep, ["user-06149@example.com", "user-06150@example.com"]);
    let deep = names(get("/users?sort=username:-1&offset=6000&limit=1".into()).await);
    assert_eq!(deep, ["user-00198@example.com"]);
    // Names of scope and vendor, alone and with a pattern.
    assert_eq!(names(get("/users?filter=scope:rare".into()).await), rare);
    assert_eq!(
        get("/users/count?filter=vendor:initech".into()).await["count"],
        2
    );
    assert_eq!(
        names(get("/users?filter=vendor:acme&pattern=06100".into()).await),
        [rare[1]]
    );
    assert_eq!(
        get("/users/count?filter=scope:user".into()).await["count"],
        n + 1
    );
    // Writes keep the indexes in step: a renamed, rescoped and deleted user.
    let id = get("/users?pattern=needle-06100".into()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = send(
        &app,
        reqwest::Method::PUT,
        &format!("/users/{id}"),
        Some(&admin),
        Some(json!({"email": "moved-away@example.com", "scope": ["user"], "vendor": "umbrella"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        names(get("/users?filter=scope:rare".into()).await),
        [rare[0]]
    );
    assert_eq!(
        get("/users/count?filter=vendor:umbrella".into()).await["count"],
        1
    );
    assert_eq!(
        get("/users/count?pattern=moved-away".into()).await["count"],
        1
    );
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/users/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        get("/users/count?pattern=moved-away".into()).await["count"],
        0
    );
    assert_eq!(
        get("/users/count?filter=vendor:umbrella".into()).await["count"],
        0
    );
}
