//! Bytes on the wire to `rsip` messages and back.
//!
//! rsip 0.4 parses the canonical form only, so this layer first rewrites what RFC 3261
//! allows and rsip does not take: compact header names (`v: i: f: ...`), any case of a
//! header name, whitespace before the colon, folded continuation lines, and several
//! values joined by commas in one Via / Route / Record-Route / Contact line (split
//! into one line each, so "the topmost Via" is always the first header). Unknown
//! headers pass through untouched. Nothing here panics on any input; the fuzz target
//! in `host/fuzz` holds it to that.

use std::borrow::Cow;
use std::fmt;

pub use super::message::Message;

/// Largest message accepted (UDP datagrams and TCP frames alike).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why bytes are not a SIP message we will handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn err(msg: impl Into<String>) -> WireError {
    WireError(msg.into())
}

/// Compact form (RFC 3261 §7.3.3 and later RFCs) to full header name.
fn expand_compact(name: &str) -> Option<&'static str> {
    let &[letter] = name.as_bytes() else {
        return None;
    };
    Some(match letter.to_ascii_lowercase() {
        b'v' => "Via",
        b'i' => "Call-ID",
        b'f' => "From",
        b't' => "To",
        b'm' => "Contact",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'k' => "Supported",
        b's' => "Subject",
        b'e' => "Content-Encoding",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => return None,
    })
}

/// Headers whose comma-joined values are split into one line each.
fn is_list_header(name: &str) -> bool {
    ["Via", "Route", "Record-Route", "Contact"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// Canonical spelling of well-known names, so rsip (and our own lookups) see one form.
fn canonical_name(name: &str) -> &str {
    const KNOWN: &[&str] = &[
        "Via",
        "Call-ID",
        "From",
        "To",
        "Contact",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Supported",
        "Require",
        "Session-Expires",
        "Min-SE",
        "Expires",
        "Authorization",
        "Proxy-Authorization",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Privacy",
        "Remote-Party-ID",
        "Diversion",
        "Reason",
        "User-Agent",
        "Allow",
    ];
    if let Some(full) = expand_compact(name) {
        return full;
    }
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map_or(name, |k| k)
}

/// Split a header value at commas that are outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, ch) in value.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|v| !v.is_empty());
    out
}

/// One framed message in canonical form, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The start line, trimmed.
    pub start: String,
    /// Headers in order: names canonical, folded lines joined, lists split.
    pub headers: Vec<(String, String)>,
    /// The body (exactly Content-Length bytes when the header is present).
    pub body: Vec<u8>,
}

/// Rewrite one complete message (a UDP datagram or a TCP frame) to canonical form.
/// For UDP a missing Content-Length means "the rest of the datagram".
pub fn normalize(raw: &[u8]) -> Result<Normalized, WireError> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(err(format!(
            "message of {} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
            raw.len()
        )));
    }
    let head_end = find(raw, b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| find(raw, b"\n\n").map(|i| (i, i + 2)))
        .ok_or_else(|| err("no blank line after the headers"))?;
    let head = std::str::from_utf8(&raw[..head_end.0]).map_err(|_| err("headers are not UTF-8"))?;
    let mut rest = &raw[head_end.1..];

    // Unfold continuation lines (a line starting with SP/HT continues the previous
    // one); only a folded line is copied.
    let mut lines: Vec<Cow<'_, str>> = Vec::with_capacity(24);
    for line in head.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.starts_with([' ', '\t']) {
            let last = lines
                .last_mut()
                .ok_or_else(|| err("message starts with whitespace"))?
                .to_mut();
            last.push(' ');
            last.push_str(line.trim());
        } else {
            lines.push(Cow::Borrowed(line));
        }
    }
    let mut lines = lines.into_iter();
    let start = lines
        .next()
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| err("empty start line"))?;
    let mut headers = Vec::with_capacity(lines.len() + 2);
    let mut content_length = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| err(format!("header line without a colon: {line:.60}")))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(err(format!("bad header name {name:.40}")));
        }
        let name = canonical_name(name);
        let value = value.trim();
        if name == "Content-Length" {
            let n: usize = value
                .parse()
                .map_err(|_| err(format!("bad Content-Length {value:.20}")))?;
            content_length = Some(n);
        }
        if is_list_header(name) && !(name == "Contact" && value == "*") {
            for v in split_list(value) {
                headers.push((name.to_string(), v.to_string()));
            }
        } else {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    if let Some(n) = content_length {
        if rest.len() < n {
            return Err(err(format!(
                "Content-Length {n} but only {} body bytes",
                rest.len()
            )));
        }
        rest = &rest[..n];
    }
    Ok(Normalized {
        start: start.trim().to_string(),
        headers,
        body: rest.to_vec(),
    })
}

fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse one complete message: rsip checks the start line's grammar and types it
/// (method, status code); the canonical header list rides along for cheap lookups,
/// checked by [`normalize`] (names are tokens, every line has its colon) and for the
/// headers every message must carry. rsip is given the start line alone: it kept
/// every header again, typed, at about a third of the parse's cost, for nothing
/// read from it.
pub fn parse(raw: &[u8]) -> Result<Message, WireError> {
    let n = normalize(raw)?;
    let start = n.start.as_str();
    let is_request = !start.starts_with("SIP/");
    // rsip 0.4 cannot parse an IPv6 reference (`sip:u@[::1]:5060`) in the request
    // line; it gets a stand-in, and the real start line is kept beside it.
    let start_line = match start.split(' ').nth(1) {
        Some(u) if is_request && u.contains('[') => {
            let method = start.split(' ').next().unwrap_or_default();
            format!("{method} sip:ipv6-reference.invalid SIP/2.0\r\n\r\n")
        }
        _ => format!("{start}\r\n\r\n"),
    };
    // rsip's own parser is not documented as panic-free; contain it.
    let parsed = std::panic::catch_unwind(|| rsip::SipMessage::try_from(start_line.as_bytes()))
        .map_err(|_| err("unparseable message"))?
        .map_err(|e| err(format!("unparseable message: {e}")))?;
    let msg = Message {
        parsed,
        start: n.start,
        headers: n.headers,
        body: n.body,
    };
    msg.check_mandatory().map_err(err)?;
    Ok(msg)
}

