//! The binary as a process, stopped the hard way and the polite way: every write answered with
//! success survives `kill -9`, and SIGTERM or SIGINT finish the requests in flight, close the
//! database and exit 0.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

#[path = "support/process.rs"]
mod process;
#[path = "support/receiver.rs"]
mod receiver;
use process::{Server, command_in, launch};

const ADMIN: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "admin-pass";

fn pid(server: &Server) -> Pid {
    Pid::from_raw(i32::try_from(server.child.id()).unwrap())
}

/// A settings file with one fixture admin, so the admin API can update and delete.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("appmixer.toml");
    std::fs::write(
        &path,
        format!(
            "[[users]]\nusername = \"{ADMIN}\"\nemail = \"{ADMIN}\"\npassword = \"{ADMIN_PASSWORD}\"\nscope = [\"user\", \"admin\"]\n"
        ),
    )
    .unwrap();
    path
}

/// Starts the binary on port 0 with this database and bcrypt cost, and reads its
/// `listening on` line.
fn start(dir: &Path, db: &Path, cost: u32) -> Server {
    start_with_env(dir, db, cost, &[])
}

/// [`start`] with more environment variables.
fn start_with_env(dir: &Path, db: &Path, cost: u32, env: &[(&str, &str)]) -> Server {
    let config = dir.join("appmixer.toml");
    let mut cmd = command_in(dir, &["--port", "0"]);
    cmd.arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .env("APPMIXER_AUTH__BCRYPT_COST", cost.to_string())
        .env("APPMIXER_AUTH__MAX_FAILED_ATTEMPTS", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    launch(cmd)
}

/// Writes one HTTP/1.1 request.
fn send(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    keep_alive: bool,
) -> std::io::Result<()> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one response: the status and the JSON body (null if none).
fn receive(reader: &mut impl BufRead) -> std::io::Result<(u16, Value)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {line:?}")))?;
    let mut len = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().map_err(std::io::Error::other)?;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// One request on its own connection (`Connection: close`, so no idle keep-alive connection
/// holds a graceful stop).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    send(&mut stream, method, path, token, body, false)?;
    receive(&mut BufReader::new(stream))
}

fn sign_in(addr: SocketAddr, username: &str, password: &str) -> (u16, Value) {
    http(
        addr,
        "POST",
        "/user/auth",
        None,
        Some(&json!({"username": username, "password": password})),
    )
    .unwrap()
}

