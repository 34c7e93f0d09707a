//! Integration tests: the real server on port 0, spoken to over HTTP.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod bodies;
mod cache;
mod cli;
mod cors;
mod fixture_api;
mod fixtures;
mod forgot;
mod helpers;
mod input;
mod limits;
mod metrics;
mod newcomer;
mod openapi;
#[path = "../support/process.rs"]
mod process;
mod proxies;
#[path = "../support/receiver.rs"]
mod receiver;
mod revocation;
mod security;
#[path = "../support/smtp.rs"]
mod smtp;
mod tls;
mod tokens;
mod user;
mod webhooks;
