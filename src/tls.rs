//! HTTPS with rustls: the certificate and key come from PEM files and are reloaded on SIGHUP
//! without dropping open connections (new handshakes get the new pair).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Reads a certificate chain and private key; errors name the setting and the file.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        File::open(cert)
            .with_context(|| format!("server.tls.cert: cannot open {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("server.tls.cert: {} is not PEM", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("server.tls.cert: no certificate in {}", cert.display());
    }
    let key_der = rustls_pemfile::private_key(&mut BufReader::new(
        File::open(key)
            .with_context(|| format!("server.tls.key: cannot open {}", key.display()))?,
    ))
    .with_context(|| format!("server.tls.key: {} is not PEM", key.display()))?
    .with_context(|| format!("server.tls.key: no private key in {}", key.display()))?;
    let signing = ring::sign::any_supported_type(&key_der)
        .map_err(|e| anyhow::anyhow!("server.tls.key: unusable key in {}: {e}", key.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| anyhow::anyhow!("server.tls.key does not match server.tls.cert: {e}"))?;
    Ok(ck)
}

/// The certificate in use, swappable at run time. `Debug` names the files, never the key.
pub struct ReloadableCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadableCert {
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Arc<Self>> {
        warn_if_world_readable(key);
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(load(cert, key)?)),
        }))
    }

    /// Reads the files again; on error the old pair stays in use and the error is returned.
    pub fn reload(&self) -> anyhow::Result<()> {
        warn_if_world_readable(&self.key);
        let fresh = Arc::new(load(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// A rustls server configuration that always presents the current pair.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// A private key every user of the machine can read is a key anyone there can serve as this
/// server with: said at start-up and on every reload (the file is not ours to change).
fn warn_if_world_readable(key: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(key)
            && meta.permissions().mode() & 0o004 != 0
        {
            log::warn!(
                "server.tls.key {} is readable by every user (mode {:o}); chmod 600 it",
                key.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
}

/// Makes ring the process's rustls provider (HTTPS webhooks go through a client that takes the
/// process default; aws-lc-rs, rustls' own default, needs cmake to build). Safe to call again.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