fn admin_token(addr: SocketAddr) -> String {
    let (status, body) = sign_in(addr, ADMIN, ADMIN_PASSWORD);
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// What the server acknowledged, and what was asked but not answered (the kill came first:
/// either outcome is fine for those).
#[derive(Default, Clone)]
struct Ledger {
    /// username -> id, for every create answered 200.
    created: HashMap<String, String>,
    /// ids whose `PUT {"plan": "pro"}` was answered 200.
    updated: HashSet<String>,
    update_unknown: HashSet<String>,
    /// ids whose DELETE was answered 200.
    deleted: HashSet<String>,
    delete_unknown: HashSet<String>,
}

const PASSWORD: &str = "durable-pw";

/// One writer: creates users, updates every third and deletes every fifth, until the server
/// stops answering. Every answer it does get must be a success.
fn writer(addr: SocketAddr, admin: &str, name: &str, ledger: &Mutex<Ledger>, acks: &AtomicUsize) {
    for i in 0..10_000 {
        let username = format!("{name}-{i}@example.com");
        let body = json!({"username": username, "email": username, "password": PASSWORD});
        let Ok((status, body)) = http(addr, "POST", "/user", None, Some(&body)) else {
            return;
        };
        assert_eq!(status, 200, "creating {username}: {body}");
        let id = body["user"]["id"].as_str().unwrap().to_owned();
        ledger.lock().unwrap().created.insert(username, id.clone());
        acks.fetch_add(1, Ordering::SeqCst);
        if i % 3 == 0 {
            ledger.lock().unwrap().update_unknown.insert(id.clone());
            let path = format!("/users/{id}");
            let plan = json!({"plan": "pro"});
            let Ok((status, body)) = http(addr, "PUT", &path, Some(admin), Some(&plan)) else {
                return;
            };
            assert_eq!(status, 200, "updating {id}: {body}");
            let mut l = ledger.lock().unwrap();
            l.update_unknown.remove(&id);
            l.updated.insert(id.clone());
            acks.fetch_add(1, Ordering::SeqCst);
        }
        if i % 5 == 0 {
            ledger.lock().unwrap().delete_unknown.insert(id.clone());
            let path = format!("/users/{id}");
            let Ok((status, body)) = http(addr, "DELETE", &path, Some(admin), None) else {
                return;
            };
            assert_eq!(status, 200, "deleting {id}: {body}");
            let mut l = ledger.lock().unwrap();
            l.delete_unknown.remove(&id);
            l.deleted.insert(id);
            acks.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Every acknowledged write is there: users sign in with their password, updates show,
/// deleted users are gone.
fn verify(addr: SocketAddr, ledger: &Ledger) {
    let admin = admin_token(addr);
    for (username, id) in &ledger.created {
        if ledger.delete_unknown.contains(id) {
            continue;
        }
        let (status, user) =
            http(addr, "GET", &format!("/users/{id}"), Some(&admin), None).unwrap();
        if ledger.deleted.contains(id) {
            assert_eq!(status, 404, "{username} was deleted, and came back");
            assert_eq!(sign_in(addr, username, PASSWORD).0, 403);
            continue;
        }
        assert_eq!(status, 200, "{username} was created, and is gone: {user}");
        if ledger.updated.contains(id) {
            assert_eq!(user["plan"], "pro", "the update of {username} was lost");
        } else if !ledger.update_unknown.contains(id) {
            assert_eq!(user["plan"], "free");
        }
        let (status, body) = sign_in(addr, username, PASSWORD);
        assert_eq!(status, 200, "{username} cannot sign in: {body}");
    }
}

fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn acknowledged_creates_updates_and_deletes_survive_kill_9_at_any_moment() {
    const ROUNDS: usize = 3;
    const WRITERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let db = dir.path().join("x.db");
    let ledger = Mutex::new(Ledger::default());
    for round in 0..ROUNDS {
        let mut server = start(dir.path(), &db, 4);
        // What earlier rounds were told is still there after their kill -9.
        let view = ledger.lock().unwrap().clone();
        verify(server.addr, &view);
        let admin = admin_token(server.addr);
        let acks = AtomicUsize::new(0);
        // Kill in the middle of the stream, a little later each round, with every writer
        // mid-request.
        let target = 40 + 25 * round;
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (admin, ledger, acks) = (&admin, &ledger, &acks);
                let addr = server.addr;
                s.spawn(move || writer(addr, admin, &format!("r{round}w{w}"), ledger, acks));
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while acks.load(Ordering::SeqCst) < target {
                assert!(
                    Instant::now() < deadline,
                    "too slow: {} acks; log:\n{}",
                    acks.load(Ordering::SeqCst),
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            server.child.kill().unwrap();
            server.child.wait().unwrap();
        });
    }
    let mut server = start(dir.path(), &db, 4);
    let view = ledger.into_inner().unwrap();
    verify(server.addr, &view);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_eq!(integrity_check(&db), "ok");
    eprintln!(
        "acknowledged before the kills: {} creates, {} updates, {} deletes ({} updates and {} deletes in flight)",
        view.created.len(),
        view.updated.len(),
        view.deleted.len(),
        view.update_unknown.len(),
        view.delete_unknown.len()
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    let stored = usize::try_from(stored).unwrap();
    // Unacknowledged writes may or may not have landed; acknowledged ones all did (and the
    // fixture admin is there too).
    let live = view.created.len() - view.deleted.len();
    assert!(
        stored + view.delete_unknown.len() > live,
        "{stored} users stored, {live} acknowledged and not deleted"
    );
    assert!(
        view.created.len() > 60 && view.updated.len() > 10 && view.deleted.len() > 5,
        "too few writes to mean anything: {} created, {} updated, {} deleted",
        view.created.len(),
        view.updated.len(),
        view.deleted.len()
    );
}

/// A stop signal while a slow request (a sign-up hashing at bcrypt cost 12) is in flight:
/// new connections are refused at once, the request still gets its 200, the process exits 0
/// and leaves a checkpointed, intact database that holds the new user.
fn a_stop_signal_finishes_in_flight_requests_and_exits_0(signal: Signal) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let db = dir.path().join("x.db");
    let mut server = start(dir.path(), &db, 12);
    let addr = server.addr;
    // Warm up: the server answers.
    assert_eq!(http(addr, "GET", "/", None, None).unwrap().0, 200);
    let username = "slow@example.com";
    let body = json!({"username": username, "email": username, "password": PASSWORD});
    let (started_tx, started) = std::sync::mpsc::channel();
    let in_flight = std::thread::spawn(move || {
        let answer = (|| {
            // A first request on the connection makes sure a worker owns it: a connection
            // still queued between the acceptor and a worker is dropped by a graceful stop
            // (never started, so nothing is lost), and that is not what is tested here.
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut reader = BufReader::new(stream.try_clone()?);
            send(&mut stream, "GET", "/", None, None, true)?;
            assert_eq!(receive(&mut reader)?.0, 200);
            send(&mut stream, "POST", "/user", None, Some(&body), false)?;
            started_tx.send(()).unwrap();
            receive(&mut reader)
        })();
        (answer, Instant::now())
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the slow request was sent");
    // A cost-12 hash takes hundreds of milliseconds; signal while it runs.
    std::thread::sleep(Duration::from_millis(150));
    let signalled = Instant::now();
    kill(pid(&server), signal).unwrap();
    // The listener closes at once, while the request is still being served.
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused_at = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break Instant::now(),
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "still accepting connections after {signal}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let (answer, answered_at) = in_flight.join().unwrap();
    let (status, body) = answer.unwrap_or_else(|e| {
        panic!(
            "the request in flight was cut off by {signal}: {e}; log:\n{}",
            server.log()
        )
    });
    assert_eq!(status, 200, "{body}");
    assert!(
        answered_at > signalled,
        "the request finished before the signal: the test proved nothing (raise the cost)"
    );
    assert!(
        refused_at < answered_at,
        "connections were accepted while stopping"
    );
    let status = server.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(0),
        "{signal} must exit 0; log:\n{}",
        server.log()
    );
    // Closed cleanly: the last connection checkpointed the WAL into the file.
    let wal = dir.path().join("x.db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "{} left with {wal_len} bytes", wal.display());
    assert_eq!(integrity_check(&db), "ok");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn sigterm_finishes_in_flight_requests_closes_the_database_and_exits_0() {
    a_stop_signal_finishes_in_flight_requests_and_exits_0(Signal::SIGTERM);
}

#[test]
fn sigint_finishes_in_flight_requests_closes_the_database_and_exits_0() {
    a_stop_signal_finishes_in_flight_requests_and_exits_0(Signal::SIGINT);
}

/// A `user.created` webhook is written in the transaction of the user it announces: a server
/// killed right after answering (its receiver down, so nothing was delivered) delivers it after
/// the restart, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_promised_before_kill_9_is_delivered_after_the_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let db = dir.path().join("hooks.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = [("APPMIXER_WEBHOOKS__USER_CREATED", url.as_str())];
    let mut server = start_with_env(dir.path(), &db, 4, &env);
    let (status, body) = http(
        server.addr,
        "POST",
        "/user",
        None,
        Some(&json!({"username": "hooked", "email": "hooked@example.com", "password": "secret-1"})),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    kill(pid(&server), Signal::SIGKILL).unwrap();
    server.wait_exit(Duration::from_secs(10));

    let hook = receiver::Receiver::start_on(port, receiver::Answer::Statuses(vec![])).await;
    let _server = start_with_env(dir.path(), &db, 4, &env);
    let ours = |got: &[receiver::Received]| -> Vec<String> {
        got.iter()
            .filter(|r| r.body.contains(&id))
            .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while ours(&hook.received()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for a second copy to show up if the message were sent twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered = ours(&hook.received());
    assert_eq!(delivered.len(), 1, "delivered once: {delivered:?}");
}
