//! The token secret: where it comes from (setting, file, database), and its rotation.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::db::{JWT_SECRET_KEY, Store};
use crate::settings::{MIN_SECRET_BYTES, Settings};

/// A fresh secret: 32 random bytes as hex.
pub fn fresh() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret the server signs with: `auth.jwt_secret`, else the content of
/// `auth.jwt_secret_file` (created with a fresh secret if missing), else the one kept in the
/// database (generated once).
pub fn resolve(settings: &Settings, store: &Store) -> anyhow::Result<String> {
    if let Some(s) = &settings.auth.jwt_secret {
        return Ok(s.expose().to_owned());
    }
    if let Some(path) = &settings.auth.jwt_secret_file {
        return read_or_create(path);
    }
    let fresh = fresh();
    Ok(store.write_blocking(|ops| ops.jwt_secret(&fresh))?)
}

fn read_or_create(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        write_private(path, &fresh())?;
        log::info!(
            "auth.jwt_secret_file {}: a new secret was written",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("auth.jwt_secret_file: cannot read {}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.len() < MIN_SECRET_BYTES {
        anyhow::bail!(
            "auth.jwt_secret_file {}: the secret must be at least {MIN_SECRET_BYTES} bytes",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            log::warn!(
                "auth.jwt_secret_file {} has mode {mode:o}: anyone who reads it can sign tokens; chmod 600 it",
                path.display()
            );
        }
    }
    Ok(secret)
}

/// Writes the secret readable by its owner only, replacing the file atomically.
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = Path::new(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(tmp)
        .with_context(|| format!("auth.jwt_secret_file: cannot write {}", tmp.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
        .with_context(|| format!("auth.jwt_secret_file: cannot replace {}", path.display()))?;
    Ok(())
}

/// Where a rotation wrote the new secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotated {
    File(std::path::PathBuf),
    Database,
}

/// Replaces the secret where it is kept: the file of `auth.jwt_secret_file`, else the
/// database. A secret given as `auth.jwt_secret` (file or environment) is the operator's to
/// change, so that is an error. Every token signed so far stops working.
pub fn rotate(settings: &Settings, store: &Store) -> anyhow::Result<Rotated> {
    if settings.auth.jwt_secret.is_some() {
        anyhow::bail!(
            "auth.jwt_secret is set in the settings or the environment: change it there (or move it to auth.jwt_secret_file)"
        );
    }
    let secret = fresh();
    if let Some(path) = &settings.auth.jwt_secret_file {
        write_private(path, &secret)?;
        return Ok(Rotated::File(path.clone()));
    }
    store.write_blocking(|ops| ops.set_meta(JWT_SECRET_KEY, &secret))?;
    Ok(Rotated::Database)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_replaces_the_secret_where_it_is_kept() {
        let mut settings = Settings::default();
        settings.database.path = ":memory:".into();
        let conn = Store::open(&settings.database).expect("db");
        let first = resolve(&settings, &conn).expect("generated");
        assert_eq!(resolve(&settings, &conn).expect("kept"), first);
        assert_eq!(rotate(&settings, &conn).expect("rotate"), Rotated::Database);
        assert_ne!(resolve(&settings, &conn).expect("new"), first);

        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("jwt-secret");
        settings.auth.jwt_secret_file = Some(file.clone());
        let from_file = resolve(&settings, &conn).expect("file created");
        assert_eq!(from_file.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        rotate(&settings, &conn).expect("rotate file");
        assert_ne!(resolve(&settings, &conn).expect("reread"), from_file);

        settings.auth.jwt_secret = Some(crate::settings::Secret::new("a-configured-secret"));
        assert!(
            rotate(&settings, &conn).is_err(),
            "the operator's secret is not ours"
        );
    }
}
