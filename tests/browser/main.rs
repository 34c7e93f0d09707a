//! The sign-in page: its HTTP answers, and the page itself in headless Chromium driven over
//! WebDriver against the real server on port 0. Each browser test saves a screenshot under
//! `<target>/browser-screenshots/`. Without Chromium these tests skip, except under CI.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod http;
mod page;

use base64::Engine;
use serde_json::Value;

/// The payload of a JWT, decoded without verifying.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}
