//! Number rules carriers apply to caller and callee numbers: strip digits, add a
//! prefix, replace leading digits, E.164 normalisation, and ordered rule lists
//! where the first matching rule applies.

use switchyard_model::numbers as model;

/// Remove the first `n` digits (all of them when the number is shorter).
pub fn strip_digits(number: &str, n: usize) -> String {
    number.chars().skip(n).collect()
}

/// Put `prefix` in front of `number`.
pub fn add_prefix(number: &str, prefix: &str) -> String {
    format!("{prefix}{number}")
}

/// Replace the leading `from` with `to`; `None` when `number` does not start with `from`.
pub fn replace_prefix(number: &str, from: &str, to: &str) -> Option<String> {
    number.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

/// How a country writes numbers, for [`to_e164`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberingPlan {
    /// Country calling code without '+', e.g. "44".
    pub country_code: String,
    /// Trunk prefix of national numbers, e.g. "0".
    pub national_prefix: String,
    /// International call prefix, e.g. "00" (or "011" in NANP).
    pub international_prefix: String,
}

/// Normalise a dialled number to E.164 digits without '+': "+44 20 7946 0000",
/// "0044207946..." and "020 7946..." (in a "44" plan) all give "44207946...".
/// Spaces, dashes, dots and parentheses are dropped. `None` when what is left is
/// not all digits or is empty.
pub fn to_e164(number: &str, plan: &NumberingPlan) -> Option<String> {
    let compact: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = if let Some(rest) = compact.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = non_empty_strip(&compact, &plan.international_prefix) {
        rest.to_string()
    } else if let Some(rest) = non_empty_strip(&compact, &plan.national_prefix) {
        format!("{}{rest}", plan.country_code)
    } else {
        compact
    };
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

fn non_empty_strip<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        None
    } else {
        s.strip_prefix(prefix)
    }
}

/// Which numbers a [`Rule`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every number.
    Any,
    /// Numbers starting with this prefix.
    Prefix(String),
    /// Exactly this number.
    Exact(String),
}

/// What a [`Rule`] does to a number it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Remove this many leading digits.
    Strip(usize),
    /// Add this prefix.
    AddPrefix(String),
    /// Replace the matched part (the prefix, or the whole exact number) with this.
    ReplaceMatched(String),
    /// Leave the number as it is (stops a later rule from applying).
    Keep,
}

/// One transform rule: a match, optional length bounds, an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which numbers it applies to.
    pub when: Match,
    /// Inclusive minimum length of the number, if any.
    pub min_len: Option<usize>,
    /// Inclusive maximum length of the number, if any.
    pub max_len: Option<usize>,
    /// What it does.
    pub action: Action,
}

impl Rule {
    /// A rule without length bounds.
    pub fn new(when: Match, action: Action) -> Self {
        Rule {
            when,
            min_len: None,
            max_len: None,
            action,
        }
    }

    /// The rewritten number when this rule matches `number`: the host's own dial-plan
    /// rule (`switchyard_model::numbers::rewrite`), so a module and a gateway's rules
    /// agree on every number.
    pub fn apply(&self, number: &str) -> Option<String> {
        let when = match &self.when {
            Match::Any => model::Match::Any,
            Match::Prefix(p) => model::Match::Prefix(p),
            Match::Exact(e) => model::Match::Exact(e),
        };
        let action = match &self.action {
            Action::Strip(n) => model::RuleAction::Strip(u32::try_from(*n).unwrap_or(u32::MAX)),
            Action::AddPrefix(p) => model::RuleAction::Add(p),
            Action::ReplaceMatched(to) => model::RuleAction::Replace(to),
            Action::Keep => model::RuleAction::Keep,
        };
        model::rewrite(number, when, self.min_len, self.max_len, action)
    }
}

impl From<&crate::NumberRule> for Rule {
    /// A gateway's dial-plan rule as the host gives it (`carrier.routing-gateway`).
    fn from(rule: &crate::NumberRule) -> Rule {
        let when = match (&rule.exact, rule.prefix.as_str()) {
            (Some(exact), _) => Match::Exact(exact.clone()),
            (None, "") => Match::Any,
            (None, prefix) => Match::Prefix(prefix.to_string()),
        };
        let action = match &rule.action {
            crate::NumberAction::Strip(n) => Action::Strip(*n as usize),
            crate::NumberAction::AddPrefix(p) => Action::AddPrefix(p.clone()),
            crate::NumberAction::ReplaceMatched(to) => Action::ReplaceMatched(to.clone()),
            crate::NumberAction::Keep => Action::Keep,
        };
        Rule {
            when,
            min_len: rule.min_len.map(|n| n as usize),
            max_len: rule.max_len.map(|n| n as usize),
            action,
        }
    }
}

/// `number` through the first of a gateway's dial-plan `rules` that matches it.
pub fn apply_gateway_rules(rules: &[crate::NumberRule], number: &str) -> String {
    let rules: Vec<Rule> = rules.iter().map(Rule::from).collect();
    apply_first(&rules, number)
}

/// Apply the first rule of `rules` that matches; the number unchanged when none does.
pub fn apply_first(rules: &[Rule], number: &str) -> String {
    rules
        .iter()
        .find_map(|rule| rule.apply(number))
        .unwrap_or_else(|| number.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uk() -> NumberingPlan {
        NumberingPlan {
            country_code: "44".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }

    #[test]
    fn e164_normalises_every_common_form() {
        for dialled in [
            "+44 20 7946 0000",
            "00442079460000",
            "020-7946-0000",
            "442079460000",
        ] {
            assert_eq!(
                to_e164(dialled, &uk()).as_deref(),
                Some("442079460000"),
                "{dialled}"
            );
        }
        assert_eq!(to_e164("+44abc", &uk()), None);
        assert_eq!(to_e164("", &uk()), None);
    }

    #[test]
    fn simple_rewrites() {
        assert_eq!(strip_digits("99944123", 3), "44123");
        assert_eq!(strip_digits("12", 5), "");
        assert_eq!(add_prefix("44123", "#77"), "#7744123");
        assert_eq!(replace_prefix("0207", "0", "44").as_deref(), Some("44207"));
        assert_eq!(replace_prefix("1207", "0", "44"), None);
    }

    #[test]
    fn first_matching_rule_applies_in_order() {
        let rules = vec![
            Rule {
                min_len: Some(8),
                ..Rule::new(
                    Match::Prefix("0".into()),
                    Action::ReplaceMatched("44".into()),
                )
            },
            Rule::new(Match::Exact("112".into()), Action::Keep),
            Rule::new(Match::Prefix("1".into()), Action::Strip(1)),
            Rule::new(Match::Any, Action::AddPrefix("00".into())),
        ];
        assert_eq!(apply_first(&rules, "02079460000"), "442079460000");
        assert_eq!(
            apply_first(&rules, "0207"),
            "000207",
            "too short for rule 1, falls to Any"
        );
        assert_eq!(apply_first(&rules, "112"), "112");
        assert_eq!(apply_first(&rules, "1555"), "555");
        assert_eq!(apply_first(&[], "1555"), "1555");
    }
}
