//! This server beside the two local auth stand-ins people pick instead of it: the Firebase
//! Auth Emulator (npm `firebase-tools`) and json-server-auth (npm, on json-server). Included
//! by `benches/load.rs` and `benches/peers.rs`.
//!
//! One procedure for every system: start it in a temp dir and time the first answer; sign up
//! [`SEED`] accounts through its own sign-up call; read the resident memory of its process
//! tree a second later; then load it from `wrk` (`bench/peer_*.lua`) with current-user
//! lookups, sign-ins as random seeded accounts and sign-ups of fresh ones, counting successful
//! answers only. The peers are installed with npm under `target/bench-peers`; one that cannot
//! be installed, started or loaded is reported as not measured, and the others go on.
//!
//! Every process started here runs in a process group of its own, which a guard stops (SIGTERM,
//! then SIGKILL) when dropped, also when a panic unwinds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// The password of every account created here.
const PASSWORD: &str = "peer-bench-password-1";
/// Accounts created through each system's sign-up call before the loads (not timed).
const SEED: usize = 200;
/// Clients signing up the seeded accounts at once.
const SEED_CLIENTS: usize = 8;
/// wrk's threads; connections for the hash-bound loads and for the lookups.
const WRK_THREADS: u32 = 2;
const HASH_CONNS: u32 = 16;
const READ_CONNS: u32 = 64;
/// How long a system may take to answer after its start (the emulator takes many seconds).
const START_LIMIT: Duration = Duration::from_secs(120);
/// The npm packages, installed under `<repo>/target/bench-peers`.
const NPM_PACKAGES: [&str; 3] = [
    "firebase-tools@15",
    "json-server-auth@2",
    "json-server@0.17",
];
/// Firebase's REST API under the emulator, with the key it accepts.
const FIREBASE_API: &str = "/identitytoolkit.googleapis.com/v1/accounts:";
const FIREBASE_PROJECT: &str = "demo-bench";

const OURS_10: &str = "appmixer-auth (cost 10)";
const OURS_4: &str = "appmixer-auth (cost 4)";
const FIREBASE: &str = "Firebase Auth Emulator";
const JSON_SERVER_AUTH: &str = "json-server-auth";

/// One system's figures; `None` where it was not measured (then `failed` says why).
pub struct Figures {
    pub name: String,
    /// Versions and, for this server, the bcrypt cost.
    pub note: String,
    pub startup_ms: Option<f64>,
    pub idle_rss_mib: Option<f64>,
    pub sign_ups: Option<f64>,
    pub sign_ins: Option<f64>,
    /// Current-user lookups per second; for json-server-auth, guarded reads of the account's
    /// own record.
    pub lookups: Option<f64>,
    pub failed: Option<String>,
}

