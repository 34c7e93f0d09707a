//! Floods: a burst of bcrypt work is bounded and shed with 503 without stalling the HTTP
//! workers; hundreds of idle or slow connections do not stop others from being served, and
//! silent ones are cut off; a huge body is refused before it is read.
//!
//! Clients speak raw HTTP/1.1 over TCP, so what is measured is the server, not a client's pool.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use appmixer_auth::settings::Settings;
use appmixer_auth::testing::TestServer;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `client_request_timeout` in `startup.rs`: a client must have sent its request head by then.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct App {
    /// Dropped to stop the server.
    _server: TestServer,
    addr: SocketAddr,
    _dir: TempDir,
}

impl App {
    /// Stops the server (the fixture's drop waits for it, so off the async workers).
    async fn stop(self) {
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .unwrap();
    }
}

/// The real server in this process on port 0, with a database file, through the library's
/// test fixture (a thread and an actix runtime of its own, so the test's clients and the
/// server never share a scheduler).
fn spawn(change: impl FnOnce(&mut Settings)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db").to_string_lossy().into_owned();
    let server = TestServer::builder()
        .settings(|s| {
            s.database.path = path;
            s.fixtures.api = false;
            change(s);
        })
        .start();
    App {
        addr: server.addr(),
        _server: server,
        _dir: dir,
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Value,
}

/// Reads one response (head, then `Content-Length` bytes of body) from the stream.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad head {head:?}")))?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One request on a fresh connection.
async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), read_response(&mut stream))
        .await
        .expect("answered within a minute")
        .unwrap()
}

