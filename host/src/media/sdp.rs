//! The SDP a media relay reads and the few edits it makes. Reading goes through
//! webrtc-sdp's typed view; edits are made on the text, because webrtc-sdp drops what
//! it does not know and everything else must pass through byte for byte: attributes
//! and media the host does not understand (`a=silenceSupp`, a T.38 `m=image` stream)
//! reach the other side unchanged.
//! Only the audio stream is relayed: its `m=` port, the connection address that applies
//! to it, and its `a=rtcp:` port are rewritten; another stream that relied on the
//! session-level address gets that address as its own `c=` line, so it keeps its path.

use std::net::{IpAddr, SocketAddr};

use switchyard_model::G729Mode;

/// The first audio stream as webrtc-sdp reads it.
#[derive(Debug, Clone, Default)]
pub struct AudioView {
    /// Where it wants RTP: its connection address (its own, else the session's) and port.
    pub endpoint: Option<SocketAddr>,
    /// Its payload types in the `m=` line's order, with their encoding names.
    pub formats: Vec<(u8, String)>,
    /// Milliseconds of audio it wants per packet (`a=ptime`).
    pub ptime: Option<u32>,
}

impl AudioView {
    /// The payload type of its first telephone-event format.
    pub fn telephone_event(&self) -> Option<u8> {
        self.formats
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case("telephone-event"))
            .map(|(pt, _)| *pt)
    }

    /// The G.729 name it uses first (`G729`, `G729a`), if it offers G.729.
    pub fn g729_name(&self) -> Option<&str> {
        self.formats
            .iter()
            .find(|(_, n)| is_g729(n))
            .map(|(_, n)| n.as_str())
    }

    /// The dynamic payload type it gives G.729 (a `G729a` at 97, say), if any.
    pub fn dynamic_g729(&self) -> Option<u8> {
        self.formats
            .iter()
            .find(|(pt, name)| *pt != 18 && is_g729(name))
            .map(|(pt, _)| *pt)
    }
}

/// How many SDP bodies each thread remembers the reading of (see [`audio`]).
const RECENT_READINGS: usize = 8;

/// An SDP body and what [`audio`] read in it.
type Reading = (Box<[u8]>, Option<AudioView>);

std::thread_local! {
    /// The bodies this thread read last, newest first, with what they read as.
    static RECENT: std::cell::RefCell<std::collections::VecDeque<Reading>> =
        std::cell::RefCell::new(std::collections::VecDeque::with_capacity(RECENT_READINGS));
}

/// The first audio stream of `sdp`. None when the SDP has no audio stream, or
/// webrtc-sdp cannot read it at all (the SDP then passes untouched: the call keeps
/// whatever media path its endpoints described).
///
/// A call asks this of the same offer and answer many times (where to send, which
/// formats, telephone-event, the G.729 name, the record's codecs), and webrtc-sdp's
/// reading was about 8 % of a call's CPU in a perf profile at 1,000 calls/s: the last
/// few bodies read on this thread are remembered with their reading.
pub fn audio(sdp: &[u8]) -> Option<AudioView> {
    let known = RECENT.with(|recent| {
        recent
            .borrow()
            .iter()
            .find(|(body, _)| **body == *sdp)
            .map(|(_, view)| view.clone())
    });
    if let Some(view) = known {
        return view;
    }
    let view = read_audio(sdp);
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        recent.truncate(RECENT_READINGS - 1);
        recent.push_front((sdp.into(), view.clone()));
    });
    view
}

