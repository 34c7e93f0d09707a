//! Settings: built-in defaults < the TOML file < `APPMIXER_*` environment < command-line flags.
//!
//! Every field's `///` comment is the configuration reference; `appmixer.toml` repeats it.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fixtures::declared::{self, FixtureUser};

/// The file read when neither `--config` nor `APPMIXER_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "appmixer.toml";

/// The engine's environment variables that are read, and the settings they set.
pub const ENGINE_ENV: [(&str, &str); 3] = [
    ("API_USER_CREATE_SCOPE", "tenant.api_user_create_scope"),
    ("GRIDD_JWT_TOKEN_EXP", "auth.token_expiration"),
    ("HTTP_API_PORT", "server.port"),
];

/// jwt-simple refuses HMAC keys shorter than this.
pub const MIN_SECRET_BYTES: usize = 12;

/// Everything the server can be told.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub tenant: TenantSettings,
    pub cors: CorsSettings,
    pub fixtures: FixturesSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub webhooks: WebhookSettings,
    pub smtp: SmtpSettings,
    /// Declared users (`[[users]]`), applied at every start.
    pub users: Vec<FixtureUser>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve Prometheus metrics at `GET /metrics`.
    pub enabled: bool,
    /// Serve them on this separate `HOST:PORT` instead of the API's port (so they need not be
    /// public), e.g. `127.0.0.1:9100`. Unset: on the API's port.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// URL that receives `{"event": "user.created", "user": …}` after every user is created
    /// (the engine's `WEBHOOK_USER_CREATED`; a key stored through `/config` wins). Unset: none.
    pub user_created: Option<String>,
    /// URL that receives `{"code", "email", "userId", "created", "link"}` when a known address
    /// asks for a password reset (the engine's `WEBHOOK_USER_FORGOT_PASSWORD`; a stored key
    /// wins). Unset: none.
    pub user_forgot_password: Option<String>,
    /// Signing secret: each request then carries `webhook-signature` (Standard Webhooks:
    /// `whsec_` and base64 is decoded to the key, anything else is the key as it is).
    pub secret: Option<Secret>,
    /// How long a delivery is retried (with exponential backoff) before it is given up.
    pub give_up_after: Timespan,
    /// How long one delivery attempt may take before it counts as failed.
    pub timeout: Timespan,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            user_created: None,
            user_forgot_password: None,
            secret: None,
            give_up_after: Timespan(24 * 3600),
            timeout: Timespan(5),
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on localhost, a test server).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The SMTP server that sends forgot-password mail. Unset: no mail is sent.
    pub host: Option<String>,
    pub port: u16,
    /// `starttls` (default), `tls` or `none`.
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// A file holding the password (kept out of the settings file).
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `Appmixer <no-reply@example.com>`. Needed when `host` is set.
    pub from: Option<String>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            user: None,
            password: None,
            password_file: None,
            from: None,
        }
    }
}