/// `GET /` and how long it took.
async fn timed_version(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let res = request(addr, "GET", "/", None).await;
    assert_eq!(res.status, 200);
    assert!(res.body["version"].is_string(), "{:?}", res.body);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashing_flood_is_shed_with_503_and_never_blocks_the_http_workers() {
    let app = spawn(|s| {
        s.auth.hash_concurrency = 1;
        s.auth.hash_queue = 2;
        s.auth.bcrypt_cost = 12;
    });
    let addr = app.addr;
    // Sign-ins of unknown users (a full cost-12 verification against the dummy hash) and
    // sign-ups (a cost-12 hash), all at once.
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..20 {
        flood.spawn(async move {
            let name = format!("flood{i}@example.com");
            if i % 2 == 0 {
                let body = json!({"username": name, "password": "whatever"});
                (
                    "sign-in",
                    request(addr, "POST", "/user/auth", Some(body)).await,
                )
            } else {
                let body = json!({"username": name, "email": name, "password": "abc321"});
                ("sign-up", request(addr, "POST", "/user", Some(body)).await)
            }
        });
    }
    // While the hashes run, the workers keep answering at once.
    let mut tally = Tally::default();
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flood.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the flood never ended: {tally:?}"
        );
        worst = worst.max(timed_version(addr).await);
        probes += 1;
        while let Some(done) = flood.try_join_next() {
            check_flood_answer(done.unwrap(), &mut tally);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("flood: {tally:?}; GET / worst {worst:?} over {probes} probes");
    assert!(
        tally.shed >= 1,
        "nothing was shed with a queue of 2: {tally:?}"
    );
    assert!(tally.served >= 1, "nothing was served: {tally:?}");
    assert!(probes >= 3, "the flood ended before it could be probed");
    // Generous for a loaded 2-core machine: a blocked worker would take a whole hash (~0.5 s
    // here) or more.
    assert!(
        worst < Duration::from_millis(400),
        "GET / took {worst:?} during the flood"
    );
    // Afterwards the server is back to normal.
    let res = request(
        addr,
        "POST",
        "/user/auth",
        Some(json!({"username": "nobody@example.com", "password": "whatever"})),
    )
    .await;
    assert_eq!(res.status, 403);
    app.stop().await;
}

#[derive(Debug, Default)]
struct Tally {
    shed: usize,
    served: usize,
}

/// A flood answer is the normal one (200 for a sign-up, 403 for an unknown user) or a 503
/// Boom with `Retry-After`; never another error.
fn check_flood_answer((kind, res): (&str, Response), tally: &mut Tally) {
    match res.status {
        503 => {
            assert_eq!(res.body["statusCode"], 503, "{:?}", res.body);
            assert_eq!(res.body["error"], "Service Unavailable");
            let retry: u64 = res.headers["retry-after"].parse().unwrap();
            assert!((1..=60).contains(&retry));
            tally.shed += 1;
        }
        200 if kind == "sign-up" => tally.served += 1,
        403 if kind == "sign-in" => tally.served += 1,
        other => panic!("{kind} answered {other}: {:?}", res.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_idle_and_slow_connections_do_not_stop_others_being_served() {
    let app = spawn(|_| {});
    let addr = app.addr;
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // A few slowloris clients: a header line now and then, never the end of the head.
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..5 {
        slow.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"POST /user/auth HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            for i in 0..100 {
                if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        let took = timed_version(addr).await;
        assert!(took < Duration::from_secs(1), "GET / took {took:?}");
    }
    // A real request with a body is served too.
    let res = request(
        addr,
        "POST",
        "/user",
        Some(json!({"username": "busy@example.com", "email": "busy@example.com", "password": "abc321"})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    slow.abort_all();
    drop(idle);
    app.stop().await;
}

/// Reads until the server closes the connection; returns how long that took and what it sent.
async fn until_closed(mut s: impl AsyncRead + Unpin, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Ok(Ok(0) | Err(_)) => return (started.elapsed(), String::from_utf8_lossy(&got).into()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_and_a_slow_head_are_cut_off_within_the_request_timeout() {
    let app = spawn(|_| {});
    let addr = app.addr;
    let limit = REQUEST_TIMEOUT + Duration::from_secs(5);
    let silent = TcpStream::connect(addr).await.unwrap();
    let slow = TcpStream::connect(addr).await.unwrap();
    let (slow_read, mut slow_write) = slow.into_split();
    // The slow client sends a header line a second; the deadline is for the whole head, so
    // trickling does not extend it.
    let trickle = tokio::spawn(async move {
        let _ = slow_write.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        for i in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let line = format!("X-Trickle-{i}: 1\r\n");
            if slow_write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let ((silent_took, silent_got), (slow_took, slow_got)) =
        tokio::join!(until_closed(silent, limit), until_closed(slow_read, limit));
    trickle.abort();
    eprintln!(
        "silent cut after {silent_took:?} ({silent_got:?}); slow after {slow_took:?} ({slow_got:?})"
    );
    for (who, took, got) in [
        ("silent", silent_took, silent_got),
        ("slow", slow_took, slow_got),
    ] {
        assert!(
            took >= REQUEST_TIMEOUT - Duration::from_secs(1),
            "the {who} client was cut off after {took:?}, sooner than the timeout"
        );
        assert!(
            got.is_empty() || got.starts_with("HTTP/1.1 408"),
            "the {who} client got {got:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_body_is_refused_with_413_before_it_is_sent() {
    let app = spawn(|_| {});
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(
        b"POST /user HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{\"username\":",
    )
    .await
    .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), read_response(&mut s))
        .await
        .expect("answered without waiting for 100 MB")
        .unwrap();
    assert_eq!(res.status, 413);
    assert_eq!(res.body["statusCode"], 413, "{:?}", res.body);
    app.stop().await;
}

/// A client that sends its head and then stalls in the body gets a `408` Boom after the body
/// timeout, and the connection is closed: it cannot hold a worker's request forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_answered_408_and_the_connection_closed() {
    let app = spawn(|_| {});
    let limit = appmixer_auth::body::BODY_TIMEOUT + Duration::from_secs(5);
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(
        b"POST /user HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"use",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let res = tokio::time::timeout(limit, read_response(&mut s))
        .await
        .expect("answered within the body timeout")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= appmixer_auth::body::BODY_TIMEOUT - Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(res.status, 408);
    assert_eq!(res.body["statusCode"], 408, "{:?}", res.body);
    assert_eq!(res.body["error"], "Request Timeout");
    assert_eq!(
        res.headers.get("connection").map(String::as_str),
        Some("close")
    );
    let (_, rest) = until_closed(s, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "{rest:?}");
    // Others were served meanwhile and still are.
    assert_eq!(request(app.addr, "GET", "/", None).await.status, 200);
    app.stop().await;
}
