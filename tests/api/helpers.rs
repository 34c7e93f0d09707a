//! Starting the real server for a test, and small HTTP helpers.

use actix_web::web;
use appmixer_auth::settings::{Secret, Settings};
use appmixer_auth::state::AppState;
use appmixer_auth::testing::TestServer;
use base64::Engine;
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub dir: TempDir,
    pub server: TestServer,
}

/// Settings for a test: port 0, a database in a fresh temporary directory, bcrypt cost 4 and
/// a random secret.
pub fn test_settings(dir: &TempDir) -> Settings {
    let mut s = Settings::default();
    s.server.port = 0;
    s.server.workers = 2;
    s.database.path = dir.path().join("test.db").to_string_lossy().into_owned();
    // The suite's second run, on PostgreSQL: a schema of this test's own there instead.
    // Kept in the directory, so a test that restarts with the same directory finds its data.
    let kept = dir.path().join("postgres-url");
    s.database.url = match std::fs::read_to_string(&kept) {
        Ok(url) => Some(url),
        Err(_) => appmixer_auth::testing::fresh_postgres_url().inspect(|url| {
            std::fs::write(&kept, url).expect("keep the tenant's URL");
        }),
    }
    .map(appmixer_auth::settings::DatabaseUrl::new);
    s.auth.bcrypt_cost = 4;
    // Many tests fail sign-ins on purpose from one address; the limiter's own tests turn it on.
    s.auth.max_failed_attempts = 0;
    let secret: [u8; 24] = rand::random();
    s.auth.jwt_secret = Some(Secret::new(hex(&secret)));
    s
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&dir);
    change(&mut settings);
    start(settings, dir)
}

/// Starts a server with exactly these settings (through the library's own test fixture,
/// `appmixer_auth::testing::TestServer`); `dir` is kept alive with it.
pub fn start(settings: Settings, dir: TempDir) -> TestApp {
    let server = TestServer::builder().settings(|s| *s = settings).start();
    TestApp {
        url: server.url().to_owned(),
        state: server.state().clone(),
        server,
        client: appmixer_auth::testing::http_client_builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client"),
        dir,
    }
}

impl TestApp {
    /// The configured signing secret (every test server has one).
    pub fn secret(&self) -> String {
        self.state
            .settings
            .auth
            .jwt_secret
            .as_ref()
            .expect("a configured secret")
            .expose()
            .to_owned()
    }

    /// Stops the server (dropping the fixture stops it and waits) and hands back its directory.
    pub async fn stop(self) -> TempDir {
        let TestApp {
            client,
            server,
            dir,
            state,
            ..
        } = self;
        drop(client);
        drop(state);
        tokio::task::spawn_blocking(move || drop(server))
            .await
            .expect("server stops");
        dir
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_json(
            "/user",
            &json!({"username": username, "email": email, "password": password}),
        )
        .await
    }

    /// Creates a user and returns `(id, token)`.
    pub async fn new_user(&self, username: &str, password: &str) -> (String, String) {
        let res = self
            .create_user(username, &email_for(username), password)
            .await;
        assert_eq!(res.status(), 200, "creating {username}");
        let body: Value = res.json().await.expect("json");
        (
            body["user"]["id"].as_str().expect("id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Signs in by username (200 asserted) and returns the token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let res = self
            .sign_in(&json!({"username": username, "password": password}))
            .await;
        assert_eq!(res.status(), 200, "sign-in of {username}");
        let body: Value = res.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn sign_in(&self, body: &Value) -> reqwest::Response {
        self.post_json("/user/auth", body).await
    }

    /// A sign-in as if through a proxy that names the client in `X-Forwarded-For` (heeded
    /// only when the server trusts 127.0.0.0/8 as a proxy).
    pub async fn sign_in_from(&self, forwarded_for: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/user/auth", self.url))
            .header("x-forwarded-for", forwarded_for)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

pub fn email_for(username: &str) -> String {
    if username.contains('@') {
        username.to_owned()
    } else {
        format!("{username}@example.com")
    }
}

/// Reads a response that must be a Boom error with this status; returns its body.
pub async fn boom(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("application/json"), "content type {ct}");
    let body: Value = res.json().await.expect("json body");
    assert_eq!(body["statusCode"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    body
}

/// The payload of a JWT, decoded without verifying.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

pub fn header(token: &str) -> Value {
    let part = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json header")
}

/// True (and says so) when the suite runs on PostgreSQL: for tests of what only SQLite has.
pub fn skip_on_postgres(what: &str) -> bool {
    if appmixer_auth::testing::postgres_under_test().is_none() {
        return false;
    }
    eprintln!("skipped on PostgreSQL: {what}");
    true
}
