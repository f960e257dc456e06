//! Per-gateway settings of the media path and of the caller's identity, one set per
//! leg: a mapping gateway's apply to the caller leg, a routing gateway's to the callee
//! leg (VOS3000 sets codec and DTMF "separately for each gateway and each leg"). They
//! are stored and validated here; the media layer and the stock router apply them.

use serde::{Deserialize, Serialize};

/// Whether the host relays a leg's RTP (SS_MEDIAPROXYMODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaProxy {
    /// SDP passes end to end; media flows directly.
    Off,
    /// Always relay ("Must On" in VOS3000).
    On,
    /// Relay only when needed: transcoding, DTMF conversion, NAT.
    Auto,
}

/// How a leg's codec is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecMode {
    /// Normal offer/answer between the endpoints.
    #[default]
    Auto,
    /// The leg uses `codec`, whatever the far end offers.
    Specified,
}

/// Codecs a leg can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Codec {
    /// G.711 A-law.
    Pcma,
    /// G.711 µ-law.
    Pcmu,
    /// G.729 (annex A decoders interwork).
    G729,
    /// G.723.1.
    G723,
}

/// Which G.729 names the SDP offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum G729Mode {
    /// Follow the far end.
    #[default]
    Auto,
    /// Offer `G729`.
    G729,
    /// Offer `G729a`.
    G729a,
    /// Offer both and let the far end pick.
    G729AndG729a,
}

/// DTMF methods a leg accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfReceive {
    /// Any, locked to the first method seen on the leg.
    #[default]
    All,
    /// RFC 2833/4733 telephone-events only.
    Rfc2833,
    /// SIP INFO only.
    Info,
    /// Inband tones only.
    Inband,
}

/// DTMF method used towards a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfSend {
    /// By the receiver's abilities (RFC 2833 when it offers telephone-event).
    #[default]
    Auto,
    /// RFC 2833/4733 telephone-events.
    Rfc2833,
    /// SIP INFO (application/dtmf-relay).
    Info,
    /// Inband tones.
    Inband,
}

/// Media settings of one gateway's leg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Relay mode; none = the system default (`media_proxy_mode`).
    #[serde(default)]
    pub proxy: Option<MediaProxy>,
    /// Auto negotiation or a softswitch-specified codec.
    #[serde(default)]
    pub codec_mode: CodecMode,
    /// The specified codec (needed when `codec_mode` is `specified`).
    #[serde(default)]
    pub codec: Option<Codec>,
    /// Transcode when the two legs' codecs differ.
    #[serde(default)]
    pub allow_conversion: bool,
    /// G.729 names in the SDP.
    #[serde(default)]
    pub g729: G729Mode,
    /// DTMF methods accepted from the leg.
    #[serde(default)]
    pub dtmf_receive: DtmfReceive,
    /// DTMF method used towards the leg.
    #[serde(default)]
    pub dtmf_send: DtmfSend,
    /// Advertise telephone-event to this leg only when the other leg offered it;
    /// off advertises it always.
    #[serde(default = "yes")]
    pub use_peer_rfc2833: bool,
    /// Telephone-event payload type (96-127).
    #[serde(default = "rfc2833_payload")]
    pub rfc2833_payload: u8,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            proxy: None,
            codec_mode: CodecMode::Auto,
            codec: None,
            allow_conversion: false,
            g729: G729Mode::Auto,
            dtmf_receive: DtmfReceive::All,
            dtmf_send: DtmfSend::Auto,
            use_peer_rfc2833: yes(),
            rfc2833_payload: rfc2833_payload(),
        }
    }
}

impl MediaSettings {
    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.codec_mode == CodecMode::Specified && self.codec.is_none() {
            return Err("media.codec_mode specified needs media.codec".into());
        }
        if !(96..=127).contains(&self.rfc2833_payload) {
            return Err(format!(
                "media.rfc2833_payload {} is outside the dynamic range 96-127",
                self.rfc2833_payload
            ));
        }
        Ok(())
    }
}

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

/// One number rewrite (a VOS3000 dial-plan rule). A gateway's rules are tried in
/// order and the first that matches applies: `{"prefix": "00", "strip": 2}`,
/// `{"prefix": "0", "replace": "44"}`, `{"min_len": 7, "max_len": 7, "add": "1202"}`,
/// `{"exact": "112", "replace": "999"}`. A rule with no action keeps the number (and
/// stops later rules).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRule {
    /// Numbers starting with this; empty matches every number.
    #[serde(default)]
    pub prefix: String,
    /// Only this number, instead of a prefix.
    #[serde(default)]
    pub exact: Option<String>,
    /// Shortest number it applies to.
    #[serde(default)]
    pub min_len: Option<u32>,
    /// Longest number it applies to.
    #[serde(default)]
    pub max_len: Option<u32>,
    /// Remove this many leading digits.
    #[serde(default)]
    pub strip: Option<u32>,
    /// Put this in front.
    #[serde(default)]
    pub add: Option<String>,
    /// Replace the matched part (the prefix, or the exact number) with this.
    #[serde(default)]
    pub replace: Option<String>,
}