fn read_audio(sdp: &[u8]) -> Option<AudioView> {
    use webrtc_sdp::address::ExplicitlyTypedAddress;
    use webrtc_sdp::attribute_type::SdpAttribute;
    use webrtc_sdp::media_type::{SdpFormatList, SdpMediaValue};
    let session = parse_leniently(audio_only(std::str::from_utf8(sdp).ok()?)?)?;
    let audio = session
        .media
        .iter()
        .find(|m| *m.get_type() == SdpMediaValue::Audio)?;
    let address = audio
        .get_connection()
        .as_ref()
        .or(session.get_connection().as_ref())
        .and_then(|c| match c.address {
            ExplicitlyTypedAddress::Ip(ip) => Some(ip),
            ExplicitlyTypedAddress::Fqdn { .. } => None,
        });
    let port = u16::try_from(audio.get_port()).ok()?;
    let ptime = audio.get_attributes().iter().find_map(|a| match a {
        SdpAttribute::Ptime(ms) => u32::try_from(*ms).ok(),
        _ => None,
    });
    let names: Vec<(u8, &str)> = audio
        .get_attributes()
        .iter()
        .filter_map(|a| match a {
            SdpAttribute::Rtpmap(r) => Some((r.payload_type, r.codec_name.as_str())),
            _ => None,
        })
        .collect();
    let formats = match audio.get_formats() {
        SdpFormatList::Integers(pts) => pts
            .iter()
            .filter_map(|pt| u8::try_from(*pt).ok())
            .map(|pt| {
                let name = names.iter().find(|(p, _)| *p == pt).map(|(_, n)| *n);
                (pt, name.unwrap_or(static_name(pt)).to_string())
            })
            .collect(),
        SdpFormatList::Strings(_) | SdpFormatList::Unknown(_) => Vec::new(),
    };
    Some(AudioView {
        endpoint: address.map(|ip| SocketAddr::new(ip, port)),
        formats,
        ptime,
    })
}

/// webrtc-sdp's reading of `text`, leaving out attribute lines it refuses (a
/// malformed `a=rtpmap` of a codec nobody uses should not cost the call its relay).
/// None when it refuses anything else.
fn parse_leniently(text: String) -> Option<webrtc_sdp::SdpSession> {
    use webrtc_sdp::error::SdpParserError;
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    loop {
        // Attributes it does not know come back as warnings, not errors.
        let e = match webrtc_sdp::parse_sdp(&lines.join("\r\n"), false) {
            Ok(session) => return Some(session),
            Err(e) => e,
        };
        match e {
            SdpParserError::Line { line_number, .. }
                if lines.get(line_number).is_some_and(|l| l.starts_with("a=")) =>
            {
                tracing::debug!(error = %e, "SDP attribute not understood; read without it");
                lines.remove(line_number);
            }
            e => {
                tracing::warn!(error = %e, "SDP not understood; passed on untouched");
                return None;
            }
        }
    }
}

/// The session part and the first audio stream of `text`, alone. webrtc-sdp skips a
/// stream it does not know (T.38's `m=image ... udptl`) but not that stream's lines,
/// so its `c=` would be read as the audio stream's.
fn audio_only(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut keep = true;
    let mut found = false;
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            keep = m.starts_with("audio ") && !found;
            found |= keep;
        }
        if keep {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    found.then_some(out)
}

/// Where a side wants its audio RTP: the audio stream's connection address and port.
/// None when the SDP has no audio stream, or no address for it.
pub fn audio_endpoint(sdp: &[u8]) -> Option<SocketAddr> {
    audio(sdp)?.endpoint
}

fn connection_line(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("c=IN IP4 {a}"),
        IpAddr::V6(a) => format!("c=IN IP6 {a}"),
    }
}

