//! `config`, `healthcheck` and how settings errors exit.

use std::io::{Read, Write};

use crate::{Place, stderr};

#[test]
fn config_tells_where_each_value_came_from_and_redacts_secrets() {
    let place = Place::new();
    place.write(
        "appmixer.toml",
        r#"
[tenant]
version = "6.5.0"
[auth]
jwt_secret = "file-secret-never-printed"
[[users]]
username = "admin@example.com"
email = "admin@example.com"
password = "fixture-password-never-printed"
"#,
    );
    let out = place
        .command(&["--port", "0", "config"])
        .env("APPMIXER_AUTH__TOKEN_EXPIRATION", "12h")
        .env("HTTP_API_PORT", "9999")
        .env("GRIDD_JWT_TOKEN_EXP", "1h")
        .output()
        .unwrap();
    crate::assert_success(&out, &["config"]);
    let text = crate::stdout(&out);
    let line = |key: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        text.starts_with("# settings file: appmixer.toml\n"),
        "{text}"
    );
    assert_eq!(line("server.port"), "server.port = 0 # from flag --port");
    assert_eq!(
        line("server.host"),
        "server.host = \"127.0.0.1\" # from default"
    );
    assert_eq!(
        line("tenant.version"),
        "tenant.version = \"6.5.0\" # from file appmixer.toml"
    );
    // APPMIXER_* beats the engine's name for the same setting.
    assert_eq!(
        line("auth.token_expiration"),
        "auth.token_expiration = 43200 # from env APPMIXER_AUTH__TOKEN_EXPIRATION"
    );
    assert_eq!(
        line("auth.bcrypt_cost"),
        "auth.bcrypt_cost = 4 # from env APPMIXER_AUTH__BCRYPT_COST"
    );
    assert_eq!(
        line("auth.jwt_secret"),
        "auth.jwt_secret = [redacted] # from file appmixer.toml"
    );
    assert_eq!(
        line("users[0].password"),
        "users[0].password = [redacted] # from file appmixer.toml"
    );
    assert!(!text.contains("never-printed"), "{text}");

    // The engine's own variable is named when it is the one that set the value.
    let out = place
        .command(&["config", "--json"])
        .env("HTTP_API_PORT", "9999")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["settings"]["server.port"]["value"], 9999);
    assert_eq!(doc["settings"]["server.port"]["from"], "env HTTP_API_PORT");
    assert_eq!(doc["settings"]["auth.jwt_secret"]["value"], "[redacted]");
    assert!(!doc.to_string().contains("never-printed"));

    if place.skip_on_postgres("--ephemeral is an in-memory SQLite database") {
        return;
    }
    let out = place.run(&["--ephemeral", "config"]);
    assert!(crate::stdout(&out).contains("database.path = \":memory:\""));
    assert!(crate::stdout(&out).contains("# from flag --ephemeral"));
}

#[test]
fn bad_settings_exit_2_for_commands_but_1_for_healthcheck() {
    let place = Place::new();
    place.write("appmixer.toml", "[server]\nprot = 80\n");
    for args in [
        &["users", "list"][..],
        &["config"],
        &["token", "x"],
        &["backup", "b.db"],
    ] {
        let out = place.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("prot"), "{}", stderr(&out));
    }
    // Docker reserves exit 2 in health checks: anything wrong is "unhealthy".
    assert_eq!(place.run(&["healthcheck"]).status.code(), Some(1));
    assert_eq!(place.run(&["users", "frobnicate"]).status.code(), Some(2));
}

#[test]
fn healthcheck_exits_0_when_the_server_answers_and_1_otherwise() {
    let place = Place::new();
    let server = place.serve(&[]);
    let port = server.port.to_string();
    let out = place.run(&["healthcheck", "--port", &port]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(crate::stdout(&out).contains("6.3.0"));
    // The settings say where the server is, as for the server itself.
    let out = place
        .command(&["healthcheck"])
        .env("APPMIXER_SERVER__PORT", &port)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    drop(server);

    let out = place.run(&["healthcheck", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unhealthy"), "{}", stderr(&out));

    // Something that is not our server: a listener answering 500, and one that never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let answer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}");
        let (silent, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(4));
        drop(silent);
    });
    let out = place.run(&["healthcheck", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("500"), "{}", stderr(&out));
    let started = std::time::Instant::now();
    let out = place.run(&["healthcheck", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(
        started.elapsed().as_secs_f64() < 3.9,
        "{:?}",
        started.elapsed()
    );
    answer.join().unwrap();
}

/// A self-signed certificate and its key as PEM files `NAME.crt` and `NAME.key` in the place.
fn write_cert(place: &Place, name: &str) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    place.write(&format!("{name}.crt"), &ck.cert.pem());
    place.write(&format!("{name}.key"), &ck.signing_key.serialize_pem());
}

#[test]
fn healthcheck_speaks_tls_when_the_server_does_and_checks_its_certificate() {
    let place = Place::new();
    write_cert(&place, "live");
    write_cert(&place, "other");
    place.write(
        "appmixer.toml",
        "[server.tls]\ncert = \"live.crt\"\nkey = \"live.key\"\n",
    );
    let server = place.serve(&[]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let port = server.port.to_string();
    let out = place.run(&["healthcheck", "--port", &port]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        crate::stdout(&out).contains("https://"),
        "{}",
        crate::stdout(&out)
    );
    // The certificate is checked: settings naming another one see another server.
    place.write(
        "other.toml",
        "[server.tls]\ncert = \"other.crt\"\nkey = \"other.key\"\n",
    );
    let out = place.run(&["--config", "other.toml", "healthcheck", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another certificate"),
        "{}",
        stderr(&out)
    );
}
