//! `cargo bench --bench soak`: ten minutes (`SOAK_SECS`) of steady mixed load on one server,
//! to see that nothing grows or slows with time.
//!
//! The release server runs on a fresh SQLite database with 20 000 seeded users (bcrypt cost 10)
//! and a local webhook receiver. Every second it is sent, open-loop (a slow answer does not
//! slow the sending): sign-ins, sign-ups (each announced to the receiver), `GET /user`, admin
//! searches and counts, a password change (a sign-in, then the change) and, every other
//! second, a `/config` write; about one core's worth of bcrypt on two. Each minute it prints
//! throughput, p50/p99 per route, resident memory and open file descriptors. It fails when a
//! request errs, a sign-up is not announced, resident memory passes 64 MiB or grows by more
//! than 5 % over the second half, file descriptors grow, or a route's p99 doubles from the
//! first minute to the last. `SOAK_NO_WRITE=1` leaves docs/bench.md alone; otherwise the table
//! goes between its `soak:` markers. `SOAK_SERVER_ENV` adds `NAME=value` pairs to the
//! server's environment. Not part of `./test.sh`.

// A benchmark program: it panics on the unexpected, that is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SERVER: &str = env!("CARGO_BIN_EXE_appmixer-auth");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PASSWORD: &str = "soak-password-1";
/// Enough users that the database (about 13 MB with its search indexes) outgrows SQLite's
/// page caches (`database.cache_mib`, 8): they fill while the load reads it, and what grows
/// after that is not a cache. With 1 000 the whole file fit and memory grew with it.
const SEEDED: usize = 20_000;
const CHANGERS: usize = 20;

/// Requests a second, by route (the password change is a sign-in and a change).
const RATES: &[(&str, f64)] = &[
    ("GET /user", 200.0),
    ("POST /user/auth", 4.0),
    ("POST /user", 3.0),
    ("GET /users?pattern", 4.0),
    ("GET /users/count", 2.0),
    ("POST /user/change-password", 1.0),
    ("POST /config", 0.5),
];

