//! The binary as a process: flags, settings precedence, the `listening on` line, logs.

use std::process::Command;

use serde_json::{Value, json};

use crate::process::{BIN, command_in, launch};

fn command(dir: &std::path::Path) -> Command {
    command_in(dir, &[])
}

/// Runs `f` to the end on a runtime of its own (these tests are not async: they drive a
/// process).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Stops the server hard and answers everything it logged.
fn log_when_stopped(server: &mut crate::process::Server) -> String {
    let _ = server.child.kill();
    let _ = server.child.wait();
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.log()
}

fn get_json(url: &str) -> Value {
    block_on(async {
        client()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn client() -> reqwest::Client {
    appmixer_auth::testing::http_client_builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn port_zero_prints_the_real_address_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0"]);
    let server = launch(cmd);
    assert!(server.url.starts_with("http://127.0.0.1:"));
    assert!(!server.url.ends_with(":0"));
    assert_eq!(
        get_json(&format!("{}/", server.url)),
        json!({"version": "6.3.0"})
    );
    // The default database file appeared in the working directory.
    assert!(dir.path().join("appmixer.db").exists());
}

#[test]
fn serve_is_the_default_command_and_db_flag_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The directory must exist: a missing one is refused as a likely typo (newcomer.rs).
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--port", "0", "--db", "data/users.db"]);
    let _server = launch(cmd);
    assert!(dir.path().join("data/users.db").exists());
}

#[test]
fn file_then_environment_then_flags_win_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("appmixer.toml"),
        "[server]\nport = 1\n[tenant]\nversion = \"1.0.0\"\n[database]\npath = \"from-file.db\"\n",
    )
    .unwrap();
    // File only: version from the file (port from the env below, so it can start).
    let mut cmd = command(dir.path());
    cmd.env("APPMIXER_SERVER__PORT", "0");
    let server = launch(cmd);
    assert_eq!(get_json(&format!("{}/", server.url))["version"], "1.0.0");
    assert!(dir.path().join("from-file.db").exists());
    drop(server);
    // The environment beats the file...
    let mut cmd = command(dir.path());
    cmd.env("APPMIXER_SERVER__PORT", "0")
        .env("APPMIXER_TENANT__VERSION", "2.0.0");
    let server = launch(cmd);
    assert_eq!(get_json(&format!("{}/", server.url))["version"], "2.0.0");
    drop(server);
    // ...and a flag beats the environment.
    let mut cmd = command(dir.path());
    cmd.env("APPMIXER_SERVER__PORT", "1")
        .args(["--port", "0", "--db", "from-flag.db"]);
    let server = launch(cmd);
    assert!(!server.url.ends_with(":1"));
    assert!(dir.path().join("from-flag.db").exists());
}

