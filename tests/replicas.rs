//! Several replicas on one PostgreSQL database: what they share, and the faults they survive.
//!
//! Needs `TEST_POSTGRES_URL` (`./test.sh` starts a throwaway cluster and sets it, with
//! `TEST_POSTGRES_DIR` for the tests that stop and start it). Without it every test here says
//! so and passes, except under CI, where a missing database is a failure.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/process.rs"]
mod process;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use appmixer_auth::fixtures::FixtureUser;
use appmixer_auth::settings::{DatabaseUrl, Secret, Settings};
use appmixer_auth::testing::{TestServer, fresh_postgres_url, http_client};
use serde_json::{Value, json};

/// A fresh tenant on the test database, or `None` (said) when there is none to use.
fn tenant() -> Option<String> {
    if let Some(url) = fresh_postgres_url() {
        return Some(url);
    }
    if std::env::var_os("CI").is_some() && std::env::var_os("TEST_POSTGRES_LATER").is_none() {
        panic!("CI: TEST_POSTGRES_URL is not set; ./test.sh starts PostgreSQL for these tests");
    }
    eprintln!("skipped: no PostgreSQL (TEST_POSTGRES_URL unset; ./test.sh sets it)");
    None
}

const SECRET: &str = "replicas-share-this-secret-of-32-bytes!";