/// An absolute `http://` or `https://` URL with a host, or why not.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("must be an http:// or https:// URL, not `{url}`"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must be an http:// or https:// URL, not `{url}`"));
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `"text"` (default) or `"json"`: one JSON object per line with time, level, target,
    /// message and, for requests, method, path, status, duration_ms and client.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FixturesSettings {
    /// Serve `/_fixtures/reset`, `/_fixtures/users` and `/_fixtures/clock` for test suites
    /// (also `--fixture-api`). Off: those routes do not exist (404).
    pub api: bool,
    /// Allow the fixture API on an address other than loopback. Without it, start-up refuses.
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on. `0.0.0.0` listens on every interface.
    pub host: String,
    /// TCP port; 0 picks a free one (the `listening on` line tells which).
    pub port: u16,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Reverse proxies (addresses or CIDR ranges) whose `forwarded_header` names the client;
    /// from anyone else that header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies write to name the client: `X-Forwarded-For`
    /// (nginx, HAProxy, Traefik append to it) or `Forwarded` (RFC 7239). The other is never
    /// read: a proxy passes a client's own copy of it through unchanged. The right-most
    /// address that is not a trusted proxy is the client.
    pub forwarded_header: String,
    /// HTTPS: when set, the port speaks only TLS with this certificate and key.
    pub tls: Option<TlsSettings>,
    /// With TLS on, answers carry `Strict-Transport-Security: max-age=31536000`, so browsers
    /// keep to HTTPS. Turn off for a certificate you are only trying out.
    pub hsts: bool,
    /// The address people reach this server at (`https://auth.example.com`), for the links in
    /// forgot-password messages. Unset: `http(s)://host:port` of the listener. Never taken from
    /// a request's `Host` header, which a client chooses.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first. Reloaded on SIGHUP.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Reloaded on SIGHUP.
    pub key: PathBuf,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2200,
            workers: 0,
            trusted_proxies: Vec::new(),
            forwarded_header: "X-Forwarded-For".into(),
            tls: None,
            hsts: true,
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// SQLite file, created (mode 0600) if missing. `:memory:` keeps everything in memory.
    /// Not used when `url` is set.
    pub path: String,
    /// `postgres://user:password@host:port/dbname?sslmode=require`: PostgreSQL instead of the
    /// SQLite file, so several replicas can share one database. Its password is never shown.
    pub url: Option<DatabaseUrl>,
    /// Most pooled connections (to the file, or to PostgreSQL per process).
    pub pool_size: u32,
    /// PostgreSQL: how long to wait for a connection (a new one, or a free one from the pool)
    /// before a request is answered 503.
    pub connect_timeout: Timespan,
    /// PostgreSQL: the longest one statement may run before it is cancelled (answered 503).
    pub statement_timeout: Timespan,
    /// SQLite: MiB that all connections' page caches may hold together (SQLite's soft heap
    /// limit, process-wide); past it, cached pages are reused rather than added, so memory
    /// stays flat as the database grows. 0: no limit (2 MiB per connection).
    pub cache_mib: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            path: "appmixer.db".into(),
            url: None,
            pool_size: 8,
            connect_timeout: Timespan(5),
            statement_timeout: Timespan(10),
            cache_mib: 8,
        }
    }
}

impl DatabaseSettings {
    pub fn is_memory(&self) -> bool {
        self.url.is_none() && self.path == ":memory:"
    }

    /// The PostgreSQL URL, when the database is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        self.url.as_ref().map(DatabaseUrl::expose)
    }

    /// Whether the database is a local SQLite file (which commands may check for and copy).
    pub fn is_file(&self) -> bool {
        self.url.is_none() && !self.is_memory()
    }

    /// The database as people are told about it: the file, or the URL without its password.
    pub fn shown(&self) -> String {
        match &self.url {
            Some(url) => url.to_string(),
            None => self.path.clone(),
        }
    }
}

