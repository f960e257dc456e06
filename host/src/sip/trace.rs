//! The SIP trace: every message received and sent, kept in a bounded ring for
//! operators to search by Call-ID, number or address and to export as pcap. A chatty
//! call cannot take over the ring (each Call-ID keeps at most `per_call` messages),
//! and what the shield dropped is kept apart, sampled, so a flood cannot push the
//! calls' messages out.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use switchyard_model::Transport;

/// How much of the traffic is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// Messages kept in all (0: no trace).
    pub capacity: usize,
    /// Messages kept per Call-ID.
    pub per_call: u32,
    /// A HEP v3 collector (Homer, `sngrep -L`) each message is copied to.
    pub hep: Option<SocketAddr>,
    /// The capture agent id our HEP copies carry.
    pub hep_agent_id: u32,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            capacity: 20_000,
            per_call: 200,
            hep: None,
            hep_agent_id: 2001,
        }
    }
}

/// Dropped messages kept, and at most this many a second.
const DROPPED_CAPACITY: usize = 1_000;
const DROPPED_PER_SEC: u64 = 50;
/// A pcap record carries at most this much of a message (a UDP datagram's limit).
const PCAP_MAX_PAYLOAD: usize = 65_000;

/// One message as it crossed the wire.
#[derive(Debug, Clone, Serialize)]
pub struct TraceEntry {
    /// Order of arrival, across the trace.
    pub seq: u64,
    /// When, µs since the epoch.
    pub at_us: u64,
    /// `in` or `out`.
    pub direction: &'static str,
    pub transport: Transport,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's.
    pub remote: SocketAddr,
    /// Empty when the message has none. Shared with the ring's per-call count.
    pub call_id: Arc<str>,
    /// Why the shield dropped it, when it did.
    pub dropped: Option<&'static str>,
    /// The message as text (lossy where it is not UTF-8).
    pub message: String,
}

/// What a search wants; every set field must match.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct TraceFilter {
    pub call_id: Option<String>,
    /// A number in the request line, From or To.
    pub number: Option<String>,
    /// The peer's address (`ip` or `ip:port`).
    pub address: Option<String>,
    /// Search the shield's dropped messages instead of the calls'.
    #[serde(default)]
    pub dropped: bool,
}

impl TraceFilter {
    fn matches(&self, e: &TraceEntry) -> bool {
        if self.call_id.as_deref().is_some_and(|c| c != &*e.call_id) {
            return false;
        }
        if let Some(a) = &self.address {
            if *a != e.remote.ip().to_string() && *a != e.remote.to_string() {
                return false;
            }
        }
        if let Some(n) = &self.number {
            let raw = e.message.as_bytes();
            let start = e.message.lines().next().unwrap_or_default();
            let mut parties = super::wire::raw_header_values(raw, "From")
                .chain(super::wire::raw_header_values(raw, "To"));
            if !start.contains(n.as_str()) && !parties.any(|v| v.contains(n.as_str())) {
                return false;
            }
        }
        true
    }
}

#[derive(Default)]
struct Rings {
    calls: VecDeque<Arc<TraceEntry>>,
    /// Messages kept per Call-ID (FxHash: it is looked up for every message).
    per_call: rustc_hash::FxHashMap<Arc<str>, u32>,
    dropped: VecDeque<Arc<TraceEntry>>,
}

/// The trace of one switch.
pub struct Trace {
    config: TraceConfig,
    hep: Option<super::hep::HepSender>,
    rings: Mutex<Rings>,
    seq: AtomicU64,
    /// (second << 16) | dropped messages kept in it.
    dropped_this_second: AtomicU64,
}