/// `n` replicas on one database, each changed by `tweak`.
fn replicas(n: usize, url: &str, tweak: impl Fn(&mut Settings)) -> Vec<TestServer> {
    (0..n)
        .map(|_| {
            TestServer::builder()
                .settings(|s| {
                    s.database.url = Some(DatabaseUrl::new(url));
                    s.auth.jwt_secret = Some(Secret::new(SECRET));
                    tweak(s);
                })
                .start()
        })
        .collect()
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = http_client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("an answer");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

async fn sign_in(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    let (status, body, _) = call(
        reqwest::Method::POST,
        format!("{}/user/auth", server.url()),
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn a_name_locked_through_one_replica_is_locked_on_all_and_replicas_add_no_guesses() {
    let Some(url) = tenant() else { return };
    let servers = replicas(3, &url, |s| {
        s.auth.max_failed_attempts = 4;
        s.users = vec![FixtureUser::with_password(
            "victim",
            "victim@example.com",
            "right-password",
        )];
    });
    // Four wrong guesses, spread over three replicas: the limit is four, not twelve.
    for i in 0..4 {
        let (status, _) = sign_in(&servers[i % 3], "victim", "wrong").await;
        assert_eq!(status, 403, "guess {i}");
    }
    for server in &servers {
        let (status, body) = sign_in(server, "victim", "right-password").await;
        assert_eq!(status, 429, "locked on every replica: {body}");
    }
}

#[tokio::test]
async fn a_change_through_one_replica_shows_in_the_next_answer_of_another() {
    let Some(url) = tenant() else { return };
    let servers = replicas(2, &url, |s| {
        s.users = Vec::new();
    });
    let (a, b) = (&servers[0], &servers[1]);
    let (status, created, _) = call(
        reqwest::Method::POST,
        format!("{}/user", a.url()),
        None,
        Some(json!({"username": "ann@example.com", "email": "ann@example.com", "password": "pass-word-1"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    // B answers with A's user, and remembers it between requests no longer than a write.
    for _ in 0..3 {
        let (status, me, _) = call(
            reqwest::Method::GET,
            format!("{}/user", b.url()),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(me["username"], "ann@example.com");
    }
    // A password change through A: B refuses the earlier token at once.
    let (status, body, _) = call(
        reqwest::Method::POST,
        format!("{}/user/change-password", a.url()),
        Some(&token),
        Some(json!({"oldPassword": "pass-word-1", "newPassword": "pass-word-2"})),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, body, _) = call(
        reqwest::Method::GET,
        format!("{}/user", b.url()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 401, "B's very next answer: {body}");
    // The new password works on B; a config key set through B is read by A.
    let (status, _) = sign_in(b, "ann@example.com", "pass-word-2").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn replicas_started_together_share_one_generated_secret_and_apply_declared_users_once() {
    let Some(url) = tenant() else { return };
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                TestServer::builder()
                    .admin("root", "root@example.com", "root-password")
                    .user("alice", "alice@example.com", "alice-password")
                    .settings(|s| {
                        s.database.url = Some(DatabaseUrl::new(url));
                        // No secret set: one is generated once and kept in the database.
                        s.auth.jwt_secret = None;
                    })
                    .try_start()
            })
        })
        .collect();
    let servers: Vec<TestServer> = starts
        .into_iter()
        .map(|t| t.join().unwrap().expect("every replica starts"))
        .collect();
    assert_eq!(
        servers[0].user_count().unwrap(),
        2,
        "declared users stored once"
    );
    let (status, body) = sign_in(&servers[0], "alice", "alice-password").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    for server in &servers {
        let (status, _, _) = call(
            reqwest::Method::GET,
            format!("{}/user", server.url()),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "a token of one replica is good on all");
    }
    // Admin work through one replica is known to another: a delete ticket, a config key.
    let root = servers[1].token_for("root").unwrap();
    let alice = body["user"]["id"].as_str().unwrap();
    let (status, ticket, _) = call(
        reqwest::Method::DELETE,
        format!("{}/users/{alice}", servers[1].url()),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ticket = ticket["ticket"].as_str().unwrap();
    let (status, done, _) = call(
        reqwest::Method::GET,
        format!("{}/users/{alice}/delete-status/{ticket}", servers[2].url()),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed");
    let (status, _, _) = call(
        reqwest::Method::POST,
        format!("{}/config", servers[0].url()),
        Some(&root),
        Some(json!({"key": "WEBHOOK_USER_CREATED", "value": "http://127.0.0.1:9/hook"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, keys, _) = call(
        reqwest::Method::GET,
        format!("{}/config", servers[2].url()),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        keys.to_string().contains("http://127.0.0.1:9/hook"),
        "{keys}"
    );
}

#[tokio::test]
async fn fifty_concurrent_creates_of_one_name_over_two_replicas_give_exactly_one_200() {
    let Some(url) = tenant() else { return };
    let servers = replicas(2, &url, |_| {});
    let urls: Vec<String> = servers.iter().map(|s| s.url().to_owned()).collect();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let url = urls[i % 2].clone();
            tokio::spawn(async move {
                call(
                    reqwest::Method::POST,
                    format!("{url}/user"),
                    None,
                    Some(json!({
                        "username": "same@example.com",
                        "email": "same@example.com",
                        "password": format!("pass-word-{i}"),
                    })),
                )
                .await
                .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409 || *s == 429),
        "the others are told the name is taken: {statuses:?}"
    );
    assert_eq!(servers[0].user_count().unwrap(), 1);
}

#[tokio::test]
async fn each_webhook_is_delivered_by_one_replica() {
    let Some(url) = tenant() else { return };
    let hook = receiver::Receiver::start(receiver::Answer::Statuses(vec![])).await;
    let servers = replicas(3, &url, |s| {
        s.webhooks.user_created = Some(hook.url.clone())
    });
    for i in 0..30 {
        let server = &servers[i % 3];
        let (status, body, _) = call(
            reqwest::Method::POST,
            format!("{}/user", server.url()),
            None,
            Some(json!({"username": format!("u{i}@example.com"), "password": "pass-word-1"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let got = hook.wait_for(30, Duration::from_secs(20)).await;
    // A little longer, for a second delivery of any of them to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if hook.received().len() > got.len() {
        hook.received()
    } else {
        got
    };
    let ids: HashSet<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 30, "every message came");
    assert_eq!(got.len(), 30, "none came twice");
}

#[tokio::test]
async fn a_forgot_password_code_asked_through_one_replica_is_used_on_another() {
    let Some(url) = tenant() else { return };
    let servers = replicas(2, &url, |s| {
        s.users.clear();
        s.server.public_url = Some("http://app.example".into());
    });
    let (status, _, _) = call(
        reqwest::Method::POST,
        format!("{}/user", servers[0].url()),
        None,
        Some(json!({"username": "rita@example.com", "password": "pass-word-1"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        reqwest::Method::POST,
        format!("{}/user/forgot-password", servers[0].url()),
        None,
        Some(json!({"email": "rita@example.com"})),
    )
    .await;
    assert_eq!(status, 200);
    // The fixture inbox is read through the other replica: the outbox is shared.
    let (status, inbox, _) = call(
        reqwest::Method::GET,
        format!(
            "{}/_fixtures/messages?to=rita@example.com",
            servers[1].url()
        ),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{inbox}");
    let code = inbox
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["body"]["code"].as_str())
        .unwrap_or_else(|| panic!("a code in {inbox}"))
        .to_owned();
    let (status, body, _) = call(
        reqwest::Method::POST,
        format!("{}/user/forgot-password/reset", servers[1].url()),
        None,
        Some(json!({"code": code, "password": "pass-word-2"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = sign_in(&servers[0], "rita@example.com", "pass-word-2").await;
    assert_eq!(status, 200);
}

/// The cluster's directory, for the tests that stop and start it.
fn cluster_dir() -> Option<PathBuf> {
    std::env::var_os("TEST_POSTGRES_DIR").map(PathBuf::from)
}

fn pg_ctl(args: &[&str]) {
    let dir = cluster_dir().unwrap();
    let status = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/pg-cluster.sh"
    ))
    .arg("pg_ctl")
    .arg(&dir)
    .args(args)
    .status()
    .unwrap();
    assert!(status.success(), "pg_ctl {args:?}");
}

#[tokio::test]
async fn with_postgresql_stopped_requests_are_503_with_retry_after_and_replicas_recover() {
    let Some(url) = tenant() else { return };
    if cluster_dir().is_none() {
        eprintln!("skipped: TEST_POSTGRES_DIR unset (this test stops and starts the cluster)");
        return;
    }
    let servers = replicas(2, &url, |s| {
        s.database.connect_timeout = appmixer_auth::settings::Timespan(2);
        s.users.clear();
    });
    let (status, created, _) = call(
        reqwest::Method::POST,
        format!("{}/user", servers[0].url()),
        None,
        Some(json!({"username": "steady@example.com", "password": "pass-word-1"})),
    )
    .await;
    assert_eq!(status, 200);
    let token = created["token"].as_str().unwrap().to_owned();

    pg_ctl(&["stop", "-m", "fast", "-w"]);
    for server in &servers {
        for path in ["/user", "/user/auth"] {
            let started = Instant::now();
            let (status, body, headers) = if path == "/user" {
                call(
                    reqwest::Method::GET,
                    format!("{}{path}", server.url()),
                    Some(&token),
                    None,
                )
                .await
            } else {
                call(
                    reqwest::Method::POST,
                    format!("{}{path}", server.url()),
                    None,
                    Some(json!({"username": "steady@example.com", "password": "pass-word-1"})),
                )
                .await
            };
            assert_eq!(status, 503, "{path}: {body}");
            assert_eq!(body["statusCode"], 503);
            assert!(headers.contains_key("retry-after"), "{path}: {headers:?}");
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "{path} answered within the connect timeout: {:?}",
                started.elapsed()
            );
        }
    }
    pg_ctl(&["start", "-w", "-t", "60"]);
    // Recovered without a restart: the first request may still meet a broken connection.
    for server in &servers {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _, _) = call(
                reqwest::Method::GET,
                format!("{}/user", server.url()),
                Some(&token),
                None,
            )
            .await;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "never a 500 while recovering");
            assert!(Instant::now() < deadline, "the replica did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, _) = sign_in(server, "steady@example.com", "pass-word-1").await;
        assert_eq!(status, 200);
    }
}

#[test]
fn a_replica_killed_mid_load_loses_no_acknowledged_write_and_the_other_keeps_answering() {
    let Some(url) = tenant() else { return };
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = process::command_in(dir.path(), &["serve", "--port", "0"]);
        cmd.env("APPMIXER_DATABASE__URL", &url)
            .env("APPMIXER_AUTH__JWT_SECRET", SECRET)
            .env("APPMIXER_AUTH__MAX_FAILED_ATTEMPTS", "0");
        process::launch(cmd)
    };
    let mut a = start();
    let b = start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acknowledged = rt.block_on(async {
        let urls = [a.url.clone(), b.url.clone()];
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let url = urls[w % 2].clone();
                tokio::spawn(async move {
                    let mut ok = Vec::new();
                    let mut errors_from_b = Vec::new();
                    for i in 0..60 {
                        let name = format!("w{w}-{i}@example.com");
                        let res = http_client()
                            .post(format!("{url}/user"))
                            .json(&json!({"username": name, "password": "pass-word-1"}))
                            .send()
                            .await;
                        match res {
                            Ok(r) if r.status() == 200 => ok.push(name),
                            Ok(r) if w % 2 == 1 => errors_from_b.push(r.status().as_u16()),
                            _ => {}
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    (ok, errors_from_b)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(a.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let mut acknowledged = Vec::new();
        for w in writers {
            let (ok, errors_from_b) = w.await.unwrap();
            assert!(
                errors_from_b.is_empty(),
                "the other replica kept answering: {errors_from_b:?}"
            );
            acknowledged.extend(ok);
        }
        acknowledged
    });
    a.wait_exit(Duration::from_secs(5));
    // Every 200 is stored, whichever replica gave it.
    let out = process::command_in(dir.path(), &["users", "list", "--json"])
        .env("APPMIXER_DATABASE__URL", &url)
        .output()
        .unwrap();
    let stored: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashSet<&str> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        acknowledged.len() >= 240,
        "B's writers all succeeded: {}",
        acknowledged.len()
    );
    drop(b);
}

#[test]
fn a_tenant_exported_from_sqlite_and_imported_into_postgresql_keeps_ids_hashes_and_tokens() {
    let Some(url) = tenant() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], pg: bool| {
        let mut cmd = process::command_in(dir.path(), args);
        cmd.env("APPMIXER_AUTH__JWT_SECRET", SECRET);
        if pg {
            cmd.env("APPMIXER_DATABASE__URL", &url);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(
        &[
            "users",
            "add",
            "moving@example.com",
            "--password",
            "pass-word-1",
        ],
        false,
    );
    run(
        &[
            "users",
            "add",
            "boss",
            "--email",
            "boss@example.com",
            "--password",
            "pass-word-2",
            "--scope",
            "user,admin",
        ],
        false,
    );
    let token = run(&["token", "moving@example.com"], false)
        .trim()
        .to_owned();
    let before: Value = serde_json::from_str(&run(&["users", "list", "--json"], false)).unwrap();
    run(&["users", "export", "tenant.json"], false);
    run(&["users", "import", "tenant.json"], true);
    let after: Value = serde_json::from_str(&run(&["users", "list", "--json"], true)).unwrap();
    assert_eq!(before, after, "the same users, ids and all");

    let mut server = process::launch({
        let mut cmd = process::command_in(dir.path(), &["serve", "--port", "0"]);
        cmd.env("APPMIXER_DATABASE__URL", &url)
            .env("APPMIXER_AUTH__JWT_SECRET", SECRET);
        cmd
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (status, me, _) = call(
            reqwest::Method::GET,
            format!("{}/user", server.url),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(
            status, 200,
            "a token issued on SQLite works on PostgreSQL: {me}"
        );
        assert_eq!(me["username"], "moving@example.com");
        let (status, _, _) = call(
            reqwest::Method::POST,
            format!("{}/user/auth", server.url),
            None,
            Some(json!({"username": "boss", "password": "pass-word-2"})),
        )
        .await;
        assert_eq!(status, 200, "the hash came along");
    });
    let _ = server.child.kill();
    server.wait_exit(Duration::from_secs(5));
}

#[test]
fn tls_to_the_database_checks_the_certificate_when_asked_to() {
    let Some(url) = tenant() else { return };
    let Some(dir) = cluster_dir() else {
        eprintln!("skipped: TEST_POSTGRES_DIR unset (the cluster's certificate is there)");
        return;
    };
    let with = |extra: &str| {
        TestServer::builder()
            .settings(|s| s.database.url = Some(DatabaseUrl::new(format!("{url}&{extra}"))))
            .try_start()
    };
    // Encrypted, checked against the cluster's own CA: starts and serves.
    let ca = dir.join("ca.crt");
    let checked = with(&format!("sslmode=verify-full&sslrootcert={}", ca.display()))
        .expect("verify-full with the cluster's CA");
    assert_eq!(checked.user_count().unwrap(), 0);
    drop(checked);
    // Encrypted without a check (libpq's require): starts.
    drop(with("sslmode=require").expect("require"));
    // A self-signed certificate is no public CA's: verify-full refuses it, naming the cause.
    let err = with("sslmode=verify-full").err().expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("PostgreSQL") && text.to_lowercase().contains("certificate"),
        "{text}"
    );
    // An unknown sslmode is a settings error, not a silent downgrade.
    let err = with("sslmode=verify-everything").err().expect("refused");
    assert!(format!("{err:#}").contains("sslmode"), "{err:#}");
}
