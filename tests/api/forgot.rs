//! Forgot password: a code for a known address, delivered by webhook, by mail (a real SMTP
//! server) or into the fixture API's inbox; the same answer for an unknown one; the reset.

use std::time::Duration;

use serde_json::{Value, json};

use crate::admin::{admin_fixture, send};
use crate::helpers::{TestApp, boom, spawn_with};
use crate::receiver::{Answer, Receiver};
use crate::smtp::SmtpSink;

async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/user/forgot-password", &json!({ "email": email }))
        .await
}

async fn reset(app: &TestApp, code: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/user/forgot-password/reset",
        &json!({ "code": code, "password": password }),
    )
    .await
}

/// The code of the newest message about `email` in the fixture inbox.
async fn inbox_code(app: &TestApp, email: &str) -> Option<String> {
    let list: Value = app
        .get(&format!("/_fixtures/messages?to={email}"))
        .await
        .json()
        .await
        .unwrap();
    list.as_array()?
        .iter()
        .rev()
        .find_map(|m| m["body"]["code"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_answer_and_only_the_known_one_a_code() {
    let hook = Receiver::start(Answer::Statuses(vec![])).await;
    let url = hook.url.clone();
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.webhooks.user_forgot_password = Some(url);
    })
    .await;
    let (id, _) = app.new_user("ann", "secret-1").await;
    for email in ["ann@example.com", "nobody@example.com", "ANN@example.com"] {
        let res = forgot(&app, email).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap(), json!({}));
    }
    let got = hook.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "two requests for ann, none for nobody");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["userId"], id.as_str());
    let code = body["code"].as_str().unwrap();
    assert!(code.len() >= 43, "at least 256 bits: {code}");
    assert!(
        body["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/signin?code={code}"))
    );
    assert!(body["created"].as_str().unwrap().ends_with('Z'));
    // The fixture inbox has them too, newest last; nothing about the unknown address.
    let nobody: Value = app
        .get("/_fixtures/messages?to=nobody@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nobody, json!([]));
    // A new request replaced the first code. Deliveries may arrive in either order; the
    // fixture inbox keeps the order of the requests.
    let second = inbox_code(&app, "ann@example.com")
        .await
        .expect("the newest code");
    let codes: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(codes.contains(&second), "{codes:?}");
    let first = codes
        .iter()
        .find(|c| **c != second)
        .expect("two codes")
        .clone();
    assert_eq!(
        boom(reset(&app, &first, "new-pass-1").await, 400).await["message"],
        "Invalid or expired code"
    );
    assert_eq!(reset(&app, &second, "new-pass-1").await.status(), 200);
}

