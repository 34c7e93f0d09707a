//! The real server on port 0, and headless Chromium driven through a chromedriver of its own.

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use appmixer_auth::settings::Settings;
use appmixer_auth::testing::TestServer;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long any one wait for the page may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(25);

pub const TAB: &str = "\u{e004}";
pub const ENTER: &str = "\u{e007}";

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    server: TestServer,
}

/// The real server (the library's own test fixture: port 0, in-memory database, bcrypt cost 4,
/// random secret, sign-in limit off).
pub fn spawn_app() -> TestApp {
    spawn_with(|_| {})
}

/// The same, with some settings changed.
pub fn spawn_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let server = TestServer::builder().settings(change).start();
    TestApp {
        url: server.url().to_owned(),
        client: appmixer_auth::testing::http_client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        server,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str, accept: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        req.send().await.expect("request")
    }

    /// Creates a user through the API; returns the `{token, user}` answer.
    pub async fn create_user(&self, username: &str, email: &str, password: &str) -> Value {
        let res = self
            .client
            .post(format!("{}/user", self.url))
            .json(&json!({"username": username, "email": email, "password": password}))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "creating {username}");
        res.json().await.expect("json")
    }

    /// Stops the server; the client goes first, or its idle keep-alive connection would hold
    /// the graceful stop.
    pub async fn stop(self) {
        let Self { client, server, .. } = self;
        drop(client);
        // Dropping the fixture stops the server and joins its thread: blocking work.
        tokio::task::spawn_blocking(move || drop(server))
            .await
            .expect("server stops");
    }
}

/// The browser and its driver, found on the `PATH` (or named by `CHROME_BIN` / `CHROMEDRIVER`).
pub struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// The tools, or `None` (after saying so) when they are missing outside CI. Under CI a missing
/// browser is a failure: a green run must mean the page was really tested.
pub fn tools() -> Option<Tools> {
    let chromium = from_env("CHROME_BIN").or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|n| on_path(n))
    });
    let chromedriver = from_env("CHROMEDRIVER").or_else(|| on_path("chromedriver"));
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        _ => {
            let msg = "Chromium or chromedriver is missing (`apt-get install chromium \
                       chromium-driver`, which .ci/run and test.sh do)";
            if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                panic!("CI is set and {msg}");
            }
            eprintln!("skipping the browser test: {msg}");
            None
        }
    }
}

fn from_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Where screenshots go: `<target>/browser-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[derive(Clone, Copy)]
pub struct Options {
    pub width: u32,
    pub height: u32,
    pub dark: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            width: 900,
            height: 760,
            dark: false,
        }
    }
}

/// A chromedriver process; killed when dropped, even when a test panics.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    pub url: String,
    name: &'static str,
    _driver: Driver,
    _profile: TempDir,
}

/// Runs `test` in a fresh browser session on `app`, then saves a screenshot named after the
/// test and ends the session, whether the test passed or not. Returns early (after a note) when
/// the browser is missing outside CI.
pub async fn with_browser(
    name: &'static str,
    app: &TestApp,
    options: Options,
    test: impl AsyncFnOnce(&Browser),
) {
    let Some(tools) = tools() else { return };
    let browser = Browser::open(&tools, name, &app.url, options).await;
    let outcome = AssertUnwindSafe(test(&browser)).catch_unwind().await;
    // The last state is the most useful picture, of a pass or of a failure.
    browser.screenshot(name).await;
    let Browser {
        client,
        _driver: driver,
        ..
    } = browser;
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Browser {
    async fn open(tools: &Tools, name: &'static str, url: &str, options: Options) -> Self {
        let port = free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, port };
        wait_for_driver(driver.port).await;

        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", options.width, options.height),
        ];
        if options.dark {
            // Makes `prefers-color-scheme: dark` match, as a dark system theme does.
            args.push("--force-dark-mode".to_owned());
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let browser = Self {
            client,
            url: url.to_owned(),
            name,
            _driver: driver,
            _profile: profile,
        };
        // The inner size decides the layout; make it exact whatever the window decorations.
        browser.fit_viewport(options.width, options.height).await;
        browser
    }

    /// Resizes the window so the page's viewport is `width`×`height` CSS pixels.
    pub async fn fit_viewport(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
        let inner = self
            .js("return [window.innerWidth, window.innerHeight]")
            .await;
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(0),
            inner[1].as_u64().unwrap_or(0),
        );
        let (dw, dh) = (
            u64::from(width).saturating_sub(iw),
            u64::from(height).saturating_sub(ih),
        );
        if dw > 0 || dh > 0 {
            self.client
                .set_window_size(width + dw as u32, height + dh as u32)
                .await
                .expect("resize");
        }
    }

    /// Opens the page at `path` (`/` or `/signin`) and waits until it has decided what to show.
    pub async fn open_page(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.url))
            .await
            .expect("goto");
        self.wait_until("the page has started", "return document.getElementById('loading') !== null && document.getElementById('loading').hidden").await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// Waits until `script` returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let start = Instant::now();
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element is shown (it and its ancestors are not `hidden`).
    pub async fn wait_visible(&self, css: &str) -> Element {
        let el = self
            .client
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        let start = Instant::now();
        while !el.is_displayed().await.expect("is_displayed") {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {css} to show"
            );
            tokio::time::sleep(POLL).await;
        }
        el
    }

    /// Waits until the element's text is `expected`, and returns it.
    pub async fn wait_text(&self, css: &str, expected: &str) {
        let el = self.find(css).await;
        let start = Instant::now();
        loop {
            let text = el.text().await.expect("text");
            if text == expected {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "{css} says {text:?}, not {expected:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_visible(css).await;
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("send_keys");
    }

    pub async fn click(&self, css: &str) {
        self.wait_visible(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Presses keys wherever the focus is, as a person at the keyboard does.
    pub async fn keys(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .expect("active element")
            .send_keys(keys)
            .await
            .expect("send_keys");
    }

    /// The `id` of the focused element.
    pub async fn focused(&self) -> String {
        self.js("return document.activeElement ? document.activeElement.id : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Signs in through the form and waits for the account view.
    pub async fn sign_in(&self, login: &str, password: &str) {
        self.type_into("#signin-login", login).await;
        self.type_into("#signin-password", password).await;
        self.click("#signin-submit").await;
        self.wait_visible("#account-view").await;
    }

    pub async fn stored_token(&self) -> Option<String> {
        self.js("return localStorage.getItem('appmixer-auth.token')")
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// Saves the viewport as `<target>/browser-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        match self.client.screenshot().await {
            Ok(png) => {
                let path = screenshot_dir().join(format!("{name}.png"));
                std::fs::write(&path, png).expect("write screenshot");
            }
            Err(e) => eprintln!("no screenshot for {}: {e}", self.name),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_for_driver(port: u16) {
    let client = appmixer_auth::testing::http_client_builder()
        .no_proxy()
        .build()
        .expect("client");
    let start = Instant::now();
    loop {
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && let Ok(body) = res.json::<Value>().await
            && body["value"]["ready"] == Value::Bool(true)
        {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(POLL).await;
    }
}
