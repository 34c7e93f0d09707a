//! Passwords (bcrypt), tokens (HS256) and the extractors that put auth in handler signatures.

pub mod extractor;
pub mod limiter;
pub mod password;
pub mod sign_in;
pub mod token;
