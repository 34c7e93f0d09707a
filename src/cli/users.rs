//! `users add|list|show|set-password|delete|reset`: the users table from the command line,
//! with the same validation as the API.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliError, CliResult, confirm, find_user, format_time, password_or_stdin, write_table};
use crate::db::StoreError;
use crate::db::users::{self, Filter, ListQuery, SORT_FIELDS, SortKey, User};
use crate::domain::{Email, Password, UserId, Username, Vendor, check_label};
use crate::fixtures;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user (the password is read from stdin unless --password is given).
    Add(AddArgs),
    /// List users as a table (or --json).
    List(ListArgs),
    /// Show one user, by id, username or email.
    Show(ShowArgs),
    /// Set a user's password (read from stdin unless --password is given).
    SetPassword(SetPasswordArgs),
    /// Delete a user, by id, username or email.
    Delete(DeleteArgs),
    /// Sign a user out everywhere: every token issued so far is refused (401 Token revoked).
    Revoke(DeleteArgs),
    /// Write every user, password hashes included, as JSON (to FILE, or stdout).
    Export(super::transfer::ExportArgs),
    /// Create or update users from an export (one transaction: all or nothing).
    Import(super::transfer::ImportArgs),
    /// Delete every user not declared in the settings file's [[users]], then re-apply those.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new user's username.
    pub username: String,
    /// Email address; defaults to the username when that is an email address.
    #[arg(long)]
    pub email: Option<String>,
    /// Password (at least 5 characters, at most 72 bytes); read from stdin when left out.
    #[arg(long)]
    pub password: Option<String>,
    /// Scopes, comma-separated (default `user`).
    #[arg(long, value_delimiter = ',')]
    pub scope: Option<Vec<String>>,
    /// Plan (default `free`).
    #[arg(long)]
    pub plan: Option<String>,
    /// Vendor (default: tenant.default_user_vendor); give it again for several
    /// (`--vendor a --vendor b` stores `["a", "b"]`).
    #[arg(long)]
    pub vendor: Vec<String>,
    /// Metadata, a JSON object (default `{}`).
    #[arg(long)]
    pub metadata: Option<String>,
    /// Mark the user active (isActive: true).
    #[arg(long)]
    pub active: bool,
    /// A fixed 24-hex id instead of a generated one.
    #[arg(long)]
    pub id: Option<String>,
    /// Print the new user as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only users whose username or email contains this text (any case).
    #[arg(long)]
    pub pattern: Option<String>,
    /// `field:value`, repeatable: scope, plan, vendor, isActive, username, email.
    #[arg(long = "filter", value_name = "FIELD:VALUE")]
    pub filters: Vec<String>,
    /// `field` or `field:1|-1`, e.g. `created:-1` (default `created:1`).
    #[arg(long, value_name = "FIELD[:1|-1]")]
    pub sort: Option<String>,
    /// At most this many users, 1 or more (default: all).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Skip this many users first.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
    /// Print a JSON array of users, as `GET /users` answers.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Id, username or email.
    pub user: String,
    /// Print the user as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    /// Id, username or email.
    pub user: String,
    /// The new password; read from stdin when left out.
    #[arg(long)]
    pub password: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Id, username or email.
    pub user: String,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(settings: &Settings, command: UsersCommand, out: &mut dyn Write) -> CliResult {
    match command {
        UsersCommand::Add(a) => add(settings, a, out),
        UsersCommand::List(a) => list(settings, a, out),
        UsersCommand::Show(a) => show(settings, a, out),
        UsersCommand::SetPassword(a) => set_password(settings, a, out),
        UsersCommand::Delete(a) => delete(settings, a, out),
        UsersCommand::Revoke(a) => revoke(settings, a, out),
        UsersCommand::Export(a) => super::transfer::export(settings, a, out),
        UsersCommand::Import(a) => super::transfer::import(settings, a, out),
        UsersCommand::Reset(a) => reset(settings, a, out),
    }
}

fn arg_err(flag: &str) -> impl Fn(crate::domain::Invalid) -> CliError + '_ {
    move |e| CliError::usage(format!("{flag}: {e}"))
}

