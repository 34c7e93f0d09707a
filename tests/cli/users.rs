//! `users add|list|show|set-password|delete|reset`.

use serde_json::{Value, json};

use crate::{Place, assert_success, http, sign_in, stderr, stdout};

#[test]
fn users_add_creates_users_who_sign_in_over_http_with_flag_or_stdin_passwords() {
    let place = Place::new();
    let out = place.ok(&[
        "users",
        "add",
        "ann@example.com",
        "--password",
        "flag-pass-1",
        "--scope",
        "user,admin",
        "--plan",
        "pro",
        "--active",
        "--metadata",
        r#"{"team": "red"}"#,
    ]);
    assert!(out.contains("username  ann@example.com"), "{out}");
    // Without --password, one line from stdin; spaces inside are kept.
    let out = place.run_with_input(
        &[
            "users",
            "add",
            "bob",
            "--email",
            "bob@example.com",
            "--json",
        ],
        "stdin pass 2\n",
    );
    assert_success(&out, &["users", "add", "bob"]);
    let bob: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bob["email"], "bob@example.com");
    assert_eq!(bob["scope"], json!(["user"]));
    assert_eq!(bob["plan"], "free");
    assert_eq!(bob["isActive"], false);
    assert!(bob.get("passwordHash").is_none());

    let server = place.serve(&[]);
    let (status, body) = sign_in(&server, "ann@example.com", "flag-pass-1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["scope"], json!(["user", "admin"]));
    assert_eq!(body["user"]["plan"], "pro");
    assert_eq!(body["user"]["isActive"], true);
    assert_eq!(body["user"]["metadata"], json!({"team": "red"}));
    assert_eq!(sign_in(&server, "bob", "stdin pass 2").0, 200);
    assert_eq!(sign_in(&server, "bob", "stdin pass").0, 403);
}

