//! Per-gateway settings of the caller's identity (PAI, Privacy, caller pools, where
//! the caller number is read), of which extra headers pass, and of route ordering.

use serde::{Deserialize, Serialize};

/// Where the caller number of an inbound call is read (VOS3000 "peer number
/// information").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerSource {
    /// The From user.
    #[default]
    From,
    /// The Remote-Party-ID user.
    RemotePartyId,
    /// The From display name.
    Display,
}

/// P-Asserted-Identity and P-Preferred-Identity towards a vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Send none.
    #[default]
    None,
    /// Copy the inbound header unchanged.
    Passthrough,
    /// Build it from the call's caller number.
    Caller,
}

/// The Privacy header towards a vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyMode {
    /// Send none.
    #[default]
    None,
    /// Copy the inbound one (when the mapping gateway supports privacy).
    Passthrough,
    /// Always `Privacy: id`.
    Id,
}

/// How pool numbers are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolSelection {
    /// In turn.
    #[default]
    RoundRobin,
    /// At random.
    Random,
}

/// How a customer's candidate gateways are ordered within a matched prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteBy {
    /// Priority, then line usage (VOS3000's default sorting).
    #[default]
    Priority,
    /// Vendor cost for the number, cheapest first (LCR; SS_GATEWAYFEERATEROUTESORTCONFIG),
    /// then priority; gateways without a cost last.
    Cost,
    /// Recent ASR, highest first (SS_GATEWAYASRROUTESORTCONFIG), then priority; a gateway
    /// not yet measured (fewer than `asr_min_attempts` attempts) ranks as if at ASR 1.
    Asr,
}

/// Which extra headers of the caller's INVITE (the `X-` headers modules see) go on to
/// a vendor: `"none"`, `"all"`, or a list of names (any case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtraHeaders {
    /// These names only ("Allow specified extra header fields").
    Only(Vec<String>),
    /// None or all of them.
    Mode(ExtraHeadersMode),
}

/// `"none"` or `"all"` for [`ExtraHeaders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraHeadersMode {
    /// No extra header goes on.
    None,
    /// Every one goes on ("Allow all extra header fields").
    All,
}

impl Default for ExtraHeaders {
    fn default() -> Self {
        ExtraHeaders::Mode(ExtraHeadersMode::None)
    }
}

impl ExtraHeaders {
    /// Check the names; the message says which is wrong.
    pub fn check(&self) -> Result<(), String> {
        let token = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        };
        match self {
            ExtraHeaders::Only(names) => match names.iter().find(|n| !token(n)) {
                Some(bad) => Err(format!("extra_headers: {bad:?} is not a header name")),
                None => Ok(()),
            },
            ExtraHeaders::Mode(_) => Ok(()),
        }
    }
}

/// A routing gateway's caller number pool: its numbers replace the caller in From
/// and PAI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerPool {
    /// The numbers.
    pub numbers: Vec<String>,
    /// Round robin or random.
    #[serde(default)]
    pub selection: PoolSelection,
    /// Calls that may use one number at the same time ("Multiplexes").
    #[serde(default = "one")]
    pub multiplexes: u32,
    /// When every number is at its limit, skip the gateway instead of keeping the
    /// caller's own number.
    #[serde(default)]
    pub required: bool,
}

impl CallerPool {
    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.numbers.is_empty() {
            return Err("caller_pool.numbers is empty".into());
        }
        if let Some(bad) = self.numbers.iter().find(|n| !is_number(n)) {
            return Err(format!("caller_pool number {bad:?} is not a phone number"));
        }
        if self.multiplexes == 0 {
            return Err("caller_pool.multiplexes must be at least 1".into());
        }
        Ok(())
    }
}

/// Digits with an optional leading `+`.
fn is_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_pool_refuses_what_is_not_a_number() {
        let pool: CallerPool = serde_json::from_str(r#"{"numbers":["+4420","x1"]}"#).unwrap();
        assert!(pool.check().unwrap_err().contains("x1"));
        let ok: CallerPool = serde_json::from_str(r#"{"numbers":["+4420"]}"#).unwrap();
        assert_eq!((ok.check(), ok.multiplexes), (Ok(()), 1));
    }
}