type Samples = Arc<Mutex<BTreeMap<(u64, &'static str), Vec<f64>>>>;

fn main() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let minutes = secs.div_ceil(60).max(1);
    let dir = tempfile::Builder::new()
        .prefix("appmixer-soak-")
        .tempdir()
        .unwrap();
    let work = dir.path();
    let (hook, announced) = receiver();
    std::fs::write(
        work.join("soak.toml"),
        format!("[webhooks]\nuser_created = \"http://{hook}/hook\"\n"),
    )
    .unwrap();
    seed(work);
    let mut server = start(work);
    eprintln!(
        "soak: {secs} s on {}; server pid {}",
        server.1,
        server.0.id()
    );
    let pid = server.0.id();
    let base = format!("http://{}", server.1);
    // The imported users' announcements go out first, so the load meets a steady server.
    let imported = (SEEDED + CHANGERS + 1) as u64;
    let drain = Instant::now();
    let deadline = drain + Duration::from_secs(300);
    while announced.load(Ordering::SeqCst) < imported && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "soak: {} of {imported} imported users announced in {:.1} s; the load starts",
        announced.load(Ordering::SeqCst),
        drain.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let samples: Samples = Arc::default();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let created = Arc::new(AtomicU64::new(0));
    let mut minute_rows = Vec::new();
    rt.block_on(async {
        let client = appmixer_auth::testing::http_client_builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let admin = sign_in(&client, &base, "admin@soak.test", PASSWORD)
            .await
            .expect("admin signs in");
        let reader = sign_in(&client, &base, "user000001@soak.test", PASSWORD)
            .await
            .expect("a user signs in");
        let passwords: Arc<Vec<tokio::sync::Mutex<String>>> = Arc::new(
            (0..CHANGERS)
                .map(|_| tokio::sync::Mutex::new(PASSWORD.to_owned()))
                .collect(),
        );
        let started = Instant::now();
        let end = started + Duration::from_secs(secs);
        let mut senders = Vec::new();
        for &(route, rate) in RATES {
            let ctx = Ctx {
                client: client.clone(),
                base: base.clone(),
                admin: admin.clone(),
                reader: reader.clone(),
                hook,
                passwords: passwords.clone(),
                samples: samples.clone(),
                errors: errors.clone(),
                created: created.clone(),
                started,
            };
            senders.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n: u64 = 0;
                let mut inflight = Vec::new();
                while Instant::now() < end {
                    tick.tick().await;
                    n += 1;
                    let ctx = ctx.clone();
                    inflight.push(tokio::spawn(async move { ctx.send(route, n).await }));
                }
                for t in inflight {
                    let _ = t.await;
                }
            }));
        }
        // Resident memory and descriptors once a minute, at its end.
        for m in 0..minutes {
            let at = started + Duration::from_secs((m + 1) * 60).min(Duration::from_secs(secs));
            tokio::time::sleep_until(at.into()).await;
            minute_rows.push((m, rss_kib(pid), fds(pid)));
        }
        for s in senders {
            s.await.unwrap();
        }
    });
    // Every user created announced, at least once: the imported ones and every sign-up.
    let signed_up = created.load(Ordering::SeqCst);
    let want = signed_up + (SEEDED + CHANGERS + 1) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while announced.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = announced.load(Ordering::SeqCst);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.0.wait();

    // The table, and the verdict.
    let samples = samples.lock().unwrap();
    let mut failures: Vec<String> = errors.lock().unwrap().iter().take(5).cloned().collect();
    let n_errors = errors.lock().unwrap().len();
    if n_errors > 5 {
        failures.push(format!("… {n_errors} failed requests in all"));
    }
    if got < want {
        failures.push(format!("{want} users created, {got} announced"));
    }
    let routes: Vec<&str> = RATES.iter().map(|(r, _)| *r).collect();
    let mut table = String::from("| minute | req/s |");
    for r in &routes {
        table.push_str(&format!(" {r} p50 / p99 ms |"));
    }
    table.push_str(" RSS MiB | open fds |\n|---|---|");
    for _ in &routes {
        table.push_str("---|");
    }
    table.push_str("---|---|\n");
    let mut p99s: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for &(m, rss, fd) in &minute_rows {
        let span = if (m + 1) * 60 > secs {
            secs - m * 60
        } else {
            60
        };
        let total: usize = routes
            .iter()
            .map(|r| samples.get(&(m, *r)).map_or(0, Vec::len))
            .sum();
        table.push_str(&format!(
            "| {} | {:.0} |",
            m + 1,
            total as f64 / span.max(1) as f64
        ));
        for r in &routes {
            let mut v = samples.get(&(m, *r)).cloned().unwrap_or_default();
            v.sort_by(f64::total_cmp);
            let (p50, p99) = (pct(&v, 0.50), pct(&v, 0.99));
            p99s.entry(r).or_default().push(p99);
            table.push_str(&format!(" {p50:.1} / {p99:.1} |"));
        }
        table.push_str(&format!(" {:.1} | {fd} |\n", rss as f64 / 1024.0));
    }
    let rss: Vec<f64> = minute_rows.iter().map(|r| r.1 as f64 / 1024.0).collect();
    let fd: Vec<usize> = minute_rows.iter().map(|r| r.2).collect();
    if let Some(max) = rss.iter().copied().reduce(f64::max)
        && max > 64.0
    {
        failures.push(format!("resident memory reached {max:.1} MiB (limit 64)"));
    }
    if rss.len() >= 2 {
        let half = rss[(rss.len() - 1) / 2];
        let last = rss[rss.len() - 1];
        if last > half * 1.05 {
            failures.push(format!(
                "resident memory grew {half:.1} → {last:.1} MiB over the second half (> 5 %)"
            ));
        }
    }
    if let (Some(first), Some(last)) = (fd.first(), fd.last())
        && last > first
    {
        failures.push(format!("open file descriptors grew {first} → {last}"));
    }
    for (r, v) in &p99s {
        if v.len() >= 2 {
            let (first, last) = (v[0], v[v.len() - 1]);
            // A p99 under 2 ms is noise on a shared machine, not a trend.
            if last > 2.0 * first && last > 2.0 {
                failures.push(format!(
                    "{r}: p99 {first:.1} → {last:.1} ms, first minute to last"
                ));
            }
        }
    }
    let verdict = if failures.is_empty() {
        "passed".to_owned()
    } else {
        format!("**failed**: {}", failures.join("; "))
    };
    let summary = format!(
        "{secs} s; {signed_up} sign-ups; {got} webhook deliveries for {want} users created (the imported ones too); {n_errors} failed requests; {verdict}"
    );
    println!("\n{table}\n{summary}");
    if std::env::var("SOAK_NO_WRITE").is_err() {
        write_table(&format!("{table}\n{summary}\n"));
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

#[derive(Clone)]
struct Ctx {
    client: reqwest::Client,
    base: String,
    admin: String,
    reader: String,
    hook: SocketAddr,
    passwords: Arc<Vec<tokio::sync::Mutex<String>>>,
    samples: Samples,
    errors: Arc<Mutex<Vec<String>>>,
    created: Arc<AtomicU64>,
    started: Instant,
}

impl Ctx {
    async fn send(&self, route: &'static str, n: u64) {
        let t = Instant::now();
        let (base, c) = (&self.base, &self.client);
        let result: Result<(), String> = match route {
            "GET /user" => check(c.get(format!("{base}/user")).bearer_auth(&self.reader)).await,
            "POST /user/auth" => {
                let who = format!("user{:06}@soak.test", n as usize % SEEDED);
                sign_in(c, base, &who, PASSWORD).await.map(drop)
            }
            "POST /user" => {
                let name = format!("new-{}-{n}@soak.test", std::process::id());
                let r = check(
                    c.post(format!("{base}/user"))
                        .json(&json!({"username": name, "password": PASSWORD})),
                )
                .await;
                if r.is_ok() {
                    self.created.fetch_add(1, Ordering::SeqCst);
                }
                r
            }
            "GET /users?pattern" => {
                let pattern = format!("user{:03}", n % 1000);
                check(
                    c.get(format!("{base}/users?pattern={pattern}&limit=100"))
                        .bearer_auth(&self.admin),
                )
                .await
            }
            "GET /users/count" => {
                check(
                    c.get(format!("{base}/users/count?filter=scope:admin"))
                        .bearer_auth(&self.admin),
                )
                .await
            }
            "POST /user/change-password" => {
                let i = n as usize % CHANGERS;
                let mut current = self.passwords[i].lock().await;
                let who = format!("changer{i:02}@soak.test");
                match sign_in(c, base, &who, &current).await {
                    Err(e) => Err(e),
                    Ok(token) => {
                        let new = format!("soak-password-{n}");
                        let r = check(
                            c.post(format!("{base}/user/change-password"))
                                .bearer_auth(token)
                                .json(&json!({"oldPassword": *current, "newPassword": new})),
                        )
                        .await;
                        if r.is_ok() {
                            *current = new;
                        }
                        r
                    }
                }
            }
            "POST /config" => {
                check(
                    c.post(format!("{base}/config"))
                        .bearer_auth(&self.admin)
                        .json(&json!({"key": "WEBHOOK_USER_CREATED", "value": format!("http://{}/hook", self.hook)})),
                )
                .await
            }
            _ => Err(format!("unknown route {route}")),
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let minute = t.duration_since(self.started).as_secs() / 60;
        match result {
            Ok(()) => self
                .samples
                .lock()
                .unwrap()
                .entry((minute, route))
                .or_default()
                .push(ms),
            Err(e) => self.errors.lock().unwrap().push(format!("{route}: {e}")),
        }
    }
}

async fn check(req: reqwest::RequestBuilder) -> Result<(), String> {
    let res = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

async fn sign_in(
    c: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let res = c
        .post(format!("{base}/user/auth"))
        .json(&json!({"username": username, "password": password}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token in {body}"))
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The seeded users (all with `PASSWORD`, bcrypt cost 10), the password changers and an admin,
/// through `users import`.
fn seed(work: &Path) {
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let mut users = Vec::new();
    let mut add = |i: usize, name: String, scope: Value| {
        users.push(json!({
            "id": format!("50a450a450a4{i:012x}"), "username": name, "email": name,
            "passwordHash": hash, "isActive": true, "scope": scope, "plan": "free",
            "vendor": null, "metadata": {}, "created": 1_764_470_000_000_i64 + i as i64,
            "mtime": 1_764_470_000_000_i64 + i as i64,
        }));
    };
    for i in 0..SEEDED {
        add(i, format!("user{i:06}@soak.test"), json!(["user"]));
    }
    for i in 0..CHANGERS {
        add(
            SEEDED + i,
            format!("changer{i:02}@soak.test"),
            json!(["user"]),
        );
    }
    add(
        SEEDED + CHANGERS,
        "admin@soak.test".into(),
        json!(["user", "admin"]),
    );
    std::fs::write(
        work.join("seed.json"),
        json!({"version": 1, "users": users}).to_string(),
    )
    .unwrap();
    let out = server_command(work)
        .args(["users", "import", "seed.json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn server_command(work: &Path) -> Command {
    let mut cmd = Command::new(SERVER);
    cmd.args(["--config", "soak.toml", "--db", "soak.db"])
        .current_dir(work);
    for (key, _) in std::env::vars() {
        if key.starts_with("APPMIXER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .env("APPMIXER_AUTH__BCRYPT_COST", "10")
        // Sign-ins come from one address at a steady rate; the limit is not what is measured.
        .env("APPMIXER_AUTH__MAX_FAILED_ATTEMPTS", "0");
    // `SOAK_SERVER_ENV="APPMIXER_DATABASE__CACHE_MIB=2 MALLOC_ARENA_MAX=2"`: to try a setting.
    if let Ok(extra) = std::env::var("SOAK_SERVER_ENV") {
        for pair in extra.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    cmd
}

fn start(work: &Path) -> (Child, SocketAddr) {
    let log = std::fs::File::create(work.join("server.log")).unwrap();
    let mut child = server_command(work)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("server did not start: {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// A webhook receiver answering 200 at once, keeping connections open; counts requests.
fn receiver() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn write_table(block: &str) {
    let path = Path::new(REPO).join("docs/bench.md");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let (begin, end) = ("<!-- soak:begin -->", "<!-- soak:end -->");
    let (Some(a), Some(b)) = (text.find(begin), text.find(end)) else {
        eprintln!("soak: docs/bench.md has no {begin} … {end} block; table not written");
        return;
    };
    if b < a {
        return;
    }
    let today = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let new = format!(
        "{}{begin}\nLast run: {today}.\n\n{block}{}",
        &text[..a],
        &text[b..]
    );
    std::fs::write(&path, new).expect("write docs/bench.md");
}