/// How much of a TCP stream buffer makes the next message, by Content-Length
/// (RFC 3261 §18.3). `Ok(None)` until the whole message has arrived.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    // Keep-alive CRLFs between messages (RFC 5626) are skipped by the caller.
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(err("headers exceed the message size limit"));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut length = None;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if canonical_name(name.trim()) == "Content-Length" {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| err("bad Content-Length"))?,
                );
            }
        }
    }
    // Over a stream Content-Length is mandatory.
    let length = length.ok_or_else(|| err("missing Content-Length on a stream transport"))?;
    let total = head_end + 4 + length;
    if total > MAX_MESSAGE_BYTES {
        return Err(err("message exceeds the size limit"));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// A 400 answer to a request we could not parse, when its raw headers still say where
/// the answer goes (Via, From, To, Call-ID, CSeq). `None` means drop it silently.
pub fn bad_request_reply(raw: &[u8], reason: &str) -> Option<Vec<u8>> {
    let n = normalize(raw).ok()?;
    if n.start.starts_with("SIP/") || !n.start.ends_with("SIP/2.0") {
        return None; // a response, or not SIP at all
    }
    let wanted = ["Via", "From", "To", "Call-ID", "CSeq"];
    let kept: Vec<&(String, String)> = n
        .headers
        .iter()
        .filter(|(name, _)| wanted.contains(&name.as_str()))
        .collect();
    if !wanted
        .iter()
        .all(|w| kept.iter().any(|(name, _)| name == w))
    {
        return None;
    }
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let mut out = String::from("SIP/2.0 400 Bad Request\r\n");
    for (name, value) in kept {
        push_header(&mut out, name, value);
    }
    out.push_str(&format!(
        "Warning: 399 switchyard \"{}\"\r\nContent-Length: 0\r\n\r\n",
        reason.replace('"', "'")
    ));
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPACT: &str = "INVITE sip:100@127.0.0.1 SIP/2.0\r\n\
        v: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
        f: \"Alice, A\" <sip:alice@127.0.0.1>;tag=1\r\n\
        t: <sip:100@127.0.0.1>\r\n\
        i: abc@127.0.0.1\r\n\
        cseq: 1 INVITE\r\n\
        m: <sip:alice@127.0.0.1:5061>\r\n\
        X-Custom : kept\r\n\
        Subject: folded\r\n  continuation\r\n\
        c: application/sdp\r\n\
        l: 4\r\n\r\nv=0\r\nextra";

    #[test]
    fn compact_forms_case_and_lists_become_canonical() {
        let msg = parse(COMPACT.as_bytes()).expect("parses");
        let text: String = msg
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        assert!(text.contains("Call-ID: abc@127.0.0.1"), "{text}");
        assert!(
            text.contains(
                "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP 10.0.0.1"
            ),
            "{text}"
        );
        assert!(text.contains("X-Custom: kept"), "{text}");
        assert!(text.contains("Subject: folded continuation"), "{text}");
        assert_eq!(msg.body, b"v=0\r");
        assert_eq!(msg.call_id(), "abc@127.0.0.1");
        assert_eq!(msg.top_via_branch(), Some("z9hG4bK1"));
        assert_eq!(msg.header("content-type"), Some("application/sdp"));
        // The quoted comma in the display name did not split From.
        assert!(
            text.contains("From: \"Alice, A\" <sip:alice@127.0.0.1>;tag=1"),
            "{text}"
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nVia SIP/2.0/UDP x\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort",
            b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
            b" leading\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse(&vec![b'a'; MAX_MESSAGE_BYTES + 1]).is_err());
    }

    #[test]
    fn a_bad_request_is_answered_with_its_own_routing_headers_canonical() {
        let bad = b"INVITE sip:x@h SIP/2.0\r\n\
            v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
            f: <sip:a@h>;tag=1\r\n\
            t: <sip:x@h>\r\n\
            X-Other: y\r\n\
            i: c1\r\n\
            CSeq: one INVITE\r\n\r\n";
        let reply = bad_request_reply(bad, "bad \"CSeq\"\u{7}").expect("a reply");
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            "SIP/2.0 400 Bad Request\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\n\
             To: <sip:x@h>\r\n\
             Call-ID: c1\r\n\
             CSeq: one INVITE\r\n\
             Warning: 399 switchyard \"bad 'CSeq'\"\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let no_call_id = b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCSeq: x INVITE\r\n\r\n";
        assert_eq!(
            bad_request_reply(no_call_id, "x"),
            None,
            "nowhere to answer"
        );
        let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: c\r\nCSeq: x INVITE\r\n\r\n";
        assert_eq!(
            bad_request_reply(response, "x"),
            None,
            "responses are not answered"
        );
    }

    #[test]
    fn stream_framing_follows_content_length() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(frame_len(msg), Ok(Some(msg.len() - 4)));
        assert_eq!(frame_len(&msg[..20]), Ok(None));
        assert!(frame_len(b"OPTIONS sip:x SIP/2.0\r\n\r\n").is_err());
    }

    #[test]
    fn start_line_is_kept_as_received_ipv6_uri_and_reason_phrase_included() {
        for uri in [
            "sip:service@[::1]:35629",
            "sip:[2001:db8::1]",
            "sip:a@127.0.0.1:5060",
        ] {
            let raw = format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1\r\n\
                 From: <{uri}>;tag=1\r\nTo: <{uri}>\r\nCall-ID: 1-2@::1\r\nContact: <{uri}>\r\n\
                 CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            let msg = parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{uri}: {e:?}"));
            assert_eq!(msg.request_uri(), Some(uri));
            assert!(msg.is(rsip::Method::Invite));
        }
        let resp = parse(
            b"SIP/2.0 482 Loop Detected\r\nVia: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1\r\n\
              From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (resp.status(), resp.reason().as_str()),
            (Some(482), "Loop Detected")
        );
        assert_eq!(resp.request_uri(), None);
    }

    /// A cheap in-CI fuzz: 20,000 seeded mutations (byte flips, truncations, spliced
    /// separators) of a valid message never panic the parser, the framer or the 400
    /// builder. `host/fuzz` runs the same targets coverage-guided.
    #[test]
    fn mutated_messages_never_panic() {
        let seed = COMPACT.as_bytes();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials: &[&[u8]] = &[
            b"\r\n",
            b":",
            b";",
            b",",
            b"<",
            b">",
            b"\"",
            b" ",
            b"\0",
            b"\xff",
            b"\r\n\r\n",
            b"tag=",
        ];
        for _ in 0..20_000 {
            let mut m = seed.to_vec();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() as usize) % (m.len() + 1);
                match next() % 4 {
                    0 if at < m.len() => m[at] = next() as u8,
                    1 => m.truncate(at),
                    2 => {
                        let s = specials[(next() as usize) % specials.len()];
                        m.splice(at..at, s.iter().copied());
                    }
                    _ if at < m.len() => {
                        m.remove(at);
                    }
                    _ => {}
                }
            }
            let _ = parse(&m);
            let _ = frame_len(&m);
            let _ = bad_request_reply(&m, "x");
        }
    }
}

