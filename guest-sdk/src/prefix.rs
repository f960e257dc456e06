//! Longest-prefix tables held inside a module, for small rule sets written in code.
//! Large tables belong in host data tables ([`crate::Host::table_longest_prefix`]),
//! which cost a module nothing to instantiate.

use std::collections::HashMap;

/// A map from number prefixes to values with longest-prefix lookup.
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    entries: HashMap<String, T>,
    longest: usize,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            entries: HashMap::new(),
            longest: 0,
        }
    }
}

impl<T> PrefixTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace the value for `prefix`. The empty prefix matches every number.
    pub fn insert(&mut self, prefix: impl Into<String>, value: T) {
        let prefix = prefix.into();
        self.longest = self.longest.max(prefix.len());
        self.entries.insert(prefix, value);
    }

    /// The value of the longest prefix of `number`, with that prefix.
    pub fn longest_match<'a>(&'a self, number: &'a str) -> Option<(&'a str, &'a T)> {
        let max = self.longest.min(number.len());
        (0..=max).rev().find_map(|len| {
            let prefix = number.get(..len)?;
            self.entries.get(prefix).map(|v| (prefix, v))
        })
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no prefix is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<P: Into<String>, T> FromIterator<(P, T)> for PrefixTable<T> {
    fn from_iter<I: IntoIterator<Item = (P, T)>>(iter: I) -> Self {
        let mut table = PrefixTable::new();
        for (prefix, value) in iter {
            table.insert(prefix, value);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_empty_prefix_is_the_default() {
        let table: PrefixTable<&str> = [("", "default"), ("44", "uk"), ("4420", "london")]
            .into_iter()
            .collect();
        assert_eq!(table.longest_match("442071234"), Some(("4420", &"london")));
        assert_eq!(table.longest_match("4413"), Some(("44", &"uk")));
        assert_eq!(table.longest_match("1212"), Some(("", &"default")));
        assert_eq!(table.longest_match("4"), Some(("", &"default")));
    }

    #[test]
    fn no_match_without_a_default() {
        let table: PrefixTable<u8> = [("33", 1)].into_iter().collect();
        assert_eq!(table.longest_match("34"), None);
        assert_eq!(table.longest_match(""), None);
    }
}
