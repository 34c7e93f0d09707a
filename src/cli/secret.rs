//! `rotate-secret`: a new token secret, which signs everyone out.

use std::io::Write;

use clap::Args;

use super::{CliError, CliResult};
use crate::secret::{Rotated, rotate};
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Do it: every token issued so far stops working and everyone must sign in again.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(settings: &Settings, a: RotateArgs, out: &mut dyn Write) -> CliResult {
    if !a.yes {
        return Err(CliError::usage(
            "rotate-secret signs everyone out: every token issued so far stops working. Run it again with --yes to go on",
        ));
    }
    let store = super::connect_existing(settings)?;
    let rotated = rotate(settings, &store).map_err(|e| CliError::failure(format!("{e:#}")))?;
    let place = match rotated {
        Rotated::File(path) => format!("auth.jwt_secret_file {}", path.display()),
        Rotated::Database => format!("the database {}", settings.database.shown()),
    };
    writeln!(
        out,
        "new token secret written to {place}; every token issued before is refused from now on, so everyone must sign in again.\nRestart the server to sign with it (it reads the secret at start)."
    )?;
    Ok(())
}
