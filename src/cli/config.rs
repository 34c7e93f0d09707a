//! `config`: the effective settings, one `key = value  # from SOURCE` line each, where SOURCE
//! is `default`, `file PATH`, `env NAME` or `flag --NAME`. Secrets print as `[redacted]`.

use std::io::Write;

use clap::Args;
use figment::Figment;
use serde_json::{Map, Value, json};

use super::{CliError, CliResult, Source};
use crate::settings::{ENGINE_ENV, Settings};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print `{"file", "settings": {KEY: {"value", "from"}}}` instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Leaves whose value is a secret (the settings serialize them as `[redacted]` already; the
/// names make the output say so without quotes, so nobody mistakes it for the value).
const SECRET_LEAVES: [&str; 3] = ["jwt_secret", "password", "password_hash"];

pub fn run(source: &Source, a: ConfigArgs, out: &mut dyn Write) -> CliResult {
    let figment = Settings::figment(&source.file, &source.overrides).map_err(CliError::usage)?;
    let settings = source.load().map_err(CliError::usage)?;
    let tree = serde_json::to_value(&settings).map_err(std::io::Error::from)?;
    let mut leaves = Vec::new();
    flatten("", &tree, &mut leaves);
    let file = source.file.path();
    let found = file.is_file();
    let rows: Vec<(String, Value, String)> = leaves
        .into_iter()
        .map(|(key, value)| {
            let from = origin(&figment, source, &key);
            (key, value, from)
        })
        .collect();
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
