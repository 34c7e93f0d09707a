//! The binary as a child process, shared by the test crates that run it (`#[path]`-included):
//! a command with a clean environment, and a server started on port 0 whose log is drained.

// Each crate uses part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_appmixer-auth");

/// Settings read from the environment that a test must not inherit.
const ENGINE_NAMES: &[&str] = &[
    "API_USER_CREATE_SCOPE",
    "GRIDD_JWT_TOKEN_EXP",
    "HTTP_API_PORT",
];

/// The binary run in `dir`, with no inherited `APPMIXER_*`, engine settings or `RUST_LOG`,
/// stdin closed, and bcrypt cost 4 (callers may set another).
pub fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("APPMIXER_") || k == "RUST_LOG" || ENGINE_NAMES.contains(&k.as_str()) {
            cmd.env_remove(k);
        }
    }
    cmd.env("APPMIXER_AUTH__BCRYPT_COST", "4");
    cmd
}

/// A running server process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub addr: SocketAddr,
    pub port: u16,
    /// Everything it wrote to stderr so far, drained continuously so a chatty log never fills
    /// the pipe and stalls it.
    stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits, at most `within`, for the process to end.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `cmd` (a server on port 0) and reads its `listening on` line.
pub fn launch(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = BufReader::new(child.stderr.take().unwrap());
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while pipe.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("first line was {line:?}; log:\n{}", stderr.lock().unwrap());
    };
    let url = url.to_owned();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    Server {
        child,
        port: addr.port(),
        addr,
        url,
        stderr,
    }
}
