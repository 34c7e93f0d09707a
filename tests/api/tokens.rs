//! Tokens that must not get in: every forgery and malformation is 401.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, boom, spawn_app};

/// A token with any header and payload, signed HS256 with `key`.
fn forge(header: &Value, payload: &Value, key: &[u8]) -> String {
    let signing = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signing.as_bytes());
    format!("{signing}.{}", B64.encode(mac.finalize().into_bytes()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let res = app.get_with_token("/user", token).await;
    let body = boom(res, 401).await;
    assert!(
        body["message"] == "Invalid JWT: key or signature is invalid"
            || body["message"] == "Token expired",
        "{why}: {body}"
    );
}

#[tokio::test]
async fn a_correctly_forged_token_with_the_real_secret_is_accepted() {
    // The control case: the forging helper is right, so the refusals below are meaningful.
    let app = spawn_app().await;
    let (id, _) = app.new_user("uma", "secret-1").await;
    let t = forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"id": id, "scope": ["user"], "iat": now(), "exp": now() + 60}),
        app.secret().as_bytes(),
    );
    assert_eq!(app.get_with_token("/user", &t).await.status(), 200);
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_401() {
    let app = spawn_app().await;
    let (id, good) = app.new_user("vera", "secret-1").await;
    let key = app.secret();
    let claims = json!({"id": id, "scope": ["admin"], "iat": now(), "exp": now() + 60});
    let hs = json!({"alg": "HS256", "typ": "JWT"});

    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    assert_refused(&app, &none, "alg none").await;
    // Other algorithms, even signed with the secret.
    for alg in ["HS512", "RS256", "HS384"] {
        let t = forge(&json!({"alg": alg, "typ": "JWT"}), &claims, key.as_bytes());
        assert_refused(&app, &t, alg).await;
    }
    // Wrong secret.
    assert_refused(
        &app,
        &forge(&hs, &claims, b"not-the-secret-at-all"),
        "wrong secret",
    )
    .await;
    // Tampered payload under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    assert_refused(&app, &tampered, "tampered payload").await;
    // Tampered header.
    let tampered = format!(
        "{}.{}.{}",
        B64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": "x"}).to_string()),
        parts[1],
        parts[2]
    );
    assert_refused(&app, &tampered, "tampered header").await;
    // Not three parts, bad base64, non-JSON payload.
    for t in [
        "abc".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{}.!!!.{}", parts[0], parts[2]),
    ] {
        assert_refused(&app, &t, &t).await;
    }
    let signing = format!("{}.{}", B64.encode(hs.to_string()), B64.encode("not json"));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(signing.as_bytes());
    let t = format!("{signing}.{}", B64.encode(mac.finalize().into_bytes()));
    assert_refused(&app, &t, "non-JSON payload").await;
    // Missing id, missing exp (correctly signed).
    let no_id = forge(
        &hs,
        &json!({"scope": ["user"], "iat": now(), "exp": now() + 60}),
        key.as_bytes(),
    );
    assert_refused(&app, &no_id, "no id").await;
    let no_exp = forge(
        &hs,
        &json!({"id": id, "scope": ["user"], "iat": now()}),
        key.as_bytes(),
    );
    assert_refused(&app, &no_exp, "no exp").await;
    // Not yet valid.
    let future = forge(
        &hs,
        &json!({"id": id, "scope": ["user"], "iat": now(), "nbf": now() + 3600, "exp": now() + 7200}),
        key.as_bytes(),
    );
    let body = boom(app.get_with_token("/user", &future).await, 401).await;
    assert_eq!(body["message"], "Token not yet valid");
    // Issued in the future (a server whose clock runs ahead): the same.
    let ahead = forge(
        &hs,
        &json!({"id": id, "scope": ["user"], "iat": now() + 3600, "exp": now() + 7200}),
        key.as_bytes(),
    );
    let body = boom(app.get_with_token("/user", &ahead).await, 401).await;
    assert_eq!(body["message"], "Token not yet valid");
    // Only a genuine token is told apart: with another key it is just invalid.
    let other_key = forge(
        &hs,
        &json!({"id": id, "scope": ["user"], "iat": now(), "nbf": now() + 3600, "exp": now() + 7200}),
        b"another-secret-of-enough-length!",
    );
    let body = boom(app.get_with_token("/user", &other_key).await, 401).await;
    assert_eq!(body["message"], "Invalid JWT: key or signature is invalid");
    // Expired, correctly signed.
    let old = forge(
        &hs,
        &json!({"id": id, "scope": ["user"], "iat": now() - 7200, "exp": now() - 3600}),
        key.as_bytes(),
    );
    let res = app.get_with_token("/user", &old).await;
    assert_eq!(boom(res, 401).await["message"], "Token expired");
    // Over 8 KiB, even if correctly signed.
    let huge = forge(
        &hs,
        &json!({"id": id, "scope": ["user"], "iat": now(), "exp": now() + 60, "pad": "p".repeat(9000)}),
        key.as_bytes(),
    );
    assert_refused(&app, &huge, "over 8 KiB").await;
}
