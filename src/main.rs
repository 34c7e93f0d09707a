//! The command line: parse flags, load settings, start logging, call the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use appmixer_auth::settings::{ConfigFile, Overrides, Settings};
use appmixer_auth::startup::Application;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "appmixer-auth",
    version,
    about = "A local stand-in for the Appmixer user and authentication API"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct Global {
    /// Settings file (default ./appmixer.toml, which may be missing).
    #[arg(long, global = true, env = "APPMIXER_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on (server.host).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one (server.port).
    #[arg(long, global = true)]
    port: Option<u16>,
    /// SQLite database file, or :memory: (database.path).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (the default).
    Serve,
}

fn load(global: &Global) -> Result<Settings, String> {
    let file = match &global.config {
        Some(p) => ConfigFile::Named(p.clone()),
        None => ConfigFile::Default,
    };
    Settings::load(
        &file,
        &Overrides {
            host: global.host.clone(),
            port: global.port,
            db: global.db.clone(),
        },
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match load(&cli.global) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("appmixer-auth: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", app.url())?;
        out.flush()?;
        drop(out);
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appmixer-auth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
