//! `GET /user` answers are remembered while the database is unchanged: every committed change,
//! by this process or by another connection on the same file, shows in the very next answer.

use serde_json::{Value, json};

use crate::helpers::{TestApp, boom, spawn_with};

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app.get_with_token("/user", token).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_change_committed_by_another_connection_shows_in_the_next_answer() {
    if crate::helpers::skip_on_postgres("the GET /user memory is SQLite's") {
        return;
    }
    let app = spawn_with(|_| {}).await;
    assert!(
        app.state.store.remembers_answers(),
        "the database file is in WAL mode, so answers are remembered"
    );
    let (id, token) = app.new_user("carol", "secret-1").await;
    let db = app.dir.path().join("test.db");
    // A plain connection, without the server's commit counting: as the `users` commands or a
    // sqlite3 shell in another process would write.
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    for i in 0..40 {
        // Twice, so the second answer can come from memory.
        me(&app, &token).await;
        me(&app, &token).await;
        other
            .execute(
                "UPDATE users SET metadata = ?1 WHERE id = ?2",
                (json!({ "i": i }).to_string(), &id),
            )
            .unwrap();
        assert_eq!(
            me(&app, &token).await["metadata"],
            json!({ "i": i }),
            "round {i}"
        );
    }
    other
        .execute("DELETE FROM users WHERE id = ?1", [&id])
        .unwrap();
    let gone = boom(app.get_with_token("/user", &token).await, 404).await;
    assert_eq!(gone["message"], "User not found");
}

#[tokio::test]
async fn an_admin_update_shows_in_the_users_next_answer() {
    if crate::helpers::skip_on_postgres("the GET /user memory is SQLite's") {
        return;
    }
    let (app, admin) = crate::admin::admin_app().await;
    let (id, token) = app.new_user("dan", "secret-1").await;
    for plan in ["pro", "team", "free"] {
        me(&app, &token).await;
        me(&app, &token).await;
        let res = crate::admin::send(
            &app,
            reqwest::Method::PUT,
            &format!("/users/{id}"),
            Some(&admin),
            Some(json!({ "plan": plan })),
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(me(&app, &token).await["plan"], plan);
    }
}

#[tokio::test]
async fn an_in_memory_reset_shows_in_the_next_answer() {
    if crate::helpers::skip_on_postgres("the GET /user memory is SQLite's") {
        return;
    }
    let app = spawn_with(|s| {
        s.database.path = ":memory:".into();
        s.fixtures.api = true;
    })
    .await;
    assert!(app.state.store.remembers_answers());
    let (_, token) = app.new_user("erin", "secret-1").await;
    me(&app, &token).await;
    me(&app, &token).await;
    // Deleting every row at once is the one change SQLite's row hooks do not report.
    let res = app.post_json("/_fixtures/reset", &json!({})).await;
    assert_eq!(res.status(), 200);
    let gone = boom(app.get_with_token("/user", &token).await, 404).await;
    assert_eq!(gone["message"], "User not found");
}
