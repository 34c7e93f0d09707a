//! The command line: parse flags, load settings, start logging, call the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use appmixer_auth::cli::{self, CliError, Source};
use appmixer_auth::logging::{self, LogFormat};
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
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "APPMIXER_CONFIG",
        value_name = "PATH"
    )]
    config: Option<PathBuf>,
    /// Address to listen on (server.host).
    #[arg(long, global = true, help_heading = "Global options")]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one (server.port).
    #[arg(long, global = true, help_heading = "Global options")]
    port: Option<u16>,
    /// SQLite database file, or :memory: (database.path).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    db: Option<String>,
    /// Keep the database in memory, gone at exit (database.path = ":memory:").
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with = "db"
    )]
    ephemeral: bool,
    /// Serve the fixture API for test suites (fixtures.api = true; loopback only).
    #[arg(long, global = true, help_heading = "Global options")]
    fixture_api: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (the default).
    Serve,
    /// Manage users in the database file (safe while the server runs).
    Users {
        #[command(subcommand)]
        command: cli::users::UsersCommand,
    },
    /// Print a signed token for a user (for scripts and tests).
    Token(cli::token::TokenArgs),
    /// Exit 0 when the configured server answers GET /, 1 otherwise.
    Healthcheck,
    /// Print the effective settings and where each value came from (secrets redacted).
    Config(cli::config::ConfigArgs),
    /// Copy the live database to FILE (SQLite online backup; the server keeps serving).
    Backup(cli::backup::BackupArgs),
    /// Replace the token secret (signs everyone out; restart the server afterwards).
    RotateSecret(cli::secret::RotateArgs),
}

impl Global {
    fn source(&self) -> Source {
        let file = match &self.config {
            Some(p) => ConfigFile::Named(p.clone()),
            None => ConfigFile::Default,
        };
        let mut flags = Vec::new();
        if self.host.is_some() {
            flags.push(("server.host", "--host"));
        }
        if self.port.is_some() {
            flags.push(("server.port", "--port"));
        }
        if self.db.is_some() {
            flags.push(("database.path", "--db"));
        }
        if self.ephemeral {
            flags.push(("database.path", "--ephemeral"));
        }
        if self.fixture_api {
            flags.push(("fixtures.api", "--fixture-api"));
        }
        let db = if self.ephemeral {
            Some(":memory:".to_owned())
        } else {
            self.db.clone()
        };
        Source {
            file,
            overrides: Overrides {
                host: self.host.clone(),
                port: self.port,
                db,
                fixture_api: self.fixture_api,
            },
            flags,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    // The server logs every request; the other commands only say what went wrong.
    let level = if matches!(command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    let source = cli.global.source();
    if let Command::Config(args) = command {
        logging::init(LogFormat::Text, level);
        return finish(cli::config::run(
            &source,
            args,
            &mut std::io::stdout().lock(),
        ));
    }
    let settings = match source.load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("appmixer-auth: {e}");
            // A health check knows only healthy (0) or not (1); Docker reserves 2.
            let code = if matches!(command, Command::Healthcheck) {
                cli::EXIT_FAILURE
            } else {
                cli::EXIT_USAGE
            };
            return ExitCode::from(code);
        }
    };
    logging::init(settings.log.format, level);
    for var in appmixer_auth::settings::unknown_env_vars() {
        log::warn!("{var} names no setting of appmixer-auth; ignored");
    }
    let out = &mut std::io::stdout().lock();
    match command {
        Command::Serve => serve(settings),
        Command::Users { command } => finish(cli::users::run(&settings, command, out)),
        Command::Token(args) => finish(cli::token::run(&settings, args, out)),
        Command::Healthcheck => finish(cli::health::run(&settings, out)),
        Command::Backup(args) => finish(cli::backup::run(&settings, args, out)),
        Command::RotateSecret(args) => finish(cli::secret::run(&settings, args, out)),
        Command::Config(_) => unreachable!("handled before the settings are checked"),
    }
}

/// The exit code of a command; its error goes to stderr as `appmixer-auth: …`.
/// glibc's malloc gives threads up to eight arenas per core, and each arena keeps its freed
/// pages: a server whose blocking threads come and go (tokio retires idle ones after ten
/// seconds) spreads its heap over ever more of them, and its resident memory creeps up for
/// an hour (the soak benchmark saw 11.7 to 14.3 MiB of heap in seven minutes; with one
/// arena per core it stays flat). `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a tunable of glibc's allocator; it is called before the
    // runtime starts any thread, and a refused value (return 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc_arenas() {}

fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `appmixer-auth users list | head` closes the pipe early: not an error.
        Err(e) if e.message.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appmixer-auth: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    bound_malloc_arenas();
    // The main runtime's blocking threads serve the webhook outbox's store calls: bounded
    // like the HTTP workers' (see `Application::build`).
    let threads = settings.blocking_threads();
    let system = actix_web::rt::System::with_tokio_rt(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(threads)
            .build()
            .expect("the main runtime")
    });
    let result = system.block_on(async move {
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
