//! `users export` and `users import`.

use serde_json::{Value, json};

use crate::{Place, assert_success, http, stderr, stdout};

const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";

fn record(i: usize) -> Value {
    json!({
        "id": format!("5c88c7cc04a917{i:010x}"),
        "username": format!("user{i}"),
        "email": format!("user{i}@example.com"),
        "passwordHash": HASH,
        "isActive": i.is_multiple_of(2),
        "scope": ["user"],
        "plan": "free",
        "vendor": null,
        "metadata": {"n": i},
        "created": 1_700_000_000_000_i64 + i as i64,
        "mtime": 1_700_000_000_000_i64 + i as i64,
    })
}

fn document(records: Vec<Value>) -> String {
    json!({"version": 1, "users": records}).to_string()
}

#[test]
fn export_wipe_import_restores_every_field_and_old_tokens_still_work() {
    let place = Place::new();
    let server = place.serve(&[]);
    let mut tokens = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let (status, body) = http(
            "POST",
            &format!("{}/user", server.url),
            None,
            Some(json!({
                "username": name,
                "email": format!("{name}@example.com"),
                "password": "abc321",
                "metadata": {"team": name, "nested": {"a": [1, 2]}},
            })),
        );
        assert_eq!(status, 200, "{body}");
        tokens.push((
            body["token"].as_str().unwrap().to_owned(),
            body["user"].clone(),
        ));
    }
    place.ok(&["users", "set-password", "bob", "--password", "bob-only-pw"]);

    // To a file (0600: it holds hashes) and to stdout, the same document.
    place.ok(&["users", "export", "users.json"]);
    let exported = std::fs::read_to_string(place.path("users.json")).unwrap();
    assert_eq!(place.ok(&["users", "export"]), exported);
    // `-` is stdout too, as `import -` is stdin; no file named `-` appears.
    assert_eq!(place.ok(&["users", "export", "-"]), exported);
    assert!(!place.path("-").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(place.path("users.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let doc: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(doc["version"], 1);
    let first = &doc["users"][0];
    for field in [
        "id",
        "username",
        "email",
        "passwordHash",
        "isActive",
        "scope",
        "plan",
        "vendor",
        "metadata",
        "created",
        "mtime",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }

    // Wipe (no declared users: everyone goes), then the tokens point at nobody.
    place.ok(&["users", "reset", "--yes"]);
    assert_eq!(place.stored_users(), json!([]));
    let me = format!("{}/user", server.url);
    assert_eq!(http("GET", &me, Some(&tokens[0].0), None).0, 404);

    let out = place.ok(&["users", "import", "users.json"]);
    assert_eq!(out.trim(), "created 3, updated 0, skipped 0 (identical)");
    for (i, (token, user)) in tokens.iter().enumerate() {
        let (status, body) = http("GET", &me, Some(token), None);
        if i == 1 {
            // bob's password was set after this token was issued: that revocation moved with
            // him (tokensSince in the export).
            assert_eq!(
                (status, body["message"].as_str()),
                (401, Some("Token revoked"))
            );
            continue;
        }
        assert_eq!(status, 200);
        assert_eq!(&body, user);
    }
    assert_eq!(crate::sign_in(&server, "bob", "bob-only-pw").0, 200);
    // Byte for byte the same export: every field came back.
    assert_eq!(place.ok(&["users", "export"]), exported);
}

#[test]
fn import_reports_created_updated_and_skipped_and_replace_deletes_the_rest() {
    let place = Place::new();
    place.write("a.json", &document((0..5).map(record).collect()));
    let report = place.json(&["users", "import", "a.json", "--json"]);
    assert_eq!(
        report,
        json!({"created": 5, "updated": 0, "skipped": 0, "deleted": 0})
    );
    let report = place.json(&["users", "import", "a.json", "--json"]);
    assert_eq!(
        report,
        json!({"created": 0, "updated": 0, "skipped": 5, "deleted": 0})
    );

    let mut changed: Vec<Value> = (0..5).map(record).collect();
    changed[1]["plan"] = json!("pro");
    changed[2]["metadata"] = json!({"n": 2, "extra": true});
    changed.push(record(7));
    place.write("b.json", &document(changed));
    let out = place.ok(&["users", "import", "b.json"]);
    assert_eq!(out.trim(), "created 1, updated 2, skipped 3 (identical)");
    assert_eq!(
        place.json(&["users", "show", "user1", "--json"])["plan"],
        "pro"
    );

    // Key order inside metadata does not make a record different.
    let mut reordered = record(0);
    reordered["metadata"] = json!({"n": 0});
    place.write("c.json", &document(vec![reordered, record(3)]));
    let out = place.ok(&["users", "import", "c.json", "--replace"]);
    assert_eq!(
        out.trim(),
        "created 0, updated 0, skipped 2 (identical), deleted 4"
    );
    let names: Vec<Value> = place
        .json(&["users", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("user0"), json!("user3")]);

    // stdin works too.
    let out = place.run_with_input(&["users", "import", "-"], &document(vec![record(9)]));
    assert_success(&out, &["users", "import", "-"]);
    assert!(stdout(&out).starts_with("created 1"), "{}", stdout(&out));
}

#[test]
fn a_bad_record_is_named_and_nothing_is_imported() {
    let place = Place::new();
    let mut records: Vec<Value> = (0..3).map(record).collect();
    records[2]["email"] = json!("not-an-email");
    place.write("bad.json", &document(records));
    let out = place.run(&["users", "import", "bad.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("users[2] (\"user2\"): email"), "{err}");
    assert_eq!(place.stored_users(), json!([]));

    for (change, needle) in [
        (json!({"passwordHash": "plain-text"}), "passwordHash"),
        (json!({"id": "123"}), "id"),
        (json!({"scope": "admin"}), "scope"),
        (json!({"created": "yesterday"}), "created"),
        (json!({"colour": "red"}), "unknown field `colour`"),
    ] {
        let mut r = record(1);
        for (k, v) in change.as_object().unwrap() {
            r[k] = v.clone();
        }
        place.write("bad.json", &document(vec![record(0), r]));
        let out = place.run(&["users", "import", "bad.json"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("users[1]") && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(!err.contains("plain-text"), "{err}");
    }
    place.write("bad.json", &document(vec![record(0), record(0)]));
    let err = stderr(&place.run(&["users", "import", "bad.json"]));
    assert!(
        err.contains("users[1] (\"user0\"): id: also used by users[0]"),
        "{err}"
    );
    place.write("bad.json", "{\"users\": [");
    let err = stderr(&place.run(&["users", "import", "bad.json"]));
    assert!(err.contains("bad.json: not valid JSON"), "{err}");
    assert_eq!(place.stored_users(), json!([]));

    // A record that clashes with a stored user (another id, same username) rolls back all.
    place.ok(&[
        "users",
        "add",
        "user2",
        "--email",
        "u2@example.com",
        "--password",
        "abc321",
    ]);
    place.write("clash.json", &document((0..4).map(record).collect()));
    let out = place.run(&["users", "import", "clash.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("users[2] (\"user2\"): Username already taken"),
        "{err}"
    );
    assert_eq!(place.user_count(), 1);

    // Records are written a few hundred at a time: a clash in a later batch is still named,
    // and the batches before it are rolled back too.
    place.ok(&[
        "users",
        "add",
        "user1100",
        "--email",
        "u1100@example.com",
        "--password",
        "abc321",
    ]);
    place.write("clash.json", &document((3..1200).map(record).collect()));
    let out = place.run(&["users", "import", "clash.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("users[1097] (\"user1100\"): Username already taken"),
        "{err}"
    );
    assert_eq!(place.user_count(), 2);
}

#[test]
fn a_large_import_is_fast_and_exports_back_identically() {
    let place = Place::new();
    // Past 20 000 records the search indexes are rebuilt once at the end, not row by row.
    let n = 20_500;
    let mut records: Vec<Value> = (0..n).map(record).collect();
    records[20_400]["scope"] = json!(["user", "late"]);
    records[20_400]["vendor"] = json!("acme");
    place.write("big.json", &document(records));
    let started = std::time::Instant::now();
    let out = place.ok(&["users", "import", "big.json"]);
    let took = started.elapsed();
    assert_eq!(
        out.trim(),
        format!("created {n}, updated 0, skipped 0 (identical)")
    );
    // Generous for a debug build on a small machine; a release build does 100 000 in ~1 s.
    assert!(took.as_secs() < 60, "import of {n} took {took:?}");
    place.ok(&["users", "export", "again.json"]);
    let a: Value =
        serde_json::from_str(&std::fs::read_to_string(place.path("big.json")).unwrap()).unwrap();
    let b: Value =
        serde_json::from_str(&std::fs::read_to_string(place.path("again.json")).unwrap()).unwrap();
    assert_eq!(a, b);
    // Every record is found through the indexes, those of the bulk part included; a user
    // added afterwards is indexed as it is written.
    place.ok(&[
        "users",
        "add",
        "fresh-one",
        "--email",
        "fresh@example.com",
        "--password",
        "abc321",
    ]);
    for (args, want) in [
        (vec!["--pattern", "user20400@"], vec!["user20400"]),
        (vec!["--pattern", "USER5@"], vec!["user5"]),
        (vec!["--filter", "scope:late"], vec!["user20400"]),
        (vec!["--filter", "vendor:acme"], vec!["user20400"]),
        (vec!["--pattern", "fresh-on"], vec!["fresh-one"]),
    ] {
        let mut list = vec!["users", "list", "--json"];
        list.extend(&args);
        let found: Vec<String> = place
            .json(&list)
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(found, want, "{args:?}");
    }
}

#[test]
fn vendors_given_as_lists_go_through_add_export_and_import_as_given() {
    let place = Place::new();
    let added = place.json(&[
        "users",
        "add",
        "multi@example.com",
        "--password",
        "abc321",
        "--vendor",
        "a",
        "--vendor",
        "b",
        "--json",
    ]);
    assert_eq!(added["vendor"], json!(["a", "b"]));
    place.ok(&[
        "users",
        "add",
        "one@example.com",
        "--password",
        "abc321",
        "--vendor",
        "solo",
    ]);
    place.ok(&["users", "export", "all.json"]);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(place.path("all.json")).unwrap()).unwrap();
    let vendors: Vec<&Value> = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["vendor"])
        .collect();
    assert_eq!(vendors, [&json!(["a", "b"]), &json!("solo")]);
    // Into a fresh database: the same values come back.
    let other = Place::new();
    other.write(
        "all.json",
        &std::fs::read_to_string(place.path("all.json")).unwrap(),
    );
    other.ok(&["users", "import", "all.json"]);
    let shown = other.json(&["users", "show", "multi@example.com", "--json"]);
    assert_eq!(shown["vendor"], json!(["a", "b"]));
    let list = other.ok(&["users", "list", "--filter", "vendor:b"]);
    assert!(
        list.contains("multi@example.com") && !list.contains("one@example.com"),
        "{list}"
    );
}

/// An HS256 token as the engine (Node's jsonwebtoken) makes it with a string secret.
fn engine_token(secret: &str, id: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let head = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    let body = b64(&json!({"id": id, "scope": ["user"], "iat": now, "exp": now + 3600}));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{head}.{body}.{sig}")
}

#[test]
fn a_mongoexport_of_the_engines_users_keeps_ids_hashes_and_the_engines_tokens() {
    let place = Place::new();
    let secret = "the-engine-jwt-secret-123";
    place.write(
        "appmixer.toml",
        &format!("[auth]\njwt_secret = \"{secret}\"\n"),
    );
    let hash = bcrypt::hash("engine-pass-1", 4).unwrap();
    let lines = [
        json!({"_id": {"$oid": "5f1d7c2e9b1e8a3d4c5b6a79"}, "username": "eng@example.com",
               "email": "eng@example.com", "password": hash, "scope": ["user", "admin"],
               "plan": "pro", "isActive": true, "vendor": ["acme"], "__v": 0,
               "created": {"$date": "2020-07-26T12:00:00.123Z"},
               "mtime": {"$date": {"$numberLong": "1600000000000"}}}),
        json!({"_id": {"$oid": "5f1d7c2e9b1e8a3d4c5b6a7a"}, "username": "noemail@example.com",
               "password": hash, "created": {"$date": "2021-01-01T00:00:00Z"}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    place.write("users.jsonl", &text);
    let out = place.ok(&["users", "import", "--from", "appmixer-mongo", "users.jsonl"]);
    assert_eq!(out.trim(), "created 2, updated 0, skipped 0 (identical)");
    let shown = place.json(&["users", "show", "eng@example.com", "--json"]);
    assert_eq!(shown["id"], "5f1d7c2e9b1e8a3d4c5b6a79");
    assert_eq!(shown["vendor"], json!(["acme"]));
    assert_eq!(shown["plan"], "pro");
    let doc: Value = serde_json::from_str(&place.ok(&["users", "export"])).unwrap();
    assert_eq!(doc["users"][0]["created"], 1_595_764_800_123i64);
    assert_eq!(doc["users"][0]["mtime"], 1_600_000_000_000i64);
    assert_eq!(doc["users"][1]["email"], "noemail@example.com");

    let server = place.serve(&[]);
    // The old engine's token for the kept id works; the engine's password too.
    let token = engine_token(secret, "5f1d7c2e9b1e8a3d4c5b6a79");
    let (status, me) = http("GET", &format!("{}/user", server.url), Some(&token), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "eng@example.com");
    assert_eq!(
        crate::sign_in(&server, "noemail@example.com", "engine-pass-1").0,
        200
    );

    // A bad document names the record, and nothing is imported.
    let other = Place::new();
    other.write(
        "bad.json",
        &json!([lines[0].clone(), {"_id": {"$oid": "5f1d7c2e9b1e8a3d4c5b6a7b"},
                 "username": "bad", "password": "plain text"}])
        .to_string(),
    );
    let out = other.run(&["users", "import", "--from", "appmixer-mongo", "bad.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("users[1] (\"bad\")"), "{err}");
}

/// `firebase auth:export` with Firebase's own published example user (firebase/scrypt's
/// README: password `user1password`), imported with the project's parameters as Firebase's
/// `auth:import` takes them.
#[test]
fn a_firebase_export_signs_in_with_its_passwords_and_is_upgraded_to_bcrypt() {
    let place = Place::new();
    let export = json!({"users": [
        {"localId": "Zd8x5d6Xr1ZxgE2JVJk1PcC8Vq23", "email": "user1@example.com",
         "emailVerified": true, "passwordHash":
         "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==",
         "salt": "42xEC+ixf3L2lw==", "displayName": "User One", "createdAt": "1600000000000"},
        {"localId": "googleOnly", "email": "g@example.com", "createdAt": "1600000000001",
         "providerUserInfo": []}
    ]});
    place.write("firebase.json", &export.to_string());
    let args = [
        "users",
        "import",
        "--from",
        "firebase",
        "firebase.json",
        "--hash-algo",
        "SCRYPT",
        "--hash-key",
        "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
        "--salt-separator",
        "Bw==",
        "--rounds",
        "8",
        "--mem-cost",
        "14",
    ];
    let out = place.ok(&args);
    assert_eq!(out.trim(), "created 2, updated 0, skipped 0 (identical)");
    // Again: the same ids (derived from localId), nothing new.
    let out = place.ok(&args);
    assert_eq!(out.trim(), "created 0, updated 0, skipped 2 (identical)");
    let shown = place.json(&["users", "show", "user1@example.com", "--json"]);
    assert_eq!(
        shown["metadata"]["firebase"]["localId"],
        "Zd8x5d6Xr1ZxgE2JVJk1PcC8Vq23"
    );
    assert_eq!(shown["isActive"], true);

    let server = place.serve(&[]);
    assert_eq!(
        crate::sign_in(&server, "user1@example.com", "user1passwore").0,
        403
    );
    let (status, body) = crate::sign_in(&server, "user1@example.com", "user1password");
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&place.ok(&["users", "export"])).unwrap();
    let stored = doc["users"][0]["passwordHash"].as_str().unwrap().to_owned();
    assert!(stored.starts_with("$2b$"), "upgraded: {stored}");
    assert_eq!(
        crate::sign_in(&server, "user1@example.com", "user1password").0,
        200
    );

    // The parameters are required.
    let out = place.run(&["users", "import", "--from", "firebase", "firebase.json"]);
    assert_eq!(out.status.code(), Some(2));
}