fn add(settings: &Settings, a: AddArgs, out: &mut dyn Write) -> CliResult {
    let username = Username::parse(&a.username).map_err(arg_err("USERNAME"))?;
    let email = match &a.email {
        Some(e) => Email::parse(e).map_err(arg_err("--email"))?,
        None => Email::parse(&a.username).map_err(|_| {
            CliError::usage("--email is required when the username is not an email address")
        })?,
    };
    let id = match &a.id {
        Some(id) => UserId::parse(id).map_err(arg_err("--id"))?,
        None => UserId::generate(),
    };
    let scope = a.scope.unwrap_or_else(users::default_scope);
    for s in &scope {
        check_label("scope", s).map_err(arg_err("--scope"))?;
    }
    let plan = a.plan.unwrap_or_else(|| users::DEFAULT_PLAN.into());
    check_label("plan", &plan).map_err(arg_err("--plan"))?;
    let vendor = match a.vendor.len() {
        0 => None,
        1 => Some(Vendor::One(a.vendor[0].clone())),
        _ => Some(Vendor::Many(a.vendor.clone())),
    };
    if let Some(v) = &vendor {
        v.check("vendor").map_err(arg_err("--vendor"))?;
    }
    let metadata = match &a.metadata {
        None => json!({}),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            _ => return Err(CliError::usage("--metadata: must be a JSON object")),
        },
    };
    let password = password_or_stdin(a.password, "Password")?;
    let password = Password::parse_new("password", &password).map_err(arg_err("password"))?;

    let store = super::connect(settings)?;
    // Checked before paying for the hash; the unique indexes still decide a race.
    let (taken, id_taken, stored_vendor) = store.read_blocking(|ops| {
        Ok((
            ops.taken(username.as_str(), email.as_str())?,
            ops.find_by_id(&id)?.is_some(),
            ops.config_get(crate::system_config::DEFAULT_USER_VENDOR)?,
        ))
    })?;
    // A key stored through `/config` wins over the settings, as in the server.
    let default_vendor = match stored_vendor {
        Some(v) => (!v.is_empty()).then(|| Vendor::from_config(&v)),
        None => settings.tenant.default_user_vendor.clone(),
    };
    if let Some(taken) = taken {
        return Err(StoreError::Taken(taken).into());
    }
    if id_taken {
        return Err(CliError::failure(format!(
            "a user with id {id} already exists"
        )));
    }
    let hash = bcrypt::hash(password.expose(), settings.auth.bcrypt_cost)
        .map_err(|e| CliError::failure(format!("cannot hash the password: {e}")))?;
    let user = User {
        is_active: a.active,
        scope,
        plan,
        metadata,
        ..User::new(
            id,
            username.as_str().to_owned(),
            email.as_str().to_owned(),
            hash,
            vendor.or(default_vendor),
        )
    };
    store.write_blocking(|ops| {
        ops.insert_user(&user)?;
        crate::outbox::user_created(ops, &settings.webhooks, &user)
    })?;
    write_user(out, &user, a.json)
}

/// Parses `field:value` as the admin API's `filter` does.
pub fn parse_filter(text: &str) -> CliResult<Filter> {
    let bad = || {
        CliError::usage(format!(
            "--filter `{text}`: expected FIELD:VALUE with FIELD one of scope, plan, vendor, isActive, username, email"
        ))
    };
    let (field, value) = text.split_once(':').ok_or_else(bad)?;
    let value = value.to_owned();
    Ok(match field {
        "scope" => Filter::Scope(value),
        "plan" => Filter::Plan(value),
        "vendor" => Filter::Vendor(value),
        "username" => Filter::Username(value),
        "email" => Filter::Email(value),
        "isActive" => match value.as_str() {
            "true" => Filter::IsActive(true),
            "false" => Filter::IsActive(false),
            _ => {
                return Err(CliError::usage(format!(
                    "--filter `{text}`: isActive is true or false"
                )));
            }
        },
        _ => return Err(bad()),
    })
}

/// Parses `field`, `field:1` or `field:-1`.
pub fn parse_sort(text: &str) -> CliResult<(SortKey, bool)> {
    let (field, dir) = text.split_once(':').unwrap_or((text, "1"));
    let ascending = match dir {
        "1" => true,
        "-1" => false,
        _ => {
            return Err(CliError::usage(format!(
                "--sort `{text}`: direction is 1 or -1"
            )));
        }
    };
    let column = SORT_FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, column)| *column)
        .ok_or_else(|| {
            let names: Vec<&str> = SORT_FIELDS.iter().map(|(n, _)| *n).collect();
            CliError::usage(format!(
                "--sort `{text}`: unknown field; one of {}",
                names.join(", ")
            ))
        })?;
    Ok((column, ascending))
}