#[tokio::test]
async fn a_code_works_once_for_its_user_only_and_not_after_its_hour() {
    let app = spawn_with(|s| s.fixtures.api = true).await;
    let (_, old_token) = app.new_user("bea", "secret-1").await;
    app.new_user("cid", "secret-1").await;
    forgot(&app, "bea@example.com").await;
    let code = inbox_code(&app, "bea@example.com")
        .await
        .expect("a code for bea");
    assert!(inbox_code(&app, "cid@example.com").await.is_none());
    // Password rules as at creation.
    boom(reset(&app, &code, "abc").await, 400).await;
    assert_eq!(reset(&app, &code, "fresh-pass-1").await.status(), 200);
    // bea signs in with it; cid is untouched; the earlier token is refused.
    let res = app
        .sign_in(&json!({"username": "bea", "password": "fresh-pass-1"}))
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .sign_in(&json!({"username": "cid", "password": "secret-1"}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_with_token("/user", &old_token).await.status(), 401);
    // Not twice.
    boom(reset(&app, &code, "other-pass-1").await, 400).await;

    // Not after its hour (the fixture clock).
    forgot(&app, "bea@example.com").await;
    let code = inbox_code(&app, "bea@example.com").await.unwrap();
    let res = app
        .post_json("/_fixtures/clock", &json!({"advance": "61m"}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        boom(reset(&app, &code, "late-pass-1").await, 400).await["message"],
        "Invalid or expired code"
    );
    app.post_json("/_fixtures/clock", &json!({"reset": true}))
        .await;
    // Made-up and malformed codes.
    boom(reset(&app, "not-a-code", "late-pass-1").await, 400).await;
    boom(reset(&app, &"x".repeat(300), "late-pass-1").await, 400).await;
}

#[tokio::test]
async fn the_mail_goes_through_a_real_smtp_server_with_the_configured_subject_and_body() {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_with(|s| {
        s.users = vec![admin_fixture()];
        s.smtp.host = Some("127.0.0.1".into());
        s.smtp.port = port;
        s.smtp.tls = appmixer_auth::settings::SmtpTls::None;
        s.smtp.from = Some("Auth <no-reply@example.com>".into());
    })
    .await;
    let admin = app.token("root", "root-password").await;
    for (key, value) in [
        ("FORGOT_PASSWORD_MAIL_SUBJECT", "Your reset"),
        (
            "FORGOT_PASSWORD_MAIL_BODY",
            "<p>Go to {{link}} or type {{code}}</p>",
        ),
        ("APPMIXER_FE_URL", "https://app.example.com"),
        ("RESET_PASSWORD_FE_URL_SUFFIX", "reset"),
    ] {
        let res = send(
            &app,
            reqwest::Method::POST,
            "/config",
            Some(&admin),
            Some(json!({"key": key, "value": value})),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    app.new_user("dee", "secret-1").await;
    assert_eq!(forgot(&app, "dee@example.com").await.status(), 200);
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, ["<dee@example.com>"]);
    assert_eq!(mail.from, "<no-reply@example.com>");
    assert!(mail.data.contains("Subject: Your reset"), "{}", mail.data);
    // The HTML part as sent: quoted-printable (soft line breaks, `=3D`) or plain.
    let text = mail
        .data
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let link = "https://app.example.com/reset?code=";
    let at = text
        .find(link)
        .unwrap_or_else(|| panic!("the link in {text}"));
    let code: String = text[at + link.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(code.len() >= 43, "{code}");
    assert!(text.contains(&format!("type {code}")), "{text}");
    assert_eq!(reset(&app, &code, "mailed-pass-1").await.status(), 200);
}

/// A request from a client `ip` (the test server trusts 127.0.0.1 as a proxy).
async fn post_from(app: &TestApp, ip: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.url))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_are_limited_per_client_and_per_address_and_a_reset_clears_failed_sign_ins() {
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.auth.max_failed_attempts = 3;
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    app.new_user("eve", "secret-1").await;
    let ask = json!({"email": "eve@example.com"});
    // Per address asked about: three requests from three clients, then 429 for a fourth.
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let res = post_from(&app, ip, "/user/forgot-password", ask.clone()).await;
        assert_eq!(res.status(), 200);
    }
    // A fourth is answered alike but sends nothing (strangers cannot lock the owner out).
    let res = post_from(&app, "10.0.0.4", "/user/forgot-password", ask.clone()).await;
    assert_eq!(res.status(), 200);
    let inbox: Value = app
        .get("/_fixtures/messages?to=eve@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 3);
    // Per client: the fourth request from one client is 429.
    app.post_json("/_fixtures/limits/reset", &json!({})).await;
    for n in 0..4 {
        let email = format!("x{n}@example.com");
        let res = post_from(
            &app,
            "10.0.9.9",
            "/user/forgot-password",
            json!({"email": email}),
        )
        .await;
        if n < 3 {
            assert_eq!(res.status(), 200);
        } else {
            assert_eq!(res.status(), 429);
            assert!(res.headers().get("retry-after").is_some());
        }
    }
    app.post_json("/_fixtures/limits/reset", &json!({})).await;

    // Two failed sign-ins against eve, from two clients.
    let wrong = json!({"username": "eve", "password": "wrong-1"});
    for ip in ["10.0.1.1", "10.0.1.2"] {
        assert_eq!(
            post_from(&app, ip, "/user/auth", wrong.clone())
                .await
                .status(),
            403
        );
    }
    let res = post_from(&app, "10.0.2.1", "/user/forgot-password", ask.clone()).await;
    assert_eq!(res.status(), 200);
    let code = inbox_code(&app, "eve@example.com").await.unwrap();
    let res = post_from(
        &app,
        "10.0.2.1",
        "/user/forgot-password/reset",
        json!({"code": code, "password": "new-pass-9"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    // The reset cleared eve's count: two more failures are 403, not 429, and she signs in.
    for ip in ["10.0.3.1", "10.0.3.2"] {
        assert_eq!(
            post_from(&app, ip, "/user/auth", wrong.clone())
                .await
                .status(),
            403
        );
    }
    let right = json!({"username": "eve", "password": "new-pass-9"});
    assert_eq!(
        post_from(&app, "10.0.3.3", "/user/auth", right)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn strangers_cannot_lock_an_owner_out_of_resetting_or_read_the_inbox_through_a_proxy() {
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.auth.max_failed_attempts = 2;
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    app.new_user("joy", "secret-1").await;
    let ask = json!({"email": "joy@example.com"});
    for ip in ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"] {
        // Past the limit for the address, still 200: the same answer, nothing sent.
        let res = post_from(&app, ip, "/user/forgot-password", ask.clone()).await;
        assert_eq!(res.status(), 200);
    }
    let inbox: Value = app
        .get("/_fixtures/messages?to=joy@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 2, "two sent, two not");
    // The fixture API refuses what a proxy on this machine forwarded.
    let res = app
        .client
        .get(format!("{}/_fixtures/messages", app.url))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
