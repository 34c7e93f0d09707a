//! `token USER [--ttl 1h]`: a signed token for a user, as the server would issue at sign-in
//! (same secret, same claims), for scripts and tests.

use std::io::Write;

use clap::Args;

use super::{CliError, CliResult, find_user};
use crate::auth::token::TokenService;
use crate::settings::{Settings, Timespan};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Id, username or email.
    pub user: String,
    /// Lifetime: `30d`, `12h`, `90m`, `45s` or seconds (default auth.token_expiration).
    #[arg(long)]
    pub ttl: Option<String>,
}

pub fn run(settings: &Settings, a: TokenArgs, out: &mut dyn Write) -> CliResult {
    let ttl = match &a.ttl {
        Some(text) => Timespan::parse(text).map_err(|e| CliError::usage(format!("--ttl: {e}")))?,
        None => settings.auth.token_expiration,
    };
    if ttl.0 == 0 {
        return Err(CliError::usage("--ttl: must be longer than 0 seconds"));
    }
    let store = super::connect_existing(settings)?;
    let user = find_user(&store, &a.user)?;
    // The server's resolution: the configured secret, else the one kept in the database.
    let secret = crate::secret::resolve(settings, &store)?;
    let token = TokenService::new(secret.as_bytes(), settings.auth.token_expiration.0).issue_for(
        user.id.as_str(),
        &user.scope,
        ttl.0,
        user.tokens_since,
    )?;
    writeln!(out, "{token}")?;
    Ok(())
}
