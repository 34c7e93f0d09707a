//! `backup FILE`: a consistent online copy while the server keeps writing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::{Place, stderr};

const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";

/// `n` users imported at once, so the database has some size.
pub fn seed(place: &Place, n: usize) {
    let users: Vec<_> = (0..n)
        .map(|i| {
            json!({"id": format!("5c88c7cc04a917{i:010x}"), "username": format!("seed{i}"),
                   "email": format!("seed{i}@example.com"), "passwordHash": HASH,
                   "metadata": {"padding": "x".repeat(200)}})
        })
        .collect();
    place.write(
        "seed.json",
        &json!({"version": 1, "users": users}).to_string(),
    );
    place.ok(&["users", "import", "seed.json"]);
}

#[test]
fn a_backup_taken_while_the_server_writes_holds_every_user_acknowledged_before_it() {
    let place = Place::new();
    if place.skip_on_postgres("backup copies SQLite files") {
        return;
    }
    seed(&place, 5_000);
    let server = place.serve(&[]);
    let url = server.url.clone();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = appmixer_auth::testing::http_client();
                for i in 0..2_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("live{i}@example.com");
                    let res = client
                        .post(format!("{url}/user"))
                        .json(&json!({"username": name, "email": name, "password": "abc321"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
                    acknowledged.lock().unwrap().push(name);
                }
            });
        })
    };
    while acknowledged.lock().unwrap().len() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let out = place.run(&["backup", "copy.db"]);
    let during = acknowledged.lock().unwrap().len() - before.len();
    // Let the server go on writing a little after the copy, then stop.
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    crate::assert_success(&out, &["backup"]);
    assert!(
        crate::stdout(&out).contains("users"),
        "{}",
        crate::stdout(&out)
    );
    eprintln!("{during} users were created while the backup ran");

    let copy = rusqlite::Connection::open(place.path("copy.db")).unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = copy
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the copy is one self-contained file");
    let count = |sql: &str, arg: &str| -> i64 { copy.query_row(sql, [arg], |r| r.get(0)).unwrap() };
    for name in &before {
        assert_eq!(
            count("SELECT COUNT(*) FROM users WHERE username = ?1", name),
            1,
            "{name}"
        );
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM users WHERE username LIKE ?1", "seed%"),
        5_000
    );
    // The server still holds everything, and more than the copy.
    let all = place.user_count();
    let copied: i64 = copy
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(all as i64 >= copied && copied as usize >= 5_000 + before.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(place.path("copy.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The copy works as a database for the binary itself.
    let out = place.ok(&["--db", "copy.db", "users", "show", &before[0], "--json"]);
    assert!(out.contains(&before[0]));
}

#[test]
fn backup_refuses_to_overwrite_unless_forced_and_needs_a_file_database() {
    let place = Place::new();
    if !place.on_sqlite() {
        // PostgreSQL has its own tools: said, with exit 1, and nothing written.
        let out = place.run(&["backup", "copy.db"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
        assert!(!place.path("copy.db").exists());
        return;
    }
    let out = place.run(&["backup", "copy.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    place.ok(&["users", "add", "ann@example.com", "--password", "abc321"]);
    place.ok(&["backup", "copy.db"]);
    place.ok(&["users", "add", "bob@example.com", "--password", "abc321"]);
    let out = place.run(&["backup", "copy.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let users = |file: &str| {
        place
            .json(&["--db", file, "users", "list", "--json"])
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(users("copy.db"), 1);
    let out = place.ok(&["backup", "copy.db", "--force"]);
    assert!(out.starts_with("backed up 2 users"), "{out}");
    assert_eq!(users("copy.db"), 2);
    let out = place.run(&["backup", "appmixer.db", "--force"]);
    assert_eq!(out.status.code(), Some(2));
    let out = place.run(&["--ephemeral", "backup", "mem.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("memory"), "{}", stderr(&out));
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(place.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
