//! What a new user tripped over (issue 12): shared environments, wrong database paths, quiet
//! second databases, messages that named the wrong thing.

use std::time::{Duration, Instant};

use crate::{Place, assert_success, stderr, stdout};

#[test]
fn an_appmixer_variable_that_names_no_setting_is_a_warning_not_a_stop() {
    let place = Place::new();
    // The examples' variable, and one of the engine's own deployments.
    let out = place
        .command(&["users", "add", "ann@example.com", "--password", "abc321"])
        .env("APPMIXER_AUTH_BIN", "/usr/bin/appmixer-auth")
        .env("APPMIXER_FE_URL", "https://app.example.com")
        .output()
        .unwrap();
    assert_success(&out, &["users", "add"]);
    let err = stderr(&out);
    assert!(err.contains("APPMIXER_AUTH_BIN names no setting"), "{err}");
    assert!(err.contains("APPMIXER_FE_URL names no setting"), "{err}");
    // A real setting by environment still works, and a bad value of one still stops.
    let out = place
        .command(&["users", "list"])
        .env("APPMIXER_SERVER__PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("server.port") && stderr(&out).contains("APPMIXER_SERVER__PORT"),
        "{}",
        stderr(&out)
    );
    // An unknown key in the settings file stays an error, named as written, with the path as
    // it was given.
    place.write("my.toml", "[server]\nprot = 2200\n");
    let out = place.run(&["--config", "./my.toml", "users", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("server.prot") && !err.contains("default.server"),
        "{err}"
    );
    assert!(err.contains("in ./my.toml"), "{err}");
}

#[test]
fn a_database_path_that_is_a_directory_or_not_sqlite_fails_at_once_in_one_line() {
    let place = Place::new();
    if place.skip_on_postgres("database.path checks") {
        return;
    }
    std::fs::create_dir(place.path("adir")).unwrap();
    place.write("notes.txt", "these are not the users you are looking for\n");
    for (db, says) in [
        ("adir", "is a directory"),
        ("notes.txt", "not a SQLite database"),
    ] {
        for args in [
            vec!["users", "list", "--db", db],
            vec!["--db", db, "--port", "0"],
        ] {
            let started = Instant::now();
            let out = place.run(&args);
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{args:?} took long"
            );
            assert_ne!(out.status.code(), Some(0), "{args:?}");
            let err = stderr(&out);
            assert!(err.contains(says) && err.contains(db), "{args:?}: {err}");
            assert_eq!(
                err.lines().count(),
                1,
                "{args:?}: one line, not retries: {err}"
            );
        }
    }
    // The file was not touched.
    assert!(
        std::fs::read_to_string(place.path("notes.txt"))
            .unwrap()
            .starts_with("these are not")
    );
}

#[test]
fn a_missing_directory_is_refused_and_a_new_database_says_where_it_is() {
    let place = Place::new();
    if place.skip_on_postgres("database.path checks") {
        return;
    }
    let out = place.run(&[
        "users",
        "add",
        "ann@example.com",
        "--password",
        "abc321",
        "--db",
        "typo/app.db",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("typo"), "{}", stderr(&out));
    assert!(!place.path("typo").exists(), "no directory tree created");

    let out = place.run(&["users", "add", "ann@example.com", "--password", "abc321"]);
    assert_success(&out, &["users", "add"]);
    let full = std::fs::canonicalize(place.path("appmixer.db")).unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("created a new, empty database at") && err.contains(&*full.to_string_lossy()),
        "{err}"
    );
    // Opening it again says nothing of the kind.
    let out = place.run(&["users", "list"]);
    assert!(!stderr(&out).contains("created"), "{}", stderr(&out));
}

#[test]
fn export_keeps_an_existing_file_unless_forced_and_reports_on_stdout() {
    let place = Place::new();
    place.ok(&["users", "add", "ann@example.com", "--password", "abc321"]);
    let out = place.run(&["users", "export", "users.json"]);
    assert_success(&out, &["users", "export"]);
    assert!(
        stdout(&out).contains("exported 1 user to users.json"),
        "{}",
        stdout(&out)
    );
    let out = place.run(&["users", "export", "users.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_success(
        &place.run(&["users", "export", "users.json", "--force"]),
        &["users", "export", "--force"],
    );
    // Into a directory that does not exist: the message names the file asked for.
    let mut commands = vec![vec!["users", "export", "nowhere/users.json"]];
    if place.on_sqlite() {
        commands.push(vec!["backup", "nowhere/copy.db"]);
    }
    for args in commands {
        let out = place.run(&args);
        assert_ne!(out.status.code(), Some(0));
        let err = stderr(&out);
        assert!(
            err.contains("nowhere/") && !err.contains(".tmp-"),
            "{args:?}: {err}"
        );
    }
}
