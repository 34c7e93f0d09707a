//! HTTPS: served with the configured certificate, reloaded on SIGHUP without dropping
//! connections, and bad files stop start-up naming the setting.

use std::path::Path;
use std::sync::Arc;

use appmixer_auth::settings::TlsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::helpers::{spawn_with, test_settings};

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files in `dir`.
pub fn write_cert(dir: &Path, name: &str) -> (TlsSettings, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (TlsSettings { cert, key }, ck.cert.pem())
}

/// A TLS connection to the test server that trusts exactly this certificate.
pub async fn connect(url: &str, pem: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = url.trim_start_matches("https://").to_owned();
    let tcp = TcpStream::connect(&addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Sends `GET /` on an open connection (kept alive) and returns the status code.
pub async fn get_root(conn: &mut TlsStream<TcpStream>) -> std::io::Result<u16> {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

/// One request on a fresh connection.
async fn fresh_get(url: &str, pem: &str) -> std::io::Result<u16> {
    get_root(&mut connect(url, pem).await?).await
}

#[tokio::test]
async fn with_a_certificate_the_port_speaks_only_https() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, pem) = write_cert(certs.path(), "a");
    let app = spawn_with(|s| s.server.tls = Some(tls)).await;
    assert!(app.url.starts_with("https://127.0.0.1:"), "{}", app.url);
    assert_eq!(fresh_get(&app.url, &pem).await.unwrap(), 200);
    // Plain HTTP on the same port gets no HTTP answer.
    let plain = app.url.replace("https://", "http://");
    assert!(app.client.get(format!("{plain}/")).send().await.is_err());
    // A client that does not trust the certificate refuses it.
    let (_, other) = write_cert(certs.path(), "other");
    assert!(fresh_get(&app.url, &other).await.is_err());
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, old_pem) = write_cert(certs.path(), "live");
    let app = spawn_with(|s| s.server.tls = Some(tls.clone())).await;
    let url = app.url.clone();
    let mut open = connect(&url, &old_pem).await.unwrap();
    assert_eq!(get_root(&mut open).await.unwrap(), 200);

    // Renew: new files at the same paths, then what SIGHUP does.
    let (fresh, new_pem) = write_cert(certs.path(), "next");
    std::fs::copy(&fresh.cert, &tls.cert).unwrap();
    std::fs::copy(&fresh.key, &tls.key).unwrap();
    app.state.reload();

    // The open keep-alive connection goes on working...
    assert_eq!(get_root(&mut open).await.unwrap(), 200);
    // ...new handshakes get the new certificate.
    assert_eq!(fresh_get(&url, &new_pem).await.unwrap(), 200);
    assert!(fresh_get(&url, &old_pem).await.is_err());

    // A broken renewal keeps the current pair.
    std::fs::write(&tls.cert, "not a certificate").unwrap();
    app.state.reload();
    assert_eq!(fresh_get(&url, &new_pem).await.unwrap(), 200);
}

#[test]
fn bad_or_missing_files_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, _) = write_cert(dir.path(), "c");
    let cases = [
        (
            TlsSettings {
                cert: dir.path().join("missing.crt"),
                key: tls.key.clone(),
            },
            "server.tls.cert",
        ),
        (
            TlsSettings {
                cert: tls.cert.clone(),
                key: dir.path().join("missing.key"),
            },
            "server.tls.key",
        ),
        (
            TlsSettings {
                cert: tls.key.clone(),
                key: tls.key.clone(),
            },
            "server.tls.cert",
        ),
    ];
    for (bad, setting) in cases {
        let mut s = test_settings(&dir);
        s.server.tls = Some(bad);
        let err = appmixer_auth::startup::Application::build(s)
            .err()
            .expect("refuses to start")
            .to_string();
        assert!(err.contains(setting), "{err}");
    }
    // A key that belongs to another certificate.
    let (other, _) = write_cert(dir.path(), "d");
    let mut s = test_settings(&dir);
    s.server.tls = Some(TlsSettings {
        cert: tls.cert.clone(),
        key: other.key,
    });
    let err = appmixer_auth::startup::Application::build(s)
        .err()
        .expect("refuses")
        .to_string();
    assert!(err.contains("server.tls.key"), "{err}");
}

#[tokio::test]
async fn the_debug_output_of_the_server_state_holds_no_secret() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, _) = write_cert(certs.path(), "dbg");
    let key_pem = std::fs::read_to_string(&tls.key).unwrap();
    let app = spawn_with(|s| {
        s.server.tls = Some(tls);
        s.users = vec![crate::admin::admin_fixture()];
    })
    .await;
    let debug = format!("{:?}", app.state);
    let secret = app.secret();
    assert!(!debug.contains(&secret), "jwt secret in Debug");
    assert!(!debug.contains("$2b$"), "a hash in Debug");
    assert!(
        !debug.contains("root-password"),
        "a fixture password in Debug"
    );
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!debug.contains(&key_body[..40]), "TLS key in Debug");
}
