//! The CLI and the server writing the same database at once: nobody sees `database is locked`.

use serde_json::json;

use crate::{Place, stderr};

#[test]
fn cli_and_server_writing_at_once_never_report_database_is_locked() {
    let place = Place::new();
    if place.skip_on_postgres("SQLite's one writer, shared with the CLI") {
        return;
    }
    crate::backup::seed(&place, 2_000);
    let server = place.serve(&[]);
    let url = server.url.clone();
    let http_writers: Vec<_> = (0..2)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let client = appmixer_auth::testing::http_client();
                    let mut failures = Vec::new();
                    for i in 0..40 {
                        let name = format!("http{t}-{i}@example.com");
                        let res = client
                            .post(format!("{url}/user"))
                            .json(&json!({"username": name, "email": name, "password": "abc321"}))
                            .send()
                            .await
                            .unwrap();
                        if res.status().as_u16() != 200 {
                            failures.push(format!(
                                "{}: {}",
                                res.status(),
                                res.text().await.unwrap()
                            ));
                        }
                    }
                    failures
                })
            })
        })
        .collect();
    let dir = place.dir.path().to_owned();
    let cli_writers: Vec<_> = (0..3)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for i in 0..10 {
                    let name = format!("cli{t}-{i}@example.com");
                    let runs: Vec<Vec<String>> = match i % 5 {
                        // Now and then a bigger write (an import of every seed user, identical:
                        // still one immediate transaction) or a backup.
                        3 if t == 0 => {
                            vec![vec!["users".into(), "import".into(), "seed.json".into()]]
                        }
                        4 if t == 1 => vec![vec!["backup".into(), format!("b{i}.db")]],
                        _ => vec![
                            vec![
                                "users".into(),
                                "add".into(),
                                name.clone(),
                                "--password".into(),
                                "abc321".into(),
                            ],
                            vec![
                                "users".into(),
                                "set-password".into(),
                                name.clone(),
                                "--password".into(),
                                "abc4321".into(),
                            ],
                            vec!["token".into(), name.clone()],
                        ],
                    };
                    for args in runs {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let out = crate::command_in(&dir, &args).output().unwrap();
                        if !out.status.success() {
                            failures.push(format!("{args:?}: {}", stderr(&out)));
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = Vec::new();
    for w in http_writers {
        failures.extend(w.join().unwrap());
    }
    for w in cli_writers {
        failures.extend(w.join().unwrap());
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let log = server.log();
    assert!(!log.to_lowercase().contains("locked"), "{log}");
    assert!(!log.contains(" 500 "), "{log}");
    let users = place.user_count();
    // 2 000 seeds, 80 over HTTP, and the CLI's adds (3 threads x 10, less the import and
    // backup turns).
    assert_eq!(users, 2_000 + 80 + 30 - 2 - 2);
}