/// This server at bcrypt cost 10 and 4, then the Firebase Auth Emulator and json-server-auth,
/// one after the other. `repo` is this repository (for `bench/` and `target/bench-peers`),
/// `ours` the release binary, `work` a scratch directory, `secs` the length of each load.
pub fn measure(repo: &Path, ours: &Path, work: &Path, secs: u64) -> Vec<Figures> {
    let bench = repo.join("bench");
    let secs = secs.max(1);
    let mut out = Vec::new();
    let version = command_line(Command::new(ours).arg("--version"))
        .ok()
        .and_then(|v| v.split_whitespace().last().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    for cost in [10, 4] {
        let name = if cost == 10 { OURS_10 } else { OURS_4 };
        let note = format!("appmixer-auth {version}, bcrypt cost {cost}");
        let system = System::Ours {
            bin: ours.to_owned(),
            cost,
        };
        out.push(run(name, note, &system, &bench, work, secs));
    }

    let node = command_line(Command::new("node").arg("--version"));
    let modules = node.clone().and_then(|_| install(repo));
    let package = |name: &str| {
        let modules = modules.as_ref().map_err(Clone::clone)?;
        package_version(modules, name)
    };
    let node = node.unwrap_or_default();
    let fb_version = package("firebase-tools");
    let note = format!(
        "firebase-tools {} on Node {node}",
        fb_version.as_deref().unwrap_or("?")
    );
    out.push(match (modules.as_ref(), fb_version.as_ref()) {
        (Ok(modules), Ok(_)) => {
            let system = System::Firebase {
                cli: modules.join("firebase-tools/lib/bin/firebase.js"),
            };
            run(FIREBASE, note, &system, &bench, work, secs)
        }
        (Err(e), _) | (_, Err(e)) => not_measured(FIREBASE, note, e.clone()),
    });
    let jsa_version = package("json-server-auth");
    let js_version = package("json-server");
    let note = format!(
        "json-server-auth {} with json-server {} (bcryptjs, 10 rounds) on Node {node}",
        jsa_version.as_deref().unwrap_or("?"),
        js_version.as_deref().unwrap_or("?")
    );
    out.push(
        match (
            modules.as_ref(),
            jsa_version.as_ref().and(js_version.as_ref()),
        ) {
            (Ok(modules), Ok(_)) => {
                let system = System::JsonServerAuth {
                    cli: modules.join("json-server-auth/dist/bin.js"),
                };
                run(JSON_SERVER_AUTH, note, &system, &bench, work, secs)
            }
            (Err(e), _) | (_, Err(e)) => not_measured(JSON_SERVER_AUTH, note, e.clone()),
        },
    );
    out
}

fn not_measured(name: &str, note: String, reason: String) -> Figures {
    eprintln!("peers: {name} not measured: {reason}");
    Figures {
        failed: Some(reason),
        ..blank(name, note)
    }
}

/// Figures with nothing measured yet.
fn blank(name: &str, note: String) -> Figures {
    Figures {
        name: name.to_owned(),
        note,
        startup_ms: None,
        idle_rss_mib: None,
        sign_ups: None,
        sign_ins: None,
        lookups: None,
        failed: None,
    }
}

/// One stdout line of a command that must succeed, trimmed.
fn command_line(cmd: &mut Command) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program}: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `node_modules` under `<repo>/target/bench-peers`, installed with npm unless the three
/// packages are there already in the wanted major versions.
fn install(repo: &Path) -> Result<PathBuf, String> {
    let prefix = repo.join("target/bench-peers");
    let modules = prefix.join("node_modules");
    let wanted = [
        ("firebase-tools", "15."),
        ("json-server-auth", "2."),
        ("json-server", "0.17."),
    ];
    let installed = || {
        wanted.iter().all(|(name, major)| {
            package_version(&modules, name).is_ok_and(|v| v.starts_with(major))
        })
    };
    if installed() {
        return Ok(modules);
    }
    eprintln!(
        "peers: npm install into {} (a few minutes)",
        prefix.display()
    );
    std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .args(NPM_PACKAGES)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("npm: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "npm install failed ({}): {}",
            out.status,
            short(last.unwrap_or(""))
        ));
    }
    if installed() {
        Ok(modules)
    } else {
        Err("npm install did not leave the packages".to_owned())
    }
}

fn package_version(modules: &Path, name: &str) -> Result<String, String> {
    let file = modules.join(name).join("package.json");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{name}: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{name} package.json: {e}"))?;
    v.get("version")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{name}: no version in package.json"))
}

/// At most 80 characters of one line, for a reason in a table.
fn short(text: &str) -> String {
    let line = text.trim().replace(['\n', '\r'], " ");
    if line.chars().count() > 80 {
        let cut: String = line.chars().take(77).collect();
        format!("{cut}...")
    } else {
        line
    }
}

/// A system and how to reach its sign-up, sign-in and current-user calls.
enum System {
    Ours { bin: PathBuf, cost: u32 },
    Firebase { cli: PathBuf },
    JsonServerAuth { cli: PathBuf },
}

/// The current-user request: method, path, bearer token, JSON body.
struct Lookup {
    method: &'static str,
    path: String,
    bearer: Option<String>,
    body: Option<String>,
}

