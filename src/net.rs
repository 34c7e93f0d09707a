//! The client's address: the TCP peer, or what a trusted reverse proxy says it is.
//!
//! The one header named by `server.forwarded_header` (`X-Forwarded-For` by default) is
//! believed only from peers in `server.trusted_proxies`; from anyone else it is ignored, and
//! the other forwarding header is never read (proxies pass a client's own copy through), so a
//! client cannot spoof its address to dodge the brute-force limit or poison the log.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header;
use ipnet::IpNet;

/// Addresses and ranges whose forwarding header is believed, and which header that is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    /// `Forwarded` (RFC 7239) when true, else the `X-Forwarded-For` style list in `header`.
    rfc7239: bool,
    header: Option<header::HeaderName>,
}

impl TrustedProxies {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8` … and the header's name; the error
    /// names the bad entry.
    pub fn parse(entries: &[String], header_name: &str) -> Result<Self, String> {
        let name = header::HeaderName::from_bytes(header_name.trim().as_bytes()).map_err(|_| {
            format!("server.forwarded_header: `{header_name}` is not a header name")
        })?;
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                IpNet::from_str(e)
                    .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                    .map_err(|_| {
                        format!("server.trusted_proxies: `{e}` is not an address or CIDR range")
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            nets,
            rfc7239: name == header::FORWARDED,
            header: Some(name),
        })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One hop of a `Forwarded: for=…` or `X-Forwarded-For` list.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    let s = s
        .strip_prefix('[')
        .map_or(s, |rest| rest.split(']').next().unwrap_or(rest));
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(canonical(ip));
    }
    // `1.2.3.4:5678`
    s.rsplit_once(':')
        .and_then(|(host, _)| IpAddr::from_str(host).ok())
        .map(canonical)
}

/// The hops the trusted proxies' header lists, nearest last.
fn forwarded_chain(req: &HttpRequest, trusted: &TrustedProxies) -> Vec<IpAddr> {
    let mut chain = Vec::new();
    let Some(name) = &trusted.header else {
        return chain;
    };
    for value in req.headers().get_all(name) {
        let Ok(text) = value.to_str() else { continue };
        if trusted.rfc7239 {
            for element in text.split(',') {
                for pair in element.split(';') {
                    if let Some((k, v)) = pair.split_once('=')
                        && k.trim().eq_ignore_ascii_case("for")
                        && let Some(ip) = parse_hop(v)
                    {
                        chain.push(ip);
                    }
                }
            }
        } else {
            chain.extend(text.split(',').filter_map(parse_hop));
        }
    }
    chain
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// nearest hop of the forwarding chain that is not itself a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    if trusted.is_empty() || !trusted.contains(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_chain(req, trusted).into_iter().rev() {
        client = hop;
        if !trusted.contains(&hop) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn trusted(list: &[&str]) -> TrustedProxies {
        trusted_with(list, "X-Forwarded-For")
    }

    fn trusted_with(list: &[&str], header: &str) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&list, header).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:4000".parse().unwrap())
            .insert_header(("x-forwarded-for", "1.1.1.1"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(client_ip(&req, &trusted(&[])), Some(ip("203.0.113.9")));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_spoofed_hops_before_it_do_not_count() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:4000".parse().unwrap())
            .insert_header(("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.3"))
            .to_http_request();
        // 10.0.0.3 is another trusted proxy; 198.51.100.7 is the client; 6.6.6.6 is whatever
        // the client wrote and is not believed.
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn a_clients_own_forwarded_header_is_not_read_when_the_proxy_writes_x_forwarded_for() {
        // nginx appends the peer to X-Forwarded-For and passes the client's Forwarded through.
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .insert_header(("forwarded", "for=6.6.6.6"))
            .insert_header(("x-forwarded-for", "198.51.100.7"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted(&["127.0.0.1"])),
            Some(ip("198.51.100.7"))
        );
        // Without X-Forwarded-For, the proxy itself is the client: still not the forged one.
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .insert_header(("forwarded", "for=6.6.6.6"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted(&["127.0.0.1"])),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn the_forwarded_header_is_read_when_it_is_the_one_named() {
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .insert_header((
                "forwarded",
                "for=192.0.2.60;proto=https, for=\"[2001:db8::1]:8080\"",
            ))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted_with(&["127.0.0.1"], "Forwarded")),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/33".into()], "X-Forwarded-For").unwrap_err();
        assert!(err.contains("10.0.0.0/33"));
        assert!(
            TrustedProxies::parse(&["::1".into(), "192.168.0.0/16".into()], "X-Real-IP").is_ok()
        );
        assert!(TrustedProxies::parse(&[], "bad header").is_err());
    }
}
