//! Passwords (bcrypt), tokens (HS256), the brute-force limit, what a sign-in and a sign-up
//! are, and the extractors that put auth in handler signatures.

pub mod extractor;
pub mod hashes;
pub mod limiter;
pub mod limits;
pub mod password;
pub mod reset;
pub mod sign_in;
pub mod sign_up;
pub mod token;
