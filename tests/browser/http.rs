//! The page's HTTP answers: negotiation at `/`, the allowlist, content types, security headers.

use serde_json::Value;

use crate::harness::{spawn_app, spawn_with};

/// What Chromium sends when it navigates to a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
                              image/avif,image/webp,image/apng,*/*;q=0.8";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

fn assert_protected(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(h["content-security-policy"], CSP, "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
}

#[tokio::test]
async fn the_page_and_its_files_carry_their_types_and_security_headers() {
    let app = spawn_app();
    for (path, accept, content_type) in [
        ("/", Some(BROWSER_ACCEPT), "text/html; charset=utf-8"),
        ("/signin", None, "text/html; charset=utf-8"),
        ("/signin", Some(BROWSER_ACCEPT), "text/html; charset=utf-8"),
        ("/signin/app.js", None, "text/javascript; charset=utf-8"),
        ("/signin/style.css", None, "text/css; charset=utf-8"),
        ("/signin/icon.svg", None, "image/svg+xml"),
        (
            "/signin/config.json",
            None,
            "application/json; charset=utf-8",
        ),
    ] {
        let res = app.get(path, accept).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], content_type, "{path}");
        assert_protected(&res, path);
        assert!(!res.bytes().await.unwrap().is_empty(), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_browser_at_the_root_gets_the_page_and_api_clients_keep_the_version() {
    let app = spawn_app();
    let res = app.get("/", Some(BROWSER_ACCEPT)).await;
    let vary = res.headers()["vary"].to_str().unwrap().to_owned();
    assert!(vary.contains("Accept"), "{vary}");
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<form id="signin-form""#), "{html}");

    // No Accept (the CLI), curl's */*, the SDK's axios header, plain JSON.
    for accept in [
        None,
        Some("*/*"),
        Some("application/json, text/plain, */*"),
        Some("application/json"),
    ] {
        let res = app.get("/", accept).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"],
            "application/json; charset=utf-8",
            "{accept:?}"
        );
        let vary = res.headers()["vary"].to_str().unwrap().to_owned();
        assert!(vary.contains("Accept"), "{vary}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"version": "6.3.0"}), "{accept:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn only_the_pages_own_files_are_served() {
    let app = spawn_app();
    for path in [
        "/signin/",
        "/signin/index.html",
        "/signin/app.js.map",
        "/signin/%2e%2e/Cargo.toml",
        "/signin/..%2fCargo.toml",
        "/signin/config.json/x",
        "/static/app.js",
        "/app.js",
        "/index.html",
    ] {
        let res = app.get(path, Some(BROWSER_ACCEPT)).await;
        assert_eq!(res.status(), 404, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_page_routes_answer_head_and_refuse_other_methods() {
    let app = spawn_app();
    for path in ["/signin", "/signin/app.js", "/signin/config.json"] {
        let res = app
            .client
            .head(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
        assert_protected(&res, path);

        let res = app
            .client
            .post(format!("{}{path}", app.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("login=a&password=b")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "POST {path}");
        assert_eq!(res.headers()["allow"], "GET, HEAD", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_page_config_says_whether_anyone_may_create_an_account() {
    let app = spawn_app();
    let body: Value = app
        .get("/signin/config.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"signupOpen": true, "version": "6.3.0"})
    );
    app.stop().await;

    let app = spawn_with(|s| {
        s.tenant.api_user_create_scope = vec!["admin".into()];
        s.tenant.version = "6.5.1".into();
    });
    let body: Value = app
        .get("/signin/config.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"signupOpen": false, "version": "6.5.1"})
    );
    app.stop().await;
}

/// The CSP would block them anyway; this keeps the page honest offline too.
#[test]
fn the_page_has_no_inline_code_and_loads_nothing_from_another_host() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<style"), "inline style element");
    assert!(!lower.contains(" style="), "inline style attribute");
    assert!(!lower.contains("<script>"), "inline script");
    assert_eq!(
        lower.matches("<script").count(),
        lower.matches("<script src=\"/signin/").count(),
        "every script is one of the page's own files"
    );
    for attr in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " oninput=",
        "javascript:",
    ] {
        assert!(!lower.contains(attr), "{attr}");
    }
    for file in ["index.html", "app.js", "style.css", "icon.svg"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for needle in ["http://", "https://", "@import", "url("] {
            let allowed = file == "icon.svg"
                && needle == "http://"
                && text.matches(needle).count() == 1
                && text.contains("xmlns=\"http://www.w3.org/2000/svg\"");
            assert!(
                allowed || !text.contains(needle),
                "{file} contains {needle}"
            );
        }
    }
}
