//! The administration commands run as processes, against a database in a temporary directory,
//! alone or beside a running server.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup;
mod concurrency;
mod newcomer;
mod settings;
mod sysconfig;
mod token;
mod transfer;
mod users;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

#[path = "../support/process.rs"]
mod process;
#[path = "../support/receiver.rs"]
mod receiver;
pub use process::{BIN, Server, command_in, launch};

/// A working directory with its own `appmixer.db`; every command runs in it. When the suite
/// runs against PostgreSQL (`TEST_POSTGRES_URL`), the place's database is a schema of its own
/// there instead, given to every command as `APPMIXER_DATABASE__URL`.
pub struct Place {
    pub dir: TempDir,
    pub db_url: Option<String>,
}

impl Default for Place {
    fn default() -> Self {
        Self::new()
    }
}

impl Place {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            db_url: appmixer_auth::testing::fresh_postgres_url(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// The binary with a clean environment: no inherited `APPMIXER_*`, bcrypt cost 4.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = command_in(self.dir.path(), args);
        if let Some(url) = &self.db_url {
            cmd.env("APPMIXER_DATABASE__URL", url);
        }
        cmd
    }

    /// True (and says so) when this run is on PostgreSQL: for tests of what only a SQLite
    /// file has (its path, its mode, `backup`, `--db`, `--ephemeral`).
    pub fn skip_on_postgres(&self, what: &str) -> bool {
        if self.on_sqlite() {
            return false;
        }
        eprintln!("skipped on PostgreSQL: {what}");
        true
    }

    /// Whether the database is a SQLite file here (not PostgreSQL).
    pub fn on_sqlite(&self) -> bool {
        self.db_url.is_none()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, args);
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// How many users `users list` finds.
    pub fn user_count(&self) -> usize {
        self.json(&["users", "list", "--json"])
            .as_array()
            .expect("a JSON array")
            .len()
    }

    /// The stored users (`users list --json`); none when no command has created the database.
    pub fn stored_users(&self) -> Value {
        if self.on_sqlite() && !self.path("appmixer.db").exists() {
            return Value::Array(Vec::new());
        }
        self.json(&["users", "list", "--json"])
    }

    /// Starts the server on port 0 in this directory.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--port", "0"];
        args.extend_from_slice(extra);
        launch(self.command(&args))
    }
}

pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Plain blocking HTTP for tests: a current-thread runtime per call.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = appmixer_auth::testing::http_client_builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// Signs in over HTTP; the status and the answer.
pub fn sign_in(server: &Server, username: &str, password: &str) -> (u16, Value) {
    http(
        "POST",
        &format!("{}/user/auth", server.url),
        None,
        Some(serde_json::json!({"username": username, "password": password})),
    )
}

/// The claims of a token, unverified.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
