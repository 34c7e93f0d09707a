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
const PROGRESS_FROM: usize = 1_000;

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
    /// Also delete the stored users that are not in the file (a restore).
    #[arg(long)]
    pub replace: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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
    let mut bytes = Vec::new();
    if name == "-" {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(&a.file)
            .map_err(|e| CliError::failure(format!("cannot read {name}: {e}")))?;
    }
    // Everything is checked before anything is written.
    let records = parse_document(&bytes, users::now_ms())
        .map_err(|e| CliError::failure(format!("{name}: {e}")))?;
    let store = super::connect(settings)?;
    let progress = progress_bar(records.len());
    let report = write_records(&store, &settings.webhooks, &records, a.replace, &progress)?;
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

fn progress_bar(len: usize) -> ProgressBar {
    if len < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    // Short enough for an 80-column terminal, where a wrapped bar would redraw badly.
    if let Ok(style) =
        ProgressStyle::with_template("importing {bar:24} {human_pos}/{human_len} users, {eta} left")
    {
        bar.set_style(style);
    }
    bar
}

/// Parses and checks a whole document: every record valid, no id, username or email twice.
/// The error names the record (index and username) and the field.
pub fn parse_document(bytes: &[u8], now: i64) -> Result<Vec<User>, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut doc) = doc else {
        return Err("expected an object {\"version\": 1, \"users\": […]}".into());
    };
    match doc.remove("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "version: this build reads version {FORMAT_VERSION}, not {v}"
            ));
        }
        None => return Err("version: missing (expected 1)".into()),
    }
    let list = match doc.remove("users") {
        Some(Value::Array(list)) => list,
        Some(_) => return Err("users: must be an array".into()),
        None => return Err("users: missing".into()),
    };
    if let Some(key) = doc.keys().next() {
        return Err(format!("unknown key `{key}` (expected version and users)"));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut ids: HashMap<String, usize> = HashMap::with_capacity(list.len());
    let mut names: HashMap<String, usize> = HashMap::with_capacity(list.len());
    let mut emails: HashMap<String, usize> = HashMap::with_capacity(list.len());
    for (i, value) in list.into_iter().enumerate() {
        let user = parse_record(i, value, now)?;
        let at = || format!("users[{i}] ({:?})", user.username);
        if let Some(j) = ids.insert(user.id.to_string(), i) {
            return Err(format!("{}: id: also used by users[{j}]", at()));
        }
        if let Some(j) = names.insert(user.username.clone(), i) {
            return Err(format!("{}: username: also used by users[{j}]", at()));
        }
        if let Some(j) = emails.insert(Email::key_of(&user.email), i) {
            return Err(format!("{}: email: also used by users[{j}]", at()));
        }
        out.push(user);
    }
    Ok(out)
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

/// Upserts by id in one transaction: an error rolls everything back.
fn write_records(
    store: &Store,
    webhooks: &crate::settings::WebhookSettings,
    records: &[User],
    replace: bool,
    progress: &ProgressBar,
) -> CliResult<ImportReport> {
    store.write_blocking(|ops| {
        let mut report = ImportReport::default();
        for (i, u) in records.iter().enumerate() {
            let at = |e: StoreError| match e {
                StoreError::Taken(_) => CliError::failure(format!(
                    "users[{i}] ({:?}): {e}; nothing imported",
                    u.username
                )),
                e => CliError::from(e),
            };
            match ops.find_by_id(&u.id).map_err(at)? {
                None => {
                    ops.insert_user(u).map_err(at)?;
                    crate::outbox::user_created(ops, webhooks, u)?;
                    report.created += 1;
                }
                Some(stored) if same_record(&stored, u) => report.skipped += 1,
                Some(_) => {
                    ops.replace_user(u).map_err(at)?;
                    report.updated += 1;
                }
            }
            if i % 256 == 0 {
                progress.set_position(i as u64);
            }
        }
        progress.set_position(records.len() as u64);
        if replace {
            let keep: Vec<UserId> = records.iter().map(|u| u.id.clone()).collect();
            report.deleted = ops.delete_users_except(&keep)?;
        }
        Ok(report)
    })
}

/// Every stored field equal (metadata objects by content, not key order).
fn same_record(a: &User, b: &User) -> bool {
    a.id == b.id
        && a.username == b.username
        && a.email == b.email
        && a.password_hash == b.password_hash
        && a.is_active == b.is_active
        && a.scope == b.scope
        && a.plan == b.plan
        && a.vendor == b.vendor
        && a.metadata == b.metadata
        && a.created == b.created
        && a.mtime == b.mtime
        && a.tokens_since == b.tokens_since
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
