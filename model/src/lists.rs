//! Number blacklists and whitelists (VOS3000's caller/callee number restrictions),
//! and a tenant's address lists.
//!
//! Number lists:
//! A list names a data table of numbers; each row's key is a number, matched exactly
//! or, when its first field is `prefix`, as a prefix. A deny list refuses a number it
//! holds; an allow list refuses every number it does not hold. Lists apply at one
//! scope: every call of the tenant, an account's calls, a mapping gateway's calls, or
//! the attempts sent to one routing gateway.

use serde::{Deserialize, Serialize};

/// Whether the list's numbers are refused or are the only ones let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// A blacklist: a number on it is refused.
    #[default]
    Deny,
    /// A whitelist: a number not on it is refused.
    Allow,
}

/// Which number of the call a list is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberSide {
    /// The caller, after the mapping gateway's caller rules (or, at a routing
    /// gateway, as sent to the vendor).
    Caller,
    /// The callee, after the mapping gateway's callee rules (or as sent to the vendor).
    #[default]
    Callee,
}

/// Where a list applies: `global`, `account:<id>`, `mapping-gateway:<id>` or
/// `routing-gateway:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListScope {
    /// Every call of the tenant.
    Global,
    /// Calls billed to this account.
    Account(String),
    /// Calls arriving through this mapping gateway.
    MappingGateway(String),
    /// Attempts sent to this routing gateway: a refused attempt is skipped.
    RoutingGateway(String),
}

impl std::fmt::Display for ListScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListScope::Global => f.write_str("global"),
            ListScope::Account(id) => write!(f, "account:{id}"),
            ListScope::MappingGateway(id) => write!(f, "mapping-gateway:{id}"),
            ListScope::RoutingGateway(id) => write!(f, "routing-gateway:{id}"),
        }
    }
}

impl std::str::FromStr for ListScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "global" => Ok(ListScope::Global),
            Some(("account", id)) if !id.is_empty() => Ok(ListScope::Account(id.into())),
            Some(("mapping-gateway", id)) if !id.is_empty() => {
                Ok(ListScope::MappingGateway(id.into()))
            }
            Some(("routing-gateway", id)) if !id.is_empty() => {
                Ok(ListScope::RoutingGateway(id.into()))
            }
            _ => Err(format!(
                "scope {s:?} is not one of \"global\", \"account:<id>\", \
                 \"mapping-gateway:<id>\", \"routing-gateway:<id>\""
            )),
        }
    }
}

impl Serialize for ListScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A number list (REST kind `number-lists`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberList {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Deny (blacklist) or allow (whitelist).
    #[serde(default)]
    pub kind: ListKind,
    /// Caller or callee.
    #[serde(default)]
    pub number: NumberSide,
    /// Where it applies.
    pub scope: ListScope,
    /// The data table holding its numbers (a missing table is an empty list).
    pub table: String,
    /// SIP status a refused call is answered with.
    #[serde(default = "default_code")]
    pub code: u16,
    /// Reason phrase of that answer.
    #[serde(default = "default_reason")]
    pub reason: String,
    /// A disabled list is kept but not checked.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_code() -> u16 {
    403
}

fn default_reason() -> String {
    "Number Not Allowed".into()
}

fn yes() -> bool {
    true
}

impl NumberList {
    /// Check its fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !(400..=699).contains(&self.code) {
            return Err(format!("code {} is not a SIP failure (400-699)", self.code));
        }
        if self.table.is_empty() {
            return Err("table is empty: name the data table holding the numbers".into());
        }
        if self.reason.is_empty() || self.reason.contains(['\r', '\n']) {
            return Err("reason must be one non-empty line".into());
        }
        Ok(())
    }
}

/// A tenant's list of source addresses (REST kind `address-lists`): a deny list refuses
/// calls from its sources to the tenant's gateways; an allow list refuses calls from
/// every other source. The switch-wide lists are `--sip-deny` and `--sip-allow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressList {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Deny or allow.
    #[serde(default)]
    pub kind: ListKind,
    /// Addresses and CIDR prefixes.
    pub sources: Vec<String>,
    /// A disabled list is kept but not checked.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl AddressList {
    /// Check its fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if let Some(bad) = self
            .sources
            .iter()
            .find(|s| !crate::address::valid_source(s))
        {
            return Err(format!(
                "source {bad:?} is not an IP address or CIDR prefix"
            ));
        }
        if self.kind == ListKind::Allow && self.sources.is_empty() {
            return Err("an allow list with no sources would refuse every call".into());
        }
        Ok(())
    }

    /// The entry holding `ip`, if any.
    pub fn entry_for(&self, ip: std::net::IpAddr) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| crate::address::ip_in(s, ip))
            .map(String::as_str)
    }
}

/// Why a list refused a number, for the call record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    /// The list's id.
    pub list: String,
    /// The entry that matched (a deny list), or none (a number missing from an allow list).
    #[serde(default)]
    pub entry: Option<String>,
    /// The number refused.
    pub number: String,
    /// Which number it was.
    pub side: NumberSide,
}

impl ListHit {
    /// The refusal in words, as the call record's reason and the `Reason` header say it.
    pub fn describe(&self) -> String {
        let side = match self.side {
            NumberSide::Caller => "caller",
            NumberSide::Callee => "callee",
        };
        match &self.entry {
            Some(entry) => format!(
                "{side} {} is on number list {} (entry {entry})",
                self.number, self.list
            ),
            None => format!("{side} {} is not on allow list {}", self.number, self.list),
        }
    }
}

/// Whether a table row (its key and first field) holds `number`.
pub fn entry_matches(key: &str, first_field: Option<&str>, number: &str) -> bool {
    if first_field.is_some_and(|f| f.eq_ignore_ascii_case("prefix")) {
        number.starts_with(key)
    } else {
        number == key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_bad_ones_say_what_is_allowed() {
        for s in [
            "global",
            "account:a1",
            "mapping-gateway:m",
            "routing-gateway:r",
        ] {
            assert_eq!(s.parse::<ListScope>().unwrap().to_string(), s);
        }
        let err = "gateway:x".parse::<ListScope>().unwrap_err();
        assert!(err.contains("routing-gateway:<id>"), "{err}");
        assert!("account:".parse::<ListScope>().is_err());
    }

    #[test]
    fn exact_and_prefix_entries() {
        assert!(entry_matches("881", Some("prefix"), "88112"));
        assert!(!entry_matches("881", None, "88112"));
        assert!(entry_matches("88112", Some("exact"), "88112"));
        assert!(!entry_matches("4420", Some("PREFIX"), "442"));
    }

    #[test]
    fn a_list_is_checked() {
        let list: NumberList =
            serde_json::from_str(r#"{"scope": "global", "table": "bl"}"#).unwrap();
        assert_eq!(
            (list.code, list.kind, list.number),
            (403, ListKind::Deny, NumberSide::Callee)
        );
        assert!(list.check().is_ok());
        let bad = NumberList { code: 200, ..list };
        assert!(bad.check().unwrap_err().contains("200"));
    }
}
