//! The connection URL as libpq users write it, and TLS to the server with rustls.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` and `require`, and checks no
//! certificate on its own. libpq's meaning is kept: `prefer` (the default) and `require`
//! encrypt without checking who answers (unless `sslrootcert` names a CA, as libpq does then),
//! `verify-ca` and `verify-full` check the certificate against `sslrootcert` or the public
//! roots, and the host name too (this server checks it for `verify-ca` as well: stricter than
//! libpq, never weaker).

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The parts of the URL this module takes out before tokio-postgres reads the rest.
pub struct Parsed {
    pub config: postgres::Config,
    pub tls: MakeRustlsConnect,
    /// Whether the server's certificate is checked.
    pub verified: bool,
}

pub fn parse(url: &str) -> anyhow::Result<Parsed> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = String::from("prefer");
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = value.to_owned(),
            "sslrootcert" => root_cert = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let (ssl_mode, verify) = match mode.as_str() {
        "disable" => (postgres::config::SslMode::Disable, false),
        "prefer" | "allow" => (postgres::config::SslMode::Prefer, root_cert.is_some()),
        "require" => (postgres::config::SslMode::Require, root_cert.is_some()),
        "verify-ca" | "verify-full" => (postgres::config::SslMode::Require, true),
        other => anyhow::bail!(
            "database.url: unknown sslmode `{other}` (disable, prefer, require, verify-ca or verify-full)"
        ),
    };
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: postgres::Config = rest
        .parse()
        .map_err(|e| anyhow::anyhow!("database.url is not a PostgreSQL URL: {e}"))?;
    config.ssl_mode(ssl_mode);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS to the database")?;
    let client = if verify {
        let mut roots = RootCertStore::empty();
        match &root_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("database.url: cannot read sslrootcert {path}"))?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots
                        .add(cert.with_context(|| format!("sslrootcert {path}"))?)
                        .with_context(|| format!("sslrootcert {path}"))?;
                }
                if roots.is_empty() {
                    anyhow::bail!("database.url: sslrootcert {path} holds no certificate");
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()
    };
    Ok(Parsed {
        config,
        tls: MakeRustlsConnect::new(client),
        verified: verify,
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `sslmode=require` without a root certificate: the channel is encrypted and the
/// handshake's signatures are checked, but not who signed the certificate.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