/// A database URL: its password is left out of `Debug`, `Display` and `Serialize` (the
/// `config` command, logs).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// `scheme://user:[redacted]@host…`; the rest as written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return f.write_str("[redacted]");
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => match rest[..at].find(':') {
                Some(colon) => write!(
                    f,
                    "{}{}:[redacted]{}",
                    &url[..scheme_end],
                    &rest[..colon],
                    &rest[at..]
                ),
                None => f.write_str(url),
            },
            None => f.write_str(url),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Token lifetime in the engine's timespan syntax: `30d`, `12h`, `90m`, `45s` or seconds.
    pub token_expiration: Timespan,
    /// bcrypt cost for new password hashes (4 to 31; below 10 is for tests only).
    pub bcrypt_cost: u32,
    /// HMAC secret for HS256 tokens (its UTF-8 bytes are the key). Unset: one is generated
    /// once and kept in the database, so tokens survive restarts.
    pub jwt_secret: Option<Secret>,
    /// A file holding the secret instead (its content, without a trailing newline), so it
    /// stays out of the database and its backups. Created with a random secret (mode 0600)
    /// if missing. `appmixer-auth rotate-secret` replaces it.
    pub jwt_secret_file: Option<PathBuf>,
    /// Password hashes computed at once; 0 means one per CPU core.
    pub hash_concurrency: usize,
    /// Sign-ins and sign-ups that may wait for a hashing slot before the server answers 503.
    pub hash_queue: usize,
    /// Failed sign-ins allowed per identifier and per client address within
    /// `lockout_window` before the server answers 429; 0 turns the limit off (for fixtures).
    pub max_failed_attempts: u32,
    /// The window for `max_failed_attempts`, as a timespan.
    pub lockout_window: Timespan,
    /// A password change of any kind refuses every token of that user issued before it (401
    /// `Token revoked`). Off: earlier tokens keep working until they expire.
    pub revoke_on_password_change: bool,
    /// How long a forgot-password code stays good.
    pub reset_code_ttl: Timespan,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            token_expiration: Timespan(30 * 24 * 3600),
            bcrypt_cost: 10,
            jwt_secret: None,
            jwt_secret_file: None,
            hash_concurrency: 0,
            hash_queue: 1024,
            max_failed_attempts: 10,
            lockout_window: Timespan(15 * 60),
            revoke_on_password_change: true,
            reset_code_ttl: Timespan(3600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    /// Version reported by `GET /`; the SDK warns when major.minor differs from its own.
    pub version: String,
    /// Scopes allowed to call `POST /user` (the engine's `API_USER_CREATE_SCOPE`). Empty: open.
    #[serde(deserialize_with = "string_or_list")]
    pub api_user_create_scope: Vec<String>,
    /// `vendor` of newly created users: a name or a list of names.
    pub default_user_vendor: Option<crate::domain::Vendor>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            version: "6.3.0".into(),
            api_user_create_scope: Vec::new(),
            default_user_vendor: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins allowed to call the API from a browser, e.g. `["https://app.example.com"]`;
    /// `["*"]` allows any origin (the request's `Origin` is echoed back).
    #[serde(deserialize_with = "string_or_list")]
    pub allowed_origins: Vec<String>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allowed_origins: vec!["*".into()],
        }
    }
}

impl CorsSettings {
    pub fn allows_any(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

pub use crate::domain::Secret;

/// `log.format`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A duration in whole seconds, written as `30d`, `12h`, `90m`, `45s`, `2w` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timespan(pub u64);

impl Timespan {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a timespan (like 30d, 12h, 90m or 3600)"))?;
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "y" | "year" | "years" => 365 * 86_400,
            other => return Err(format!("unknown unit `{other}` in timespan `{text}`")),
        };
        n.checked_mul(per)
            .map(Timespan)
            .ok_or_else(|| format!("timespan `{text}` is too long"))
    }
}