#[test]
fn users_add_validates_like_the_api_and_exits_2_without_creating_anything() {
    let place = Place::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "users",
                "add",
                "ann",
                "--email",
                "nope",
                "--password",
                "abc321",
            ],
            "email",
        ),
        (
            &[
                "users",
                "add",
                " ann",
                "--email",
                "a@example.com",
                "--password",
                "abc321",
            ],
            "username",
        ),
        (
            &[
                "users",
                "add",
                "ann",
                "--email",
                "a@example.com",
                "--password",
                "abc",
            ],
            "at least 5",
        ),
        (&["users", "add", "ann", "--password", "abc321"], "--email"),
        (
            &[
                "users",
                "add",
                "ann",
                "--email",
                "a@example.com",
                "--password",
                &"x".repeat(73),
            ],
            "72 bytes",
        ),
        (
            &[
                "users",
                "add",
                "ann",
                "--email",
                "a@example.com",
                "--password",
                "abc321",
                "--metadata",
                "[1]",
            ],
            "--metadata",
        ),
        (
            &[
                "users",
                "add",
                "ann",
                "--email",
                "a@example.com",
                "--id",
                "xyz",
                "--password",
                "abc321",
            ],
            "--id",
        ),
    ];
    for (args, needle) in cases {
        let out = place.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("appmixer-auth: "), "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // No password at all: stdin is empty.
    let out = place.run(&["users", "add", "ann@example.com"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    assert_eq!(place.stored_users(), json!([]));
}

#[test]
fn a_taken_username_or_email_exits_1_naming_it() {
    let place = Place::new();
    place.ok(&[
        "users",
        "add",
        "ann",
        "--email",
        "ann@example.com",
        "--password",
        "abc321",
    ]);
    let out = place.run(&[
        "users",
        "add",
        "ann",
        "--email",
        "x@example.com",
        "--password",
        "abc321",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Username already taken"),
        "{}",
        stderr(&out)
    );
    let out = place.run(&[
        "users",
        "add",
        "x",
        "--email",
        "ann@example.com",
        "--password",
        "abc321",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Email already taken"),
        "{}",
        stderr(&out)
    );
}

fn add(place: &Place, name: &str, scope: &str) {
    place.ok(&[
        "users",
        "add",
        name,
        "--email",
        &format!("{name}@example.com"),
        "--password",
        "abc321",
        "--scope",
        scope,
    ]);
}

#[test]
fn users_list_prints_a_table_or_json_filtered_sorted_and_paged() {
    let place = Place::new();
    // No database yet: said, and none is created by asking.
    if place.on_sqlite() {
        let out = place.run(&["users", "list"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("no database at appmixer.db"),
            "{}",
            stderr(&out)
        );
        assert!(!place.path("appmixer.db").exists());
    }
    add(&place, "carol", "user");
    let out = place.run(&["users", "list", "--pattern", "nobody"]);
    assert_success(&out, &["users", "list"]);
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no users"));
    add(&place, "alice", "user,admin");
    add(&place, "bob", "user");

    let table = place.ok(&["users", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("ID "), "{table}");
    for column in ["USERNAME", "EMAIL", "ACTIVE", "SCOPE", "PLAN", "CREATED"] {
        assert!(lines[0].contains(column), "{table}");
    }
    // Creation order by default.
    assert!(
        lines[1].contains("carol") && lines[3].contains("bob"),
        "{table}"
    );
    assert!(lines[2].contains("user,admin"), "{table}");

    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["users", "list", "--json"];
        all.extend_from_slice(args);
        place
            .json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&[]), ["carol", "alice", "bob"]);
    assert_eq!(names(&["--filter", "scope:admin"]), ["alice"]);
    assert_eq!(names(&["--pattern", "B"]), ["bob"]);
    assert_eq!(names(&["--sort", "username:-1"]), ["carol", "bob", "alice"]);
    assert_eq!(
        names(&["--sort", "username", "--limit", "1", "--offset", "1"]),
        ["bob"]
    );
    // As the API's limit, 0 is refused (exit 2), not an empty page.
    let out = place.run(&["users", "list", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let full = place.json(&["users", "list", "--json"]);
    assert!(full[0].get("passwordHash").is_none());
    assert_eq!(full[0]["email"], "carol@example.com");

    let out = place.run(&["users", "list", "--sort", "password"]);
    assert_eq!(out.status.code(), Some(2));
    let out = place.run(&["users", "list", "--filter", "colour:red"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn users_show_finds_a_user_by_id_username_or_email() {
    let place = Place::new();
    add(&place, "ann", "user");
    let by_name = place.json(&["users", "show", "ann", "--json"]);
    let id = by_name["id"].as_str().unwrap();
    assert_eq!(place.json(&["users", "show", id, "--json"]), by_name);
    assert_eq!(
        place.json(&["users", "show", "ann@example.com", "--json"]),
        by_name
    );
    let text = place.ok(&["users", "show", "ann"]);
    assert!(text.contains(&format!("id        {id}")), "{text}");
    assert!(text.contains("created   20"), "{text}");
    let out = place.run(&["users", "show", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nobody"), "{}", stderr(&out));
}

#[test]
fn set_password_replaces_the_password_from_stdin_or_the_flag() {
    let place = Place::new();
    add(&place, "ann", "user");
    let out = place.run_with_input(&["users", "set-password", "ann"], "new-secret-1\n");
    assert_success(&out, &["users", "set-password"]);
    assert!(stdout(&out).contains("password set for ann"));
    let out = place.run(&["users", "set-password", "ann", "--password", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    let out = place.run(&["users", "set-password", "nobody", "--password", "abcdef"]);
    assert_eq!(out.status.code(), Some(1));
    let server = place.serve(&[]);
    assert_eq!(sign_in(&server, "ann", "new-secret-1").0, 200);
    assert_eq!(sign_in(&server, "ann", "abc321").0, 403);
    drop(server);
    place.ok(&[
        "users",
        "set-password",
        "ann@example.com",
        "--password",
        "flag-secret",
    ]);
    let server = place.serve(&[]);
    assert_eq!(sign_in(&server, "ann", "flag-secret").0, 200);
}

#[test]
fn users_delete_removes_the_user_and_then_it_is_not_found() {
    let place = Place::new();
    add(&place, "ann", "user");
    add(&place, "bob", "user");
    let id = place.json(&["users", "show", "ann", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = place.ok(&["users", "delete", &id]);
    assert!(out.contains("deleted ann"), "{out}");
    let out = place.run(&["users", "delete", "ann"]);
    assert_eq!(out.status.code(), Some(1));
    let left = place.json(&["users", "list", "--json"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["username"], "bob");
}

#[test]
fn users_reset_keeps_only_declared_users_after_confirmation() {
    let place = Place::new();
    place.write(
        "appmixer.toml",
        r#"
[[users]]
id = "5c88c7cc04a917256c726c3d"
username = "admin@example.com"
email = "admin@example.com"
password = "admin-pass"
scope = ["user", "admin"]
"#,
    );
    // The declared user is made by the server at start.
    drop(place.serve(&[]));
    add(&place, "ann", "user");
    add(&place, "bob", "user");
    // The declared user drifted from the file.
    place.ok(&[
        "users",
        "set-password",
        "admin@example.com",
        "--password",
        "changed-pass",
    ]);

    // Declining is an answer, not a failure: exit 0, nothing deleted.
    let out = place.run_with_input(&["users", "reset"], "n\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("nothing deleted"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Delete 2 users? [y/N]"),
        "{}",
        stderr(&out)
    );
    assert_eq!(place.user_count(), 3);
    // No answer at all (stdin closed) is no as well.
    assert_eq!(place.run(&["users", "reset"]).status.code(), Some(0));

    let out = place.run_with_input(&["users", "reset"], "y\n");
    assert_success(&out, &["users", "reset"]);
    assert!(
        stdout(&out).starts_with("removed 2 users"),
        "{}",
        stdout(&out)
    );
    let left = place.json(&["users", "list", "--json"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], "5c88c7cc04a917256c726c3d");
    // ...and the file's password is back.
    let server = place.serve(&[]);
    assert_eq!(sign_in(&server, "admin@example.com", "admin-pass").0, 200);
    drop(server);

    add(&place, "carol", "user");
    let out = place.ok(&["users", "reset", "--yes"]);
    assert!(out.starts_with("removed 1 user;"), "{out}");
}

#[test]
fn ephemeral_keeps_the_database_in_memory() {
    let place = Place::new();
    if place.skip_on_postgres("--ephemeral is an in-memory SQLite database") {
        return;
    }
    place.ok(&[
        "--ephemeral",
        "users",
        "add",
        "ann@example.com",
        "--password",
        "abc321",
    ]);
    assert_eq!(
        place.json(&["--ephemeral", "users", "list", "--json"]),
        json!([])
    );
    assert!(!place.path("appmixer.db").exists());
    let server = place.serve(&["--ephemeral"]);
    let (status, _) = crate::http(
        "POST",
        &format!("{}/user", server.url),
        None,
        Some(json!({"username": "x@example.com", "email": "x@example.com", "password": "abc321"})),
    );
    assert_eq!(status, 200);
    assert!(!place.path("appmixer.db").exists());
    let out = place.run(&["--ephemeral", "--db", "x.db", "users", "list"]);
    assert_eq!(out.status.code(), Some(2));
}

/// At a terminal (a pseudo-terminal made by util-linux `script`), `users add` prompts for the
/// password and does not echo what is typed.
#[test]
fn a_password_typed_at_a_terminal_is_not_echoed() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let place = Place::new();
    let command = format!(
        "'{}' users add tty-user --email tty@example.com",
        crate::BIN
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(place.dir.path())
        .env_remove("RUST_LOG")
        .env("APPMIXER_AUTH__BCRYPT_COST", "4")
        .envs(place.db_url.iter().map(|u| ("APPMIXER_DATABASE__URL", u)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = |seen: &std::sync::Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&seen.lock().unwrap()).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(&seen).contains("Password: ") {
        assert!(
            Instant::now() < deadline,
            "no prompt; saw {:?}",
            text(&seen)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The prompt is written just before echo is turned off; give it time to be off.
    std::thread::sleep(Duration::from_millis(300));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"typed-secret-9\n").unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "users add did not finish; saw {:?}",
            text(&seen)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    reader.join().unwrap();
    let shown = text(&seen);
    assert!(status.success(), "{shown}");
    assert!(
        !shown.contains("typed-secret-9"),
        "the password was echoed: {shown:?}"
    );
    assert!(shown.contains("username  tty-user"), "{shown}");

    let server = place.serve(&[]);
    assert_eq!(sign_in(&server, "tty-user", "typed-secret-9").0, 200);
}

#[test]
fn users_revoke_and_set_password_sign_the_user_out_of_the_running_server() {
    let place = Place::new();
    let server = place.serve(&[]);
    let (status, body) = http(
        "POST",
        &format!("{}/user", server.url),
        None,
        Some(json!({"username": "rev@example.com", "password": "abc321"})),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let me = format!("{}/user", server.url);
    assert_eq!(http("GET", &me, Some(&token), None).0, 200);

    let out = place.ok(&["users", "revoke", "rev@example.com"]);
    assert!(out.contains("are refused"), "{out}");
    let (status, body) = http("GET", &me, Some(&token), None);
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Token revoked"))
    );

    // A sign-in right after works, until the password is set from the command line.
    let (status, body) = sign_in(&server, "rev@example.com", "abc321");
    assert_eq!(status, 200, "{body}");
    let fresh = body["token"].as_str().unwrap().to_owned();
    assert_eq!(http("GET", &me, Some(&fresh), None).0, 200);
    place.ok(&[
        "users",
        "set-password",
        "rev@example.com",
        "--password",
        "new-pass-1",
    ]);
    assert_eq!(http("GET", &me, Some(&fresh), None).0, 401);
}