/// Methods the metrics name; any other is counted as `OTHER`.
const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// The values of header `full` (by its full name; its compact form counts too) in a
/// raw message's head, unparsed: for looking at every message cheaply.
pub fn raw_header_values<'a>(raw: &'a [u8], full: &'a str) -> impl Iterator<Item = &'a str> {
    let head = &raw[..find(raw, b"\r\n\r\n").unwrap_or(raw.len())];
    head.split(|&b| b == b'\n').skip(1).filter_map(move |line| {
        let line = std::str::from_utf8(line).ok()?;
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        // Only a one-letter name can be compact (and expanding allocates).
        let named = name.eq_ignore_ascii_case(full)
            || (name.len() == 1 && expand_compact(name) == Some(full));
        named.then(|| value.trim())
    })
}

/// What a message is, read off its first line and CSeq without parsing it: its
/// method (a response's CSeq method) from a fixed list, and `request` or the
/// response's status class. Cheap enough for every message sent and received.
pub fn glance(raw: &[u8]) -> (&'static str, &'static str) {
    let known = |m: &[u8]| {
        KNOWN_METHODS
            .iter()
            .find(|k| k.as_bytes().eq_ignore_ascii_case(m))
            .copied()
            .unwrap_or("OTHER")
    };
    let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    if let Some(rest) = first.strip_prefix(b"SIP/2.0 ") {
        let class = match rest.first() {
            Some(b'1') => "1xx",
            Some(b'2') => "2xx",
            Some(b'3') => "3xx",
            Some(b'4') => "4xx",
            Some(b'5') => "5xx",
            Some(b'6') => "6xx",
            _ => "other",
        };
        let method = raw_header_values(raw, "CSeq")
            .next()
            .and_then(|cseq| cseq.split_whitespace().nth(1))
            .map_or("OTHER", |m| known(m.as_bytes()));
        return (method, class);
    }
    let method = first.split(|&b| b == b' ').next().unwrap_or_default();
    (known(method), "request")
}

/// A message's Call-ID (long or compact header) without parsing it.
pub fn call_id_of(raw: &[u8]) -> Option<&str> {
    raw_header_values(raw, "Call-ID").next()
}

#[cfg(test)]
mod glance_tests {
    use super::glance;

    #[test]
    fn a_glance_names_the_method_and_status_class() {
        let invite = b"INVITE sip:1@h SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(glance(invite), ("INVITE", "request"));
        let ringing = b"SIP/2.0 180 Ringing\r\nVia: x\r\ncseq:  7 invite\r\n\r\nCSeq: 1 BYE";
        assert_eq!(glance(ringing), ("INVITE", "1xx"));
        assert_eq!(glance(b"SIP/2.0 486 Busy\r\n\r\n"), ("OTHER", "4xx"));
        assert_eq!(glance(b"FROB sip:x SIP/2.0\r\n\r\n"), ("OTHER", "request"));
        assert_eq!(glance(b""), ("OTHER", "request"));
    }

    #[test]
    fn the_call_id_is_found_in_long_and_compact_form() {
        use super::call_id_of;
        assert_eq!(
            call_id_of(b"BYE x SIP/2.0\r\nCall-ID:  abc@h \r\n\r\n"),
            Some("abc@h")
        );
        assert_eq!(
            call_id_of(b"BYE x SIP/2.0\r\ni: q1\r\n\r\nCall-ID: body"),
            Some("q1")
        );
        assert_eq!(call_id_of(b"BYE x SIP/2.0\r\nVia: i: no\r\n\r\n"), None);
    }
}