/// `sdp` with its audio stream moved to `addr:port` (RTCP on `port + 1`); None when
/// there is no audio stream to move.
pub fn relay_audio(sdp: &[u8], addr: IpAddr, port: u16) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(sdp).ok()?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.lines().collect();
    // Which section each line is in: None for the session part, else the m= index.
    let mut section = None;
    let mut sections: Vec<Option<usize>> = Vec::with_capacity(lines.len());
    let mut kinds: Vec<&str> = Vec::new();
    let mut has_c: Vec<bool> = Vec::new();
    for line in &lines {
        if let Some(m) = line.strip_prefix("m=") {
            kinds.push(m.split_whitespace().next().unwrap_or_default());
            has_c.push(false);
            section = Some(kinds.len() - 1);
        } else if line.starts_with("c=") {
            if let Some(s) = section {
                has_c[s] = true;
            }
        }
        sections.push(section);
    }
    let audio = kinds.iter().position(|k| *k == "audio")?;
    let session_c = lines
        .iter()
        .zip(&sections)
        .find(|(l, s)| s.is_none() && l.starts_with("c="))
        .map(|(l, _)| *l);
    let ours = connection_line(addr);
    let mut out = String::with_capacity(text.len() + 64);
    let mut push = |line: &str| {
        out.push_str(line);
        out.push_str(eol);
    };
    for (line, s) in lines.iter().zip(&sections) {
        match s {
            // The session address now names us: it applies to the audio stream when
            // that has no c= of its own.
            None if line.starts_with("c=") => {
                push(if has_c[audio] { line } else { &ours });
            }
            Some(s) if *s == audio && line.starts_with("m=") => {
                let mut fields: Vec<&str> = line.split(' ').collect();
                let port_text = port.to_string();
                if fields.len() > 1 {
                    fields[1] = &port_text;
                }
                push(&fields.join(" "));
                if !has_c[audio] && session_c.is_none() {
                    push(&ours);
                }
            }
            Some(s) if *s == audio && line.starts_with("c=") => push(&ours),
            Some(s) if *s == audio && line.starts_with("a=rtcp:") => {
                push(&format!("a=rtcp:{}", u32::from(port) + 1));
            }
            Some(s) if line.starts_with("m=") => {
                push(line);
                // A stream we do not relay keeps the session address it used.
                if !has_c[*s] && !has_c[audio] {
                    if let Some(c) = session_c {
                        push(c);
                    }
                }
            }
            _ => push(line),
        }
    }
    Some(out.into_bytes())
}

/// `sdp` with its origin's session version one higher (RFC 3264 §8: a changed offer
/// in the same session); unchanged when it has no usable `o=` line.
pub fn with_next_version(sdp: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(sdp) else {
        return sdp.to_vec();
    };
    let Some(start) = text
        .match_indices("o=")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
    else {
        return sdp.to_vec();
    };
    let end = text[start..]
        .find(['\r', '\n'])
        .map_or(text.len(), |e| start + e);
    let mut fields: Vec<String> = text[start..end].split(' ').map(str::to_string).collect();
    match fields.get(2).and_then(|v| v.parse::<u64>().ok()) {
        Some(version) => fields[2] = version.wrapping_add(1).to_string(),
        None => return sdp.to_vec(),
    }
    format!("{}{}{}", &text[..start], fields.join(" "), &text[end..]).into_bytes()
}

/// The audio stream's payload types with the encoding names their `a=rtpmap` lines
/// (or the static table) give, in the `m=` line's order.
pub fn audio_formats(sdp: &[u8]) -> Vec<(u8, String)> {
    audio(sdp).map(|a| a.formats).unwrap_or_default()
}

fn static_name(pt: u8) -> &'static str {
    match pt {
        0 => "PCMU",
        8 => "PCMA",
        9 => "G722",
        18 => "G729",
        _ => "",
    }
}

