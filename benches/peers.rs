//! `cargo bench --bench peers`: the Firebase Auth Emulator and json-server-auth, two local auth
//! stand-ins people pick instead of this server, measured beside it by one procedure
//! (`benches/support/peers.rs`). Prints a markdown table and writes `target/peers.svg`.
//!
//! Knobs (environment): `PEERS_SECS` seconds per load (default 3). Needs wrk, node and npm;
//! the peers are installed under `target/bench-peers` on the first run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

#[path = "support/peers.rs"]
mod peers;

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let secs: u64 = std::env::var("PEERS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = Path::new(env!("CARGO_BIN_EXE_appmixer-auth"));
    let dir = tempfile::Builder::new()
        .prefix("appmixer-peers-")
        .tempdir()
        .expect("temp dir");
    let t = Instant::now();
    let figs = peers::measure(repo, ours, dir.path(), secs);
    eprintln!(
        "peers: everything measured in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    println!("{}", peers::table(&figs));
    let file = repo.join("target/peers.svg");
    let caption = format!(
        "appmixer-auth beside the Firebase Auth Emulator and json-server-auth ({secs} s loads)"
    );
    std::fs::write(&file, peers::svg(&figs, &caption)).expect("write target/peers.svg");
    eprintln!("peers: wrote {}", file.display());
}
