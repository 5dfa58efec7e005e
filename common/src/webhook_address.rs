//! Where a webhook may be sent. A subscription's URL must be `http(s)://` and resolve
//! only to public addresses: otherwise anyone allowed to subscribe could make the
//! server send requests into its own network (loopback, private ranges, the cloud
//! metadata service at a link-local address). Checked when subscribing and again at
//! every delivery, on the addresses actually connected to (DNS may change in between).
//! `WEBHOOK_ALLOW_PRIVATE=true` lifts the address rule (tests, closed networks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("the URL is not valid: {0}")]
    Invalid(String),
    #[error("the host {host} could not be resolved")]
    Unresolvable {
        host: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error(
        "the host {host} resolves to {ip}, a private, loopback or link-local address; \
         webhooks go to public addresses only"
    )]
    Private { host: String, ip: IpAddr },
}

/// Parses a webhook URL: absolute `http` or `https` with a host, no credentials.
pub fn parse(raw: &str) -> Result<Url, AddressError> {
    let url = Url::parse(raw.trim()).map_err(|e| AddressError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressError::Invalid(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AddressError::Invalid("the URL has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressError::Invalid(
            "the URL must not carry credentials; authenticate receivers by the signature".into(),
        ));
    }
    Ok(url)
}

/// Resolves the URL's host to the socket addresses to connect to, refusing it if any
/// of them is not public (unless `allow_private`).
pub async fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, AddressError> {
    let host = url
        .host_str()
        .ok_or_else(|| AddressError::Invalid("the URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| AddressError::Invalid("the URL has no port".into()))?;
    // An IPv6 literal comes bracketed.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| AddressError::Unresolvable {
                host: host.to_string(),
                source: Some(e),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(AddressError::Unresolvable {
            host: host.to_string(),
            source: None,
        });
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(AddressError::Private {
            host: host.to_string(),
            ip: bad.ip(),
        });
    }
    Ok(addrs)
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT (100.64.0.0/10) and benchmarking (198.18.0.0/15).
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (18..20).contains(&b))
        // Reserved (240.0.0.0/4).
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // Documentation (2001:db8::/32).
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.10",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_and_no_credentials() {
        assert!(parse("https://hooks.example.com/attendance").is_ok());
        for bad in [
            "ftp://example.com/x",
            "not a url",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
        ] {
            assert!(matches!(parse(bad), Err(AddressError::Invalid(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn literal_private_addresses_are_refused_unless_allowed() {
        for raw in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://169.254.169.254/latest",
            "http://localhost:9/x",
        ] {
            let url = parse(raw).unwrap();
            assert!(
                matches!(
                    resolve(&url, false).await,
                    Err(AddressError::Private { .. })
                ),
                "{raw}"
            );
            assert!(resolve(&url, true).await.is_ok(), "{raw}");
        }
        let public = parse("http://93.184.215.14/").unwrap();
        assert_eq!(
            resolve(&public, false).await.unwrap(),
            ["93.184.215.14:80".parse().unwrap()]
        );
    }
}
