//! `healthcheck`: exit 0 when the configured server answers `GET /` with its version, 1
//! otherwise, for container and systemd health checks. A few lines of HTTP/1.1 over a plain
//! socket, or over TLS (the server's own rustls) when `server.tls` is set.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{CliError, CliResult};
use crate::settings::Settings;

/// The whole check (connect, send, read) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// A version answer is tiny; more than this is not our server.
const MAX_RESPONSE: u64 = 64 * 1024;

/// The address to ask: a wildcard listen address is asked on the loopback.
pub fn target(settings: &Settings) -> (String, u16) {
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" | "[::]" | "" => "127.0.0.1".to_owned(),
        h => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
    };
    (host, settings.server.port)
}

pub fn run(settings: &Settings, out: &mut dyn Write) -> CliResult {
    let (host, port) = target(settings);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tls = match &settings.server.tls {
        Some(t) => Some(
            pinned_client(&t.cert)
                .map_err(|e| CliError::failure(format!("unhealthy: server.tls.cert: {e}")))?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{authority}/");
    let version = check(&host, port, &authority, tls)
        .map_err(|e| CliError::failure(format!("unhealthy: {url}: {e}")))?;
    writeln!(out, "ok: {url} answers version {version}")?;
    Ok(())
}

/// A TLS client that trusts exactly the certificate the server is configured with (the first
/// of `server.tls.cert`): the check asks "is my server up, with my certificate", whatever
/// name the certificate carries and whether or not it is self-signed. Signatures are still
/// verified, so a server that merely copies the certificate without its key fails.
fn pinned_client(cert_file: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let pem = std::fs::read(cert_file).map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let leaf = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| format!("{}: no certificate in it", cert_file.display()))?
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        leaf: leaf.into_owned(),
        provider: provider.clone(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server presents another certificate than server.tls.cert".into(),
            ))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Plain TCP or TLS over it, read and written alike.
trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn check(
    host: &str,
    port: u16,
    authority: &str,
    tls: Option<rustls::ClientConfig>,
) -> Result<String, String> {
    let deadline = Instant::now() + TIMEOUT;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect: {e}"),
        }
    }
    let tcp = stream.ok_or(last)?;
    // Timeouts are set on this handle; the TLS stream reads and writes through the same socket.
    let socket = tcp.try_clone().map_err(|e| e.to_string())?;
    let mut stream: Box<dyn Conn> = match tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| format!("{host} is not a server name: {e}"))?;
            let conn =
                rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    };
    let left = |d: Instant| {
        let l = d.saturating_duration_since(Instant::now());
        if l.is_zero() {
            Err("timed out".to_owned())
        } else {
            Ok(l)
        }
    };
    socket
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nUser-Agent: appmixer-auth-healthcheck\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        socket
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() as u64 > MAX_RESPONSE {
                    return Err("response too large".into());
                }
                if complete(&response) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out".into());
            }
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    parse_version(&response)
}

/// The header block and the body, split at the blank line.
fn split(response: &[u8]) -> Option<(&str, &[u8])> {
    let at = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..at]).ok()?;
    Some((head, &response[at + 4..]))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Whether a response with a Content-Length has all of its body (saves waiting for close).
fn complete(response: &[u8]) -> bool {
    split(response).is_some_and(|(head, body)| {
        header(head, "content-length")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| body.len() >= n)
    })
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let at = body.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&body[..at]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        body = &body[at + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// `200` with a JSON body holding a string `version`.
pub fn parse_version(response: &[u8]) -> Result<String, String> {
    let (head, body) = split(response).ok_or("not an HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/") {
        return Err("not an HTTP response".into());
    }
    if code != "200" {
        return Err(format!(
            "answered {}",
            status.trim_start_matches(|c| c != ' ').trim()
        ));
    }
    let body = match header(head, "transfer-encoding") {
        Some(te) if te.eq_ignore_ascii_case("chunked") => {
            dechunk(body).ok_or("bad chunked body")?
        }
        _ => body.to_vec(),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "the answer is not JSON".to_owned())?;
    json.get("version")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the answer has no \"version\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_200_json_answer_with_a_version_is_healthy() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 19\r\n\r\n{\"version\":\"6.3.0\"}";
        assert_eq!(parse_version(ok), Ok("6.3.0".into()));
        assert!(complete(ok));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ver\r\ne\r\nsion\":\"6.3.0\"}\r\n0\r\n\r\n";
        assert_eq!(parse_version(chunked), Ok("6.3.0".into()));
        let err = parse_version(b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}").unwrap_err();
        assert!(err.contains("503"), "{err}");
        assert!(parse_version(b"HTTP/1.1 200 OK\r\n\r\n<html>").is_err());
        assert!(parse_version(b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"ok\"}").is_err());
        assert!(parse_version(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn a_wildcard_listen_address_is_checked_on_the_loopback() {
        let mut s = Settings::default();
        s.server.host = "0.0.0.0".into();
        assert_eq!(target(&s).0, "127.0.0.1");
        s.server.host = "::".into();
        assert_eq!(target(&s).0, "127.0.0.1");
        s.server.host = "::1".into();
        assert_eq!(target(&s).0, "::1");
    }
}
