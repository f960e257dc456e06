//! HEP v3 (the Homer encapsulation protocol): each message sent and received is
//! copied to a capture server (Homer, sngrep -L, heplify-server) as one UDP datagram
//! of typed chunks. Best effort: a send that would block is dropped, never waited on.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use switchyard_model::Transport;

/// Sends copies of messages to one collector.
pub struct HepSender {
    socket: UdpSocket,
    collector: SocketAddr,
    agent_id: u32,
}

impl HepSender {
    /// A sender to `collector`, from a socket of its address family.
    pub fn new(collector: SocketAddr, agent_id: u32) -> std::io::Result<HepSender> {
        let any: SocketAddr = match collector {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("an address"),
            SocketAddr::V6(_) => "[::]:0".parse().expect("an address"),
        };
        let socket = UdpSocket::bind(any)?;
        socket.set_nonblocking(true)?;
        Ok(HepSender {
            socket,
            collector,
            agent_id,
        })
    }

    /// Copy one message (`src` → `dst`) to the collector.
    pub fn send(
        &self,
        transport: Transport,
        src: SocketAddr,
        dst: SocketAddr,
        at_us: u64,
        raw: &[u8],
    ) {
        let Some(packet) = encode(self.agent_id, transport, src, dst, at_us, raw) else {
            return;
        };
        if let Err(e) = self.socket.send_to(&packet, self.collector) {
            tracing::debug!(collector = %self.collector, error = %e, "HEP copy not sent");
        }
    }
}

fn chunk(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((6 + body.len()) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// One HEP v3 packet; None when the addresses' families differ or it would not fit.
pub fn encode(
    agent_id: u32,
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
    at_us: u64,
    raw: &[u8],
) -> Option<Vec<u8>> {
    if raw.len() > 60_000 {
        return None;
    }
    let mut c = Vec::with_capacity(raw.len() + 100);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            chunk(&mut c, 0x0001, &[2]);
            chunk(&mut c, 0x0003, &s.octets());
            chunk(&mut c, 0x0004, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            chunk(&mut c, 0x0001, &[10]);
            chunk(&mut c, 0x0005, &s.octets());
            chunk(&mut c, 0x0006, &d.octets());
        }
        _ => return None,
    }
    let protocol = match transport {
        Transport::Udp => 17,
        Transport::Tcp | Transport::Tls => 6,
    };
    chunk(&mut c, 0x0002, &[protocol]);
    chunk(&mut c, 0x0007, &src.port().to_be_bytes());
    chunk(&mut c, 0x0008, &dst.port().to_be_bytes());
    chunk(&mut c, 0x0009, &((at_us / 1_000_000) as u32).to_be_bytes());
    chunk(&mut c, 0x000a, &((at_us % 1_000_000) as u32).to_be_bytes());
    // Payload type 1: SIP.
    chunk(&mut c, 0x000b, &[1]);
    chunk(&mut c, 0x000c, &agent_id.to_be_bytes());
    chunk(&mut c, 0x000f, raw);
    let mut out = Vec::with_capacity(6 + c.len());
    out.extend_from_slice(b"HEP3");
    out.extend_from_slice(&((6 + c.len()) as u16).to_be_bytes());
    out.extend_from_slice(&c);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_hep3_with_its_length_and_chunks() {
        let raw = b"OPTIONS sip:x SIP/2.0\r\n\r\n";
        let p = encode(
            7,
            Transport::Udp,
            "127.0.0.1:5060".parse().unwrap(),
            "127.0.0.2:5070".parse().unwrap(),
            1_700_000_000_123_456,
            raw,
        )
        .unwrap();
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, p.len());
        // Walk the chunks: each length covers its header, the last is the payload.
        let (mut at, mut kinds) = (6, Vec::new());
        while at < p.len() {
            let kind = u16::from_be_bytes([p[at + 2], p[at + 3]]);
            let len = u16::from_be_bytes([p[at + 4], p[at + 5]]) as usize;
            kinds.push(kind);
            if kind == 0x000f {
                assert_eq!(&p[at + 6..at + len], raw);
            }
            at += len;
        }
        assert_eq!(at, p.len());
        assert_eq!(kinds, [1, 3, 4, 2, 7, 8, 9, 10, 11, 12, 15]);
    }
}
