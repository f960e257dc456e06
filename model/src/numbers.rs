//! Dial-plan rules (VOS3000's number rewrites) for caller, callee and PAI numbers.

use serde::{Deserialize, Serialize};

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
        let when = match (&self.exact, self.prefix.as_str()) {
            (Some(exact), _) => Match::Exact(exact),
            (None, "") => Match::Any,
            (None, prefix) => Match::Prefix(prefix),
        };
        let len = |n: Option<u32>| n.map(|n| n as usize);
        rewrite(
            number,
            when,
            len(self.min_len),
            len(self.max_len),
            self.action(),
        )
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

/// Which numbers a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match<'a> {
    /// Every number.
    Any,
    /// Numbers starting with this.
    Prefix(&'a str),
    /// Exactly this number.
    Exact(&'a str),
}

/// `number` rewritten by a rule that matches `when`, within the inclusive length
/// bounds, doing `action`; none when the rule does not match. The one statement of
/// the dial-plan rules: the host's [`NumberRule`] and the guest SDK's rules both
/// come here.
pub fn rewrite(
    number: &str,
    when: Match<'_>,
    min_len: Option<usize>,
    max_len: Option<usize>,
    action: RuleAction<'_>,
) -> Option<String> {
    let len = number.chars().count();
    if min_len.is_some_and(|m| len < m) || max_len.is_some_and(|m| len > m) {
        return None;
    }
    let matched = match when {
        Match::Any => 0,
        Match::Prefix(p) if number.starts_with(p) => p.len(),
        Match::Exact(e) if number == e => e.len(),
        _ => return None,
    };
    Some(match action {
        RuleAction::Strip(n) => number.chars().skip(n as usize).collect(),
        RuleAction::Add(prefix) => format!("{prefix}{number}"),
        RuleAction::Replace(to) => format!("{to}{}", &number[matched..]),
        RuleAction::Keep => number.to_string(),
    })
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
pub fn check_number_rules(field: &str, rules: &[NumberRule]) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        rule.check().map_err(|e| format!("{field}[{i}]: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