impl System {
    /// Sign-up path and JSON body, with `{email}` where the address goes.
    fn sign_up(&self) -> (String, String) {
        match self {
            Self::Ours { .. } => (
                "/user".to_owned(),
                format!(
                    r#"{{"username":"{{email}}","email":"{{email}}","password":"{PASSWORD}"}}"#
                ),
            ),
            Self::Firebase { .. } => (
                format!("{FIREBASE_API}signUp?key=any"),
                format!(
                    r#"{{"email":"{{email}}","password":"{PASSWORD}","returnSecureToken":true}}"#
                ),
            ),
            Self::JsonServerAuth { .. } => (
                "/register".to_owned(),
                format!(r#"{{"email":"{{email}}","password":"{PASSWORD}"}}"#),
            ),
        }
    }

    /// Sign-in path and JSON body, with `{email}` where the address goes.
    fn sign_in(&self) -> (String, String) {
        match self {
            Self::Ours { .. } => (
                "/user/auth".to_owned(),
                format!(r#"{{"username":"{{email}}","password":"{PASSWORD}"}}"#),
            ),
            Self::Firebase { .. } => (
                format!("{FIREBASE_API}signInWithPassword?key=any"),
                format!(
                    r#"{{"email":"{{email}}","password":"{PASSWORD}","returnSecureToken":true}}"#
                ),
            ),
            Self::JsonServerAuth { .. } => (
                "/login".to_owned(),
                format!(r#"{{"email":"{{email}}","password":"{PASSWORD}"}}"#),
            ),
        }
    }

    /// The current-user request for the account a sign-in answered `answer` for.
    fn lookup(&self, answer: &serde_json::Value) -> Result<Lookup, String> {
        let key = match self {
            Self::Ours { .. } => "token",
            Self::Firebase { .. } => "idToken",
            Self::JsonServerAuth { .. } => "accessToken",
        };
        let token = answer
            .get(key)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("no {key} in the sign-in answer"))?
            .to_owned();
        Ok(match self {
            Self::Ours { .. } => Lookup {
                method: "GET",
                path: "/user".to_owned(),
                bearer: Some(token),
                body: None,
            },
            Self::Firebase { .. } => Lookup {
                method: "POST",
                path: format!("{FIREBASE_API}lookup?key=any"),
                bearer: None,
                body: Some(serde_json::json!({ "idToken": token }).to_string()),
            },
            // The owner-only guard (600): the account's own record, as its owner.
            Self::JsonServerAuth { .. } => {
                let id = answer
                    .pointer("/user/id")
                    .filter(|v| v.is_number() || v.is_string())
                    .ok_or("no user.id in the sign-in answer")?;
                let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
                Lookup {
                    method: "GET",
                    path: format!("/600/users/{id}"),
                    bearer: Some(token),
                    body: None,
                }
            }
        })
    }

    /// Starts the system in `dir` (its files, logs and home): the running process and the
    /// address to ask once it answers.
    fn start(&self, dir: &Path) -> Result<(Proc, SocketAddr), String> {
        let log = dir.join("server.log");
        let log_file = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| format!("{}: {e}", log.display()))
        };
        match self {
            Self::Ours { bin, cost } => {
                let config = dir.join("empty.toml");
                write(&config, "")?;
                let mut cmd = Command::new(bin);
                cmd.arg("--config")
                    .arg(&config)
                    .arg("--db")
                    .arg(dir.join("users.db"))
                    .args(["--port", "0"]);
                for (key, _) in std::env::vars_os() {
                    if key.to_string_lossy().starts_with("APPMIXER_") {
                        cmd.env_remove(key);
                    }
                }
                cmd.env("RUST_LOG", "warn")
                    .env("APPMIXER_AUTH__BCRYPT_COST", cost.to_string())
                    .env("APPMIXER_AUTH__MAX_FAILED_ATTEMPTS", "0")
                    .current_dir(dir)
                    .stdout(Stdio::piped())
                    .stderr(log_file()?);
                let mut proc = Proc::spawn(cmd, log)?;
                let addr = proc.listening_line()?;
                Ok((proc, addr))
            }
            Self::Firebase { cli } => {
                let [port, hub, logging] = [free_port()?, free_port()?, free_port()?];
                let config = serde_json::json!({
                    "emulators": {
                        "auth": { "host": "127.0.0.1", "port": port },
                        "hub": { "host": "127.0.0.1", "port": hub },
                        "logging": { "host": "127.0.0.1", "port": logging },
                        "ui": { "enabled": false },
                        "singleProjectMode": true,
                    }
                });
                write(&dir.join("firebase.json"), &config.to_string())?;
                let mut cmd = Command::new("node");
                cmd.arg(cli).args([
                    "emulators:start",
                    "--only",
                    "auth",
                    "--project",
                    FIREBASE_PROJECT,
                ]);
                node_env(&mut cmd, dir)?;
                cmd.stdout(log_file()?).stderr(log_file()?);
                Ok((
                    Proc::spawn(cmd, log)?,
                    SocketAddr::from(([127, 0, 0, 1], port)),
                ))
            }
            Self::JsonServerAuth { cli } => {
                let port = free_port()?;
                write(&dir.join("db.json"), r#"{"users":[]}"#)?;
                let mut cmd = Command::new("node");
                // --quiet: no line per request on stdout (this server logs warnings only).
                cmd.arg(cli)
                    .args(["db.json", "--host", "127.0.0.1", "--quiet", "--port"])
                    .arg(port.to_string());
                node_env(&mut cmd, dir)?;
                cmd.stdout(log_file()?).stderr(log_file()?);
                Ok((
                    Proc::spawn(cmd, log)?,
                    SocketAddr::from(([127, 0, 0, 1], port)),
                ))
            }
        }
    }
}

/// A Node peer's environment: a home, config and temp dir of its own inside `dir`, so no
/// stored setting (the Firebase CLI's usage-collection consent lives in its config store and
/// is off while unset) and no file elsewhere; `CI` and `NO_UPDATE_NOTIFIER` stop the Firebase
/// CLI's update check and message-of-the-day fetch, its only calls to Google at start.
fn node_env(cmd: &mut Command, dir: &Path) -> Result<(), String> {
    let home = dir.join("home");
    let tmp = dir.join("tmp");
    for d in [&home, &tmp] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    cmd.current_dir(dir)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("TMPDIR", &tmp)
        .env("CI", "1")
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("FIREBASE_CLI_DISABLE_UPDATE_CHECK", "true");
    Ok(())
}

fn write(file: &Path, text: &str) -> Result<(), String> {
    std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// A port free right now on 127.0.0.1 (for the peers, which take a port number).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A started process, leader of its own process group; the whole group is stopped on drop.
struct Proc {
    child: Child,
    started: Instant,
    log: PathBuf,
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Result<Self, String> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.stdin(Stdio::null()).process_group(0);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
        Ok(Self {
            child,
            started,
            log,
            _stdout: None,
        })
    }

    /// This server's first stdout line, `listening on http://ADDR`; its stdout stays open.
    fn listening_line(&mut self) -> Result<SocketAddr, String> {
        let stdout = self.child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            let _ = tx.send((read.map(|_| line), reader));
        });
        let (line, reader) = rx
            .recv_timeout(START_LIMIT)
            .map_err(|_| "no listening line".to_owned())?;
        self._stdout = Some(reader);
        let line = line.map_err(|e| format!("stdout: {e}"))?;
        line.trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("no listening line ({}): {}", short(&line), self.log_tail()))
    }

    /// Polls `GET /` every 5 ms until it answers 2xx: the time since the spawn.
    fn first_answer(&mut self, addr: SocketAddr) -> Result<Duration, String> {
        loop {
            if let Ok((200..=299, _)) = http(addr, "GET", "/", None, None) {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}): {}", self.log_tail()));
            }
            if self.started.elapsed() > START_LIMIT {
                return Err(format!("no answer in {} s", START_LIMIT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last non-empty line of the log, shortened.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        short(
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("empty log"),
        )
    }

    /// The process and all its descendants.
    fn tree(&self) -> Vec<u32> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
        let mut tree = vec![self.child.id()];
        let mut i = 0;
        while let Some(&pid) = tree.get(i) {
            tree.extend(children.get(&pid).into_iter().flatten());
            i += 1;
        }
        tree
    }

    /// Sum of VmRSS over the process tree, in MiB.
    fn rss_mib(&self) -> f64 {
        let kib: u64 = self
            .tree()
            .into_iter()
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
                line.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum();
        kib as f64 / 1024.0
    }

    /// CPU time (user + system) the process tree has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        self.tree()
            .into_iter()
            .filter_map(stat_fields)
            .map(|f| {
                let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                field(11) + field(12)
            })
            .sum()
    }

    /// Waits until the work a load left queued is done: under 2 ticks of CPU in 200 ms, at
    /// most 30 s.
    fn wait_idle(&self) {
        let t = Instant::now();
        let mut last = self.cpu_ticks();
        while t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.cpu_ticks();
            if now.saturating_sub(last) < 2 {
                return;
            }
            last = now;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Ok(pgid) = i32::try_from(self.child.id()).map(Pid::from_raw) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        };
        let _ = signal::killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // The leader reaped, then nothing left in its group.
            if matches!(self.child.try_wait(), Ok(Some(_))) && signal::killpg(pgid, None).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = signal::killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The fields of `/proc/PID/stat` after the command name (state first, then ppid, …).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Measures one system, keeping what it got before a failure.