#[test]
fn a_named_config_file_is_read_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("other.toml"),
        "[tenant]\nversion = \"6.5.0\"\n",
    )
    .unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--config", "other.toml", "--port", "0"]);
    let server = launch(cmd);
    assert_eq!(get_json(&format!("{}/", server.url))["version"], "6.5.0");
    drop(server);
    let mut cmd = command(dir.path());
    cmd.env("APPMIXER_CONFIG", "other.toml")
        .args(["--port", "0"]);
    let server = launch(cmd);
    assert_eq!(get_json(&format!("{}/", server.url))["version"], "6.5.0");
    drop(server);

    let out = command(dir.path())
        .args(["--config", "missing.toml", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.toml"), "{err}");
}

fn start_error(dir: &std::path::Path, toml: &str, env: &[(&str, &str)]) -> String {
    std::fs::write(dir.join("appmixer.toml"), toml).unwrap();
    let mut cmd = command(dir);
    cmd.args(["--port", "0"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "must refuse to start: {toml} {env:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_keys_and_bad_values_stop_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_error(dir.path(), "[server]\nprot = 80\n", &[]);
    assert!(err.contains("prot"), "{err}");
    let err = start_error(dir.path(), "[auth]\nhash_queue = \"many\"\n", &[]);
    assert!(err.contains("hash_queue"), "{err}");
    let err = start_error(
        dir.path(),
        "[auth]\ntoken_expiration = \"10 parsecs\"\n",
        &[],
    );
    assert!(err.contains("token_expiration"), "{err}");
    let err = start_error(dir.path(), "[tenant]\nversion = \"latest\"\n", &[]);
    assert!(err.contains("tenant.version"), "{err}");
    // An APPMIXER_* variable that names no setting is a warning, not a stop (the environment
    // is shared with other programs): tests/cli/newcomer.rs holds that. A bad value of a real
    // setting given by the environment still stops start-up, naming the variable.
    let err = start_error(dir.path(), "", &[("APPMIXER_AUTH__HASH_QUEUE", "many")]);
    assert!(err.contains("APPMIXER_AUTH__HASH_QUEUE"), "{err}");
    let err = start_error(dir.path(), "[auth]\njwt_secret = \"short\"\n", &[]);
    assert!(err.contains("auth.jwt_secret"), "{err}");
    assert!(
        !err.contains("short\""),
        "the secret itself is not printed: {err}"
    );
}

#[test]
fn help_and_version_answer() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--config", "--host", "--port", "--db"] {
        assert!(text.contains(flag), "{text}");
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn request_logs_carry_method_path_status_and_never_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0"]).env("RUST_LOG", "trace");
    let mut server = launch(cmd);
    let password = "Pa55word-in-the-clear";
    let token = block_on(async {
        let c = client();
        let res: Value = c
            .post(format!("{}/user", server.url))
            .json(&json!({"username": "wes", "email": "wes@example.com", "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = res["token"].as_str().unwrap().to_owned();
        c.get(format!("{}/user", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        c.post(format!("{}/user/auth", server.url))
            .json(&json!({"username": "wes", "password": password}))
            .send()
            .await
            .unwrap();
        token
    });
    let out = log_when_stopped(&mut server);
    assert!(out.contains("POST /user/auth 200"), "{out}");
    assert!(out.contains("GET /user 200"), "{out}");
    assert!(!out.contains(password), "password in the log");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!out.contains(signature), "token in the log");
    assert!(!out.contains("$2b$"), "hash in the log");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0"])
        .env("APPMIXER_LOG__FORMAT", "json");
    let server = launch(cmd);
    get_json(&format!("{}/", server.url));
    let mut request_line = None;
    for _ in 0..50 {
        let log = server.log();
        request_line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "appmixer_auth::request");
        if request_line.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = server.log();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        for key in ["time", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let req = request_line.expect("a request log line");
    assert_eq!(req["method"], "GET");
    assert_eq!(req["path"], "/");
    assert_eq!(req["status"], 200);
    assert!(req["duration_ms"].is_number());
    assert_eq!(req["client"], "127.0.0.1");
}

#[test]
fn sighup_reloads_the_tls_certificate_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, old_pem) = crate::tls::write_cert(dir.path(), "server");
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0"])
        .env("APPMIXER_SERVER__TLS__CERT", &tls.cert)
        .env("APPMIXER_SERVER__TLS__KEY", &tls.key);
    let mut server = launch(cmd);
    assert!(server.url.starts_with("https://"));
    block_on(async {
        let url = server.url.clone();
        assert_eq!(
            crate::tls::get_root(&mut crate::tls::connect(&url, &old_pem).await.unwrap())
                .await
                .unwrap(),
            200
        );
        let (fresh, new_pem) = crate::tls::write_cert(dir.path(), "renewed");
        std::fs::copy(&fresh.cert, &tls.cert).unwrap();
        std::fs::copy(&fresh.key, &tls.key).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut served_new = false;
        for _ in 0..100 {
            if let Ok(mut c) = crate::tls::connect(&url, &new_pem).await
                && crate::tls::get_root(&mut c).await.ok() == Some(200)
            {
                served_new = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(served_new, "the renewed certificate is served after SIGHUP");
    });
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the server"
    );
}

#[test]
fn the_fixture_api_flag_turns_the_routes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0", "--db", ":memory:", "--fixture-api"]);
    let server = launch(cmd);
    let status = block_on(async {
        client()
            .post(format!("{}/_fixtures/clock", server.url))
            .json(&json!({"reset": true}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    // On a non-loopback address without allow_remote, start-up refuses.
    let out = command(dir.path())
        .args(["--port", "0", "--host", "0.0.0.0", "--fixture-api"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fixtures.allow_remote"));
}

#[test]
fn a_bcrypt_cost_below_10_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0"]);
    let server = launch(cmd);
    let mut log = String::new();
    for _ in 0..50 {
        log = server.log();
        if log.contains("bcrypt_cost") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        log.contains("WARN") && log.contains("auth.bcrypt_cost is 4"),
        "{log}"
    );
}

/// A request actix-http cannot parse is the client's fault: answered 400, and logged at DEBUG,
/// not ERROR (an ERROR line should mean the server needs attention).
#[test]
fn malformed_requests_are_not_logged_as_server_errors() {
    use std::io::{Read, Write};
    for (level, expect_line) in [("info", false), ("debug", true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.args(["--port", "0"]).env("RUST_LOG", level);
        let server = launch(cmd);
        let addr = server.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nthis line has no colon\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
        // The server goes on serving.
        assert_eq!(get_json(&format!("{}/", server.url))["version"], "6.3.0");
        // The log is drained by another thread: give it a moment.
        let has_line = |log: &str| {
            log.lines()
                .any(|l| l.contains("DEBUG actix_http::h1") && l.contains("stream error"))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !has_line(&server.log()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let log = server.log();
        assert!(!log.contains(" ERROR "), "RUST_LOG={level}:\n{log}");
        assert_eq!(has_line(&log), expect_line, "RUST_LOG={level}:\n{log}");
    }
}

#[test]
fn a_forgot_password_flow_leaves_no_code_or_password_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0", "--fixture-api"])
        .env("RUST_LOG", "trace")
        .env(
            "APPMIXER_WEBHOOKS__USER_FORGOT_PASSWORD",
            format!("http://127.0.0.1:{down}/hook"),
        );
    let mut server = launch(cmd);
    let new_password = "N3w-secret-in-the-clear";
    let code = block_on(async {
        let c = client();
        let url = &server.url;
        let post = |path: &str, body: Value| c.post(format!("{url}{path}")).json(&body).send();
        post(
            "/user",
            json!({"username": "wes", "email": "wes@example.com", "password": "first-pass-1"}),
        )
        .await
        .unwrap();
        post("/user/forgot-password", json!({"email": "wes@example.com"}))
            .await
            .unwrap();
        let inbox: Value = c
            .get(format!("{url}/_fixtures/messages?to=wes@example.com"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = inbox[0]["body"]["code"].as_str().unwrap().to_owned();
        // The webhook's receiver is down: failed attempts are logged (without the body).
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let res = post(
            "/user/forgot-password/reset",
            json!({"code": code, "password": new_password}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        code
    });
    let out = log_when_stopped(&mut server);
    assert!(out.contains("POST /user/forgot-password 200"), "{out}");
    assert!(
        out.contains("attempt 1 failed"),
        "the retry is logged: {out}"
    );
    assert!(!out.contains(&code), "reset code in the log");
    assert!(!out.contains(new_password), "password in the log");
    assert!(!out.contains("$2b$"), "hash in the log");
}
