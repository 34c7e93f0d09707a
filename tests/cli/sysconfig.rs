//! `config set|unset|list` on the database file, seen by `config` and by a running server.

use std::time::Duration;

use serde_json::json;

use crate::{Place, http};

#[test]
fn stored_keys_are_listed_shown_as_from_database_and_win_over_the_file() {
    let place = Place::new();
    place.write(
        "appmixer.toml",
        "[tenant]\ndefault_user_vendor = \"from-file\"\n",
    );
    place.ok(&["users", "add", "seed@example.com", "--password", "abc321"]);
    let out = place.ok(&["config", "set", "DEFAULT_USER_VENDOR", "from-db"]);
    assert_eq!(out.trim(), "DEFAULT_USER_VENDOR stored");
    place.ok(&["config", "set", "SOMETHING_ELSE", "kept as given"]);
    let list = place.ok(&["config", "list"]);
    assert_eq!(
        list,
        "DEFAULT_USER_VENDOR = from-db\nSOMETHING_ELSE = kept as given\n"
    );
    let shown = place.ok(&["config"]);
    let line = shown
        .lines()
        .find(|l| l.starts_with("tenant.default_user_vendor"))
        .unwrap();
    assert!(
        line.contains("\"from-db\"") && line.contains("# from database (DEFAULT_USER_VENDOR)"),
        "{line}"
    );
    assert!(
        shown.contains("config.SOMETHING_ELSE = \"kept as given\""),
        "{shown}"
    );

    // The stored key wins for users made by the command line and by the server alike.
    let added = place.json(&[
        "users",
        "add",
        "cli@example.com",
        "--password",
        "abc321",
        "--json",
    ]);
    assert_eq!(added["vendor"], "from-db");
    let server = place.serve(&[]);
    let (status, body) = http(
        "POST",
        &format!("{}/user", server.url),
        None,
        Some(json!({"username": "api@example.com", "password": "abc321"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["vendor"], "from-db");
    // Unset while the server runs: its next request goes by the file again.
    place.ok(&["config", "unset", "DEFAULT_USER_VENDOR"]);
    let (_, body) = http(
        "POST",
        &format!("{}/user", server.url),
        None,
        Some(json!({"username": "api2@example.com", "password": "abc321"})),
    );
    assert_eq!(body["user"]["vendor"], "from-file");

    // Refusals: exit 2 naming the key, 1 for a key that is not stored.
    let out = place.run(&["config", "set", "JWTSecret", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = place.run(&["config", "set", "WEBHOOK_USER_CREATED", "not a url"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WEBHOOK_USER_CREATED"));
    let out = place.run(&["config", "unset", "NOPE"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_user_added_from_the_command_line_is_announced_by_the_running_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hook = rt.block_on(crate::receiver::Receiver::start(
        crate::receiver::Answer::Statuses(vec![]),
    ));
    let place = Place::new();
    let _server = place.serve(&[]);
    place.ok(&["config", "set", "WEBHOOK_USER_CREATED", &hook.url]);
    let added = place.json(&[
        "users",
        "add",
        "cli@example.com",
        "--password",
        "abc321",
        "--json",
    ]);
    // The command wrote the message with the user; the server, polling, sends it.
    let got = rt.block_on(hook.wait_for(1, Duration::from_secs(10)));
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains(added["id"].as_str().unwrap()));
}
