//! Admin searches over the stored users: the requests an administration screen makes as a
//! person types, each answered 5 times by one client, the median kept. Included by
//! `benches/load.rs`; the users come from its seed (one in 1 000 an admin, one in 100 on plan
//! `pro`, names `userNNNNNN@bench.test`).

use std::net::SocketAddr;
use std::time::Instant;

/// Under this, a search feels immediate while a person types (the target).
const TARGET_MS: f64 = 20.0;
const ANSWERS: usize = 5;

/// One request's answers: its median and range in ms, and how many users it answered (a
/// list's length, or a count).
pub struct Timed {
    pub path: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub answered: u64,
}

/// Patterns that match few, many, none, and (two characters) no trigram; every filter kind,
/// common and rare; every sort key; a page deep in the list.
pub fn requests(users: usize) -> Vec<String> {
    let deep = users / 10 * 9;
    let mut paths: Vec<String> = [
        "/users?pattern=user99999&limit=100",
        "/users?pattern=nomatch&limit=100",
        "/users?pattern=bench&limit=100",
        "/users?pattern=r0000&limit=100",
        "/users?pattern=ab&limit=100",
        "/users/count?pattern=user99999",
        "/users/count?pattern=nomatch",
        "/users/count?pattern=bench",
        "/users/count?pattern=ab",
        "/users/count?filter=scope:admin",
        "/users/count?filter=plan:pro",
        "/users/count?filter=plan:free",
        "/users/count",
        "/users?filter=scope:admin&limit=100",
        "/users?filter=plan:pro&limit=100",
        "/users?filter=plan:free&limit=100",
        "/users?sort=created:-1&limit=100",
        "/users?sort=mtime:1&limit=100",
        "/users?sort=plan:-1&limit=100",
        "/users?sort=isActive:1&limit=100",
        "/users?sort=vendor:1&limit=100",
        "/users?sort=email:-1&limit=100",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    paths.push(format!("/users?limit=100&offset={deep}"));
    paths.push(format!("/users?sort=username:-1&limit=100&offset={deep}"));
    paths
}

/// Each request in turn, after one unmeasured answer (the first reads pages from disk).
pub fn measure(addr: SocketAddr, token: &str, users: usize) -> Vec<Timed> {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    requests(users)
        .into_iter()
        .map(|path| {
            let (status, body) = super::http(addr, "GET", &path, &headers, None);
            assert_eq!(status, 200, "GET {path}: {body}");
            let answered = answered(&body);
            let mut ms: Vec<f64> = (0..ANSWERS)
                .map(|_| {
                    let t = Instant::now();
                    let (status, _) = super::http(addr, "GET", &path, &headers, None);
                    let took = t.elapsed().as_secs_f64() * 1e3;
                    assert_eq!(status, 200, "GET {path}");
                    took
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            Timed {
                path,
                median_ms: ms[ANSWERS / 2],
                min_ms: ms[0],
                max_ms: ms[ANSWERS - 1],
                answered,
            }
        })
        .collect()
}

/// A list's length, or a count's figure.
fn answered(body: &str) -> u64 {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(list)) => list.len() as u64,
        Ok(v) => v["count"].as_u64().unwrap_or(0),
        Err(_) => 0,
    }
}

/// Table rows in `benches/load.rs`'s format: figure, target, median, range, verdict.
pub fn rows(store: &str, users: usize, timed: &[Timed]) -> String {
    let mut out = String::new();
    for t in timed {
        let verdict = if t.median_ms < TARGET_MS {
            "met"
        } else {
            "**missed**"
        };
        out.push_str(&format!(
            "| `GET {}`, {store}, {} users (answered {}) | < {TARGET_MS:.0} ms | {:.1} ms | {:.1} – {:.1} | {verdict} |\n",
            t.path,
            super::group(users as f64),
            t.answered,
            t.median_ms,
            t.min_ms,
            t.max_ms,
        ));
    }
    out
}