impl Serialize for Timespan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timespan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a timespan such as \"30d\", \"12h\" or 3600")
        })? {
            Raw::Int(n) => u64::try_from(n)
                .map(Timespan)
                .map_err(|_| serde::de::Error::custom("a timespan cannot be negative")),
            Raw::Text(t) => Timespan::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Accepts `["a", "b"]` or the engine's comma-separated `"a,b"`.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let raw = Raw::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a list of strings or \"a,b\""))?;
    let items = match raw {
        Raw::List(v) => v,
        Raw::Text(t) => t.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub db: Option<String>,
    /// `--fixture-api`
    pub fixture_api: bool,
}

/// Where the settings file comes from.
#[derive(Debug, Clone)]
pub enum ConfigFile {
    /// `./appmixer.toml`: fine if it is missing.
    Default,
    /// Named by `--config` or `APPMIXER_CONFIG`: must exist.
    Named(PathBuf),
}

impl ConfigFile {
    pub fn path(&self) -> &Path {
        match self {
            ConfigFile::Default => Path::new(DEFAULT_CONFIG_FILE),
            ConfigFile::Named(p) => p,
        }
    }
}

impl Settings {
    /// The figment behind the settings (kept so `config` can tell where a value came from).
    pub fn figment(file: &ConfigFile, overrides: &Overrides) -> Result<Figment, String> {
        if let ConfigFile::Named(path) = file
            && !path.is_file()
        {
            return Err(format!(
                "settings file {} does not exist (named by --config or APPMIXER_CONFIG)",
                path.display()
            ));
        }
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        // The default file may be missing; figment's `Toml::file` would also search parent
        // directories, which would surprise, so the file is only read where it was named.
        if file.path().is_file() {
            fig = fig.merge(Toml::file_exact(file.path()));
        }
        // The engine's own variable names, so an Appmixer environment file can be reused;
        // the APPMIXER_* names are more specific and win over them.
        fig = fig
            .merge(Env::raw().only(&ENGINE_ENV.map(|(var, _)| var)).map(|key| {
                let key = key.as_str().to_ascii_uppercase();
                ENGINE_ENV
                    .iter()
                    .find(|(var, _)| *var == key)
                    .map_or(key.to_ascii_lowercase(), |(_, path)| (*path).to_owned())
                    .into()
            }))
            .merge(
                Env::prefixed("APPMIXER_")
                    .split("__")
                    .ignore(&["config"])
                    // The environment is shared with other programs (Appmixer's own
                    // deployments set APPMIXER_FE_URL …): a variable that names no setting is
                    // left out here and warned about at start, not an error.
                    .filter(|key| names_a_setting(key.as_str())),
            );
        if let Some(host) = &overrides.host {
            fig = fig.merge(Serialized::default("server.host", host));
        }
        if let Some(port) = overrides.port {
            fig = fig.merge(Serialized::default("server.port", port));
        }
        if let Some(db) = &overrides.db {
            fig = fig.merge(Serialized::default("database.path", db));
        }
        if overrides.fixture_api {
            fig = fig.merge(Serialized::default("fixtures.api", true));
        }
        Ok(fig)
    }

    /// Loads and validates the settings; the error names the offending key.
    pub fn load(file: &ConfigFile, overrides: &Overrides) -> Result<Settings, String> {
        let figment = Self::figment(file, overrides)?;
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| format!("invalid settings: {}", describe_figment_error(e, file)))?;
        // A SQLite file and a PostgreSQL URL both named: which one was meant cannot be told.
        let path_named = overrides.db.is_some()
            || figment.find_metadata("database.path").is_some_and(|md| {
                matches!(md.source, Some(figment::Source::File(_)))
                    || md.name.contains("nvironment")
            });
        if settings.database.url.is_some() && path_named {
            return Err(
                "both database.path (SQLite) and database.url (PostgreSQL) are set; set one".into(),
            );
        }
        // Naming where to serve the metrics is asking for them.
        if settings.metrics.listen.is_some() {
            settings.metrics.enabled = true;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot; each message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.server.host.trim().is_empty() {
            return Err("server.host must not be empty".into());
        }
        if self.database.path.trim().is_empty() {
            return Err("database.path must not be empty".into());
        }
        if let Some(url) = self.database.postgres_url()
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(
                "database.url must be a postgres:// (or postgresql://) URL; for SQLite set database.path"
                    .into(),
            );
        }
        if self.database.connect_timeout.0 == 0 {
            return Err("database.connect_timeout must be at least 1 second".into());
        }
        if self.database.pool_size == 0 {
            return Err("database.pool_size must be at least 1".into());
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            return Err(format!(
                "auth.bcrypt_cost must be between 4 and 31, not {}",
                self.auth.bcrypt_cost
            ));
        }
        if self.auth.token_expiration.0 == 0 {
            return Err("auth.token_expiration must be longer than 0 seconds".into());
        }
        if self.auth.token_expiration.0 > 100 * 365 * 86_400 {
            return Err("auth.token_expiration must be at most 100 years".into());
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().is_empty()
        {
            return Err(
                "auth.jwt_secret must not be empty (leave it unset to generate one)".into(),
            );
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < MIN_SECRET_BYTES
        {
            return Err(format!(
                "auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes (32 or more is better)"
            ));
        }
        if self.auth.max_failed_attempts > 0 && self.auth.lockout_window.0 == 0 {
            return Err("auth.lockout_window must be longer than 0 seconds".into());
        }
        if self.auth.hash_queue == 0 {
            return Err("auth.hash_queue must be at least 1".into());
        }
        if !is_version(&self.tenant.version) {
            return Err(format!(
                "tenant.version must look like 6.3.0, not `{}`",
                self.tenant.version
            ));
        }
        crate::net::TrustedProxies::parse(
            &self.server.trusted_proxies,
            &self.server.forwarded_header,
        )?;
        if self.auth.jwt_secret.is_some() && self.auth.jwt_secret_file.is_some() {
            return Err("auth.jwt_secret and auth.jwt_secret_file are both set; keep one".into());
        }
        if let Some(listen) = &self.metrics.listen
            && listen
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(format!(
                "metrics.listen must look like 127.0.0.1:9100, not `{listen}`"
            ));
        }
        if let Some(url) = &self.webhooks.user_created {
            check_url(url).map_err(|e| format!("webhooks.user_created {e}"))?;
        }
        if let Some(url) = &self.webhooks.user_forgot_password {
            check_url(url).map_err(|e| format!("webhooks.user_forgot_password {e}"))?;
        }
        if let Some(url) = &self.server.public_url {
            check_url(url).map_err(|e| format!("server.public_url {e}"))?;
        }
        if self.auth.reset_code_ttl.0 == 0 {
            return Err("auth.reset_code_ttl must be longer than 0 seconds".into());
        }
        if self.smtp.host.is_some() {
            let from = self.smtp.from.as_deref().unwrap_or("");
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!(
                    "smtp.from must be an address such as `Appmixer <no-reply@example.com>` when smtp.host is set, not `{from}`"
                ));
            }
            if self.smtp.password.is_some() && self.smtp.password_file.is_some() {
                return Err("smtp.password and smtp.password_file are both set; keep one".into());
            }
        }
        if self.webhooks.timeout.0 == 0 {
            return Err("webhooks.timeout must be longer than 0 seconds".into());
        }
        if self
            .webhooks
            .secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return Err(
                "webhooks.secret must not be empty (leave it unset to sign nothing)".into(),
            );
        }
        declared::validate(&self.users)?;
        if self.fixtures.api && !self.fixtures.allow_remote && !is_loopback(&self.server.host) {
            return Err(format!(
                "fixtures.api is on and server.host is {}: the fixture API lets anyone reset users \
                 and move the clock, so it only listens on loopback unless fixtures.allow_remote = true",
                self.server.host
            ));
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && !is_origin(origin) {
                return Err(format!(
                    "cors.allowed_origins: `{origin}` is not an origin like https://app.example.com or \"*\""
                ));
            }
        }
        Ok(())
    }

    /// Blocking threads a runtime needs at most: one per pooled connection (store calls) and
    /// one per hash slot; more would only wait.
    pub fn blocking_threads(&self) -> usize {
        self.database.pool_size as usize + self.hash_concurrency()
    }

    /// Hash slots: the setting, or the number of cores.
    pub fn hash_concurrency(&self) -> usize {
        match self.auth.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }
}

