//! appmixer-auth: the Appmixer user and authentication API in one binary.
//!
//! [`startup::Application::build`] makes the whole server from [`settings::Settings`], so a
//! test can start the real thing on port 0.

pub mod auth;
pub mod body;
pub mod cli;
pub mod db;
pub mod domain;
pub mod error;
pub mod fixtures;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod routes;
pub mod secret;
pub mod settings;
pub mod startup;
pub mod state;
pub mod system_config;
pub mod testing;
pub mod tls;