fn run(name: &str, note: String, system: &System, bench: &Path, work: &Path, secs: u64) -> Figures {
    eprintln!("peers: {name} ({note})");
    let mut figs = blank(name, note);
    let t = Instant::now();
    if let Err(e) = run_into(&mut figs, system, bench, work, secs) {
        eprintln!("peers: {name} not measured: {e}");
        figs.failed = Some(e);
    }
    eprintln!("peers: {name} done in {:.0} s", t.elapsed().as_secs_f64());
    figs
}

fn run_into(
    figs: &mut Figures,
    system: &System,
    bench: &Path,
    work: &Path,
    secs: u64,
) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("peer-")
        .tempdir_in(work)
        .map_err(|e| format!("temp dir: {e}"))?;
    let (mut proc, addr) = system.start(dir.path())?;
    let first = proc.first_answer(addr)?;
    figs.startup_ms = Some(first.as_secs_f64() * 1e3);

    let (up_path, up_body) = system.sign_up();
    let seeded = seed(addr, &up_path, &up_body)?;
    std::thread::sleep(Duration::from_secs(1));
    let rss = proc.rss_mib();
    figs.idle_rss_mib = Some(rss);
    eprintln!(
        "peers:   first answer {:.0} ms; {SEED} accounts in {:.1} s; {rss:.1} MiB",
        first.as_secs_f64() * 1e3,
        seeded.as_secs_f64(),
    );

    let (in_path, in_body) = system.sign_in();
    let answer = call_ok(
        addr,
        "POST",
        &in_path,
        None,
        &in_body.replace("{email}", &email(0)),
    )?;
    let answer: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| format!("sign-in answer: {e}"))?;
    let lookup = system.lookup(&answer)?;
    let probe = || {
        call_ok(
            addr,
            lookup.method,
            &lookup.path,
            lookup.bearer.as_deref(),
            lookup.body.as_deref().unwrap_or(""),
        )
        .map_err(|e| format!("lookup: {e}"))
    };
    probe()?;
    let lookup_env = [
        ("PEER_METHOD", lookup.method),
        ("PEER_TOKEN", lookup.bearer.as_deref().unwrap_or("")),
        ("PEER_BODY", lookup.body.as_deref().unwrap_or("")),
    ];
    let d = Duration::from_secs(secs);
    // A second of lookups first, for the JIT of the Node peers and every server's caches.
    let lookups = |d| {
        wrk(
            bench,
            addr,
            &lookup.path,
            "peer_lookup.lua",
            READ_CONNS,
            d,
            &lookup_env,
        )
    };
    lookups(Duration::from_secs(1))?;
    proc.wait_idle();
    figs.lookups = Some(lookups(d)?.rate(&figs.name, "lookups"));
    proc.wait_idle();

    probe()?;
    let users = SEED.to_string();
    let sign_in_env = [
        ("PEER_BODY", in_body.as_str()),
        ("PEER_USERS", users.as_str()),
    ];
    let sign_ins = wrk(
        bench,
        addr,
        &in_path,
        "peer_sign_in.lua",
        HASH_CONNS,
        d,
        &sign_in_env,
    )?;
    figs.sign_ins = Some(sign_ins.rate(&figs.name, "sign-ins"));
    proc.wait_idle();

    call_ok(
        addr,
        "POST",
        &up_path,
        None,
        &up_body.replace("{email}", "probe@bench.test"),
    )
    .map_err(|e| format!("sign-up: {e}"))?;
    let tag = format!("p{}", std::process::id());
    let sign_up_env = [("PEER_BODY", up_body.as_str()), ("PEER_TAG", tag.as_str())];
    let sign_ups = wrk(
        bench,
        addr,
        &up_path,
        "peer_sign_up.lua",
        HASH_CONNS,
        d,
        &sign_up_env,
    )?;
    figs.sign_ups = Some(sign_ups.rate(&figs.name, "sign-ups"));
    drop(proc);
    Ok(())
}

