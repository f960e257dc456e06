//! A parsed SIP message with the lookups the transaction and call layers need, and a
//! builder for the messages we send. Outgoing messages are built, not edited: a B2BUA
//! writes each leg's headers itself, so nothing of one leg's topology leaks into the
//! other by accident.

use std::fmt::Write as _;

/// A message that passed [`super::wire::parse`].
#[derive(Debug, Clone)]
pub struct Message {
    /// rsip's model (typed method, status code). Its Request-URI may be a stand-in:
    /// use [`Message::request_uri`].
    pub parsed: rsip::SipMessage,
    /// The start line as received (rsip's model does not keep the reason phrase,
    /// and cannot parse an IPv6 Request-URI).
    pub start: String,
    /// Headers in order, names canonical (compact forms expanded), lists split.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Message {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<&rsip::Method> {
        match &self.parsed {
            rsip::SipMessage::Request(r) => Some(&r.method),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// The status code, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.parsed {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            rsip::SipMessage::Request(_) => None,
        }
    }

    /// The reason phrase of a response, as received.
    pub fn reason(&self) -> String {
        match self.start.starts_with("SIP/") {
            true => self
                .start
                .splitn(3, ' ')
                .nth(2)
                .unwrap_or_default()
                .to_string(),
            false => String::new(),
        }
    }

    /// The Request-URI of a request, as received.
    pub fn request_uri(&self) -> Option<&str> {
        if self.start.starts_with("SIP/") {
            return None;
        }
        self.start.split(' ').nth(1)
    }

    /// Call-ID.
    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> (u32, &str) {
        let v = self.header("CSeq").unwrap_or_default();
        let mut parts = v.split_whitespace();
        let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (n, parts.next().unwrap_or_default())
    }

    /// The `branch` of the topmost Via.
    pub fn top_via_branch(&self) -> Option<&str> {
        self.header("Via").and_then(|v| param(v, "branch"))
    }

    /// The tag of From.
    pub fn from_tag(&self) -> Option<&str> {
        self.header("From").and_then(|v| param(v, "tag"))
    }

    /// The tag of To.
    pub fn to_tag(&self) -> Option<&str> {
        self.header("To").and_then(|v| param(v, "tag"))
    }

    /// Max-Forwards (70 when absent, as a proxy would assume).
    pub fn max_forwards(&self) -> Option<u32> {
        match self.header("Max-Forwards") {
            None => Some(70),
            Some(v) => v.trim().parse().ok(),
        }
    }

    /// Is this a request with the given method?
    pub fn is(&self, method: rsip::Method) -> bool {
        self.method() == Some(&method)
    }

    /// The Content-Type, when there is a body.
    pub fn content_type(&self) -> Option<&str> {
        (!self.body.is_empty())
            .then(|| self.header("Content-Type"))
            .flatten()
    }

    /// Check RFC 3261 §8.1.1's mandatory headers.
    pub(crate) fn check_mandatory(&self) -> Result<(), String> {
        for name in ["Via", "Call-ID", "From", "To", "CSeq"] {
            if self.header(name).is_none_or(str::is_empty) {
                return Err(format!("missing {name}"));
            }
        }
        let (_, method) = self.cseq();
        let number = self
            .header("CSeq")
            .unwrap_or_default()
            .split_whitespace()
            .next();
        if number.and_then(|n| n.parse::<u32>().ok()).is_none() || method.is_empty() {
            return Err("bad CSeq".into());
        }
        if let Some(m) = self.method() {
            if !method.eq_ignore_ascii_case(&m.to_string()) {
                return Err("CSeq method does not match the request method".into());
            }
        }
        Ok(())
    }
}

/// A `;name=value` parameter of a header value, outside the `<...>` URI.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The SIP URI inside a name-addr (`"Bob" <sip:bob@h>;tag=1` gives `sip:bob@h`).
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI (`sip:+4420@h;user=phone` gives `+4420`).
pub fn user_of(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    match rest.find('@') {
        Some(at) => &rest[..at],
        None => rest.split(';').next().unwrap_or(rest),
    }
}

/// The quoted (or bare) display name of a name-addr, without quotes.
pub fn display_of(value: &str) -> Option<&str> {
    let lt = value.find('<')?;
    let name = value[..lt].trim().trim_matches('"').trim();
    (!name.is_empty()).then_some(name)
}

/// A message we send, built header by header.
#[derive(Debug, Clone)]
pub struct Outgoing {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Outgoing {
    /// A request line.
    pub fn request(method: &str, uri: &str) -> Outgoing {
        Outgoing {
            start: format!("{method} {uri} SIP/2.0"),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A request carrying the headers RFC 3261 §8.1.1 requires of every request we send
    /// in a dialog or transaction: Via (with its branch), Max-Forwards 70, From, To,
    /// Call-ID and CSeq naming `method`.
    pub fn dialog_request(
        method: &str,
        uri: &str,
        via: &str,
        from: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
    ) -> Outgoing {
        Outgoing::request(method, uri)
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} {method}"))
    }

    /// A response to `req` with `code`: Via, From, To, Call-ID and CSeq copied, a tag
    /// added to To when `to_tag` is given and To has none.
    pub fn response(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Outgoing {
        let mut out = Outgoing {
            start: format!("SIP/2.0 {code} {}", clean(reason)),
            headers: Vec::new(),
            body: Vec::new(),
        };
        for (k, v) in &req.headers {
            match k.as_str() {
                "Via" | "From" | "Call-ID" | "CSeq" => out.headers.push((k.clone(), v.clone())),
                "To" => {
                    let v = match to_tag {
                        Some(tag) if param(v, "tag").is_none() && code > 100 => {
                            format!("{v};tag={tag}")
                        }
                        _ => v.clone(),
                    };
                    out.headers.push((k.clone(), v));
                }
                // RFC 3261 §12.1.1: Record-Route is copied into responses that make dialogs.
                "Record-Route" if (101..300).contains(&code) => {
                    out.headers.push((k.clone(), v.clone()))
                }
                _ => {}
            }
        }
        out
    }

    /// Add a header (control characters removed: nothing we add can split a message).
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Outgoing {
        self.push(name, value);
        self
    }

    /// Add a header in place.
    pub fn push(&mut self, name: &str, value: impl AsRef<str>) {
        self.headers.push((clean(name), clean(value.as_ref())));
    }

    /// Replace the first header of a name in place (keeping its position), or add it.
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        match self
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = clean(value.as_ref()),
            None => self.push(name, value),
        }
    }

    /// Remove every header of a name.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Set the body and its type.
    pub fn body(mut self, content_type: Option<&str>, body: &[u8]) -> Outgoing {
        self.remove("Content-Type");
        if let (Some(ct), false) = (content_type, body.is_empty()) {
            self.push("Content-Type", ct);
        }
        self.body = body.to_vec();
        self
    }

    /// Serialize, adding Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        s.push_str(&self.start);
        s.push_str("\r\n");
        for (k, v) in &self.headers {
            let _ = write!(s, "{k}: {v}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = s.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_parts() {
        let v = "\"Alice A\" <sip:+4420@10.0.0.1;user=phone>;tag=abc;x=1";
        assert_eq!(param(v, "tag"), Some("abc"));
        assert_eq!(uri_of(v), "sip:+4420@10.0.0.1;user=phone");
        assert_eq!(user_of(uri_of(v)), "+4420");
        assert_eq!(display_of(v), Some("Alice A"));
        assert_eq!(param("sip:a@b;tag=9", "tag"), Some("9"));
        assert_eq!(param("<sip:a@b;tag=uri>", "tag"), None);
    }
}
