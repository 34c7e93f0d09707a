//! Bad input: every case answers a Boom body with the right status and writes nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, boom, spawn_app};

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app.client.post(format!("{}{path}", app.url)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

/// Nothing was written: the username is still free.
async fn assert_still_free(app: &TestApp, username: &str) {
    let res = app
        .sign_in(&json!({"username": username, "password": "secret-1"}))
        .await;
    boom(res, 403).await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for path in ["/user", "/user/auth"] {
        let res = post_raw(
            &app,
            path,
            Some("application/json"),
            b"{\"username\": ".to_vec(),
        )
        .await;
        let body = boom(res, 400).await;
        assert_eq!(body["message"], "Invalid request payload JSON format");
    }
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400() {
    let app = spawn_app().await;
    for raw in [&b"[1,2]"[..], b"\"text\"", b"42", b"null"] {
        let res = post_raw(&app, "/user", Some("application/json"), raw.to_vec()).await;
        boom(res, 400).await;
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_415() {
    let app = spawn_app().await;
    let res = post_raw(
        &app,
        "/user/auth",
        Some("text/plain"),
        b"username=a".to_vec(),
    )
    .await;
    boom(res, 415).await;
    let res = post_raw(&app, "/user", Some("application/xml"), b"<user/>".to_vec()).await;
    boom(res, 415).await;
}

#[tokio::test]
async fn a_json_body_without_content_type_or_labelled_as_a_form_is_read_as_json() {
    let app = spawn_app().await;
    let body = br#"{"username": "nina", "email": "nina@example.com", "password": "secret-1"}"#;
    let res = post_raw(&app, "/user", None, body.to_vec()).await;
    assert_eq!(res.status(), 200);
    let res = post_raw(
        &app,
        "/user/auth",
        Some("application/x-www-form-urlencoded"),
        br#"{"username": "nina", "password": "secret-1"}"#.to_vec(),
    )
    .await;
    assert_eq!(res.status(), 200);
    // A real form works too, as hapi parses forms.
    let res = post_raw(
        &app,
        "/user/auth",
        Some("application/x-www-form-urlencoded"),
        b"username=nina&password=secret-1".to_vec(),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn missing_empty_and_non_string_fields_are_400_naming_the_field() {
    let app = spawn_app().await;
    let full = json!({"username": "olga", "email": "olga@example.com", "password": "secret-1"});
    for field in ["username", "email", "password"] {
        let mut missing = full.clone();
        missing.as_object_mut().unwrap().remove(field);
        let mut empty = full.clone();
        empty[field] = json!("");
        let mut number = full.clone();
        number[field] = json!(12345);
        let mut null = full.clone();
        null[field] = Value::Null;
        for (case, body) in [
            ("missing", missing),
            ("empty", empty),
            ("number", number),
            ("null", null),
        ] {
            let res = app.post_json("/user", &body).await;
            let out = boom(res, 400).await;
            assert_eq!(
                out["validation"]["keys"],
                json!([field]),
                "{field} {case}: {out}"
            );
            assert!(out["message"].as_str().unwrap().contains(field), "{out}");
        }
    }
    assert_still_free(&app, "olga").await;

    // Sign-in: password is required; one of username and email is required.
    let res = app.sign_in(&json!({"username": "olga"})).await;
    assert_eq!(
        boom(res, 400).await["validation"]["keys"],
        json!(["password"])
    );
    let res = app.sign_in(&json!({"password": "secret-1"})).await;
    let out = boom(res, 400).await;
    assert!(out["message"].as_str().unwrap().contains("username"));
    let res = app
        .sign_in(&json!({"username": 7, "password": "secret-1"}))
        .await;
    assert_eq!(
        boom(res, 400).await["validation"]["keys"],
        json!(["username"])
    );
    let res = post_raw(&app, "/user/auth", Some("application/json"), Vec::new()).await;
    boom(res, 400).await;
}

#[tokio::test]
async fn an_invalid_email_is_400() {
    let app = spawn_app().await;
    for email in [
        "not-an-email",
        "a@b",
        "two@@example.com",
        "sp ace@example.com",
    ] {
        let res = app.create_user("pete", email, "secret-1").await;
        let out = boom(res, 400).await;
        assert_eq!(out["validation"]["keys"], json!(["email"]), "{email}");
    }
    assert_still_free(&app, "pete").await;
}

#[tokio::test]
async fn surrounding_whitespace_is_refused_not_trimmed() {
    let app = spawn_app().await;
    let res = app
        .create_user(" quinn", "quinn@example.com", "secret-1")
        .await;
    assert_eq!(
        boom(res, 400).await["validation"]["keys"],
        json!(["username"])
    );
    let res = app
        .create_user("quinn", "quinn@example.com ", "secret-1")
        .await;
    assert_eq!(boom(res, 400).await["validation"]["keys"], json!(["email"]));
}

#[tokio::test]
async fn passwords_shorter_than_5_or_longer_than_72_bytes_are_400() {
    let app = spawn_app().await;
    let res = app.create_user("rita", "rita@example.com", "abcd").await;
    assert_eq!(
        boom(res, 400).await["validation"]["keys"],
        json!(["password"])
    );
    let res = app
        .create_user("rita", "rita@example.com", &"x".repeat(73))
        .await;
    assert_eq!(
        boom(res, 400).await["validation"]["keys"],
        json!(["password"])
    );
    // 72 bytes is the most bcrypt reads, and it is accepted whole...
    let long = "y".repeat(72);
    let res = app.create_user("rita", "rita@example.com", &long).await;
    assert_eq!(res.status(), 200);
    // ...and never truncated: a 71-byte prefix is a different password.
    let res = app
        .sign_in(&json!({"username": "rita", "password": &long[..71]}))
        .await;
    boom(res, 403).await;
    let res = app
        .sign_in(&json!({"username": "rita", "password": long}))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn metadata_must_be_an_object() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/user",
            &json!({"username": "sam", "email": "sam@example.com", "password": "secret-1", "metadata": [1]}),
        )
        .await;
    assert_eq!(
        boom(res, 400).await["validation"]["keys"],
        json!(["metadata"])
    );
    assert_still_free(&app, "sam").await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_whether_declared_or_streamed() {
    let app = spawn_app().await;
    let mut big = json!({"username": "tom", "email": "tom@example.com", "password": "secret-1"});
    big["metadata"] = json!({"blob": "z".repeat(70 * 1024)});
    let res = app.post_json("/user", &big).await;
    assert_eq!(
        res.headers()["connection"],
        "close",
        "the unread body ends the connection"
    );
    boom(res, 413).await;
    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let stream = futures_util::stream::iter(chunks);
    let res = app
        .client
        .post(format!("{}/user", app.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    boom(res, 413).await;
    assert_still_free(&app, "tom").await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_boom_json() {
    let app = spawn_app().await;
    let out = boom(app.get("/no/such/route").await, 404).await;
    assert_eq!(out["error"], "Not Found");
    let res = app
        .client
        .delete(format!("{}/user", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST");
    boom(res, 405).await;
    let res = app.get("/user/auth").await;
    boom(res, 405).await;
    let res = app
        .client
        .put(format!("{}/", app.url))
        .send()
        .await
        .unwrap();
    boom(res, 405).await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A gzip body is read as hapi reads it: decompressed; the 64 KiB limit counts what it
/// decompresses to, so a small bomb is 413, not memory.
#[tokio::test]
async fn gzip_bodies_are_decompressed_and_limited_by_their_decompressed_size() {
    let app = spawn_app().await;
    let body = json!({"username": "zip", "email": "zip@example.com", "password": "secret-1"});
    let res = app
        .client
        .post(format!("{}/user", app.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(body.to_string().as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let padded = format!(
        r#"{{"username": "bomb", "email": "bomb@example.com", "password": "secret-1", "metadata": {{"pad": "{}"}}}}"#,
        "x".repeat(1 << 20)
    );
    let packed = gzip(padded.as_bytes());
    assert!(packed.len() < 8 * 1024, "{} bytes", packed.len());
    let res = app
        .client
        .post(format!("{}/user", app.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(packed)
        .send()
        .await
        .unwrap();
    assert_eq!(boom(res, 413).await["statusCode"], 413);
    assert_still_free(&app, "bomb").await;
}
