//! A rate table compiled for lookups: every row parsed once, when the table is first
//! used after loading, and grouped by prefix in effective-date order. Call setup then
//! costs one hash probe per key length and no parsing.

use rustc_hash::FxHashMap;

use super::rating::{effective_from, Rate};
use crate::store::TableIndex;

/// The rows of one prefix.
enum PrefixRates {
    /// Oldest effective date first (no date first of all; equal dates in load order);
    /// a row that does not parse keeps its error, reported if it is ever chosen.
    Dated(Vec<(Option<u64>, Result<Rate, String>)>),
    /// A row of the prefix has an effective date that does not parse: no row of the
    /// prefix can be chosen with certainty.
    BadDate(String),
}

/// A compiled rate table; see [`RateTable::of`].
pub(super) struct RateTable {
    by_prefix: FxHashMap<Box<str>, PrefixRates>,
    /// Distinct prefix lengths, longest first.
    key_lengths: Vec<usize>,
}

impl RateTable {
    /// The rate of `number` in `table` at `now_ms`, through the table's compiled view
    /// (built on its first use after loading).
    pub(super) fn lookup_in(
        table: &TableIndex,
        number: &str,
        now_ms: u64,
    ) -> Result<Option<Rate>, String> {
        match table.derived(RateTable::compile) {
            Some(compiled) => compiled.lookup(number, now_ms),
            // The table serves another view: build this one for the lookup alone.
            None => RateTable::compile(table).lookup(number, now_ms),
        }
    }

    fn compile(table: &TableIndex) -> RateTable {
        let mut by_prefix: FxHashMap<Box<str>, PrefixRates> = FxHashMap::default();
        for row in table.rows() {
            let entry = by_prefix
                .entry(row.key.as_str().into())
                .or_insert_with(|| PrefixRates::Dated(Vec::new()));
            let PrefixRates::Dated(rates) = entry else {
                continue;
            };
            match effective_from(row) {
                Ok(from) => rates.push((from, Rate::from_row(row))),
                Err(e) => *entry = PrefixRates::BadDate(e),
            }
        }
        for rates in by_prefix.values_mut() {
            if let PrefixRates::Dated(rates) = rates {
                // Stable: equal dates stay in load order, so the later row wins.
                rates.sort_by_key(|(from, _)| *from);
            }
        }
        let mut key_lengths: Vec<usize> = by_prefix.keys().map(|k| k.len()).collect();
        key_lengths.sort_unstable_by(|a, b| b.cmp(a));
        key_lengths.dedup();
        RateTable {
            by_prefix,
            key_lengths,
        }
    }

    /// The rate of `number` in effect at `now_ms`: the longest prefix with a row in
    /// effect, and of its rows the one that took effect last.
    pub(super) fn lookup(&self, number: &str, now_ms: u64) -> Result<Option<Rate>, String> {
        for &len in &self.key_lengths {
            let Some(prefix) = number.get(..len) else {
                continue;
            };
            match self.by_prefix.get(prefix) {
                None => continue,
                Some(PrefixRates::BadDate(e)) => return Err(e.clone()),
                Some(PrefixRates::Dated(rates)) => {
                    let in_effect =
                        rates.partition_point(|(from, _)| from.is_none_or(|t| t <= now_ms));
                    if let Some((_, rate)) = in_effect.checked_sub(1).map(|i| &rates[i]) {
                        return rate.clone().map(Some);
                    }
                }
            }
        }
        Ok(None)
    }
}