/// `sdp` with its audio stream offering only `codec` (plus any telephone-event
/// payloads it had): other formats and their `a=rtpmap` / `a=fmtp` lines go, the
/// codec's own `a=rtpmap` is there. When the host `encodes` the codec itself, G.729 is
/// offered without annex B (its encoder sends no silence frames; RFC 7261 makes
/// annexb=yes the default); otherwise the codec's own `a=fmtp` lines pass as they were.
pub fn offer_only(sdp: &[u8], codec: super::codec::Codec, encodes: bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(sdp).ok()?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let events: Vec<u8> = audio_formats(sdp)
        .into_iter()
        .filter(|(_, name)| name.eq_ignore_ascii_case("telephone-event"))
        .map(|(pt, _)| pt)
        .collect();
    let pt = codec.payload_type();
    let kept = |p: u8| p == pt || events.contains(&p);
    let mut out = String::with_capacity(text.len());
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ") && !seen_audio;
            seen_audio |= in_audio;
            if in_audio {
                let fields: Vec<&str> = m.split_whitespace().collect();
                let mut formats = vec![pt.to_string()];
                formats.extend(events.iter().map(u8::to_string));
                out.push_str(&format!(
                    "m={} {}",
                    fields[..3.min(fields.len())].join(" "),
                    formats.join(" ")
                ));
                out.push_str(eol);
                out.push_str(&format!("a=rtpmap:{pt} {}{eol}", codec.rtpmap()));
                if encodes && codec == super::codec::Codec::G729 {
                    out.push_str(&format!("a=fmtp:{pt} annexb=no{eol}"));
                }
                continue;
            }
        }
        let format_line = |prefix: &str| {
            line.strip_prefix(prefix)
                .filter(|_| in_audio)
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u8>().ok())
        };
        let (rtpmap, fmtp) = (format_line("a=rtpmap:"), format_line("a=fmtp:"));
        match rtpmap.or(fmtp) {
            // The codec's rtpmap (and, when we encode, its fmtp) came with the m= line.
            Some(p) if p == pt && (rtpmap.is_some() || encodes) => {}
            Some(p) if !kept(p) => {}
            _ => {
                out.push_str(line);
                out.push_str(eol);
            }
        }
    }
    Some(out.into_bytes())
}

/// The payload type of the audio stream's first telephone-event format.
pub fn telephone_event(sdp: &[u8]) -> Option<u8> {
    audio(sdp)?.telephone_event()
}

/// `sdp` with the audio stream's telephone-event formats replaced by one at `pt`
/// (keys 0-16), or removed when `pt` is none. A `pt` some codec already uses gives way
/// to the first free dynamic type. Everything else passes as it was. With it, the type
/// the telephone-events now have.
pub fn with_telephone_event(sdp: &[u8], pt: Option<u8>) -> Option<(Vec<u8>, Option<u8>)> {
    let text = std::str::from_utf8(sdp).ok()?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let formats = audio_formats(sdp);
    let is_event = |name: &str| name.eq_ignore_ascii_case("telephone-event");
    let events: Vec<u8> = formats
        .iter()
        .filter(|(_, n)| is_event(n))
        .map(|(p, _)| *p)
        .collect();
    let taken = |p: u8| formats.iter().any(|(q, n)| *q == p && !is_event(n));
    let pt = pt.map(|p| match taken(p) {
        false => p,
        true => (96..=127).find(|q| !taken(*q)).unwrap_or(p),
    });
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut pending: Option<String> = None;
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            // The new format's attributes close the audio section.
            if let Some(lines) = pending.take() {
                out.push_str(&lines);
            }
            in_audio = m.starts_with("audio ") && !seen_audio;
            seen_audio |= in_audio;
            if in_audio {
                let mut fields: Vec<String> = m
                    .split_whitespace()
                    .enumerate()
                    .filter(|(i, f)| *i < 3 || !f.parse().is_ok_and(|p: u8| events.contains(&p)))
                    .map(|(_, f)| f.to_string())
                    .collect();
                if let Some(pt) = pt {
                    fields.push(pt.to_string());
                    pending = Some(format!(
                        "a=rtpmap:{pt} telephone-event/8000{eol}a=fmtp:{pt} 0-16{eol}"
                    ));
                }
                out.push_str(&format!("m={}{eol}", fields.join(" ")));
                continue;
            }
        }
        let format = ["a=rtpmap:", "a=fmtp:"].iter().find_map(|prefix| {
            line.strip_prefix(prefix)
                .filter(|_| in_audio)
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u8>().ok())
        });
        if !format.is_some_and(|p| events.contains(&p)) {
            out.push_str(line);
            out.push_str(eol);
        }
    }
    if let Some(lines) = pending {
        out.push_str(&lines);
    }
    Some((out.into_bytes(), pt.filter(|_| seen_audio)))
}

/// Whether an encoding name is one of G.729's (`G729`, `G729a`, `G729A`, ...).
pub fn is_g729(name: &str) -> bool {
    name.get(..4)
        .is_some_and(|n| n.eq_ignore_ascii_case("G729"))
}