/// The address of seeded account `i`, as bench/peer_sign_in.lua spells it.
fn email(i: usize) -> String {
    format!("seed{i:05}@bench.test")
}

/// Signs up [`SEED`] accounts through `path` from a few clients at once.
fn seed(addr: SocketAddr, path: &str, body: &str) -> Result<Duration, String> {
    let t = Instant::now();
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..SEED_CLIENTS)
            .map(|c| {
                s.spawn(move || {
                    (c..SEED).step_by(SEED_CLIENTS).try_for_each(|i| {
                        call_ok(
                            addr,
                            "POST",
                            path,
                            None,
                            &body.replace("{email}", &email(i)),
                        )
                        .map(drop)
                    })
                })
            })
            .collect();
        clients.into_iter().try_for_each(|c| {
            c.join()
                .unwrap_or_else(|_| Err("seeding client panicked".into()))
        })
    })
    .map_err(|e| format!("seeding: {e}"))?;
    Ok(t.elapsed())
}

/// One request that must answer 2xx: the body.
fn call_ok(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> Result<String, String> {
    let body = (!body.is_empty()).then_some(body);
    match http(addr, method, path, bearer, body) {
        Ok((200..=299, text)) => Ok(text),
        Ok((status, text)) => Err(format!("{method} {path}: {status} {}", short(&text))),
        Err(e) => Err(format!("{method} {path}: {e}")),
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(token) = bearer {
        let _ = write!(req, "Authorization: Bearer {token}\r\n");
    }
    match body {
        Some(b) => {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => req.push_str("\r\n"),
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer: {}", short(&text))))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The body of a chunked answer.
fn unchunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16);
        match size {
            Ok(n) if n > 0 && after.len() >= n => {
                body.push_str(&after[..n]);
                rest = after[n..].trim_start_matches("\r\n");
            }
            _ => break,
        }
    }
    body
}

/// What one wrk run printed through bench/peer_report.lua.
struct WrkRun {
    requests: u64,
    /// Answers of 400 and above.
    status: u64,
    timeouts: u64,
    socket_errors: u64,
    secs: f64,
}

impl WrkRun {
    /// Successful (2xx) answers per second; what was left out goes to stderr.
    fn rate(&self, name: &str, what: &str) -> f64 {
        let ok = self.requests.saturating_sub(self.status);
        let rate = ok as f64 / self.secs.max(1e-9);
        eprintln!(
            "peers:   {name} {what}: {ok} successful in {:.1} s = {rate:.1}/s; \
             left out: {} non-2xx, {} timeouts, {} socket errors",
            self.secs, self.status, self.timeouts, self.socket_errors
        );
        rate
    }
}

/// Runs `bench/<script>` against `http://addr<path>` for `d` with `conns` connections.
fn wrk(
    bench: &Path,
    addr: SocketAddr,
    path: &str,
    script: &str,
    conns: u32,
    d: Duration,
    env: &[(&str, &str)],
) -> Result<WrkRun, String> {
    let out = Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", d.as_secs().max(1)))
        .args(["--timeout", "10s", "-s"])
        .arg(bench.join(script))
        .arg(format!("http://{addr}{path}"))
        .env("PEER_LUA_DIR", bench)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("wrk: {e} (apt-get install -y wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find_map(|l| l.strip_prefix("PEER ")) else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("wrk {script}: no result ({})", short(&stderr)));
    };
    let kv: HashMap<&str, u64> = line
        .split_whitespace()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let get = |k: &str| kv.get(k).copied().unwrap_or(0);
    Ok(WrkRun {
        requests: get("requests"),
        status: get("status"),
        timeouts: get("timeout"),
        socket_errors: get("connect") + get("read") + get("write"),
        secs: get("duration_us") as f64 / 1e6,
    })
}

/// One figure of the table and the chart.
struct Row {
    title: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    get: fn(&Figures) -> Option<f64>,
}

const ROWS: [Row; 5] = [
    Row {
        title: "Start-up to first answer",
        unit: "ms",
        higher_is_better: false,
        get: |f| f.startup_ms,
    },
    Row {
        title: "Idle resident memory",
        unit: "MiB",
        higher_is_better: false,
        get: |f| f.idle_rss_mib,
    },
    Row {
        title: "Sign-ups",
        unit: "/s",
        higher_is_better: true,
        get: |f| f.sign_ups,
    },
    Row {
        title: "Sign-ins",
        unit: "/s",
        higher_is_better: true,
        get: |f| f.sign_ins,
    },
    Row {
        title: "Current-user lookups (json-server-auth: guarded reads)",
        unit: "/s",
        higher_is_better: true,
        get: |f| f.lookups,
    },
];

impl Row {
    fn unit_words(&self) -> &'static str {
        if self.unit == "/s" {
            "per second"
        } else {
            self.unit
        }
    }

    fn label(&self) -> String {
        let unit = self.unit_words();
        let better = if self.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        format!("{}, {unit} ({better})", self.title)
    }
}

/// A value with three significant digits at most, thousands grouped with a thin space.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push('\u{2009}');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `ours / peer` with two significant digits.
fn ratio(ours: Option<f64>, peer: Option<f64>) -> String {
    match (ours, peer) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => {
            let r = a / b;
            let decimals = (1.0 - r.log10().floor()).clamp(0.0, 4.0) as usize;
            format!("{r:.decimals$}×")
        }
        _ => "—".to_owned(),
    }
}

