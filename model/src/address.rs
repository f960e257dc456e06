//! Network addresses as carrier objects hold them: a gateway's sources (IP addresses
//! and CIDR prefixes), a vendor's `host:port`, and the SIP transport to use.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The transport a message came over or must go over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (RFC 3261 §18.1.1).
    #[default]
    Udp,
    /// TCP, framed by Content-Length.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2; `sips:` and port 5061), framed as TCP.
    Tls,
}

impl Transport {
    /// The Via token.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Unreliable transports need retransmission timers.
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// The `transport=` URI parameter for a Contact, empty for UDP.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }
}

/// Whether `ip` is `source` (an address) or inside it (a CIDR prefix).
pub fn ip_in(source: &str, ip: IpAddr) -> bool {
    let (net, len) = match source.split_once('/') {
        Some((net, len)) => (net, len.parse::<u32>().ok()),
        None => (source, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Whether `source` is an IP address or a CIDR prefix.
pub fn valid_source(source: &str) -> bool {
    let (net, len) = match source.split_once('/') {
        Some((net, len)) => (net, Some(len)),
        None => (source, None),
    };
    match (net.parse::<IpAddr>(), len.map(str::parse::<u32>)) {
        (Ok(_), None) => true,
        (Ok(IpAddr::V4(_)), Some(Ok(l))) => l <= 32,
        (Ok(IpAddr::V6(_)), Some(Ok(l))) => l <= 128,
        _ => false,
    }
}

/// Whether `address` has the form of a gateway address: an IP address, `ip:port`,
/// `[v6]:port`, or a host name with an optional port. Nothing is resolved.
pub fn is_host_port(address: &str) -> bool {
    if address.parse::<std::net::SocketAddr>().is_ok() || address.parse::<IpAddr>().is_ok() {
        return true;
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (address, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let host_ok = !host.is_empty() && host.len() <= 253 && host.split('.').all(label);
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_prefixes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_in("127.0.0.0/8", ip("127.1.2.3")));
        assert!(!ip_in("127.0.0.0/8", ip("10.0.0.1")));
        assert!(ip_in("10.0.0.1", ip("10.0.0.1")));
        assert!(ip_in("::1", ip("::1")));
        assert!(ip_in("0.0.0.0/0", ip("8.8.8.8")));
        assert!(!ip_in("::/0", ip("8.8.8.8")));
        assert!(valid_source("10.0.0.0/8") && valid_source("::1/128"));
        assert!(!valid_source("10.0.0.0/33") && !valid_source("example.com"));
    }

    #[test]
    fn addresses_are_checked_for_form_only() {
        for good in [
            "127.0.0.2",
            "127.0.0.2:5070",
            "[::1]:5060",
            "::1",
            "sip.example.com",
            "vendor-1:5080",
        ] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "",
            "host:",
            "host:0",
            "host:70000",
            "bad host",
            "-x.example",
            "a..b",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