/// The G.729 name the audio stream uses first (`G729`, `G729a`), if it offers G.729.
pub fn g729_name(sdp: &[u8]) -> Option<String> {
    audio(sdp)?.g729_name().map(str::to_string)
}

/// `sdp` with its G.729 formats named as a gateway's G.729 negotiation mode says:
/// `G729` or `G729a` rename every G.729 format; both adds the missing variant (G729a
/// at a free dynamic type) so the far end can pick; Auto mirrors `mirror`, the name the
/// receiving side itself used, when it used one. None when nothing changes.
pub fn with_g729_names(sdp: &[u8], mode: G729Mode, mirror: Option<&str>) -> Option<Vec<u8>> {
    let formats = audio_formats(sdp);
    let g729: Vec<(u8, String)> = formats
        .iter()
        .filter(|(_, n)| is_g729(n))
        .cloned()
        .collect();
    let first = g729.first()?;
    let plain = |n: &str| n.eq_ignore_ascii_case("G729");
    let (rename, add): (Option<&str>, Option<(u8, &str)>) = match mode {
        G729Mode::Auto => (mirror.filter(|m| is_g729(m)), None),
        G729Mode::G729 => (Some("G729"), None),
        G729Mode::G729a => (Some("G729a"), None),
        G729Mode::G729AndG729a => {
            let has_plain = g729.iter().any(|(_, n)| plain(n));
            let has_annex_a = g729.iter().any(|(_, n)| !plain(n));
            let free = (96..=127).find(|p| formats.iter().all(|(q, _)| q != p));
            match (has_plain, has_annex_a) {
                (true, false) => (None, free.map(|p| (p, "G729a"))),
                (false, true) if formats.iter().all(|(q, _)| *q != 18) => {
                    (None, Some((18, "G729")))
                }
                _ => (None, None),
            }
        }
    };
    if add.is_none() && rename.is_none_or(|r| g729.iter().all(|(_, n)| n == r)) {
        return None;
    }
    let text = std::str::from_utf8(sdp).ok()?;
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut renamed = Vec::new();
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ") && !seen_audio;
            seen_audio |= in_audio;
            if let (true, Some((pt, _))) = (in_audio, add) {
                // The added variant goes right after the first G.729 format.
                let mut fields: Vec<String> = m.split_whitespace().map(str::to_string).collect();
                let at = fields
                    .iter()
                    .skip(3)
                    .position(|f| *f == first.0.to_string());
                fields.insert(at.map_or(fields.len(), |i| i + 4), pt.to_string());
                out.push_str(&format!("m={}{eol}", fields.join(" ")));
                continue;
            }
        }
        let rtpmap = line
            .strip_prefix("a=rtpmap:")
            .filter(|_| in_audio)
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u8>().ok());
        match (rtpmap, rename) {
            (Some(pt), Some(name)) if g729.iter().any(|(p, _)| *p == pt) => {
                out.push_str(&format!("a=rtpmap:{pt} {name}/8000{eol}"));
                renamed.push(pt);
            }
            _ => {
                out.push_str(line);
                out.push_str(eol);
            }
        }
        if let (Some(pt), Some((new_pt, name))) = (rtpmap, add) {
            if pt == first.0 {
                out.push_str(&format!("a=rtpmap:{new_pt} {name}/8000{eol}"));
            }
        }
    }
    // A static 18 with no rtpmap of its own gets one naming it, and an added variant
    // whose first G.729 format had no rtpmap line gets its own.
    let mut missing = Vec::new();
    if let (Some(name), false) = (rename, renamed.contains(&18)) {
        if g729.iter().any(|(p, _)| *p == 18) {
            missing.push((18, name));
        }
    }
    missing.extend(add.filter(|(p, _)| !out.contains(&format!("a=rtpmap:{p} "))));
    for (pt, name) in missing {
        let m_end = out
            .find("m=audio")
            .and_then(|i| out[i..].find(eol).map(|e| i + e + eol.len()))?;
        out.insert_str(m_end, &format!("a=rtpmap:{pt} {name}/8000{eol}"));
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests;
