//! A module's answer is untrusted input: check it before the SIP layer uses it. Header
//! values must not smuggle line breaks (header injection), sizes are bounded, codes valid.

use super::limits::*;
use switchyard_model::call::{Attempt, Decision, Header, NextStep, Reject, Verdict};

/// Why an answer was refused.
pub type Malformed = String;

fn text(what: &str, value: &str, max: usize) -> Result<(), Malformed> {
    if value.len() > max {
        return Err(format!(
            "{what} is {} bytes, over the limit of {max}",
            value.len()
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{what} contains control characters (CR/LF/NUL)"));
    }
    Ok(())
}

fn sip_user(what: &str, value: &str) -> Result<(), Malformed> {
    text(what, value, MAX_FIELD_BYTES)?;
    // RFC 3261 user part: unreserved, escaped and user-unreserved characters.
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,;?/#".contains(c);
    if value.is_empty() || !value.chars().all(ok) {
        return Err(format!("{what} {value:?} is not a valid SIP user part"));
    }
    Ok(())
}

fn token(what: &str, value: &str) -> Result<(), Malformed> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if value.is_empty() || value.len() > 64 || !value.chars().all(ok) {
        return Err(format!("{what} {value:?} is not a valid header name"));
    }
    Ok(())
}

fn reject(r: &Reject) -> Result<(), Malformed> {
    if !(400..=699).contains(&r.code) {
        return Err(format!(
            "reject code {} is not a SIP failure code (400-699)",
            r.code
        ));
    }
    text("reject reason", &r.reason, 128)
}

fn headers(list: &[Header]) -> Result<(), Malformed> {
    for h in list {
        token("added header", &h.name)?;
        text(
            &format!("header {}", h.name),
            &h.value,
            MAX_HEADER_VALUE_BYTES,
        )?;
    }
    Ok(())
}

/// Check one attempt.
pub fn attempt(a: &Attempt) -> Result<(), Malformed> {
    text("gateway", &a.gateway, MAX_FIELD_BYTES)?;
    if a.gateway.is_empty() {
        return Err("attempt has an empty gateway id".into());
    }
    sip_user("callee", &a.callee)?;
    if let Some(c) = &a.caller {
        sip_user("caller", c)?;
    }
    for (what, v) in [
        ("display", &a.display),
        ("p-asserted-identity", &a.p_asserted_identity),
        ("privacy", &a.privacy),
        ("p-preferred-identity", &a.p_preferred_identity),
    ] {
        if let Some(v) = v {
            text(what, v, MAX_HEADER_VALUE_BYTES)?;
        }
    }
    if a.add_headers.len() > MAX_HEADERS_PER_ATTEMPT
        || a.remove_headers.len() > MAX_HEADERS_PER_ATTEMPT
    {
        return Err(format!(
            "an attempt may add or remove at most {MAX_HEADERS_PER_ATTEMPT} headers"
        ));
    }
    headers(&a.add_headers)?;
    for name in &a.remove_headers {
        token("removed header", name)?;
    }
    if a.timeout_ms
        .is_some_and(|t| t == 0 || t > MAX_ATTEMPT_TIMEOUT_MS)
    {
        return Err(format!(
            "attempt timeout must be 1..={MAX_ATTEMPT_TIMEOUT_MS} ms"
        ));
    }
    Ok(())
}

/// Check a routing decision.
pub fn decision(d: &Decision) -> Result<(), Malformed> {
    match d {
        Decision::Attempts(list) => {
            if list.is_empty() {
                return Err("decision lists no attempts (reject the call instead)".into());
            }
            if list.len() > MAX_ATTEMPTS {
                return Err(format!(
                    "decision lists {} attempts; at most {MAX_ATTEMPTS} are allowed",
                    list.len()
                ));
            }
            list.iter()
                .enumerate()
                .try_for_each(|(i, a)| attempt(a).map_err(|e| format!("attempt {i}: {e}")))
        }
        Decision::Reject(r) => reject(r),
    }
}

/// Check a screening verdict.
pub fn verdict(v: &Verdict) -> Result<(), Malformed> {
    match v {
        Verdict::Reject(r) => reject(r),
        Verdict::Allow | Verdict::AllowWithLimits(_) => Ok(()),
    }
}

/// Check a failover step.
pub fn next_step(n: &NextStep) -> Result<(), Malformed> {
    match n {
        NextStep::Continue => Ok(()),
        NextStep::Insert(a) => attempt(a),
        NextStep::Stop(r) => reject(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_attempt() -> Attempt {
        Attempt {
            gateway: "gw".into(),
            callee: "+44207".into(),
            caller: None,
            display: None,
            p_asserted_identity: Some("<sip:+44@x>".into()),
            privacy: None,
            p_preferred_identity: None,
            add_headers: vec![],
            remove_headers: vec![],
            timeout_ms: Some(8000),
        }
    }

    #[test]
    fn well_formed_answers_pass() {
        assert!(decision(&Decision::Attempts(vec![ok_attempt()])).is_ok());
        assert!(decision(&Decision::Reject(Reject {
            code: 486,
            reason: "Busy".into()
        }))
        .is_ok());
    }

    #[test]
    fn header_injection_and_bad_values_are_refused() {
        let mut a = ok_attempt();
        a.display = Some("x\r\nVia: evil".into());
        assert!(attempt(&a).unwrap_err().contains("control"));
        let mut a = ok_attempt();
        a.callee = "44 20".into();
        assert!(attempt(&a).is_err());
        let mut a = ok_attempt();
        a.add_headers = vec![Header {
            name: "Bad Name".into(),
            value: "v".into(),
        }];
        assert!(attempt(&a).is_err());
        let mut a = ok_attempt();
        a.timeout_ms = Some(0);
        assert!(attempt(&a).is_err());
        assert!(decision(&Decision::Reject(Reject {
            code: 200,
            reason: String::new()
        }))
        .is_err());
        assert!(decision(&Decision::Attempts(vec![])).is_err());
        assert!(decision(&Decision::Attempts(vec![ok_attempt(); MAX_ATTEMPTS + 1])).is_err());
    }
}
