//! `token USER [--ttl]`.

use crate::{Place, claims, http};

#[test]
fn token_prints_a_token_the_server_accepts_with_the_users_claims() {
    let place = Place::new();
    place.ok(&[
        "users",
        "add",
        "ann@example.com",
        "--password",
        "abc321",
        "--scope",
        "user,admin",
    ]);
    // Before the server ever ran: the secret is made and kept in the database either way.
    let early = place.ok(&["token", "ann@example.com"]).trim().to_owned();
    let server = place.serve(&[]);
    let late = place
        .ok(&["token", "ann@example.com", "--ttl", "1h"])
        .trim()
        .to_owned();
    let me = format!("{}/user", server.url);
    for token in [&early, &late] {
        let (status, body) = http("GET", &me, Some(token), None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["username"], "ann@example.com");
    }
    let c = claims(&late);
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );
    assert_eq!(c["scope"], serde_json::json!(["user", "admin"]));
    let c = claims(&early);
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        30 * 86_400
    );
    let id = c["id"].as_str().unwrap().to_owned();
    // By id too.
    let by_id = place.ok(&["token", &id]);
    assert_eq!(claims(by_id.trim())["id"], id.as_str());
}

#[test]
fn token_uses_the_configured_secret_and_expiration() {
    let place = Place::new();
    place.write(
        "appmixer.toml",
        "[auth]\njwt_secret = \"a-configured-secret-of-some-length\"\ntoken_expiration = \"2h\"\n",
    );
    place.ok(&["users", "add", "ann@example.com", "--password", "abc321"]);
    let token = place.ok(&["token", "ann@example.com"]);
    let token = token.trim();
    let c = claims(token);
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        7200
    );
    let server = place.serve(&[]);
    assert_eq!(
        http("GET", &format!("{}/user", server.url), Some(token), None).0,
        200
    );
}

#[test]
fn token_for_an_unknown_user_exits_1_and_a_bad_ttl_exits_2() {
    let place = Place::new();
    place.ok(&["users", "add", "ann@example.com", "--password", "abc321"]);
    let out = place.run(&["token", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::stderr(&out).contains("nobody"));
    for ttl in ["10 parsecs", "0"] {
        let out = place.run(&["token", "ann@example.com", "--ttl", ttl]);
        assert_eq!(out.status.code(), Some(2), "{ttl}");
        assert!(crate::stderr(&out).contains("--ttl"));
    }
}

#[test]
fn rotate_secret_signs_everyone_out_once_the_server_restarts() {
    let place = Place::new();
    place.ok(&["users", "add", "ann@example.com", "--password", "abc321"]);
    let old = place.ok(&["token", "ann@example.com"]).trim().to_owned();
    // Without --yes nothing changes.
    let out = place.run(&["rotate-secret"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::stderr(&out).contains("--yes"));
    let said = place.ok(&["rotate-secret", "--yes"]);
    assert!(said.contains("sign in again"), "{said}");
    let server = place.serve(&[]);
    let me = format!("{}/user", server.url);
    assert_eq!(http("GET", &me, Some(&old), None).0, 401);
    let new = place.ok(&["token", "ann@example.com"]).trim().to_owned();
    assert_eq!(http("GET", &me, Some(&new), None).0, 200);
}

#[test]
fn a_secret_file_keeps_the_secret_out_of_the_database() {
    let place = Place::new();
    place.write(
        "appmixer.toml",
        "[auth]\njwt_secret_file = \"jwt-secret\"\n",
    );
    place.ok(&["users", "add", "ann@example.com", "--password", "abc321"]);
    let token = place.ok(&["token", "ann@example.com"]).trim().to_owned();
    let secret = std::fs::read_to_string(place.path("jwt-secret")).unwrap();
    let server = place.serve(&[]);
    assert_eq!(
        http("GET", &format!("{}/user", server.url), Some(&token), None).0,
        200
    );
    drop(server);
    place.ok(&["rotate-secret", "--yes"]);
    assert_ne!(
        std::fs::read_to_string(place.path("jwt-secret")).unwrap(),
        secret
    );
}
