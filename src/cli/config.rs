//! `config`: the effective settings, one `key = value  # from SOURCE` line each, where SOURCE
//! is `default`, `file PATH`, `env NAME`, `flag --NAME` or `database` (a key stored through
//! `/config` or `config set`). Secrets print as `[redacted]`.
//!
//! `config set KEY VALUE`, `config unset KEY` and `config list` do what `POST /config`,
//! `DELETE /config/KEY` and `GET /config` do, on the database file.

use std::io::Write;

use clap::{Args, Subcommand};
use figment::Figment;
use serde_json::{Map, Value, json};

use super::{CliError, CliResult, Source};
use crate::settings::{ENGINE_ENV, Settings};
use crate::system_config;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print `{"file", "settings": {KEY: {"value", "from"}}}` instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<ConfigAction>,
}

/// The system configuration keys stored in the database (the engine's `/config`).
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Store KEY (e.g. WEBHOOK_USER_CREATED); it wins over the settings file from the server's
    /// next request on.
    Set { key: String, value: String },
    /// Remove a stored KEY (the settings file's value applies again).
    Unset { key: String },
    /// The stored keys, one `KEY = value` line each.
    List,
}

/// Settings keys that a stored system configuration key overrides.
const OVERRIDDEN: &[(&str, &str)] = &[
    (
        system_config::API_USER_CREATE_SCOPE,
        "tenant.api_user_create_scope",
    ),
    (
        system_config::DEFAULT_USER_VENDOR,
        "tenant.default_user_vendor",
    ),
    (system_config::WEBHOOK_USER_CREATED, "webhooks.user_created"),
];

fn stored_keys(settings: &Settings) -> CliResult<Vec<(String, String)>> {
    // `config` reads; it never creates a database.
    if settings.database.is_file() && !std::path::Path::new(&settings.database.path).exists() {
        return Ok(Vec::new());
    }
    let store = super::connect_existing(settings)?;
    Ok(store.read_blocking(|ops| ops.config_all())?)
}

fn act(settings: &Settings, action: ConfigAction, out: &mut dyn Write) -> CliResult {
    match action {
        ConfigAction::Set { key, value } => {
            system_config::check(&key, &value)?;
            let store = super::connect(settings)?;
            store.write_blocking(|ops| ops.config_set(&key, &value))?;
            writeln!(out, "{key} stored")?;
        }
        ConfigAction::Unset { key } => {
            let store = super::connect_existing(settings)?;
            if !store.write_blocking(|ops| ops.config_delete(&key))? {
                return Err(CliError::failure(format!("{key} is not stored")));
            }
            writeln!(out, "{key} removed")?;
        }
        ConfigAction::List => {
            for (key, value) in stored_keys(settings)? {
                writeln!(out, "{key} = {}", super::shown(&value))?;
            }
        }
    }
    Ok(())
}

/// Leaves whose value is a secret (the settings serialize them as `[redacted]` already; the
/// names make the output say so without quotes, so nobody mistakes it for the value).
const SECRET_LEAVES: [&str; 3] = ["jwt_secret", "password", "password_hash"];

pub fn run(source: &Source, a: ConfigArgs, out: &mut dyn Write) -> CliResult {
    let figment = Settings::figment(&source.file, &source.overrides).map_err(CliError::usage)?;
    let settings = source.load().map_err(CliError::usage)?;
    if let Some(action) = a.action {
        return act(&settings, action, out);
    }
    let stored = stored_keys(&settings)?;
    let tree = serde_json::to_value(&settings).map_err(std::io::Error::from)?;
    let mut leaves = Vec::new();
    flatten("", &tree, &mut leaves);
    let file = source.file.path();
    let found = file.is_file();
    let mut rows: Vec<(String, Value, String)> = leaves
        .into_iter()
        .map(|(key, value)| {
            let from = origin(&figment, source, &key);
            (key, value, from)
        })
        .collect();
    // Stored keys win: shown in place of the setting they override, or after the settings.
    for (key, value) in &stored {
        let from = format!("database ({key})");
        match OVERRIDDEN.iter().find(|(k, _)| k == key) {
            Some((_, setting)) => {
                let effective = system_config::Effective::new(&settings, &stored);
                let value = match *setting {
                    "tenant.api_user_create_scope" => json!(effective.api_user_create_scope),
                    "tenant.default_user_vendor" => json!(effective.default_user_vendor),
                    _ => json!(effective.webhook_user_created),
                };
                if let Some(row) = rows.iter_mut().find(|(k, _, _)| k == setting) {
                    *row = (setting.to_string(), value, from);
                }
            }
            None => rows.push((format!("config.{key}"), json!(value), from)),
        }
    }
    if a.json {
        let mut map = Map::new();
        for (key, value, from) in rows {
            map.insert(key, json!({"value": value, "from": from}));
        }
        let doc = json!({"file": file.display().to_string(), "fileFound": found, "settings": map});
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "# settings file: {}{}",
        file.display(),
        if found { "" } else { " (not found)" }
    )?;
    let texts: Vec<String> = rows
        .iter()
        .map(|(key, value, _)| format!("{key} = {}", show(key, value)))
        .collect();
    let width = texts
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    for (text, (_, _, from)) in texts.iter().zip(&rows) {
        let pad = width.saturating_sub(text.chars().count());
        writeln!(out, "{text}{}  # from {from}", " ".repeat(pad))?;
    }
    Ok(())
}

/// Dotted keys to leaf values; arrays of tables get `[i]` (`users[0].username`).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        _ => out.push((prefix.to_owned(), value.clone())),
    }
}

fn show(key: &str, value: &Value) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    match value {
        Value::Null => "(unset)".into(),
        Value::String(_) if SECRET_LEAVES.contains(&leaf) => "[redacted]".into(),
        v => v.to_string(),
    }
}

/// Where a key's value came from: the flag that set it, else figment's record of the
/// provider (the file, an environment variable), else the built-in default.
fn origin(figment: &Figment, source: &Source, key: &str) -> String {
    if let Some((_, flag)) = source.flags.iter().find(|(k, _)| *k == key) {
        return format!("flag {flag}");
    }
    // An entry of an array of tables was set wherever the array was.
    let lookup = key.split('[').next().unwrap_or(key);
    let Some(md) = figment.find_metadata(lookup) else {
        return "default".into();
    };
    if let Some(figment::Source::File(path)) = &md.source {
        return format!("file {}", path.display());
    }
    if md.name.contains("APPMIXER_") {
        return format!(
            "env APPMIXER_{}",
            lookup.to_ascii_uppercase().replace('.', "__")
        );
    }
    if md.name.contains("environment") {
        if let Some((var, _)) = ENGINE_ENV.iter().find(|(_, path)| *path == lookup) {
            return format!("env {var}");
        }
        return "environment".into();
    }
    "default".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_settings_flatten_to_dotted_keys() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"a": {"b": 1, "c": [1, 2]}, "users": [{"u": "x"}], "none": []}),
            &mut out,
        );
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a.b", "a.c", "users[0].u", "none"]);
        assert_eq!(show("auth.jwt_secret", &json!("[redacted]")), "[redacted]");
        assert_eq!(show("auth.jwt_secret", &Value::Null), "(unset)");
        assert_eq!(show("server.host", &json!("h")), "\"h\"");
    }
}