fn find<'a>(figs: &'a [Figures], name: &str) -> Option<&'a Figures> {
    figs.iter().find(|f| f.name == name)
}

/// A markdown table, one row per figure and one column per system, with the ratios of this
/// server at cost 10 to each peer; preceded by one line naming versions and connections.
pub fn table(figs: &[Figures]) -> String {
    let notes: Vec<String> = figs
        .iter()
        .filter(|f| f.name != OURS_4)
        .map(|f| match f.name.as_str() {
            OURS_10 => format!("{} (and cost 4)", f.note),
            _ => f.note.clone(),
        })
        .collect();
    let mut out = format!(
        "{}; wrk with {WRK_THREADS} threads, {HASH_CONNS} connections for sign-ups and \
         sign-ins, {READ_CONNS} for lookups; {SEED} accounts signed up before the loads; \
         successful (2xx) answers only.\n\n",
        notes.join("; ")
    );
    out.push_str("| Figure |");
    for f in figs {
        let state = match &f.failed {
            None => String::new(),
            Some(why) if ROWS.iter().all(|r| (r.get)(f).is_none()) => {
                format!(" (not measured: {})", why.replace('|', "/"))
            }
            Some(why) => format!(" (stopped early: {})", why.replace('|', "/")),
        };
        let _ = write!(out, " {}{state} |", f.name);
    }
    out.push_str(" appmixer-auth / Firebase | appmixer-auth / json-server-auth |\n|---|");
    out.push_str(&"---:|".repeat(figs.len() + 2));
    out.push('\n');
    let ours = find(figs, OURS_10);
    for row in &ROWS {
        let _ = write!(out, "| {} |", row.label());
        for f in figs {
            let cell = (row.get)(f).map_or_else(|| "—".to_owned(), number);
            let _ = write!(out, " {cell} |");
        }
        let ours = ours.and_then(row.get);
        for peer in [FIREBASE, JSON_SERVER_AUTH] {
            let _ = write!(
                out,
                " {} |",
                ratio(ours, find(figs, peer).and_then(row.get))
            );
        }
        out.push('\n');
    }
    out
}

