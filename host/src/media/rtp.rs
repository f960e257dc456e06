//! The few RTP header fields the relay reads and writes (RFC 3550 §5.1).

/// Where an RTP packet's payload starts (after CSRCs and a header extension); none
/// when it is not RTP version 2. The fixed header's fields below may be read once
/// this is some.
pub(super) fn payload_start(packet: &[u8]) -> Option<usize> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut start = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*packet.get(start + 2)?, *packet.get(start + 3)?]);
        start += 4 + 4 * usize::from(words);
    }
    (start <= packet.len()).then_some(start)
}

/// The payload type.
pub(super) fn payload_type(packet: &[u8]) -> u8 {
    packet[1] & 0x7f
}

/// Change the payload type, keeping the marker bit.
pub(super) fn set_payload_type(packet: &mut [u8], pt: u8) {
    packet[1] = (packet[1] & 0x80) | (pt & 0x7f);
}

/// The marker bit.
pub(super) fn marker(packet: &[u8]) -> bool {
    packet[1] & 0x80 != 0
}

/// The sequence number.
pub(super) fn sequence(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[2], packet[3]])
}

/// The timestamp.
pub(super) fn timestamp(packet: &[u8]) -> u32 {
    u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]])
}

/// The SSRC.
pub(super) fn ssrc(packet: &[u8]) -> u32 {
    u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]])
}

/// A packet with a fixed header of its own (no CSRCs, no extension) and `payload`.
pub(super) fn packet(
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.extend_from_slice(&[0x80, if marker { 0x80 } else { 0 } | pt]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}