/// Whether `key` (an `APPMIXER_` variable without its prefix, `__` or `.` between levels, any
/// case) names a setting: each level a key of the defaults, down to a value or an optional table.
fn names_a_setting(key: &str) -> bool {
    static DEFAULTS: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let defaults =
        DEFAULTS.get_or_init(|| serde_json::to_value(Settings::default()).unwrap_or_default());
    let mut at = defaults;
    for part in key.to_ascii_lowercase().replace("__", ".").split('.') {
        match at {
            serde_json::Value::Object(map) => match map.get(part) {
                Some(next) => at = next,
                None => return false,
            },
            // An optional table (`server.tls`) is null by default: its keys are checked
            // when the value is read.
            serde_json::Value::Null => return true,
            _ => return false,
        }
    }
    true
}

/// The `APPMIXER_*` variables in the environment that name no setting (start-up warns about
/// each, so a typo is seen, but they do not stop anything).
pub fn unknown_env_vars() -> Vec<String> {
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.strip_prefix("APPMIXER_")
                .is_some_and(|rest| !rest.eq_ignore_ascii_case("config") && !names_a_setting(rest))
        })
        .collect();
    unknown.sort();
    unknown
}

/// One line per problem, naming the key as the user writes it (`server.prot`, not figment's
/// `default.server.prot`) and where it came from: the file as it was named, or the variable.
fn describe_figment_error(e: figment::Error, file: &ConfigFile) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let from = match e.metadata.as_ref().map(|m| &m.source) {
                Some(Some(figment::Source::File(_))) => format!(" in {}", file.path().display()),
                _ if e
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains("APPMIXER_")) =>
                {
                    format!(
                        " in APPMIXER_{}",
                        key.to_ascii_uppercase().replace('.', "__")
                    )
                }
                Some(_) => match ENGINE_ENV.iter().find(|(_, path)| *path == key) {
                    Some((var, _)) => format!(" in {var}"),
                    None => e
                        .metadata
                        .as_ref()
                        .map(|m| format!(" in {}", m.name))
                        .unwrap_or_default(),
                },
                None => String::new(),
            };
            if key.is_empty() {
                format!("{}{from}", e.kind)
            } else {
                format!("{key}: {}{from}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a host name or address only reaches this machine.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    matches!(rest, Some(host) if !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_listen_alone_turns_the_metrics_on() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "[metrics]\nlisten = \"127.0.0.1:9100\"\n").expect("write");
        let s = Settings::load(&ConfigFile::Named(file), &Overrides::default()).expect("load");
        assert!(s.metrics.enabled);
    }

    #[test]
    fn only_variables_that_name_settings_count() {
        for key in [
            "SERVER__PORT",
            "auth__bcrypt_cost",
            "server.tls.cert",
            "LOG__FORMAT",
        ] {
            assert!(names_a_setting(key), "{key}");
        }
        for key in [
            "AUTH_BIN",
            "FE_URL",
            "SERVER__PROT",
            "SERVER__PORT__X",
            "USERSX",
        ] {
            assert!(!names_a_setting(key), "{key}");
        }
    }

    #[test]
    fn timespans_in_the_engine_syntax_parse_to_seconds() {
        assert_eq!(Timespan::parse("30d"), Ok(Timespan(2_592_000)));
        assert_eq!(Timespan::parse("12h"), Ok(Timespan(43_200)));
        assert_eq!(Timespan::parse("90m"), Ok(Timespan(5_400)));
        assert_eq!(Timespan::parse("3600"), Ok(Timespan(3_600)));
        assert_eq!(Timespan::parse("2 weeks"), Ok(Timespan(1_209_600)));
        assert!(Timespan::parse("").is_err());
        assert!(Timespan::parse("d").is_err());
        assert!(Timespan::parse("10 parsecs").is_err());
        assert!(Timespan::parse("99999999999999999999y").is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_serialize() {
        let s = Secret::new("hunter2-super-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(
            !serde_json::to_string(&s)
                .expect("serializes")
                .contains("hunter2")
        );
        let mut settings = Settings::default();
        settings.auth.jwt_secret = Some(s);
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn the_committed_appmixer_toml_holds_the_defaults_and_names_every_key() {
        let text = include_str!("../appmixer.toml");
        let from_file: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(text))
            .extract()
            .expect("appmixer.toml parses");
        assert_eq!(
            serde_json::to_value(&from_file).expect("json"),
            serde_json::to_value(Settings::default()).expect("json"),
            "appmixer.toml must show the built-in defaults"
        );
        // Every key is documented, set or commented out.
        fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            if let serde_json::Value::Object(map) = v {
                for (k, child) in map {
                    out.push(k.clone());
                    keys(&format!("{prefix}{k}."), child, out);
                }
            }
        }
        let mut all = Vec::new();
        let mut defaults = serde_json::to_value(Settings::default()).expect("json");
        defaults["server"]["tls"] = serde_json::json!({"cert": "", "key": ""});
        keys("", &defaults, &mut all);
        for key in all {
            assert!(
                text.contains(&format!("{key} ="))
                    || text.contains(&format!("[{key}]"))
                    || text.contains(&format!(".{key}]"))
                    || text.contains(&format!("[[{key}]]")),
                "appmixer.toml does not mention `{key}`"
            );
        }
    }

    #[test]
    fn validation_names_the_setting() {
        let mut s = Settings::default();
        s.auth.bcrypt_cost = 3;
        assert!(s.validate().unwrap_err().contains("auth.bcrypt_cost"));
        let mut s = Settings::default();
        s.tenant.version = "six".into();
        assert!(s.validate().unwrap_err().contains("tenant.version"));
        let mut s = Settings::default();
        s.cors.allowed_origins = vec!["example.com".into()];
        assert!(s.validate().unwrap_err().contains("cors.allowed_origins"));
        assert!(Settings::default().validate().is_ok());
    }
}
