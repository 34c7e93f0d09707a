//! Regression tests for what an adversarial review broke: each fails on the code it found.

use std::io::Write as _;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::helpers::{TestApp, boom, spawn_with};

/// A server that locks after three failures, behind a trusted proxy so each request can come
/// from its own address when a test wants that.
async fn limited(max: u32) -> TestApp {
    spawn_with(|s| {
        s.auth.max_failed_attempts = max;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await
}

#[tokio::test]
async fn naming_a_victim_beside_ones_own_account_never_bypasses_the_limit() {
    // {"username": VICTIM, "email": OWN_EMAIL, "password": GUESS} with GUESS the attacker's own
    // password: it signs the attacker in, and used to take back the victim's failure. Now each
    // such try is a counted guess at the victim, who locks after `max` of them.
    let app = limited(3).await;
    app.create_user("victim", "victim@example.com", "victim-pass")
        .await;
    app.create_user("mallory", "mallory@example.com", "guess-0")
        .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        // A different address each time: only the victim's own count can stop this.
        let res = app
            .sign_in_from(
                &format!("198.51.100.{i}"),
                &json!({"username": "victim", "email": "mallory@example.com", "password": "guess-0"}),
            )
            .await;
        let status = res.status().as_u16();
        if status == 200 {
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                body["user"]["username"], "mallory",
                "never the victim's token"
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    // The right password for the victim is refused too while locked: no bcrypt, no token.
    let res = app
        .sign_in_from(
            "198.51.100.99",
            &json!({"username": "victim", "password": "victim-pass"}),
        )
        .await;
    boom(res, 429).await;
}

#[tokio::test]
async fn spraying_many_accounts_beside_ones_own_is_stopped_by_the_address_count() {
    // 90 sign-ins over 30 accounts, each beside the attacker's own: every one used to answer
    // 200. From one address, the failed checks at the victims now add up.
    let app = limited(3).await;
    app.create_user("mallory", "mallory@example.com", "own-pass")
        .await;
    for i in 0..5 {
        app.create_user(&format!("v{i}"), &format!("v{i}@example.com"), "their-pass")
            .await;
    }
    let mut statuses = Vec::new();
    for i in 0..5 {
        let res = app
            .sign_in(&json!({"username": format!("v{i}"), "email": "mallory@example.com", "password": "own-pass"}))
            .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn the_sign_in_page_way_of_sending_both_fields_never_locks_a_person_out() {
    // The page sends what was typed as both username and email. Usually no user has it as a
    // username: signing in often must not count that name as failing.
    let app = limited(3).await;
    app.create_user("pat", "pat@example.com", "pat-pass").await;
    for _ in 0..8 {
        let res = app
            .sign_in(&json!({"username": "pat@example.com", "email": "pat@example.com", "password": "pat-pass"}))
            .await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn change_password_guesses_are_limited_like_sign_ins() {
    let app = limited(3).await;
    let (_, token) = app.new_user("tokyo", "right-pass").await;
    let change = |old: &'static str| {
        app.client
            .post(format!("{}/user/change-password", app.url))
            .bearer_auth(&token)
            .json(&json!({"oldPassword": old, "newPassword": "new-pass-1"}))
            .send()
    };
    for _ in 0..3 {
        boom(change("guess").await.unwrap(), 403).await;
    }
    // Locked: even the right one waits now, and no bcrypt work is done for it.
    let before = app.state.hasher.verifications();
    let res = change("right-pass").await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    boom(res, 429).await;
    assert_eq!(app.state.hasher.verifications(), before);
}

#[tokio::test]
async fn taken_username_answers_count_against_the_address() {
    let app = spawn_with(|s| s.auth.max_failed_attempts = 3).await;
    app.create_user("taken", "taken@example.com", "pass-word")
        .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let res = app
            .post_json(
                "/user",
                &json!({"username": "taken", "email": format!("x{i}@example.com"), "password": "pass-word"}),
            )
            .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [409, 409, 409, 429, 429]);
}

#[tokio::test]
async fn overlong_sign_in_names_are_refused_before_the_limiter() {
    let app = spawn_with(|s| s.auth.max_failed_attempts = 3).await;
    let name = "n".repeat(60_000);
    let res = app
        .sign_in(&json!({"username": name, "password": "pass-word"}))
        .await;
    let body = boom(res, 400).await;
    assert!(body["message"].as_str().unwrap().contains("254"), "{body}");
    assert_eq!(
        app.state.limiter.counted().await.unwrap(),
        (0, 0),
        "nothing remembered"
    );
}

/// A gzip body that inflates to `inflated` bytes of spaces inside a JSON string.
fn gzip_bomb(inflated: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(b"{\"username\": \"").unwrap();
    let block = vec![b' '; 1 << 20];
    let mut left = inflated;
    while left > 0 {
        let n = left.min(block.len());
        gz.write_all(&block[..n]).unwrap();
        left -= n;
    }
    gz.write_all(b"\"}").unwrap();
    gz.finish().unwrap()
}

/// The most resident memory the process has had (large buffers are given back to the system
/// as soon as they are freed, so the peak is what shows a burst).
fn peak_resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_with_413_and_memory_stays_bounded() {
    // 50 concurrent bodies of about 60 KB that inflate to 62 MiB each: they used to be
    // inflated a whole network chunk at a time, taking the server to gigabytes.
    let dir = tempfile::tempdir().unwrap();
    let server = crate::process::launch({
        let mut cmd = crate::process::command_in(dir.path(), &["--port", "0", "--db", ":memory:"]);
        cmd.env("APPMIXER_SERVER__WORKERS", "2");
        cmd
    });
    let bomb = gzip_bomb(62 << 20);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let client = appmixer_auth::testing::http_client();
    let before = peak_resident_kib(server.child.id());
    let sends: Vec<_> = (0..50)
        .map(|_| {
            let send = client
                .post(format!("{}/user/auth", server.url))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(bomb.clone())
                .timeout(Duration::from_secs(30))
                .send();
            tokio::spawn(send)
        })
        .collect();
    for send in sends {
        let res = send.await.unwrap().unwrap();
        assert_eq!(res.status(), 413);
    }
    let after = peak_resident_kib(server.child.id());
    assert!(
        after < before + 64 * 1024,
        "peak resident memory grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn a_small_gzip_body_is_still_read() {
    let app = spawn_with(|_| {}).await;
    app.create_user("zip", "zip@example.com", "zip-pass-1")
        .await;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(br#"{"username": "zip", "password": "zip-pass-1"}"#)
        .unwrap();
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    boom(res, 415).await;
}

/// A fixture-API request with the given extra headers.
async fn fixture_post(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> reqwest::Response {
    let mut req = app.client.post(format!("{}{path}", app.url)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_fixture_api_cannot_be_driven_by_a_web_page() {
    let app = spawn_with(|s| s.fixtures.api = true).await;
    let json = ("content-type", "application/json");
    // CORS "simple" requests, which a page on any origin can send without a preflight.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let res = fixture_post(&app, "/_fixtures/reset", &[("content-type", ct)], "{}").await;
        boom(res, 415).await;
    }
    let res = fixture_post(&app, "/_fixtures/reset", &[], "").await;
    boom(res, 415).await;
    // A page on another origin, even with the right content type (after a preflight).
    let res = fixture_post(
        &app,
        "/_fixtures/users",
        &[json, ("origin", "https://evil.example")],
        r#"[{"username": "x", "email": "x@example.com", "password": "pass-1", "scope": ["admin"]}]"#,
    )
    .await;
    boom(res, 403).await;
    // DNS rebinding: the page's own name now points at 127.0.0.1.
    let res = fixture_post(
        &app,
        "/_fixtures/reset",
        &[json, ("host", "rebind.evil.example")],
        "{}",
    )
    .await;
    boom(res, 403).await;
    // Nothing was created by any of that.
    let res = app
        .sign_in(&json!({"username": "x", "password": "pass-1"}))
        .await;
    boom(res, 403).await;
    // A test suite on this machine, from a local page or none, is served.
    for headers in [
        vec![json],
        vec![json, ("origin", "http://localhost:5173")],
        vec![json, ("host", "localhost")],
    ] {
        let res = fixture_post(&app, "/_fixtures/reset", &headers, "{}").await;
        assert_eq!(res.status(), 200, "{headers:?}");
    }
}

#[tokio::test]
async fn look_alike_names_are_refused_and_emails_are_one_account_whatever_their_case() {
    let app = spawn_with(|_| {}).await;
    app.create_user("root", "root@example.com", "pass-word")
        .await;
    for name in [
        "ro\u{200B}ot",  // zero-width space
        "\u{FEFF}root",  // byte-order mark
        "ro\u{034F}ot",  // combining grapheme joiner
        "\u{202E}toor",  // right-to-left override
        "root\u{2028}x", // line separator
        "ｒｏｏｔ",      // full-width
        "ro\u{2060}ot",  // word joiner
    ] {
        let res = app
            .post_json(
                "/user",
                &json!({"username": name, "email": "other@example.com", "password": "pass-word"}),
            )
            .await;
        let body = boom(res, 400).await;
        assert_eq!(body["validation"]["keys"], json!(["username"]), "{name:?}");
    }
    for email in ["ROOT@example.com", "Root@Example.com"] {
        let res = app
            .post_json(
                "/user",
                &json!({"username": format!("u-{email}"), "email": email, "password": "pass-word"}),
            )
            .await;
        assert_eq!(boom(res, 409).await["message"], "Email already taken");
    }
    let res = app
        .post_json(
            "/user",
            &json!({"username": "rootish", "email": "ro\u{200D}ot@example.com", "password": "pass-word"}),
        )
        .await;
    boom(res, 400).await;
}

#[tokio::test]
async fn stored_texts_refuse_control_and_invisible_characters() {
    let (app, admin) = crate::admin::admin_app().await;
    let (id, _) = app.new_user("plain", "pass-word").await;
    for body in [
        json!({"plan": "free\u{1b}[2J"}),
        json!({"vendor": "acme\nroot  yes"}),
        json!({"scope": ["user", "ad\u{202E}min"]}),
        json!({"plan": "\u{200B}"}),
    ] {
        let res = app
            .client
            .put(format!("{}/users/{id}", app.url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        boom(res, 400).await;
    }
}

#[tokio::test]
async fn token_times_that_are_not_whole_seconds_in_range_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hmac::{Hmac, Mac};
    let app = spawn_with(|_| {}).await;
    let (id, _) = app.new_user("timmy", "pass-word").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |payload: Value| {
        let signing = format!(
            "{}.{}",
            B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
            B64.encode(payload.to_string())
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app.secret().as_bytes()).unwrap();
        mac.update(signing.as_bytes());
        format!("{signing}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let good = sign(json!({"id": id, "scope": ["user"], "iat": now, "exp": now + 60}));
    assert_eq!(app.get_with_token("/user", &good).await.status(), 200);
    for exp in [
        json!(1u64 << 33),
        json!((now + 60) as f64 + 0.5),
        json!(u64::MAX),
    ] {
        let t = sign(json!({"id": id, "scope": ["user"], "iat": now, "exp": exp}));
        boom(app.get_with_token("/user", &t).await, 401).await;
    }
}

#[tokio::test]
async fn a_thousand_filters_are_a_400_not_a_500() {
    let (app, admin) = crate::admin::admin_app().await;
    let query: Vec<String> = (0..999).map(|i| format!("filter=plan:p{i}")).collect();
    let res = app
        .client
        .get(format!("{}/users?{}", app.url, query.join("&")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    boom(res, 400).await;
}

#[tokio::test]
async fn answers_say_nosniff_and_https_answers_say_hsts() {
    let app = spawn_with(|_| {}).await;
    for path in ["/", "/user", "/nowhere"] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(!res.headers().contains_key("strict-transport-security"));
    }
    let certs = tempfile::tempdir().unwrap();
    let (tls, pem) = crate::tls::write_cert(certs.path(), "h");
    let app = spawn_with(|s| s.server.tls = Some(tls)).await;
    let head = https_head(&app.url, &pem).await;
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}

/// The response head of `GET /` over TLS, lower case.
async fn https_head(url: &str, pem: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = crate::tls::connect(url, pem).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = conn.read_to_end(&mut all).await;
    let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}
