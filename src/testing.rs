//! An in-process fixture for Rust test suites: the real server on port 0 with an in-memory
//! database and the given users, stopped when dropped.
//!
//! ```
//! use appmixer_auth::testing::TestServer;
//! use std::io::{Read, Write};
//!
//! let server = TestServer::builder()
//!     .user("alice", "alice@example.com", "alice-password")
//!     .admin("root", "root@example.com", "root-password")
//!     .start();
//!
//! // Any HTTP client works; here a bare request over a TCP socket.
//! let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
//! conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.ends_with(r#"{"version":"6.3.0"}"#));
//!
//! // Tokens for any stored user, without a sign-in round trip.
//! let token = server.token_for("alice").unwrap();
//! assert_eq!(token.split('.').count(), 3);
//! # drop(server);
//! ```

use std::net::SocketAddr;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::web;

use crate::db::{Store, users};
use crate::fixtures::FixtureUser;
use crate::settings::{Secret, Settings};
use crate::startup::Application;
use crate::state::AppState;

/// Builds a [`TestServer`]: in-memory database, port 0, bcrypt cost 4, a random secret, the
/// brute-force limit off, and the fixture API on.
pub struct TestServerBuilder {
    settings: Settings,
}

impl TestServerBuilder {
    /// Adds a fixture user with scope `["user"]`.
    pub fn user(self, username: &str, email: &str, password: &str) -> Self {
        self.fixture(FixtureUser::with_password(username, email, password))
    }

    /// Adds a fixture user with scope `["user", "admin"]`.
    pub fn admin(self, username: &str, email: &str, password: &str) -> Self {
        let mut b = self.user(username, email, password);
        if let Some(last) = b.settings.users.last_mut() {
            last.scope = Some(vec!["user".into(), "admin".into()]);
        }
        b
    }

    /// Adds any fixture user.
    pub fn fixture(mut self, user: FixtureUser) -> Self {
        self.settings.users.push(user);
        self
    }

    /// Changes any setting before start.
    pub fn settings(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// Starts the server; panics with the reason if it cannot (this is test code).
    pub fn start(self) -> TestServer {
        self.try_start().expect("appmixer-auth test server starts")
    }

    pub fn try_start(self) -> anyhow::Result<TestServer> {
        let settings = self.settings;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("appmixer-auth-test-server".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match Application::build(settings) {
                        Ok(app) => {
                            let _ = tx.send(Ok((
                                app.url(),
                                app.port(),
                                app.metrics_port(),
                                app.state(),
                                app.handle(),
                            )));
                            let _ = app.run_until_stopped().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let (url, port, metrics_port, state, handle) = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the server thread ended before starting"))??;
        Ok(TestServer {
            url,
            port,
            metrics_port,
            state,
            handle,
            thread: Some(thread),
        })
    }
}

/// The PostgreSQL server the suites run against instead of SQLite: `TEST_POSTGRES_URL`
/// (`./test.sh` runs the API and command suites a second time with it set). Every
/// [`TestServer`] then gets a schema of its own there.
pub fn postgres_under_test() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A database URL for one test's own empty tenant on [`postgres_under_test`].
pub fn fresh_postgres_url() -> Option<String> {
    let url = postgres_under_test()?;
    Some(
        crate::db::new_postgres_schema(&url)
            .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL {url}: {e:#}")),
    )
}

/// A running server; dropping it stops the server and frees its memory.
pub struct TestServer {
    url: String,
    port: u16,
    metrics_port: Option<u16>,
    state: web::Data<AppState>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn builder() -> TestServerBuilder {
        let mut s = Settings::default();
        s.server.port = 0;
        s.server.workers = 2;
        s.database.path = ":memory:".into();
        if let Some(url) = fresh_postgres_url() {
            s.database.url = Some(crate::settings::DatabaseUrl::new(url));
            s.database.pool_size = 4;
        }
        s.auth.bcrypt_cost = 4;
        s.auth.max_failed_attempts = 0;
        let secret: [u8; 32] = rand::random();
        s.auth.jwt_secret = Some(Secret::new(
            secret
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        ));
        s.fixtures.api = true;
        TestServerBuilder { settings: s }
    }

    /// A server with no users.
    pub fn start() -> TestServer {
        Self::builder().start()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's shared state (settings, pool, token service, …).
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// A valid token for a stored user, found by username, email or id.
    pub fn token_for(&self, who: &str) -> anyhow::Result<String> {
        let store = &self.state.store;
        let user = Store::off_runtime(|| store.read_blocking(|ops| ops.find_by_any(who)))??
            .ok_or_else(|| anyhow::anyhow!("no user {who:?}"))?;
        self.state
            .tokens
            .issue_since(user.id.as_str(), &user.scope, user.tokens_since)
    }

    /// How many users are stored.
    pub fn user_count(&self) -> anyhow::Result<u64> {
        let store = &self.state.store;
        Ok(Store::off_runtime(|| {
            store.read_blocking(|ops| ops.count_users(&users::ListQuery::default()))
        })??)
    }

    /// The store, for assertions a test cannot make over HTTP.
    pub fn store(&self) -> &Store {
        &self.state.store
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The stop command is sent at once; joining waits for the server to finish.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP client builder for tests. The process's TLS provider is installed first: the
/// server's webhook client is built on reqwest without a provider of its own, and a test
/// binary links that same reqwest.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    crate::tls::install_provider();
    reqwest::Client::builder()
}

/// [`http_client_builder`] with the defaults.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .unwrap_or_else(|e| panic!("an HTTP client: {e}"))
}
