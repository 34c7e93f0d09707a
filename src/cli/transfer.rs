//! `users export` and `users import`: every field of every user, hashes and ids included, as
//! one JSON document that round-trips (export, wipe, import: same users, same tokens work).
//!
//! ```json
//! {"version": 1, "users": [
//! {"id": "…", "username": "…", "email": "…", "passwordHash": "$2b$…", "isActive": false,
//!  "scope": ["user"], "plan": "free", "vendor": null, "metadata": {}, "created": 1764470000000,
//!  "mtime": 1764470000000}
//! ]}
//! ```

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{CliError, CliResult};
use crate::db::users::{self, PasswordHash, User};
use crate::db::{Store, StoreError};
use crate::domain::{Email, UserId, Username, Vendor, check_label};
use crate::settings::Settings;

/// The version of the export document this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// Imports this large show a progress bar (when stderr is a terminal).
const PROGRESS_FROM_BYTES: u64 = 1 << 20;

/// One user in an export: every stored field under its API name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub is_active: bool,
    pub scope: &'a [String],
    pub plan: &'a str,
    pub vendor: Option<&'a Vendor>,
    pub metadata: &'a Value,
    /// Milliseconds since the epoch.
    pub created: i64,
    pub mtime: i64,
    /// Seconds: the user's tokens issued before were revoked. Left out when nothing was.
    #[serde(skip_serializing_if = "is_zero")]
    pub tokens_since: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl<'a> From<&'a User> for UserRecord<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id.as_str(),
            username: &u.username,
            email: &u.email,
            password_hash: &u.password_hash.0,
            is_active: u.is_active,
            scope: &u.scope,
            plan: &u.plan,
            vendor: u.vendor.as_ref(),
            metadata: &u.metadata,
            created: u.created,
            mtime: u.mtime,
            tokens_since: u.tokens_since,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File to write (mode 0600: it holds password hashes); stdout when left out or `-`.
    pub file: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// An export document; `-` reads stdin.
    pub file: PathBuf,
    /// What FILE is: this server's export (default), or `appmixer-mongo`, a `mongoexport` of
    /// the engine's `users` collection (JSON lines or an array; `_id` is kept as the id, so the
    /// old engine's tokens work with the same JWTSecret; `password` is the hash).
    #[arg(long, value_name = "FORMAT", default_value = "export")]
    pub from: ImportFormat,
    /// With `--from firebase`: the project's password hash parameters, as Firebase's own
    /// `auth:import` takes them (Authentication → Users → ⋮ → Password hash parameters).
    #[arg(long, value_name = "ALGO", requires = "hash_key")]
    pub hash_algo: Option<String>,
    /// base64_signer_key.
    #[arg(long, value_name = "B64")]
    pub hash_key: Option<String>,
    /// base64_salt_separator.
    #[arg(long, value_name = "B64")]
    pub salt_separator: Option<String>,
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    #[arg(long, value_name = "N")]
    pub mem_cost: Option<u32>,
    /// Also delete the stored users that are not in the file (a restore).
    #[arg(long)]
    pub replace: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The formats `users import --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// This server's `users export` document.
    Export,
    /// `mongoexport` of the Appmixer engine's `users` collection.
    AppmixerMongo,
    /// `firebase auth:export` JSON, with the project's hash parameters.
    Firebase,
}

/// A Firebase project's scrypt parameters.
struct FirebaseProject {
    signer_key: Vec<u8>,
    separator: Vec<u8>,
    rounds: u32,
    mem_cost: u32,
}

impl FirebaseProject {
    fn from_args(a: &ImportArgs) -> CliResult<Self> {
        use base64::Engine as _;
        let b64 = |flag: &str, v: &Option<String>| -> CliResult<Vec<u8>> {
            let v = v
                .as_deref()
                .ok_or_else(|| CliError::usage(format!("--from firebase needs {flag}")))?;
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| CliError::usage(format!("{flag}: not base64")))
        };
        match a.hash_algo.as_deref() {
            Some(algo) if algo.eq_ignore_ascii_case("SCRYPT") => {}
            Some(other) => {
                return Err(CliError::usage(format!(
                    "--hash-algo {other}: only SCRYPT (Firebase's default) is read"
                )));
            }
            None => return Err(CliError::usage("--from firebase needs --hash-algo SCRYPT")),
        }
        Ok(Self {
            signer_key: b64("--hash-key", &a.hash_key)?,
            separator: b64("--salt-separator", &a.salt_separator)?,
            rounds: a
                .rounds
                .ok_or_else(|| CliError::usage("--from firebase needs --rounds"))?,
            mem_cost: a
                .mem_cost
                .ok_or_else(|| CliError::usage("--from firebase needs --mem-cost"))?,
        })
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    /// Identical to the stored user: nothing written.
    pub skipped: usize,
    /// Only with `--replace`.
    pub deleted: usize,
}

pub fn export(settings: &Settings, a: ExportArgs, out: &mut dyn Write) -> CliResult {
    let file = a
        .file
        .as_deref()
        .filter(|p| *p != std::path::Path::new("-"));
    if let Some(path) = file
        && path.exists()
        && !a.force
    {
        return Err(CliError::usage(format!(
            "{} exists; add --force to overwrite it",
            path.display()
        )));
    }
    let store = super::connect_existing(settings)?;
    match file {
        None => write_document(out, &store).map(|_| ()),
        Some(path) => {
            let mut n = 0;
            super::write_private(path, |w| {
                n = write_document(w, &store)?;
                Ok(())
            })?;
            // The summary goes where `import`'s does: stdout (the document itself went to
            // the file).
            writeln!(
                out,
                "exported {} to {}",
                super::count_of(n, "user"),
                path.display()
            )?;
            Ok(())
        }
    }
}

/// One record per line: readable, diffable, and streamed as the store reads (one read, so
/// one consistent snapshot even while the server writes); how many users it wrote.
fn write_document(out: &mut dyn Write, store: &Store) -> CliResult<usize> {
    write!(out, "{{\"version\": {FORMAT_VERSION}, \"users\": [")?;
    let mut n = 0;
    let mut failed: Option<std::io::Error> = None;
    let read = store.read_blocking(|ops| {
        ops.each_user(&mut |u| {
            let written = out
                .write_all(if n == 0 { b"\n" } else { b",\n" })
                .and_then(|()| {
                    serde_json::to_writer(&mut *out, &UserRecord::from(&u))
                        .map_err(std::io::Error::from)
                });
            n += 1;
            written.map_err(|e| {
                failed = Some(e);
                StoreError::RolledBack
            })
        })
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    read?;
    writeln!(out, "\n]}}")?;
    out.flush()?;
    Ok(n)
}

pub fn import(settings: &Settings, a: ImportArgs, out: &mut dyn Write) -> CliResult {
    let name = a.file.display().to_string();
    let (reader, len): (Box<dyn Read>, u64) = if name == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let file = std::fs::File::open(&a.file)
            .map_err(|e| CliError::failure(format!("cannot read {name}: {e}")))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(file), len)
    };
    let firebase = match a.from {
        ImportFormat::Firebase => Some(FirebaseProject::from_args(&a)?),
        _ => None,
    };
    let store = super::connect(settings)?;
    let progress = progress_bar(len);
    let reader = std::io::BufReader::with_capacity(
        256 * 1024,
        Counted {
            inner: reader,
            progress: progress.clone(),
            read: 0,
        },
    );
    // Read and written one record at a time, all in one transaction: a bad record anywhere
    // rolls everything back, so nothing is ever half-imported, and memory stays flat.
    let report = store.write_blocking(|ops| {
        let mut writer = Importer::new(ops, &settings.webhooks, a.replace);
        let now = users::now_ms();
        let each = &mut |i, user| writer.record(i, user);
        match a.from {
            ImportFormat::Export => stream_document(reader, now, false, each),
            ImportFormat::AppmixerMongo => stream_mongo(reader, now, each),
            ImportFormat::Firebase => match &firebase {
                Some(project) => read_firebase(reader, now, project, each),
                None => Err("the project's hash parameters are missing".into()),
            },
        }
        .and_then(|_| writer.flush())
        .map_err(|e| CliError::failure(format!("{name}: {e}")))?;
        writer.finish()
    })?;
    progress.finish_and_clear();
    if a.json {
        serde_json::to_writer(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(
            out,
            "created {}, updated {}, skipped {} (identical)",
            report.created, report.updated, report.skipped
        )?;
        if a.replace {
            write!(out, ", deleted {}", report.deleted)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A progress bar over the bytes of the file, on a terminal, for files of some size.
fn progress_bar(len: u64) -> ProgressBar {
    if len < PROGRESS_FROM_BYTES || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    // Short enough for an 80-column terminal, where a wrapped bar would redraw badly.
    if let Ok(style) =
        ProgressStyle::with_template("importing {bar:24} {bytes}/{total_bytes}, {eta} left")
    {
        bar.set_style(style);
    }
    bar
}

/// Counts what is read, for the progress bar.
struct Counted<R> {
    inner: R,
    progress: ProgressBar,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.progress.set_position(self.read);
        Ok(n)
    }
}

/// Parses and checks a whole document: every record valid, no id, username or email twice.
/// The error names the record (index and username) and the field. (The import itself streams,
/// [`stream_document`]; this collects, for tests and small documents.)
pub fn parse_document(bytes: &[u8], now: i64) -> Result<Vec<User>, String> {
    let mut out = Vec::new();
    stream_document(bytes, now, true, &mut |_, user| {
        out.push(user);
        Ok(())
    })?;
    Ok(out)
}

/// The ids (and, for a whole-document check, usernames and emails) met so far in a document,
/// as 64-bit hashes with the index of the record that had each: about 35 MB for a million ids.
/// A hash collision, one in 2^64, could only refuse a document, never import a wrong one. An
/// import leaves usernames and emails to the database's unique indexes, which refuse a second
/// one in the same transaction.
#[derive(Default)]
struct Seen {
    ids: HashMap<u64, u32>,
    names: Option<HashMap<u64, u32>>,
    emails: Option<HashMap<u64, u32>>,
}

impl Seen {
    /// Ids only (`whole` false), or ids, usernames and emails.
    fn new(whole: bool) -> Self {
        Self {
            names: whole.then(HashMap::new),
            emails: whole.then(HashMap::new),
            ..Self::default()
        }
    }

    fn check(&mut self, i: usize, user: &User) -> Result<(), String> {
        use std::hash::{BuildHasher, Hasher};
        // Fixed keys: the same text gives the same hash within one run.
        let state =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        let hash = |text: &str| {
            let mut h = state.build_hasher();
            h.write(text.as_bytes());
            h.finish()
        };
        let at = || format!("users[{i}] ({:?})", user.username);
        let i32 = u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(j) = self.ids.insert(hash(user.id.as_str()), i32) {
            return Err(format!("{}: id: also used by users[{j}]", at()));
        }
        if let Some(names) = &mut self.names
            && let Some(j) = names.insert(hash(&user.username), i32)
        {
            return Err(format!("{}: username: also used by users[{j}]", at()));
        }
        if let Some(emails) = &mut self.emails
            && let Some(j) = emails.insert(hash(&Email::key_of(&user.email)), i32)
        {
            return Err(format!("{}: email: also used by users[{j}]", at()));
        }
        Ok(())
    }
}

/// Reads a document `{"version": 1, "users": [...]}` record by record, handing each parsed and
/// checked user (with its index) to `each`, which may refuse it; the document is never held
/// whole. Errors name the record and field, or what is wrong with the document.
pub fn stream_document<R: Read>(
    reader: R,
    now: i64,
    whole: bool,
    each: &mut dyn FnMut(usize, User) -> Result<(), String>,
) -> Result<usize, String> {
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

    struct Doc<'a> {
        now: i64,
        each: &'a mut dyn FnMut(usize, User) -> Result<(), String>,
        seen: Seen,
        count: usize,
        failure: Option<String>,
    }

    impl<'de> Visitor<'de> for &mut Doc<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object {\"version\": 1, \"users\": [...]}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (mut version, mut users) = (false, false);
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "version" => {
                        let v: Value = map.next_value()?;
                        if v.as_u64() != Some(FORMAT_VERSION) {
                            return Err(A::Error::custom(format!(
                                "version: this build reads version {FORMAT_VERSION}, not {v}"
                            )));
                        }
                        version = true;
                    }
                    "users" => {
                        map.next_value_seed(Records(&mut *self))?;
                        users = true;
                    }
                    other => {
                        return Err(A::Error::custom(format!(
                            "unknown key `{other}` (expected version and users)"
                        )));
                    }
                }
            }
            if !version {
                return Err(A::Error::custom("version: missing (expected 1)"));
            }
            if !users {
                return Err(A::Error::custom("users: missing"));
            }
            Ok(())
        }
    }

    struct Records<'b, 'a>(&'b mut Doc<'a>);

    impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Records<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("users: an array")
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
            let doc = self.0;
            while let Some(value) = seq.next_element::<Value>()? {
                let i = doc.count;
                let user = parse_record(i, value, doc.now).map_err(S::Error::custom)?;
                if let Err(e) = doc.seen.check(i, &user).and_then(|()| (doc.each)(i, user)) {
                    doc.failure = Some(e.clone());
                    return Err(S::Error::custom(e));
                }
                doc.count += 1;
            }
            Ok(())
        }
    }

    let mut doc = Doc {
        now,
        each,
        seen: Seen::new(whole),
        count: 0,
        failure: None,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parsed = serde::Deserializer::deserialize_map(&mut de, &mut doc).and_then(|()| de.end());
    match parsed {
        Ok(()) => Ok(doc.count),
        // A record refused by `each` or the checks: its own message, as written.
        Err(_) if doc.failure.is_some() => Err(doc.failure.unwrap_or_default()),
        Err(e) if e.is_data() => Err(strip_position(&e.to_string())),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// Reads a `mongoexport` of the engine's `users` collection (JSON lines, or one array) record
/// by record, as [`stream_document`] does: each document becomes a record of this server's
/// format (`_id.$oid` the id, `password` the hash, extended-JSON dates in milliseconds; fields
/// this server does not keep are left out) and goes through the same checks.
pub fn stream_mongo<R: Read>(
    reader: R,
    now: i64,
    each: &mut dyn FnMut(usize, User) -> Result<(), String>,
) -> Result<usize, String> {
    let mut reader = std::io::BufReader::new(reader);
    // An array or JSON lines: look at the first byte that is not white space.
    let first = loop {
        let buf = std::io::BufRead::fill_buf(&mut reader).map_err(|e| e.to_string())?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => {
                let byte = buf[at];
                std::io::BufRead::consume(&mut reader, at);
                break Some(byte);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                std::io::BufRead::consume(&mut reader, n);
            }
        }
    };
    let mut seen = Seen::new(true);
    let mut count = 0;
    let mut one = |value: Value| -> Result<(), String> {
        let record = mongo_record(count, value)?;
        let user = parse_record(count, record, now)?;
        seen.check(count, &user)?;
        each(count, user)?;
        count += 1;
        Ok(())
    };
    if first == Some(b'[') {
        let all: Vec<Value> =
            serde_json::from_reader(reader).map_err(|e| format!("not valid JSON: {e}"))?;
        for value in all {
            one(value)?;
        }
    } else {
        for (n, value) in serde_json::Deserializer::from_reader(reader)
            .into_iter::<Value>()
            .enumerate()
        {
            one(value.map_err(|e| format!("not valid JSON (document {}): {e}", n + 1))?)?;
        }
    }
    Ok(count)
}

/// Reads `firebase auth:export` JSON (`{"users": [...]}`): each user gets an id derived from its
/// `localId` (the first 12 bytes of SHA-256 of `firebase:` and the localId, so importing the
/// same export again updates the same users), keeps the localId in `metadata.firebase`, signs
/// in with the email, and keeps its password hash with the project's parameters. A user with no
/// password (a Google or phone sign-in) gets an unusable one: forgot-password sets one.
fn read_firebase<R: Read>(
    reader: R,
    now: i64,
    project: &FirebaseProject,
    each: &mut dyn FnMut(usize, User) -> Result<(), String>,
) -> Result<usize, String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let doc: Value = serde_json::from_reader(reader).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(list) = doc.get("users").and_then(Value::as_array) else {
        return Err("expected {\"users\": [...]} (firebase auth:export --format=json)".into());
    };
    let mut seen = Seen::new(true);
    let b64 = |v: &Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    };
    for (i, u) in list.iter().enumerate() {
        let local = u["localId"].as_str().unwrap_or_default();
        let label = format!("users[{i}] ({local:?})");
        if local.is_empty() {
            return Err(format!("users[{i}]: localId: missing"));
        }
        let email = u["email"]
            .as_str()
            .ok_or_else(|| format!("{label}: email: missing (users sign in here by email)"))?;
        let digest = sha2::Sha256::digest(format!("firebase:{local}").as_bytes());
        let id: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let hash = match (u.get("passwordHash"), u.get("salt")) {
            (Some(h), Some(salt)) => {
                let (h, salt) = (
                    b64(h).ok_or_else(|| format!("{label}: passwordHash: not base64"))?,
                    b64(salt).ok_or_else(|| format!("{label}: salt: not base64"))?,
                );
                crate::auth::hashes::firebase_hash(
                    project.rounds,
                    project.mem_cost,
                    &salt,
                    &project.separator,
                    &project.signer_key,
                    &h,
                )
            }
            _ => crate::auth::hashes::UNUSABLE.to_owned(),
        };
        let created = match &u["createdAt"] {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let mut firebase = Map::new();
        firebase.insert("localId".into(), Value::from(local));
        if let Some(name) = u["displayName"].as_str() {
            firebase.insert("displayName".into(), Value::from(name));
        }
        let mut record = Map::new();
        record.insert("id".into(), Value::from(id));
        record.insert("username".into(), Value::from(email));
        record.insert("email".into(), Value::from(email));
        record.insert("passwordHash".into(), Value::from(hash));
        record.insert(
            "isActive".into(),
            Value::from(u["emailVerified"].as_bool().unwrap_or(false)),
        );
        record.insert(
            "metadata".into(),
            serde_json::json!({ "firebase": Value::Object(firebase) }),
        );
        if let Some(c) = created {
            record.insert("created".into(), Value::from(c));
        }
        let user = parse_record(i, Value::Object(record), now)?;
        seen.check(i, &user)?;
        each(i, user)?;
    }
    Ok(list.len())
}

/// One document of the engine's `users` collection as a record of this server's format.
fn mongo_record(i: usize, value: Value) -> Result<Value, String> {
    let Value::Object(mut o) = value else {
        return Err(format!("users[{i}]: must be an object"));
    };
    let label = match o.get("username") {
        Some(Value::String(s)) => format!("users[{i}] ({s:?})"),
        _ => format!("users[{i}]"),
    };
    let err = |e: String| format!("{label}: {e}");
    let id = match o.remove("_id") {
        Some(Value::Object(mut id)) => match id.remove("$oid") {
            Some(Value::String(s)) => s,
            _ => return Err(err("_id: expected {\"$oid\": \"…\"}".into())),
        },
        Some(Value::String(s)) => s,
        _ => return Err(err("_id: missing".into())),
    };
    let date = |v: Option<Value>| -> Result<Option<Value>, String> {
        Ok(match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(mut d)) => match d.remove("$date") {
                Some(Value::String(text)) => Some(Value::from(
                    parse_iso8601(&text).ok_or(format!("date `{text}` is not ISO-8601"))?,
                )),
                Some(Value::Number(n)) => Some(Value::Number(n)),
                Some(Value::Object(mut l)) => match l.remove("$numberLong") {
                    Some(Value::String(n)) => Some(Value::from(
                        n.parse::<i64>()
                            .map_err(|_| format!("date `{n}` is not a number"))?,
                    )),
                    _ => return Err("a date must be {\"$date\": …}".into()),
                },
                _ => return Err("a date must be {\"$date\": …}".into()),
            },
            Some(n @ Value::Number(_)) => Some(n),
            Some(_) => return Err("a date must be {\"$date\": …}".into()),
        })
    };
    let created = date(o.remove("created")).map_err(|e| err(format!("created: {e}")))?;
    let mtime = date(o.remove("mtime")).map_err(|e| err(format!("mtime: {e}")))?;
    let username = o.remove("username");
    let email = match o.remove("email") {
        Some(Value::String(e)) => Value::String(e),
        // The engine's users made by username alone: an address username is the email.
        _ => username.clone().unwrap_or(Value::Null),
    };
    let mut record = Map::new();
    record.insert("id".into(), Value::String(id));
    record.insert("username".into(), username.unwrap_or(Value::Null));
    record.insert("email".into(), email);
    record.insert(
        "passwordHash".into(),
        o.remove("password").unwrap_or(Value::Null),
    );
    for key in ["isActive", "scope", "plan", "vendor", "metadata"] {
        if let Some(v) = o.remove(key) {
            record.insert(key.into(), v);
        }
    }
    if let Some(c) = created {
        record.insert("created".into(), c);
    }
    if let Some(m) = mtime {
        record.insert("mtime".into(), m);
    }
    Ok(Value::Object(record))
}

/// `2023-05-01T12:30:00.000Z` (or with an offset of `+00:00`) in milliseconds since the epoch.
fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, ms) = match time.split_once('.') {
        Some((hms, frac)) => {
            let frac: String = frac.chars().chain("000".chars()).take(3).collect();
            (hms, frac.parse::<i64>().ok()?)
        }
        None => (time, 0),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms)
}

/// serde_json's messages end with " at line L column C", which only helps for syntax errors.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn parse_record(i: usize, value: Value, now: i64) -> Result<User, String> {
    let Value::Object(mut o) = value else {
        return Err(format!("users[{i}]: must be an object"));
    };
    let label = match o.get("username") {
        Some(Value::String(s)) => format!("users[{i}] ({s:?})"),
        _ => format!("users[{i}]"),
    };
    let user = record_fields(&mut o, now).map_err(|e| format!("{label}: {e}"))?;
    if let Some(key) = o.keys().next() {
        return Err(format!("{label}: unknown field `{key}`"));
    }
    Ok(user)
}

/// Takes the known fields out of `o` (what is left is unknown). Required: id, username,
/// email, passwordHash; the rest default as for a new user.
fn record_fields(o: &mut Map<String, Value>, now: i64) -> Result<User, String> {
    fn string(o: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
        match o.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{key}: must be a string")),
        }
    }
    fn required(o: &mut Map<String, Value>, key: &str) -> Result<String, String> {
        string(o, key)?.ok_or_else(|| format!("{key}: is required"))
    }
    fn millis(o: &mut Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
        match o.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|&n| n >= 0)
                .map(Some)
                .ok_or_else(|| format!("{key}: must be milliseconds since 1970 (an integer)")),
            Some(_) => Err(format!(
                "{key}: must be milliseconds since 1970 (an integer)"
            )),
        }
    }
    let id = UserId::parse(&required(o, "id")?)
        .map_err(|_| "id: must be 24 hexadecimal characters".to_owned())?;
    let username = required(o, "username")?;
    Username::parse(&username).map_err(|e| format!("username: {e}"))?;
    let email = required(o, "email")?;
    Email::parse(&email).map_err(|e| format!("email: {e}"))?;
    let hash = required(o, "passwordHash")?;
    crate::auth::hashes::check(&hash).map_err(|e| format!("passwordHash: {e}"))?;
    let is_active = match o.remove("isActive") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("isActive: must be true or false".into()),
    };
    let scope = match o.remove("scope") {
        None | Some(Value::Null) => users::default_scope(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => check_label("scope", &s)
                    .map(|()| s)
                    .map_err(|e| format!("scope: {e}")),
                _ => Err("scope: must be an array of non-empty strings".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("scope: must be an array of strings".into()),
    };
    let plan = string(o, "plan")?.unwrap_or_else(|| users::DEFAULT_PLAN.into());
    check_label("plan", &plan).map_err(|e| format!("plan: {e}"))?;
    let vendor = match o.remove("vendor") {
        None => None,
        Some(v) => Vendor::parse("vendor", &v).map_err(|e| format!("vendor: {e}"))?,
    };
    let metadata = match o.remove("metadata") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err("metadata: must be an object".into()),
    };
    let created = millis(o, "created")?.unwrap_or(now);
    let mtime = millis(o, "mtime")?.unwrap_or(created);
    let tokens_since = match o.remove("tokensSince") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|n| (0..=i64::from(u32::MAX)).contains(n))
            .ok_or("tokensSince: must be whole seconds since the epoch")?,
    };
    Ok(User {
        id,
        username,
        email,
        password_hash: PasswordHash(hash),
        is_active,
        scope,
        plan,
        vendor,
        metadata,
        created,
        mtime,
        tokens_since,
    })
}

/// Upserts records by id in the caller's transaction; an error rolls everything back.
/// Records are taken [`CHUNK`] at a time: one query finds which of them are stored and one
/// statement inserts the new ones, so a database across a network is not paid a round trip
/// per record. The outcome is the same as record by record, in the file's order.
struct Importer<'o, 'w> {
    ops: &'o mut dyn crate::db::Ops,
    webhooks: &'w crate::settings::WebhookSettings,
    report: ImportReport,
    /// With `--replace`: the ids in the file, 12 bytes each (the other users go at the end).
    keep: Option<Vec<[u8; 12]>>,
    /// Records seen; past [`BULK_FROM`] the store's search indexes are brought up to date once
    /// at the end instead of with every record.
    seen: usize,
    bulk: bool,
    /// Records read but not yet written (with their index in the file), and their ids.
    pending: Vec<(usize, User)>,
    pending_ids: std::collections::HashSet<UserId>,
    /// Where `user.created` goes, read once at the first insert.
    announce: Option<Option<String>>,
}

/// Records after which an import asks the store to index at the end (a large import is then
/// several times faster; a small one into a large database does not pay for reindexing it).
const BULK_FROM: usize = 20_000;

/// Records written together (a few hundred kilobytes at most of users in memory).
const CHUNK: usize = 500;

fn failed(i: usize, username: &str, e: StoreError) -> String {
    match e {
        StoreError::Taken(_) => format!("users[{i}] ({username:?}): {e}; nothing imported"),
        e => format!("database: {e:#}"),
    }
}

impl<'o, 'w> Importer<'o, 'w> {
    fn new(
        ops: &'o mut dyn crate::db::Ops,
        webhooks: &'w crate::settings::WebhookSettings,
        replace: bool,
    ) -> Self {
        Self {
            ops,
            webhooks,
            report: ImportReport::default(),
            keep: replace.then(Vec::new),
            seen: 0,
            bulk: false,
            pending: Vec::with_capacity(CHUNK),
            pending_ids: std::collections::HashSet::with_capacity(CHUNK),
            announce: None,
        }
    }

    fn record(&mut self, i: usize, u: User) -> Result<(), String> {
        self.seen += 1;
        if self.seen == BULK_FROM {
            self.ops
                .bulk_begin()
                .map_err(|e| format!("database: {e:#}"))?;
            self.bulk = true;
        }
        // A second record with an id already waiting sees the first one written.
        if self.pending_ids.contains(&u.id) {
            self.flush()?;
        }
        if let Some(keep) = &mut self.keep {
            keep.push(id_bytes(&u.id));
        }
        self.pending_ids.insert(u.id.clone());
        self.pending.push((i, u));
        if self.pending.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the waiting records in order: new ones are inserted together, up to the next
    /// record that replaces a stored user.
    fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_ids.clear();
        let ids: Vec<UserId> = batch.iter().map(|(_, u)| u.id.clone()).collect();
        let stored: std::collections::HashMap<UserId, User> = self
            .ops
            .find_users_by_id(&ids)
            .map_err(|e| format!("database: {e:#}"))?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
        let mut new = Vec::new();
        for (i, u) in batch {
            match stored.get(&u.id) {
                None => new.push((i, u)),
                Some(s) if s.same_record(&u) => self.report.skipped += 1,
                Some(_) => {
                    self.insert(&mut new)?;
                    self.ops
                        .replace_user(&u)
                        .map_err(|e| failed(i, &u.username, e))?;
                    self.report.updated += 1;
                }
            }
        }
        self.insert(&mut new)
    }

    fn insert(&mut self, new: &mut Vec<(usize, User)>) -> Result<(), String> {
        if new.is_empty() {
            return Ok(());
        }
        let (at, users): (Vec<usize>, Vec<User>) = new.drain(..).unzip();
        self.ops
            .insert_users(&users)
            .map_err(|(k, e)| failed(at[k], &users[k].username, e))?;
        let target = match &self.announce {
            Some(target) => target.clone(),
            None => {
                let target = crate::outbox::user_created_target(self.ops, self.webhooks)
                    .map_err(|e| format!("database: {e:#}"))?;
                self.announce = Some(target.clone());
                target
            }
        };
        if let Some(target) = target {
            for (k, u) in users.iter().enumerate() {
                crate::outbox::user_created_to(self.ops, self.webhooks, &target, u)
                    .map_err(|e| failed(at[k], &u.username, e))?;
            }
        }
        self.report.created += users.len();
        Ok(())
    }

    fn finish(mut self) -> CliResult<ImportReport> {
        self.flush().map_err(CliError::failure)?;
        if let Some(keep) = self.keep.take() {
            let mut ids = keep.iter().filter_map(|b| {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                UserId::parse(&hex).ok()
            });
            self.report.deleted = self.ops.delete_users_except_each(&mut ids)?;
        }
        if self.bulk {
            self.ops.bulk_end()?;
        }
        Ok(self.report)
    }
}

/// A 24-hex id as its 12 bytes.
fn id_bytes(id: &UserId) -> [u8; 12] {
    let mut out = [0u8; 12];
    let hex = id.as_str().as_bytes();
    for (i, byte) in out.iter_mut().enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *byte = digit(hex[2 * i]) << 4 | digit(hex[2 * i + 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed bcrypt hash (60 characters; the checker reads the form, not the password).
    const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";

    fn doc(records: &str) -> Vec<u8> {
        format!("{{\"version\": 1, \"users\": [{records}]}}").into_bytes()
    }

    fn record(id: &str, name: &str) -> String {
        format!(
            r#"{{"id": "{id}", "username": "{name}", "email": "{name}@example.com", "passwordHash": "{HASH}"}}"#
        )
    }

    #[test]
    fn a_minimal_record_takes_the_defaults_of_a_new_user() {
        let users =
            parse_document(&doc(&record("5c88c7cc04a917256c726c3d", "ann")), 42).expect("valid");
        let u = &users[0];
        assert_eq!(u.scope, vec!["user".to_owned()]);
        assert_eq!(u.plan, "free");
        assert!(!u.is_active);
        assert_eq!((u.created, u.mtime), (42, 42));
        assert_eq!(u.metadata, serde_json::json!({}));
    }

    #[test]
    fn a_bad_record_is_named_by_index_username_and_field() {
        let bad = record("5c88c7cc04a917256c726c3e", "bob").replace("bob@example.com", "nope");
        let text = format!("{},{bad}", record("5c88c7cc04a917256c726c3d", "ann"));
        let err = parse_document(&doc(&text), 0).unwrap_err();
        assert!(err.starts_with("users[1] (\"bob\"): email"), "{err}");

        let bad = record("5c88c7cc04a917256c726c3d", "ann").replace(HASH, "plain");
        let err = parse_document(&doc(&bad), 0).unwrap_err();
        assert!(err.contains("passwordHash"), "{err}");
        assert!(!err.contains("plain"), "{err}");

        let bad = record("5c88c7cc04a917256c726c3d", "ann").replace("{\"id\"", "{\"x\": 1, \"id\"");
        let err = parse_document(&doc(&bad), 0).unwrap_err();
        assert!(err.contains("unknown field `x`"), "{err}");

        let text = format!(
            "{},{}",
            record("5c88c7cc04a917256c726c3d", "ann"),
            record("5c88c7cc04a917256c726c3d", "bob")
        );
        let err = parse_document(&doc(&text), 0).unwrap_err();
        assert!(
            err.contains("users[1] (\"bob\"): id: also used by users[0]"),
            "{err}"
        );

        let err = parse_document(b"{\"version\": 2, \"users\": []}", 0).unwrap_err();
        assert!(err.starts_with("version"), "{err}");
    }
}