fn list(settings: &Settings, a: ListArgs, out: &mut dyn Write) -> CliResult {
    let query = ListQuery {
        limit: a.limit.unwrap_or(u32::MAX),
        offset: a.offset,
        sort: match &a.sort {
            Some(s) => parse_sort(s)?,
            None => (SortKey::Created, true),
        },
        pattern: a.pattern.filter(|p| !p.is_empty()),
        filters: a
            .filters
            .iter()
            .map(|f| parse_filter(f))
            .collect::<CliResult<_>>()?,
    };
    let store = super::connect_existing(settings)?;
    let found = store.read_blocking(|ops| ops.list_users(&query))?;
    if a.json {
        let public: Vec<_> = found.iter().map(User::public).collect();
        serde_json::to_writer_pretty(&mut *out, &public).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if found.is_empty() {
        eprintln!("no users");
        return Ok(());
    }
    let mut rows = vec![
        [
            "ID", "USERNAME", "EMAIL", "ACTIVE", "SCOPE", "PLAN", "VENDOR", "CREATED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for u in &found {
        rows.push(vec![
            u.id.to_string(),
            u.username.clone(),
            u.email.clone(),
            yes_no(u.is_active).into(),
            u.scope.join(","),
            u.plan.clone(),
            u.vendor
                .as_ref()
                .map_or_else(|| "-".into(), Vendor::display),
            format_time(u.created),
        ]);
    }
    write_table(out, &rows)?;
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// One user as `key  value` lines, or as the API's public JSON.
fn write_user(out: &mut dyn Write, u: &User, as_json: bool) -> CliResult {
    if as_json {
        serde_json::to_writer_pretty(&mut *out, &u.public()).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = [
        ("id", u.id.to_string()),
        ("username", u.username.clone()),
        ("email", u.email.clone()),
        ("active", yes_no(u.is_active).into()),
        ("scope", u.scope.join(",")),
        ("plan", u.plan.clone()),
        (
            "vendor",
            u.vendor
                .as_ref()
                .map_or_else(|| "-".into(), Vendor::display),
        ),
        ("metadata", u.metadata.to_string()),
        ("created", format_time(u.created)),
        ("modified", format_time(u.mtime)),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_owned(), v])
    .collect();
    write_table(out, &rows)?;
    Ok(())
}

fn show(settings: &Settings, a: ShowArgs, out: &mut dyn Write) -> CliResult {
    let store = super::connect_existing(settings)?;
    let user = find_user(&store, &a.user)?;
    write_user(out, &user, a.json)
}

fn set_password(settings: &Settings, a: SetPasswordArgs, out: &mut dyn Write) -> CliResult {
    // The user first, so nobody types a password for nothing.
    let store = super::connect_existing(settings)?;
    let user = find_user(&store, &a.user)?;
    let password = password_or_stdin(a.password, "New password")?;
    let password = Password::parse_new("password", &password).map_err(arg_err("password"))?;
    let hash = bcrypt::hash(password.expose(), settings.auth.bcrypt_cost)
        .map_err(|e| CliError::failure(format!("cannot hash the password: {e}")))?;
    // Every earlier token of the user is refused (as the server does), unless turned off.
    let revoke = settings
        .auth
        .revoke_on_password_change
        .then(|| users::now_ms() / 1000 + 1);
    if !store
        .write_blocking(|ops| ops.set_password_hash(&user.id, &hash, users::now_ms(), revoke))?
    {
        return Err(CliError::failure(format!(
            "user {} was deleted meanwhile",
            user.id
        )));
    }
    writeln!(
        out,
        "password set for {} ({})",
        super::shown(&user.username),
        user.id
    )?;
    Ok(())
}

fn revoke(settings: &Settings, a: DeleteArgs, out: &mut dyn Write) -> CliResult {
    let store = super::connect_existing(settings)?;
    let user = find_user(&store, &a.user)?;
    let since = users::now_ms() / 1000 + 1;
    let Some(since) =
        store.write_blocking(|ops| ops.revoke_tokens(&user.id, since, users::now_ms()))?
    else {
        return Err(CliError::failure(format!(
            "user {} was deleted meanwhile",
            user.id
        )));
    };
    writeln!(
        out,
        "tokens of {} ({}) issued before {} are refused",
        super::shown(&user.username),
        user.id,
        crate::domain::iso8601(since * 1000)
    )?;
    Ok(())
}

fn delete(settings: &Settings, a: DeleteArgs, out: &mut dyn Write) -> CliResult {
    let store = super::connect_existing(settings)?;
    let user = find_user(&store, &a.user)?;
    if !store.write_blocking(|ops| ops.delete_user(&user.id))? {
        return Err(CliError::failure(format!(
            "user {} was deleted meanwhile",
            user.id
        )));
    }
    writeln!(
        out,
        "deleted {} ({})",
        super::shown(&user.username),
        user.id
    )?;
    Ok(())
}

fn reset(settings: &Settings, a: ResetArgs, out: &mut dyn Write) -> CliResult {
    let store = super::connect(settings)?;
    if !a.yes {
        let (total, kept) = store.read_blocking(|ops| {
            let keep = fixtures::stored_ids(ops, &settings.users)?;
            let total = ops.count_users(&ListQuery::default())?;
            let mut kept = 0u64;
            for id in &keep {
                kept += u64::from(ops.find_by_id(id)?.is_some());
            }
            Ok((total, kept))
        })?;
        let doomed = total.saturating_sub(kept);
        if doomed > 0
            && !confirm(&format!(
                "Delete {}?",
                super::count_of(doomed as usize, "user")
            ))?
        {
            // Declining is an answer, not a failure.
            writeln!(out, "nothing deleted")?;
            return Ok(());
        }
    }
    let removed = store.write_blocking(|ops| {
        let keep = fixtures::stored_ids(ops, &settings.users)?;
        ops.delete_users_except(&keep)
    })?;
    let report = fixtures::apply(
        &store,
        &settings.users,
        settings.auth.bcrypt_cost,
        settings.tenant.default_user_vendor.as_ref(),
        &settings.webhooks,
    )
    .map_err(|e| CliError::failure(format!("fixture users: {e}")))?;
    writeln!(
        out,
        "removed {}; declared users: {} created, {} updated, {} unchanged",
        super::count_of(removed, "user"),
        report.created,
        report.updated,
        report.unchanged
    )?;
    Ok(())
}
