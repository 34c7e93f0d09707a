//! `cargo bench --bench load`: the server as its users feel it, over real HTTP.
//!
//! Cargo builds the release server (`CARGO_BIN_EXE_appmixer-auth`, bench profile = release);
//! this program seeds databases, starts the server, loads it from `wrk` (a separate process,
//! scripts in `bench/`), and prints one table. Every figure is the median of several runs and
//! every ratio is taken inside one run, because the machine is shared and noisy: a ratio of two
//! numbers measured seconds apart cancels most of what other processes do to both.
//!
//! Knobs (environment): `BENCH_RUNS` (default 5), `BENCH_SECS` seconds per load (default 3),
//! `BENCH_USERS` stored users (default 1000000), `BENCH_MOVE_USERS` users moved by
//! `users import`/`export` (default 1000000, 0 skips), `BENCH_NO_PEERS=1` to skip the Firebase Auth
//! Emulator and json-server-auth (`benches/support/peers.rs`), `BENCH_NO_POSTGRES=1` to skip
//! PostgreSQL, `BENCH_NO_WRITE=1` to leave docs/bench.svg, docs/peers.svg and the table in
//! docs/bench.md alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/peers.rs"]
mod peers;
#[path = "support/search.rs"]
mod search;

const SERVER: &str = env!("CARGO_BIN_EXE_appmixer-auth");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PASSWORD: &str = "bench-password-1";
const COST: u32 = 10;
/// Connections for the read loads (the issue's figure) and for the bcrypt-bound loads.
const READ_CONNS: u32 = 64;
const HASH_CONNS: u32 = 16;
/// `GET /user` connections while the sign-in flood runs, and the flood's own.
const MIXED_READ_CONNS: u32 = 16;
const FLOOD_CONNS: u32 = 64;
const SEED_FIXTURES: usize = 10_000;
/// Sign-ins of each kind, alternated, for the timing comparison.
const TIMING_PAIRS: usize = 15;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported and not needed.
    let runs: usize = env_or("BENCH_RUNS", 5);
    let secs: u64 = env_or("BENCH_SECS", 3);
    let users: usize = env_or("BENCH_USERS", 1_000_000);
    let write_files = std::env::var("BENCH_NO_WRITE").is_err();
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("the benchmark needs wrk: apt-get install -y wrk");
        std::process::exit(2);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let machine = machine(cores);
    let load_before = loadavg();
    eprintln!("bench: {machine}; {runs} runs of {secs} s loads; server {SERVER}");

    let dir = tempfile::Builder::new()
        .prefix("appmixer-bench-")
        .tempdir()
        .expect("temp dir");
    let work = dir.path();
    let config = work.join("empty.toml");
    std::fs::write(&config, "").expect("write empty config");
    let hash = bcrypt::hash(PASSWORD, COST).expect("bcrypt hash");

    // The stored users, seeded once through `users import` (or fixtures if that is missing).
    let big_db = work.join("big.db");
    let t = Instant::now();
    let how = seed(work, &config, &big_db, users, &hash);
    eprintln!(
        "bench: seeded {users} users through {how} in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut all: Vec<Run> = Vec::new();
    for run in 0..runs {
        let r = one_run(run, work, &config, &big_db, users, &hash, cores, secs);
        eprintln!("bench: run {}/{runs}: {}", run + 1, r.summary());
        all.push(r);
    }
    let load_after = loadavg();

    // Moving a tenant: `users import` and `users export` of BENCH_MOVE_USERS users (default
    // 1 000 000; 0 skips), wall time and peak resident memory, once.
    let move_users: usize = env_or("BENCH_MOVE_USERS", 1_000_000);
    let moving = if move_users > 0 && has_import() {
        eprintln!("bench: users import and export of {move_users} users");
        Some(move_tenant(work, &config, move_users, &hash))
    } else {
        None
    };

    // Admin searches over the stored users, and what keeping their indexes costs a sign-up.
    eprintln!("bench: admin searches over {users} users");
    let searches = {
        let server = Server::start(work, &config, &big_db, &[]);
        let token = sign_in(server.addr, "user000000@bench.test");
        search::rows(
            "SQLite",
            users,
            &search::measure(server.addr, &token, users),
        )
    };
    eprintln!("bench: sign-ups with and without the search indexes");
    let index_cost = index_cost(work, &config, secs);

    // The Firebase Auth Emulator and json-server-auth beside this server, one procedure for
    // the three (`BENCH_NO_PEERS=1` skips them; npm installs them on the first run).
    let peers = if std::env::var("BENCH_NO_PEERS").is_err() {
        eprintln!("bench: the Firebase Auth Emulator and json-server-auth beside this server");
        Some(peers::measure(
            Path::new(REPO),
            Path::new(SERVER),
            work,
            secs,
        ))
    } else {
        None
    };

    // PostgreSQL: the same figures on one database, and two replicas on it, once.
    let postgres = if std::env::var("BENCH_NO_POSTGRES").is_err() && has_import() {
        postgres_rows(work, &config, users, &hash, secs, &all, cores)
    } else {
        None
    };

    let report = Report::new(&all, cores, users);
    let machine_line = format!(
        "{machine}; load average {load_before} before, {load_after} after; {runs} runs, {secs} s per load; {}",
        today()
    );
    let mut table = report.table();
    table.push_str(&index_cost);
    table.push_str(&searches);
    if let Some(rows) = &moving {
        table.push_str(rows);
    }
    if let Some(rows) = &postgres {
        table.push_str(rows);
    }
    if let Some(figs) = &peers {
        table.push('\n');
        table.push_str(&peers::table(figs));
    }
    println!("\n{machine_line}\n\n{table}");
    if write_files {
        let docs = Path::new(REPO).join("docs");
        std::fs::create_dir_all(&docs).expect("docs dir");
        std::fs::write(docs.join("bench.svg"), report.svg(&machine_line)).expect("write svg");
        if let Some(figs) = &peers {
            std::fs::write(docs.join("peers.svg"), peers::svg(figs, &machine_line))
                .expect("write peers svg");
        }
        update_table(&docs.join("bench.md"), &machine_line, &table);
        eprintln!("bench: wrote docs/bench.svg, docs/peers.svg and the table of docs/bench.md");
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything measured in one run.
#[derive(Default, Clone)]
struct Run {
    startup_ms: f64,
    rss_idle_mib: f64,
    rss_end_mib: f64,
    rss_peak_mib: f64,
    root: Wrk,
    get_user: Wrk,
    verify_rate: f64,
    sign_in: Wrk,
    create_big: Wrk,
    create_empty: Wrk,
    /// Sign-ups on an empty database whose `user.created` webhook goes to a receiver that
    /// takes 5 s to answer each message.
    create_hooked: Wrk,
    mixed_get: Wrk,
    mixed_flood: Wrk,
    unknown_ms: f64,
    wrong_ms: f64,
    /// `POST /user/forgot-password` for an address with an account, and for one without.
    forgot_known_ms: f64,
    forgot_unknown_ms: f64,
    fixtures_10k_s: f64,
    import_10k_s: Option<f64>,
}

impl Run {
    fn summary(&self) -> String {
        format!(
            "GET / {:.0}/s, GET /user {:.0}/s p99 {:.2} ms, sign-in {:.1}/s (bcrypt {:.1}/s/core), \
             POST /user {:.1}/s vs {:.1}/s empty ({:.1}/s with a slow webhook), flood p99 {:.1} ms, start {:.0} ms, \
             rss {:.1}/{:.1} MiB, unknown/wrong {:.1}/{:.1} ms",
            self.root.rps(),
            self.get_user.rps(),
            self.get_user.p99,
            self.sign_in.rps(),
            self.verify_rate,
            self.create_big.rps(),
            self.create_empty.rps(),
            self.create_hooked.rps(),
            self.mixed_get.p99,
            self.startup_ms,
            self.rss_idle_mib,
            self.rss_end_mib,
            self.unknown_ms,
            self.wrong_ms
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn one_run(
    run: usize,
    work: &Path,
    config: &Path,
    big_db: &Path,
    users: usize,
    hash: &str,
    cores: usize,
    secs: u64,
) -> Run {
    let mut r = Run::default();
    let d = Duration::from_secs(secs);

    // Start-up with the stored users, then memory once it has settled.
    let server = Server::start(work, config, big_db, &[]);
    r.startup_ms = server.first_answer.as_secs_f64() * 1e3;
    std::thread::sleep(Duration::from_millis(300));
    r.rss_idle_mib = server.rss_mib("VmRSS");

    let addr = server.addr;
    let (status, body) = http(
        addr,
        "POST",
        "/user/auth",
        &[],
        Some(&format!(
            r#"{{"username":"user000000@bench.test","password":"{PASSWORD}"}}"#
        )),
    );
    assert_eq!(status, 200, "sign-in of a seeded user: {body}");
    let token = json_string(&body, "token").expect("token in sign-in answer");
    let token_env = [("BENCH_TOKEN", token.as_str())];

    // Reads: the ceiling (GET /) and GET /user, back to back, after a warm-up.
    wrk(
        addr,
        "/user",
        "get_user.lua",
        READ_CONNS,
        Duration::from_secs(1),
        &token_env,
    );
    r.root = wrk(addr, "/", "root.lua", READ_CONNS, d, &[]);
    r.get_user = wrk(addr, "/user", "get_user.lua", READ_CONNS, d, &token_env);

    // Sign-ins against what one core of this machine verifies right now.
    let users_s = users.to_string();
    let sign_env = [
        ("BENCH_USERS", users_s.as_str()),
        ("BENCH_PASSWORD", PASSWORD),
    ];
    // The single-thread rate is taken just before and just after, and averaged.
    let before = verify_rate(hash);
    r.sign_in = wrk(addr, "/user/auth", "sign_in.lua", HASH_CONNS, d, &sign_env);
    server.wait_idle();
    r.verify_rate = (before + verify_rate(hash)) / 2.0;

    // Sign-ups with the stored users, with an empty database, and with an empty database
    // whose webhook receiver is slow: adjacent, the first two in alternated order.
    let empty_db = work.join(format!("empty-{run}.db"));
    let empty = Server::start(work, config, &empty_db, &[]);
    let hooked_db = work.join(format!("hooked-{run}.db"));
    let receiver = slow_receiver(Duration::from_secs(5));
    let hook_url = format!("http://{receiver}/hook");
    let hooked = Server::start(
        work,
        config,
        &hooked_db,
        &[("APPMIXER_WEBHOOKS__USER_CREATED", hook_url.as_str())],
    );
    let tag_hooked = format!("r{run}h{}", std::process::id());
    let tag_big = format!("r{run}b{}", std::process::id());
    let tag_empty = format!("r{run}e{}", std::process::id());
    let create = |addr: SocketAddr, tag: &str| {
        wrk(
            addr,
            "/user",
            "create_user.lua",
            HASH_CONNS,
            d,
            &[("BENCH_TAG", tag), ("BENCH_PASSWORD", PASSWORD)],
        )
    };
    for first in [run.is_multiple_of(2), !run.is_multiple_of(2)] {
        if first {
            r.create_big = create(addr, &tag_big);
            server.wait_idle();
        } else {
            r.create_empty = create(empty.addr, &tag_empty);
            empty.wait_idle();
        }
    }
    r.create_hooked = create(hooked.addr, &tag_hooked);
    hooked.wait_idle();
    drop(empty);
    drop(hooked);

    // GET /user while a sign-in flood keeps every core busy hashing.
    let flood = wrk_spawn(
        addr,
        "/user/auth",
        "sign_in.lua",
        FLOOD_CONNS,
        d + Duration::from_secs(2),
        &sign_env,
    );
    std::thread::sleep(Duration::from_millis(1000));
    r.mixed_get = wrk(
        addr,
        "/user",
        "get_user.lua",
        MIXED_READ_CONNS,
        d,
        &token_env,
    );
    r.mixed_flood = flood.finish();
    // Hashes still queued when wrk stopped would slow the next figure.
    server.wait_idle();

    // Unknown user against wrong password, alternated on an otherwise idle server.
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..TIMING_PAIRS {
        let wrong_body = format!(
            r#"{{"username":"user{:06}@bench.test","password":"not-the-password"}}"#,
            i + 1
        );
        let unknown_body =
            format!(r#"{{"username":"nobody{i:06}@bench.test","password":"not-the-password"}}"#);
        for (body, into) in [(&unknown_body, &mut unknown), (&wrong_body, &mut wrong)] {
            let t = Instant::now();
            let (status, text) = http(addr, "POST", "/user/auth", &[], Some(body));
            into.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 403, "failed sign-in answered {status}: {text}");
        }
    }
    r.unknown_ms = median(&unknown);
    r.wrong_ms = median(&wrong);

    // Forgot-password for a stored address and an unknown one, alternated: the same answer
    // should take the same time (nothing delivers these codes here: a WARN each).
    let mut known = Vec::new();
    let mut nobody = Vec::new();
    for i in 0..TIMING_PAIRS {
        let known_body = format!(r#"{{"email":"user{:06}@bench.test"}}"#, i + 1);
        let nobody_body = format!(r#"{{"email":"nobody{i:06}@bench.test"}}"#);
        for (body, into) in [(&nobody_body, &mut nobody), (&known_body, &mut known)] {
            let t = Instant::now();
            let (status, text) = http(addr, "POST", "/user/forgot-password", &[], Some(body));
            into.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200, "forgot-password answered {status}: {text}");
        }
    }
    r.forgot_known_ms = median(&known);
    r.forgot_unknown_ms = median(&nobody);

    r.rss_end_mib = server.rss_mib("VmRSS");
    r.rss_peak_mib = server.rss_mib("VmHWM");
    drop(server);

    // Seeding 10 000 users: fixtures at start (to the first answer), and `users import`.
    let fixtures_db = work.join(format!("fixtures-{run}.db"));
    let fixtures_toml = work.join("fixtures-10k.toml");
    if !fixtures_toml.exists() {
        write_fixtures_toml(&fixtures_toml, SEED_FIXTURES, "fixture", hash);
    }
    let s = Server::start(work, &fixtures_toml, &fixtures_db, &[]);
    r.fixtures_10k_s = s.first_answer.as_secs_f64();
    drop(s);
    if has_import() {
        let file = work.join("import-10k.json");
        if !file.exists() {
            write_import_json(&file, SEED_FIXTURES, "imported", hash);
        }
        let db = work.join(format!("import-{run}.db"));
        let t = Instant::now();
        import(work, config, &db, &file);
        r.import_10k_s = Some(t.elapsed().as_secs_f64());
    }
    let _ = cores;
    r
}

/// A running server; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    first_answer: Duration,
    _stdout: BufReader<ChildStdout>,
}

fn server_command(work: &Path, config: &Path, db: &Path) -> Command {
    let mut cmd = Command::new(SERVER);
    cmd.arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .current_dir(work);
    for (key, _) in std::env::vars() {
        if key.starts_with("APPMIXER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .env("APPMIXER_AUTH__BCRYPT_COST", COST.to_string())
        // The brute-force limit would answer 429 to the timing comparison's failed sign-ins.
        .env("APPMIXER_AUTH__MAX_FAILED_ATTEMPTS", "0");
    cmd
}

impl Server {
    fn start(work: &Path, config: &Path, db: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_cmd(work, server_command(work, config, db), env)
    }

    fn start_cmd(work: &Path, mut cmd: Command, env: &[(&str, &str)]) -> Self {
        let log = work.join("server.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("server log");
        cmd.args(["--port", "0"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let t = Instant::now();
        let mut child = cmd.spawn().expect("start the server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let Some(url) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the server did not start (stdout {line:?}); its log:\n{log}");
        };
        let addr: SocketAddr = url.parse().expect("listening address");
        loop {
            if let Ok((200, _)) = try_http(addr, "GET", "/", &[], None) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no answer from {addr}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        Self {
            first_answer: t.elapsed(),
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// CPU time (user + system) the server has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/PID/stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map_or("", |x| x.1);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        field(11) + field(12)
    }

    /// Waits until the server has finished the work a load left queued (hashes still waiting
    /// when wrk stopped): less than 2 ticks of CPU in 200 ms, at most 30 s.
    fn wait_idle(&self) {
        let t = Instant::now();
        let mut last = self.cpu_ticks();
        while t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.cpu_ticks();
            if now - last < 2 {
                return;
            }
            last = now;
        }
    }

    fn rss_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("memory field in /proc/PID/status");
        kib / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM lets SQLite close cleanly (checkpointing the WAL) for the next start.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(12) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_import() -> bool {
    Command::new(SERVER)
        .args(["users", "import", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn import(work: &Path, config: &Path, db: &Path, file: &Path) {
    let out = server_command(work, config, db)
        .args(["users", "import"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run users import");
    assert!(
        out.status.success(),
        "users import failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A seeded user's token (every seeded user has [`PASSWORD`]).
fn sign_in(addr: SocketAddr, username: &str) -> String {
    let (status, body) = http(
        addr,
        "POST",
        "/user/auth",
        &[],
        Some(&format!(
            r#"{{"username":"{username}","password":"{PASSWORD}"}}"#
        )),
    );
    assert_eq!(status, 200, "sign-in of {username}: {body}");
    json_string(&body, "token").expect("token in sign-in answer")
}

/// The search indexes' cost in writes: `POST /user` at bcrypt cost 4 (so the database, not
/// bcrypt, is most of each request) on an empty database as it is, and on one without the
/// search triggers and the sort-key indexes (the schema before them), alternated twice.
fn index_cost(work: &Path, config: &Path, secs: u64) -> String {
    let with = work.join("index-with.db");
    let without = work.join("index-without.db");
    for db in [&with, &without] {
        drop(Server::start(work, config, db, &[]));
    }
    let conn = rusqlite::Connection::open(&without).expect("open the database");
    conn.execute_batch(
        "DROP TRIGGER users_search_insert; DROP TRIGGER users_search_delete;
         DROP TRIGGER users_search_update; DROP TRIGGER user_tags_insert;
         DROP TRIGGER user_tags_delete; DROP TRIGGER user_tags_update;
         DROP INDEX users_mtime; DROP INDEX users_plan; DROP INDEX users_is_active;
         DROP INDEX users_vendor;",
    )
    .expect("drop the search triggers and sort indexes");
    drop(conn);
    let cost4 = [("APPMIXER_AUTH__BCRYPT_COST", "4")];
    let d = Duration::from_secs(secs);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let indexed = round % 2 == (round / 2) % 2;
        let db = if indexed { &with } else { &without };
        let server = Server::start(work, config, db, &cost4);
        let tag = format!("ix{round}");
        let w = wrk(
            server.addr,
            "/user",
            "create_user.lua",
            HASH_CONNS,
            d,
            &[("BENCH_TAG", tag.as_str()), ("BENCH_PASSWORD", PASSWORD)],
        );
        server.wait_idle();
        if indexed { &mut on } else { &mut off }.push(w.rps());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&on) / mean(&off);
    format!(
        "| `POST /user` at cost 4, 16 connections: with the search indexes / without (two each, alternated; {} and {} against {} and {} req/s) | — | {ratio:.2} | once |  |\n",
        group(on[0]),
        group(on[1]),
        group(off[0]),
        group(off[1]),
    )
}

/// Fills `db` with `n` users (`user000000@bench.test` …, all with `PASSWORD`).
fn seed(work: &Path, config: &Path, db: &Path, n: usize, hash: &str) -> &'static str {
    if has_import() {
        let file = work.join("seed.json");
        write_import_json(&file, n, "user", hash);
        import(work, config, db, &file);
        "users import"
    } else {
        let file = work.join("seed.toml");
        write_fixtures_toml(&file, n, "user", hash);
        drop(Server::start(work, &file, db, &[]));
        "fixture users (users import is not in this build)"
    }
}

fn write_import_json(path: &Path, n: usize, prefix: &str, hash: &str) {
    let now = 1_764_470_000_000_i64;
    let mut out = String::with_capacity(n * 300);
    out.push_str("{\"version\": 1, \"users\": [\n");
    for i in 0..n {
        if i > 0 {
            out.push_str(",\n");
        }
        let name = format!("{prefix}{i:06}@bench.test");
        // For the admin searches: one user in 1 000 an admin, one in 100 on plan `pro`, one
        // creation second each.
        let scope = if i % 1000 == 0 {
            r#"["user","admin"]"#
        } else {
            r#"["user"]"#
        };
        let plan = if i % 100 == 1 { "pro" } else { "free" };
        let created = now + i as i64 * 1000;
        write!(
            out,
            r#"{{"id":"{}","username":"{name}","email":"{name}","passwordHash":"{hash}","isActive":false,"scope":{scope},"plan":"{plan}","vendor":null,"metadata":{{}},"created":{created},"mtime":{created}}}"#,
            object_id(prefix, i)
        )
        .expect("format");
    }
    out.push_str("\n]}\n");
    std::fs::write(path, out).expect("write import file");
}

fn write_fixtures_toml(path: &Path, n: usize, prefix: &str, hash: &str) {
    let mut out = String::with_capacity(n * 200);
    for i in 0..n {
        let name = format!("{prefix}{i:06}@bench.test");
        write!(
            out,
            "[[users]]\nid = \"{}\"\nusername = \"{name}\"\nemail = \"{name}\"\npassword_hash = \"{hash}\"\n\n",
            object_id(prefix, i)
        )
        .expect("format");
    }
    std::fs::write(path, out).expect("write fixtures file");
}

/// A fixed 24-hex id per seeded user.
fn object_id(prefix: &str, i: usize) -> String {
    let tag = prefix
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31) ^ u32::from(b));
    format!("{tag:08x}{i:016x}")
}

/// Single-thread `bcrypt::verify` rate at the server's cost, in this process, for ~1.5 s.
fn verify_rate(hash: &str) -> f64 {
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < Duration::from_millis(1500) {
        assert!(bcrypt::verify(PASSWORD, hash).expect("verify"));
        n += 1;
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

/// What one wrk run printed through bench/report.lua. Latencies in milliseconds.
#[derive(Default, Clone, Copy)]
struct Wrk {
    requests: u64,
    secs: f64,
    errors: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
}

impl Wrk {
    /// Successful answers per second (non-2xx and timeouts left out).
    fn rps(&self) -> f64 {
        self.requests.saturating_sub(self.errors) as f64 / self.secs.max(1e-9)
    }
}

struct WrkChild(std::process::Child);

fn wrk_spawn(
    addr: SocketAddr,
    path: &str,
    script: &str,
    conns: u32,
    d: Duration,
    env: &[(&str, &str)],
) -> WrkChild {
    let bench = Path::new(REPO).join("bench");
    let report = std::fs::read_to_string(bench.join("report.lua")).expect("bench/report.lua");
    let body = std::fs::read_to_string(bench.join(script)).expect("bench script");
    let file = std::env::temp_dir().join(format!("appmixer-bench-{}-{script}", std::process::id()));
    std::fs::write(&file, format!("{report}\n{body}")).expect("write wrk script");
    let child = Command::new("wrk")
        .args(["-t2", "--timeout", "10s", "-c"])
        .arg(conns.to_string())
        .arg("-d")
        // wrk takes whole seconds only.
        .arg(format!("{}s", d.as_secs().max(1)))
        .arg("-s")
        .arg(&file)
        .arg(format!("http://{addr}{path}"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk");
    WrkChild(child)
}

impl WrkChild {
    fn finish(self) -> Wrk {
        let out = self.0.wait_with_output().expect("wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("BENCH "))
            .unwrap_or_else(|| {
                panic!(
                    "wrk printed no result:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let kv: BTreeMap<&str, f64> = line
            .split_whitespace()
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        let get = |k: &str| kv.get(k).copied().unwrap_or(0.0);
        Wrk {
            requests: get("requests") as u64,
            secs: get("duration_us") / 1e6,
            errors: (get("status") + get("timeout")) as u64,
            p50: get("p50") / 1e3,
            p90: get("p90") / 1e3,
            p99: get("p99") / 1e3,
            p999: get("p999") / 1e3,
        }
    }
}

fn wrk(
    addr: SocketAddr,
    path: &str,
    script: &str,
    conns: u32,
    d: Duration,
    env: &[(&str, &str)],
) -> Wrk {
    wrk_spawn(addr, path, script, conns, d, env).finish()
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): status and body.
fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        write!(req, "{k}: {v}\r\n").expect("format");
    }
    if let Some(b) = body {
        write!(
            req,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
        .expect("format");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    try_http(addr, method, path, headers, body).expect("HTTP request to the server")
}

/// A top-level string field of a JSON answer.
fn json_string(body: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(key)?.as_str().map(str::to_owned)
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn machine(cores: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("unknown CPU")
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn today() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Medians over runs, the table and the chart.
struct Report {
    rows: Vec<Row>,
    /// (label, median successful requests per second) for the chart.
    throughput: Vec<(String, f64)>,
    /// (label, median p50, p90, p99, p99.9 in ms) for the chart.
    latency: Vec<(String, [f64; 4])>,
}

struct Row {
    figure: String,
    target: String,
    value: String,
    spread: String,
    verdict: &'static str,
}

enum Goal {
    None,
    AtLeast(f64),
    Under(f64),
    Between(f64, f64),
}

impl Goal {
    fn text(&self, unit: &str) -> String {
        match self {
            Goal::None => "—".into(),
            Goal::AtLeast(x) => format!("≥ {x}{unit}"),
            Goal::Under(x) => format!("< {x}{unit}"),
            Goal::Between(a, b) => format!("{a} – {b}{unit}"),
        }
    }
    fn verdict(&self, v: f64) -> &'static str {
        let ok = match self {
            Goal::None => return "",
            Goal::AtLeast(x) => v >= *x,
            Goal::Under(x) => v < *x,
            Goal::Between(a, b) => (*a..=*b).contains(&v),
        };
        if ok { "met" } else { "**missed**" }
    }
}

impl Report {
    fn new(all: &[Run], cores: usize, users: usize) -> Self {
        let mut rows = Vec::new();
        let users_txt = group(users as f64);
        let mut add = |figure: String, goal: Goal, unit: &str, digits: usize, v: Vec<f64>| {
            let m = median(&v);
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            rows.push(Row {
                figure,
                target: goal.text(unit),
                value: format!("{}{unit}", fmt(m, digits)),
                spread: format!("{} – {}", fmt(lo, digits), fmt(hi, digits)),
                verdict: goal.verdict(m),
            });
        };
        let col = |f: &dyn Fn(&Run) -> f64| all.iter().map(f).collect::<Vec<f64>>();
        add(
            format!("`GET /` throughput, {READ_CONNS} connections (the ceiling)"),
            Goal::None,
            " req/s",
            0,
            col(&|r| r.root.rps()),
        );
        add(
            format!("`GET /user` throughput, {READ_CONNS} connections"),
            Goal::None,
            " req/s",
            0,
            col(&|r| r.get_user.rps()),
        );
        add(
            "`GET /user` / `GET /` throughput".into(),
            Goal::AtLeast(0.8),
            "",
            2,
            col(&|r| r.get_user.rps() / r.root.rps()),
        );
        add(
            format!("`GET /user` p99 latency, {READ_CONNS} connections"),
            Goal::Under(5.0),
            " ms",
            2,
            col(&|r| r.get_user.p99),
        );
        add(
            format!("single-thread `bcrypt::verify` rate, cost {COST} (bench process)"),
            Goal::None,
            "/s",
            1,
            col(&|r| r.verify_rate),
        );
        add(
            format!("`POST /user/auth` throughput, cost {COST}, {HASH_CONNS} connections"),
            Goal::None,
            " req/s",
            1,
            col(&|r| r.sign_in.rps()),
        );
        add(
            format!("`POST /user/auth` / ({cores} cores × verify rate)"),
            Goal::AtLeast(0.9),
            "",
            2,
            col(&|r| r.sign_in.rps() / (cores as f64 * r.verify_rate)),
        );
        add(
            format!("`POST /user` throughput, {users_txt} users stored, {HASH_CONNS} connections"),
            Goal::None,
            " req/s",
            1,
            col(&|r| r.create_big.rps()),
        );
        add(
            format!("`POST /user` throughput, empty database, {HASH_CONNS} connections"),
            Goal::None,
            " req/s",
            1,
            col(&|r| r.create_empty.rps()),
        );
        add(
            format!(
                "`POST /user` throughput, empty database, webhook to a receiver taking 5 s, {HASH_CONNS} connections"
            ),
            Goal::None,
            " req/s",
            1,
            col(&|r| r.create_hooked.rps()),
        );
        add(
            "`POST /user` with the slow webhook / without".into(),
            Goal::AtLeast(0.9),
            "",
            2,
            col(&|r| r.create_hooked.rps() / r.create_empty.rps()),
        );
        add(
            format!("`POST /user` {users_txt} users / empty"),
            Goal::AtLeast(0.9),
            "",
            2,
            col(&|r| r.create_big.rps() / r.create_empty.rps()),
        );
        add(
            format!(
                "`GET /user` p99, {MIXED_READ_CONNS} connections, during a {FLOOD_CONNS}-connection sign-in flood"
            ),
            Goal::Under(50.0),
            " ms",
            1,
            col(&|r| r.mixed_get.p99),
        );
        add(
            "sign-in flood throughput meanwhile".into(),
            Goal::None,
            " req/s",
            1,
            col(&|r| r.mixed_flood.rps()),
        );
        add(
            format!("start-up to first answer, {users_txt} users stored"),
            Goal::Under(100.0),
            " ms",
            1,
            col(&|r| r.startup_ms),
        );
        add(
            format!("resident memory idle (after start-up, {users_txt} users)"),
            Goal::Under(20.0),
            " MiB",
            1,
            col(&|r| r.rss_idle_mib),
        );
        add(
            "resident memory at the end of the load".into(),
            Goal::Under(64.0),
            " MiB",
            1,
            col(&|r| r.rss_end_mib),
        );
        add(
            "peak resident memory (VmHWM)".into(),
            Goal::None,
            " MiB",
            1,
            col(&|r| r.rss_peak_mib),
        );
        add(
            format!(
                "{} fixture users (`password_hash`) at start, to first answer",
                group(SEED_FIXTURES as f64)
            ),
            Goal::Under(2.0),
            " s",
            2,
            col(&|r| r.fixtures_10k_s),
        );
        if all.iter().all(|r| r.import_10k_s.is_some()) {
            add(
                format!(
                    "`users import` of {} users (whole command)",
                    group(SEED_FIXTURES as f64)
                ),
                Goal::Under(2.0),
                " s",
                2,
                col(&|r| r.import_10k_s.unwrap_or(f64::NAN)),
            );
        }
        add(
            "unknown-user sign-in time (median)".into(),
            Goal::None,
            " ms",
            1,
            col(&|r| r.unknown_ms),
        );
        add(
            "wrong-password sign-in time (median)".into(),
            Goal::None,
            " ms",
            1,
            col(&|r| r.wrong_ms),
        );
        add(
            "unknown-user / wrong-password sign-in time".into(),
            Goal::Between(0.9, 1.1),
            "",
            3,
            col(&|r| r.unknown_ms / r.wrong_ms),
        );
        add(
            "forgot-password time, known address (median)".into(),
            Goal::None,
            " ms",
            2,
            col(&|r| r.forgot_known_ms),
        );
        add(
            "forgot-password time, unknown address (median)".into(),
            Goal::None,
            " ms",
            2,
            col(&|r| r.forgot_unknown_ms),
        );
        add(
            "forgot-password known / unknown address time".into(),
            Goal::Between(0.9, 1.1),
            "",
            3,
            col(&|r| r.forgot_known_ms / r.forgot_unknown_ms),
        );

        let med = |f: &dyn Fn(&Run) -> Wrk| -> (f64, [f64; 4]) {
            let w: Vec<Wrk> = all.iter().map(f).collect();
            let m = |g: fn(&Wrk) -> f64| median(&w.iter().map(g).collect::<Vec<_>>());
            (
                m(Wrk::rps),
                [m(|x| x.p50), m(|x| x.p90), m(|x| x.p99), m(|x| x.p999)],
            )
        };
        let cases: Vec<(String, (f64, [f64; 4]))> = vec![
            ("GET /".into(), med(&|r| r.root)),
            ("GET /user".into(), med(&|r| r.get_user)),
            ("POST /user/auth".into(), med(&|r| r.sign_in)),
            (format!("POST /user ({users_txt})"), med(&|r| r.create_big)),
            ("POST /user (empty)".into(), med(&|r| r.create_empty)),
            ("GET /user in flood".into(), med(&|r| r.mixed_get)),
        ];
        Self {
            rows,
            throughput: cases.iter().map(|(l, (t, _))| (l.clone(), *t)).collect(),
            latency: cases.iter().map(|(l, (_, p))| (l.clone(), *p)).collect(),
        }
    }

    fn table(&self) -> String {
        let mut s = String::from(
            "| figure | target | median | range over runs | |\n|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.figure, r.target, r.value, r.spread, r.verdict
            )
            .expect("format");
        }
        s
    }

    /// Two panels: median throughput per route (log scale) and latency percentiles per route.
    fn svg(&self, caption: &str) -> String {
        let (w, h) = (960.0, 420.0);
        let mut s = String::new();
        write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="20" y="24" font-size="15" font-weight="bold">appmixer-auth under load (medians)</text>
<text x="20" y="{}" font-size="10" fill="#555">{}</text>
"##,
            h - 10.0,
            xml(caption)
        )
        .expect("format");
        let label_w = 150.0;
        let row_h = 48.0;
        let top = 70.0;
        // Left: throughput, log10 axis from 1 to 100 000 req/s.
        let (x0, pw) = (20.0 + label_w, 250.0);
        write!(
            s,
            r##"<text x="{x0}" y="52" font-weight="bold">throughput (successful req/s, log scale)</text>"##
        )
        .expect("format");
        let lx = |v: f64| x0 + pw * (v.max(1.0).log10() / 5.0).min(1.0);
        for e in 0..=5 {
            let x = lx(10f64.powi(e));
            write!(
                s,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="10" fill="#555">{}</text>"##,
                top - 8.0,
                top + row_h * self.throughput.len() as f64,
                top + row_h * self.throughput.len() as f64 + 12.0,
                group(10f64.powi(e))
            )
            .expect("format");
        }
        for (i, (label, v)) in self.throughput.iter().enumerate() {
            let y = top + row_h * i as f64;
            write!(
                s,
                r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{x0}" y="{y:.1}" width="{:.1}" height="22" fill="#3b7dd8"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
                x0 - 6.0,
                y + 15.0,
                xml(label),
                (lx(*v) - x0).max(1.0),
                lx(*v) + 4.0,
                y + 15.0,
                fmt(*v, if *v < 100.0 { 1 } else { 0 })
            )
            .expect("format");
        }
        // Right: p50 / p90 / p99 / p99.9 per route, log10 axis from 0.1 ms to 10 s.
        let (x1, pw1) = (480.0 + label_w, 300.0);
        write!(
            s,
            r##"<text x="{x1}" y="52" font-weight="bold">latency percentiles (ms, log scale)</text>"##
        )
        .expect("format");
        let lx1 = |ms: f64| x1 + pw1 * ((ms.max(0.1).log10() + 1.0) / 5.0).clamp(0.0, 1.0);
        for e in -1..=4 {
            let x = lx1(10f64.powi(e));
            write!(
                s,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="10" fill="#555">{}</text>"##,
                top - 8.0,
                top + row_h * self.latency.len() as f64,
                top + row_h * self.latency.len() as f64 + 12.0,
                if e < 0 { "0.1".to_owned() } else { group(10f64.powi(e)) }
            )
            .expect("format");
        }
        let colors = ["#9ecae1", "#4292c6", "#08519c", "#08306b"];
        let names = ["p50", "p90", "p99", "p99.9"];
        for (k, (c, n)) in colors.iter().zip(names).enumerate() {
            let x = x1 + 70.0 * k as f64;
            write!(
                s,
                r##"<rect x="{x}" y="{}" width="10" height="10" fill="{c}"/><text x="{}" y="{}" font-size="10">{n}</text>"##,
                top + row_h * self.latency.len() as f64 + 20.0,
                x + 14.0,
                top + row_h * self.latency.len() as f64 + 29.0
            )
            .expect("format");
        }
        for (i, (label, p)) in self.latency.iter().enumerate() {
            let y = top + row_h * i as f64;
            write!(
                s,
                r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x1 - 6.0,
                y + 15.0,
                xml(label)
            )
            .expect("format");
            for (k, v) in p.iter().enumerate() {
                let yy = y + 1.0 + 9.0 * k as f64;
                write!(
                    s,
                    r##"<rect x="{x1}" y="{yy:.1}" width="{:.1}" height="8" fill="{}"/>"##,
                    (lx1(*v) - x1).max(1.0),
                    colors[k]
                )
                .expect("format");
            }
            write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">p99 {} ms</text>"##,
                lx1(p[3]) + 4.0,
                y + 24.0,
                fmt(p[2], if p[2] < 10.0 { 2 } else { 0 })
            )
            .expect("format");
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v >= 1000.0 && digits == 0 {
        return group(v);
    }
    format!("{v:.digits$}")
}

/// 100000 → "100 000".
fn group(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Replaces the generated block of the benchmark page (between its `bench:` markers); the
/// rest of the page is left as written.
fn update_table(path: &Path, machine_line: &str, table: &str) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let (begin, end) = ("<!-- bench:begin -->", "<!-- bench:end -->");
    let (Some(a), Some(b)) = (text.find(begin), text.find(end)) else {
        eprintln!(
            "bench: {} has no {begin} … {end} block; table not written",
            path.display()
        );
        return;
    };
    if b < a {
        return;
    }
    let new = format!(
        "{}{begin}\nLast run: {machine_line}.\n\n{table}{}",
        &text[..a],
        &text[b..]
    );
    std::fs::write(path, new).expect("write the benchmark page");
}

/// A webhook receiver that reads each request and answers 200 after `delay`, one thread per
/// connection; its address.
fn slow_receiver(delay: Duration) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("receiver");
    let addr = listener.local_addr().expect("receiver address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let _ = stream.read(&mut buf);
                std::thread::sleep(delay);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    addr
}

/// `users import` then `users export` of `n` users, each timed with its peak resident memory
/// (GNU time's `%M`); table rows.
fn move_tenant(work: &Path, config: &Path, n: usize, hash: &str) -> String {
    let file = work.join("move.json");
    write_import_json(&file, n, "mover", hash);
    let db = work.join("move.db");
    let measure = |args: &[&str]| -> Option<(f64, f64)> {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%e %M", SERVER, "--config"])
            .arg(config)
            .arg("--db")
            .arg(&db)
            .args(args)
            .current_dir(work)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last()?;
        let mut f = last.split_whitespace();
        let secs: f64 = f.next()?.parse().ok()?;
        let kib: f64 = f.next()?.parse().ok()?;
        Some((secs, kib / 1024.0))
    };
    let file_arg = file.to_string_lossy().into_owned();
    let out_arg = work.join("moved.json").to_string_lossy().into_owned();
    let import = measure(&["users", "import", &file_arg]);
    let export = measure(&["users", "export", &out_arg, "--force"]);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(work.join("moved.json"));
    let users = group(n as f64);
    let mut rows = String::new();
    for (what, m) in [("import", import), ("export", export)] {
        match m {
            Some((secs, mib)) => {
                rows.push_str(&format!(
                    "| `users {what}` of {users} users, whole command | — | {secs:.1} s | once |  |\n"
                ));
                let met = if mib < 100.0 { "met" } else { "**missed**" };
                rows.push_str(&format!(
                    "| `users {what}` of {users} users, peak resident memory | < 100 MiB | {mib:.0} MiB | once | {met} |\n"
                ));
            }
            None => rows.push_str(&format!(
                "| `users {what}` of {users} users | — | not measured (needs GNU time at /usr/bin/time) | | |\n"
            )),
        }
    }
    rows
}

/// The server on PostgreSQL at `url` instead of a SQLite file, with the benchmark's settings.
fn postgres_command(work: &Path, config: &Path, url: &str) -> Command {
    let mut cmd = Command::new(SERVER);
    cmd.arg("--config").arg(config).current_dir(work);
    for (key, _) in std::env::vars() {
        if key.starts_with("APPMIXER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .env("APPMIXER_AUTH__BCRYPT_COST", COST.to_string())
        .env("APPMIXER_AUTH__MAX_FAILED_ATTEMPTS", "0")
        .env("APPMIXER_DATABASE__URL", url);
    cmd
}

/// A throwaway PostgreSQL cluster (tests/support/pg-cluster.sh), stopped and removed when
/// dropped.
struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(REPO).join("tests/support/pg-cluster.sh"))
            .arg("stop")
            .arg(&self.0)
            .status();
    }
}

/// The rows for PostgreSQL: `GET /` and `GET /user` throughput, sign-in against the bcrypt
/// ceiling and `POST /user`, with the same seeded users as SQLite, then `GET /user` over two
/// replicas on the one database. `BENCH_POSTGRES_URL` names a server to use (an empty
/// database); otherwise a throwaway cluster is made with PostgreSQL's durable defaults (fsync
/// and synchronous commit on), as SQLite runs with `synchronous = FULL`.
fn postgres_rows(
    work: &Path,
    config: &Path,
    users: usize,
    hash: &str,
    secs: u64,
    sqlite: &[Run],
    cores: usize,
) -> Option<String> {
    let (url, _cluster) = match std::env::var("BENCH_POSTGRES_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let dir = work.join("pg");
            let out = Command::new(Path::new(REPO).join("tests/support/pg-cluster.sh"))
                .arg("start")
                .arg(&dir)
                .env("PG_DURABLE", "1")
                .output()
                .ok()?;
            if !out.status.success() {
                eprintln!(
                    "bench: no PostgreSQL rows (cannot start a cluster: {})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return None;
            }
            let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (url, Some(Cluster(dir)))
        }
    };
    eprintln!("bench: PostgreSQL at {url}");
    let t = Instant::now();
    let out = postgres_command(work, config, &url)
        .args(["users", "import"])
        .arg(work.join("seed.json"))
        .stdin(Stdio::null())
        .output()
        .expect("users import into PostgreSQL");
    assert!(
        out.status.success(),
        "users import into PostgreSQL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let import_s = t.elapsed().as_secs_f64();
    let d = Duration::from_secs(secs);
    let a = Server::start_cmd(work, postgres_command(work, config, &url), &[]);
    let (status, body) = http(
        a.addr,
        "POST",
        "/user/auth",
        &[],
        Some(&format!(
            r#"{{"username":"user000000@bench.test","password":"{PASSWORD}"}}"#
        )),
    );
    assert_eq!(status, 200, "sign-in on PostgreSQL: {body}");
    let token = json_string(&body, "token").expect("token");
    let token_env = [("BENCH_TOKEN", token.as_str())];
    wrk(
        a.addr,
        "/user",
        "get_user.lua",
        READ_CONNS,
        Duration::from_secs(1),
        &token_env,
    );
    let root = wrk(a.addr, "/", "root.lua", READ_CONNS, d, &[]);
    let get_user = wrk(a.addr, "/user", "get_user.lua", READ_CONNS, d, &token_env);
    let users_s = users.to_string();
    let sign_env = [
        ("BENCH_USERS", users_s.as_str()),
        ("BENCH_PASSWORD", PASSWORD),
    ];
    let before = verify_rate(hash);
    let sign_in = wrk(
        a.addr,
        "/user/auth",
        "sign_in.lua",
        HASH_CONNS,
        d,
        &sign_env,
    );
    a.wait_idle();
    let ceiling = cores as f64 * (before + verify_rate(hash)) / 2.0;
    let tag = format!("pg{}", std::process::id());
    let create = wrk(
        a.addr,
        "/user",
        "create_user.lua",
        HASH_CONNS,
        d,
        &[("BENCH_TAG", tag.as_str()), ("BENCH_PASSWORD", PASSWORD)],
    );
    a.wait_idle();

    // Two replicas on the one database, loaded at once, half the connections each.
    let b = Server::start_cmd(work, postgres_command(work, config, &url), &[]);
    let on_b = wrk_spawn(
        b.addr,
        "/user",
        "get_user.lua",
        READ_CONNS / 2,
        d,
        &token_env,
    );
    let on_a = wrk(
        a.addr,
        "/user",
        "get_user.lua",
        READ_CONNS / 2,
        d,
        &token_env,
    );
    let on_b = on_b.finish();
    drop(b);
    let searched = search::measure(a.addr, &token, users);
    drop(a);

    let median_of = |f: &dyn Fn(&Run) -> f64| {
        let v: Vec<f64> = sqlite.iter().map(f).collect();
        median(&v)
    };
    let sqlite_get = median_of(&|r| r.get_user.rps());
    let sqlite_create = median_of(&|r| r.create_empty.rps());
    let sign_ratio = sign_in.rps() / ceiling;
    let errors =
        root.errors + get_user.errors + sign_in.errors + create.errors + on_a.errors + on_b.errors;
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let mut rows = String::new();
    rows.push_str(&format!(
        "| PostgreSQL: `users import` of {} users | — | {import_s:.1} s | once |  |\n",
        group(users as f64)
    ));
    rows.push_str(&format!(
        "| PostgreSQL: `GET /` (ceiling), req/s | — | {} | once |  |\n",
        group(root.rps())
    ));
    rows.push_str(&format!(
        "| PostgreSQL: `GET /user`, req/s (p99) | — | {} ({:.1} ms) | once | {:.2} of SQLite's |\n",
        group(get_user.rps()),
        get_user.p99,
        get_user.rps() / sqlite_get
    ));
    rows.push_str(&format!(
        "| PostgreSQL: sign-in / bcrypt ceiling | ≥ 0.9 | {sign_ratio:.2} | once | {} |\n",
        verdict(sign_ratio >= 0.9)
    ));
    rows.push_str(&format!(
        "| PostgreSQL: `POST /user`, req/s | — | {} | once | {:.2} of SQLite's (empty database) |\n",
        group(create.rps()),
        create.rps() / sqlite_create
    ));
    rows.push_str(&format!(
        "| PostgreSQL, two replicas: `GET /user`, req/s in all (p99 of the slower) | — | {} ({:.1} ms) | once |  |\n",
        group(on_a.rps() + on_b.rps()),
        on_a.p99.max(on_b.p99)
    ));
    rows.push_str(&format!(
        "| PostgreSQL: failed requests in these loads | 0 | {errors} | once | {} |\n",
        verdict(errors == 0)
    ));
    rows.push_str(&search::rows("PostgreSQL", users, &searched));
    Some(rows)
}