impl NumberRule {
    /// Check the rule; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let actions = [
            self.strip.is_some(),
            self.add.is_some(),
            self.replace.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() > 1 {
            return Err("a number rule does one of strip, add or replace".into());
        }
        if self.exact.is_some() && !self.prefix.is_empty() {
            return Err("a number rule matches a prefix or an exact number, not both".into());
        }
        match (self.min_len, self.max_len) {
            (Some(min), Some(max)) if min > max => {
                Err(format!("min_len {min} is above max_len {max}"))
            }
            _ => Ok(()),
        }
    }

    /// `number` rewritten, when the rule matches it.
    pub fn apply(&self, number: &str) -> Option<String> {
        let len = number.chars().count() as u32;
        if self.min_len.is_some_and(|m| len < m) || self.max_len.is_some_and(|m| len > m) {
            return None;
        }
        let matched = match &self.exact {
            Some(e) if number == e => e.len(),
            Some(_) => return None,
            None if number.starts_with(&self.prefix) => self.prefix.len(),
            None => return None,
        };
        Some(match self.action() {
            RuleAction::Strip(n) => number.chars().skip(n as usize).collect(),
            RuleAction::Add(prefix) => format!("{prefix}{number}"),
            RuleAction::Replace(to) => format!("{to}{}", &number[matched..]),
            RuleAction::Keep => number.to_string(),
        })
    }

    /// What the rule does to a number it matches (`check` allows one action at most).
    pub fn action(&self) -> RuleAction<'_> {
        match (self.strip, &self.add, &self.replace) {
            (Some(n), _, _) => RuleAction::Strip(n),
            (_, Some(prefix), _) => RuleAction::Add(prefix),
            (_, _, Some(to)) => RuleAction::Replace(to),
            _ => RuleAction::Keep,
        }
    }
}

/// A [`NumberRule`]'s action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction<'a> {
    /// Remove this many leading digits.
    Strip(u32),
    /// Put this in front.
    Add(&'a str),
    /// Replace the matched part with this.
    Replace(&'a str),
    /// Leave the number as it is.
    Keep,
}

/// `number` through the first of `rules` that matches it; unchanged when none does.
pub fn apply_number_rules(rules: &[NumberRule], number: &str) -> String {
    rules
        .iter()
        .find_map(|r| r.apply(number))
        .unwrap_or_else(|| number.to_string())
}

/// Check each of `rules`, naming the list (`field`) and the rule in the message.
pub(super) fn check_number_rules(field: &str, rules: &[NumberRule]) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        rule.check().map_err(|e| format!("{field}[{i}]: {e}"))?;
    }
    Ok(())
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

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn rfc2833_payload() -> u8 {
    101
}

#[cfg(test)]
mod tests {
    use super::{apply_number_rules, NumberRule};

    fn rule(json: &str) -> NumberRule {
        serde_json::from_str(json).expect("a rule")
    }

    #[test]
    fn the_first_matching_number_rule_applies() {
        let rules = [
            rule(r#"{"exact": "112", "replace": "999"}"#),
            rule(r#"{"prefix": "00", "strip": 2}"#),
            rule(r#"{"prefix": "0", "replace": "44"}"#),
            rule(r#"{"min_len": 7, "max_len": 7, "add": "1202"}"#),
        ];
        for (number, want) in [
            ("112", "999"),
            ("1120", "1120"),
            ("00442071234567", "442071234567"),
            ("02071234567", "442071234567"),
            ("5551234", "12025551234"),
            ("555123", "555123"),
        ] {
            assert_eq!(apply_number_rules(&rules, number), want, "{number}");
        }
        assert!(rule(r#"{"strip": 1, "add": "1"}"#).check().is_err());
        assert!(rule(r#"{"prefix": "1", "exact": "1"}"#).check().is_err());
        assert!(rule(r#"{"min_len": 5, "max_len": 4}"#).check().is_err());
        assert!(serde_json::from_str::<NumberRule>(r#"{"strp": 1}"#).is_err());
    }

    use super::*;

    #[test]
    fn settings_read_the_spec_names_and_refuse_nonsense() {
        let m: MediaSettings = serde_json::from_str(
            r#"{"proxy":"auto","codec_mode":"specified","codec":"G729","g729":"g729_and_g729a"}"#,
        )
        .unwrap();
        assert_eq!(
            (m.proxy, m.codec, m.g729, m.rfc2833_payload),
            (
                Some(MediaProxy::Auto),
                Some(Codec::G729),
                G729Mode::G729AndG729a,
                101
            )
        );
        assert!(m.check().is_ok());
        let no_codec: MediaSettings =
            serde_json::from_str(r#"{"codec_mode":"specified"}"#).unwrap();
        assert!(no_codec.check().is_err());
        let low: MediaSettings = serde_json::from_str(r#"{"rfc2833_payload":8}"#).unwrap();
        assert!(low.check().is_err());
        let pool: CallerPool = serde_json::from_str(r#"{"numbers":["+4420","x1"]}"#).unwrap();
        assert!(pool.check().unwrap_err().contains("x1"));
    }
}