impl Trace {
    /// An empty trace (and the HEP socket, when a collector is set).
    pub fn new(config: TraceConfig) -> std::io::Result<Trace> {
        let hep = match config.hep {
            Some(collector) => Some(super::hep::HepSender::new(collector, config.hep_agent_id)?),
            None => None,
        };
        Ok(Trace {
            config,
            hep,
            rings: Mutex::default(),
            seq: AtomicU64::new(0),
            dropped_this_second: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep a message (`dropped`: why the shield dropped it).
    pub fn record(
        &self,
        outgoing: bool,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        raw: &[u8],
        dropped: Option<&'static str>,
    ) {
        if self.config.capacity == 0 && self.hep.is_none() {
            return;
        }
        let at_us = crate::now_us();
        if dropped.is_some() && !self.sample_dropped(at_us / 1_000_000) {
            return;
        }
        if let Some(hep) = &self.hep {
            let (src, dst) = if outgoing {
                (local, remote)
            } else {
                (remote, local)
            };
            hep.send(transport, src, dst, at_us, raw);
        }
        if self.config.capacity == 0 {
            return;
        }
        let call_id: Arc<str> = super::wire::call_id_of(raw).unwrap_or_default().into();
        let entry = Arc::new(TraceEntry {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at_us,
            direction: if outgoing { "out" } else { "in" },
            transport,
            local,
            remote,
            call_id,
            dropped,
            message: String::from_utf8_lossy(raw).into_owned(),
        });
        let mut rings = self.lock();
        if dropped.is_some() {
            if rings.dropped.len() >= DROPPED_CAPACITY.min(self.config.capacity) {
                rings.dropped.pop_front();
            }
            rings.dropped.push_back(entry);
            return;
        }
        let kept = rings.per_call.entry(entry.call_id.clone()).or_default();
        if *kept >= self.config.per_call {
            return;
        }
        *kept += 1;
        rings.calls.push_back(entry);
        while rings.calls.len() > self.config.capacity {
            let Some(old) = rings.calls.pop_front() else {
                break;
            };
            if let Some(n) = rings.per_call.get_mut(&old.call_id) {
                *n -= 1;
                if *n == 0 {
                    rings.per_call.remove(&old.call_id);
                }
            }
        }
    }

    /// Whether one more dropped message may be kept this second.
    fn sample_dropped(&self, second: u64) -> bool {
        let now = self.dropped_this_second.load(Ordering::Relaxed);
        let (at, n) = (now >> 16, now & 0xffff);
        let next = if at == second {
            if n >= DROPPED_PER_SEC {
                return false;
            }
            now + 1
        } else {
            (second << 16) | 1
        };
        self.dropped_this_second
            .compare_exchange(now, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// The last `limit` messages matching `filter`, oldest first.
    pub fn search(&self, filter: &TraceFilter, limit: usize) -> Vec<Arc<TraceEntry>> {
        let rings = self.lock();
        let ring = if filter.dropped {
            &rings.dropped
        } else {
            &rings.calls
        };
        let mut found: Vec<_> = ring
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect();
        found.reverse();
        found
    }

    /// Messages held (calls', dropped), for the memory census.
    pub fn len(&self) -> (usize, usize) {
        let rings = self.lock();
        (rings.calls.len(), rings.dropped.len())
    }
}

/// `entries` as a pcap file (raw IP link type), each message in a UDP datagram
/// between its addresses, whatever transport carried it (tshark and sngrep read SIP
/// from it; TCP's segments would need a made-up stream).
pub fn pcap(entries: &[Arc<TraceEntry>]) -> Vec<u8> {
    const LINKTYPE_RAW: u32 = 101;
    let mut out = Vec::with_capacity(24 + entries.len() * 700);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    for e in entries {
        let (src, dst) = match e.direction {
            "out" => (e.local, e.remote),
            _ => (e.remote, e.local),
        };
        let payload = &e.message.as_bytes()[..e.message.len().min(PCAP_MAX_PAYLOAD)];
        let Some(packet) = ip_udp(src, dst, payload) else {
            continue;
        };
        out.extend_from_slice(&((e.at_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((e.at_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&packet);
    }
    out
}

/// An IPv4 or IPv6 packet holding one UDP datagram; None when the families differ.
fn ip_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(udp_len as usize);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let sum = checksum(&ip, 0);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            // A zero UDP checksum means "none" over IPv4.
            ip.extend_from_slice(&udp);
            Some(ip)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&udp_len.to_be_bytes());
            ip.extend_from_slice(&[17, 64]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            // IPv6 requires the UDP checksum, over a pseudo-header.
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            let sum = checksum(&udp, ones_sum(&pseudo, 0));
            let sum = if sum == 0 { 0xffff } else { sum };
            udp[6..8].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&udp);
            Some(ip)
        }
        _ => None,
    }
}

fn ones_sum(bytes: &[u8], mut sum: u32) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The Internet checksum of `bytes`, continuing `sum`.
fn checksum(bytes: &[u8], sum: u32) -> u16 {
    !(ones_sum(bytes, sum) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn invite(call_id: &str) -> Vec<u8> {
        format!(
            "INVITE sip:4420@sw SIP/2.0\r\nFrom: <sip:1001@c>;tag=1\r\nTo: <sip:4420@sw>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn the_ring_is_bounded_in_all_and_per_call() {
        let t = Trace::new(TraceConfig {
            capacity: 5,
            per_call: 2,
            ..Default::default()
        })
        .unwrap();
        let (us, them) = (addr("127.0.0.1:5060"), addr("127.0.0.2:5070"));
        for _ in 0..4 {
            t.record(false, Transport::Udp, us, them, &invite("chatty"), None);
        }
        assert_eq!(t.search(&TraceFilter::default(), 100).len(), 2);
        for i in 0..10 {
            t.record(
                false,
                Transport::Udp,
                us,
                them,
                &invite(&format!("c{i}")),
                None,
            );
        }
        let all = t.search(&TraceFilter::default(), 100);
        assert_eq!(all.len(), 5);
        assert_eq!(&*all[0].call_id, "c5", "the oldest went first");
        assert_eq!(
            t.lock().per_call.len(),
            5,
            "evicted calls leave no count behind"
        );
    }

    #[test]
    fn search_by_call_id_number_and_address() {
        let t = Trace::new(TraceConfig::default()).unwrap();
        let us = addr("127.0.0.1:5060");
        t.record(
            false,
            Transport::Udp,
            us,
            addr("127.0.0.2:5070"),
            &invite("a"),
            None,
        );
        t.record(
            true,
            Transport::Tcp,
            us,
            addr("127.0.0.3:5080"),
            &invite("b"),
            None,
        );
        let find = |f: TraceFilter| -> Vec<String> {
            t.search(&f, 10)
                .iter()
                .map(|e| e.call_id.to_string())
                .collect()
        };
        assert_eq!(
            find(TraceFilter {
                call_id: Some("b".into()),
                ..Default::default()
            }),
            ["b"]
        );
        assert_eq!(
            find(TraceFilter {
                number: Some("1001".into()),
                ..Default::default()
            }),
            ["a", "b"]
        );
        assert!(find(TraceFilter {
            number: Some("9999".into()),
            ..Default::default()
        })
        .is_empty());
        assert_eq!(
            find(TraceFilter {
                address: Some("127.0.0.3".into()),
                ..Default::default()
            }),
            ["b"]
        );
        assert_eq!(
            find(TraceFilter {
                address: Some("127.0.0.2:5070".into()),
                ..Default::default()
            }),
            ["a"]
        );
    }

    #[test]
    fn dropped_messages_are_kept_apart_and_sampled() {
        let t = Trace::new(TraceConfig::default()).unwrap();
        let (us, flood) = (addr("127.0.0.1:5060"), addr("127.0.0.9:5060"));
        t.record(
            false,
            Transport::Udp,
            us,
            addr("127.0.0.2:5070"),
            &invite("call"),
            None,
        );
        for _ in 0..10_000 {
            t.record(
                false,
                Transport::Udp,
                us,
                flood,
                b"OPTIONS sip:x SIP/2.0\r\n\r\n",
                Some("banned"),
            );
        }
        let (calls, dropped) = t.len();
        assert_eq!(calls, 1, "a flood does not push calls out");
        assert!(
            (1..=2 * DROPPED_PER_SEC as usize).contains(&dropped),
            "{dropped}"
        );
        let kept = t.search(
            &TraceFilter {
                dropped: true,
                ..Default::default()
            },
            1,
        );
        assert_eq!(kept[0].dropped, Some("banned"));
    }

    #[test]
    fn pcap_checksums_verify() {
        let v4 = ip_udp(addr("127.0.0.1:5060"), addr("127.0.0.2:5070"), b"hello").unwrap();
        assert_eq!(checksum(&v4[..20], 0), 0, "the IPv4 header sums to zero");
        assert_eq!(u16::from_be_bytes([v4[2], v4[3]]) as usize, v4.len());
        let v6 = ip_udp(addr("[::1]:5060"), addr("[::1]:5070"), b"hello!").unwrap();
        let mut pseudo = v6[8..40].to_vec();
        pseudo.extend_from_slice(&(v6.len() as u32 - 40).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            checksum(&v6[40..], ones_sum(&pseudo, 0)),
            0,
            "the UDP checksum verifies"
        );
        assert!(ip_udp(addr("127.0.0.1:1"), addr("[::1]:2"), b"").is_none());
    }
}