/// Text for XML content and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

const COLOURS: [&str; 6] = [
    "#1f6feb", "#7fb2f5", "#f29900", "#2e8540", "#8250df", "#6e7781",
];

/// How a group maps values to bar lengths: logarithmic over whole decades when its values
/// span a factor of ten or more, else linear from zero.
enum Scale {
    Linear { max: f64 },
    Log { lo: f64, hi: f64 },
}

impl Scale {
    fn for_values(values: &[f64]) -> Self {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        if values.is_empty() || max <= 0.0 {
            return Self::Linear { max: 1.0 };
        }
        if max / min < 10.0 {
            return Self::Linear { max };
        }
        let mut lo = min.log10().floor();
        // Keep the shortest bar visible.
        if min.log10() - lo < 0.15 {
            lo -= 1.0;
        }
        let hi = max.log10().ceil().max(lo + 1.0);
        Self::Log { lo, hi }
    }

    /// The bar length as a fraction of the full width.
    fn fraction(&self, v: f64) -> f64 {
        let f = match *self {
            Self::Linear { max } => v / max,
            Self::Log { lo, hi } => (v.log10() - lo) / (hi - lo),
        };
        f.clamp(0.0, 1.0)
    }
}

/// Decade tick labels: 1, 10, 100, 1k, 10k, …
fn decade(exp: f64) -> String {
    let v = 10f64.powf(exp);
    if v >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// A standalone SVG: one group of horizontal bars per figure, one bar per system in the
/// legend's colours, each labelled with its value.
pub fn svg(figs: &[Figures], caption: &str) -> String {
    const WIDTH: f64 = 900.0;
    const NAMES_X: f64 = 210.0;
    const BARS_X: f64 = 220.0;
    const BARS_W: f64 = 560.0;
    const BAR_H: f64 = 16.0;
    const BAR_GAP: f64 = 5.0;
    let mut body = String::new();
    let mut y = 30.0;
    let _ = writeln!(
        body,
        r#"<text x="20" y="{y}" font-size="17" font-weight="bold">appmixer-auth beside the Firebase Auth Emulator and json-server-auth</text>"#
    );
    // The machine line: small, as under the load chart.
    y += 18.0;
    let _ = writeln!(
        body,
        r##"<text x="20" y="{y}" font-size="10" fill="#555">{}</text>"##,
        xml(caption)
    );
    // The legend, wrapped at the right edge.
    y += 24.0;
    let mut x = 20.0;
    for (i, f) in figs.iter().enumerate() {
        let label = match &f.failed {
            Some(_) if ROWS.iter().all(|r| (r.get)(f).is_none()) => {
                format!("{} (not measured)", f.name)
            }
            _ => f.name.clone(),
        };
        let w = 20.0 + 6.5 * label.chars().count() as f64;
        if x + w > WIDTH - 20.0 {
            x = 20.0;
            y += 20.0;
        }
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            x + 17.0,
            xml(&label)
        );
        x += w + 14.0;
    }
    y += 14.0;
    for row in &ROWS {
        let values: Vec<f64> = figs
            .iter()
            .filter_map(row.get)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let scale = Scale::for_values(&values);
        y += 26.0;
        let scale_note = if matches!(scale, Scale::Log { .. }) {
            ", log scale"
        } else {
            ""
        };
        let _ = writeln!(
            body,
            r##"<text x="20" y="{y}" font-size="14" font-weight="bold" xml:space="preserve">{}<tspan font-weight="normal" fill="#57606a">{}</tspan></text>"##,
            xml(row.title),
            xml(&format!(
                " ({}{scale_note}; {})",
                row.unit_words(),
                if row.higher_is_better {
                    "higher is better"
                } else {
                    "lower is better"
                }
            ))
        );
        y += 10.0;
        let top = y;
        let bottom = y + figs.len() as f64 * (BAR_H + BAR_GAP);
        if let Scale::Log { lo, hi } = scale {
            let mut e = lo;
            while e <= hi + 1e-9 {
                let gx = BARS_X + scale.fraction(10f64.powf(e)) * BARS_W;
                let _ = writeln!(
                    body,
                    r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{bottom}" stroke="#d0d7de" stroke-width="1"/><text x="{gx:.1}" y="{}" font-size="10" fill="#6e7781" text-anchor="middle">{}</text>"##,
                    bottom + 10.0,
                    decade(e)
                );
                e += 1.0;
            }
        }
        for (i, f) in figs.iter().enumerate() {
            let by = top + i as f64 * (BAR_H + BAR_GAP);
            let text_y = by + BAR_H - 4.0;
            let _ = writeln!(
                body,
                r#"<text x="{NAMES_X}" y="{text_y}" text-anchor="end">{}</text>"#,
                xml(&f.name)
            );
            match (row.get)(f).filter(|v| v.is_finite()) {
                Some(v) => {
                    let w = if v > 0.0 {
                        (scale.fraction(v) * BARS_W).max(2.0)
                    } else {
                        0.0
                    };
                    let _ = writeln!(
                        body,
                        r#"<rect x="{BARS_X}" y="{by}" width="{w:.1}" height="{BAR_H}" fill="{}"/><text x="{:.1}" y="{text_y}">{}</text>"#,
                        COLOURS[i % COLOURS.len()],
                        BARS_X + w + 5.0,
                        xml(&format!("{} {}", number(v), row.unit).replace(" /s", "/s"))
                    );
                }
                None => {
                    let _ = writeln!(
                        body,
                        r##"<text x="{}" y="{text_y}" fill="#6e7781" font-style="italic">not measured</text>"##,
                        BARS_X + 5.0
                    );
                }
            }
        }
        y = bottom
            + if matches!(scale, Scale::Log { .. }) {
                12.0
            } else {
                0.0
            };
    }
    let height = y + 24.0;
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12" fill="#24292f">
<rect width="100%" height="100%" fill="#ffffff"/>
{body}</svg>
"##
    )
}
