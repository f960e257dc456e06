//! Rates and what a call costs under them. A rate table is a data table whose rows are
//! `prefix, per-minute, connection fee, first increment s, next increment s`
//! (fee defaults to 0, first to 60, next to first); the callee's longest matching
//! prefix picks the rate.

use serde::Serialize;

use super::Money;
use crate::store::{Row, TableIndex};

/// One rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    /// The prefix that matched.
    pub prefix: String,
    /// Price of a minute.
    pub per_minute: Money,
    /// Charged once per answered call.
    pub connection_fee: Money,
    /// The first billed block, seconds (60/60, 30/6, 1/1 billing ...).
    pub first_increment_secs: u32,
    /// Every later block, seconds.
    pub next_increment_secs: u32,
}

impl Rate {
    /// The rate a row describes; the error says what is wrong with it.
    pub fn from_row(row: &Row) -> Result<Rate, String> {
        let field = |i: usize| {
            row.fields
                .get(i)
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
        };
        let bad = |what: &str| format!("row {:?}: bad {what}", row.key);
        let per_minute = field(0)
            .and_then(Money::parse)
            .filter(|m| *m >= Money::ZERO)
            .ok_or_else(|| bad("per-minute price"))?;
        let connection_fee = match field(1) {
            None => Money::ZERO,
            Some(f) => Money::parse(f)
                .filter(|m| *m >= Money::ZERO)
                .ok_or_else(|| bad("connection fee"))?,
        };
        let secs = |i: usize, default: u32, what: &str| match field(i) {
            None => Ok(default),
            Some(f) => f
                .parse::<u32>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| bad(what)),
        };
        let first = secs(2, 60, "first increment")?;
        let next = secs(3, first, "next increment")?;
        Ok(Rate {
            prefix: row.key.clone(),
            per_minute,
            connection_fee,
            first_increment_secs: first,
            next_increment_secs: next,
        })
    }

    /// The rate of `number` in `table`: none when no prefix matches.
    pub fn lookup(table: &TableIndex, number: &str) -> Result<Option<Rate>, String> {
        table
            .prefixes(number)
            .next()
            .map(Rate::from_row)
            .transpose()
    }

    /// Seconds billed for a call of `duration_secs`: nothing for zero, else the first
    /// increment and then whole next increments, rounded up.
    pub fn billed_secs(&self, duration_secs: u64) -> u64 {
        if duration_secs == 0 {
            return 0;
        }
        let first = u64::from(self.first_increment_secs);
        let next = u64::from(self.next_increment_secs);
        if duration_secs <= first {
            return first;
        }
        first + (duration_secs - first).div_ceil(next) * next
    }

    /// The charge for a call of `duration_secs` (none for an unanswered call, which
    /// has zero): connection fee plus the billed seconds at the per-minute price,
    /// rounded up to the millionth.
    pub fn charge(&self, duration_secs: u64) -> Money {
        let billed = self.billed_secs(duration_secs);
        if billed == 0 {
            return Money::ZERO;
        }
        // Prices are never negative, so this is a ceiling division.
        let time = (u128::from(self.per_minute.0.unsigned_abs()) * u128::from(billed)).div_ceil(60);
        self.connection_fee + Money(time.min(i64::MAX as u128) as i64)
    }

    /// The longest call `funds` pay for, seconds (always a whole increment); none when
    /// the price is zero (funds never run out).
    pub fn max_duration_secs(&self, funds: Money) -> Option<u64> {
        if self.per_minute == Money::ZERO {
            return (funds >= self.connection_fee)
                .then_some(u64::MAX)
                .or(Some(0));
        }
        let for_time = funds - self.connection_fee;
        if for_time < Money::ZERO {
            return Some(0);
        }
        let affordable = (i128::from(for_time.0) * 60 / i128::from(self.per_minute.0)) as u64;
        let first = u64::from(self.first_increment_secs);
        if affordable < first {
            return Some(0);
        }
        let next = u64::from(self.next_increment_secs);
        Some(first + (affordable - first) / next * next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_minute: &str, fee: &str, first: u32, next: u32) -> Rate {
        Rate::from_row(&Row {
            key: "44".into(),
            fields: vec![
                per_minute.into(),
                fee.into(),
                first.to_string(),
                next.to_string(),
            ],
        })
        .unwrap()
    }

    #[test]
    fn increments_round_up_and_zero_duration_is_free() {
        let r = rate("0.60", "0", 30, 6);
        assert_eq!(r.billed_secs(0), 0);
        assert_eq!(r.billed_secs(1), 30);
        assert_eq!(r.billed_secs(30), 30);
        assert_eq!(r.billed_secs(31), 36);
        assert_eq!(r.billed_secs(36), 36);
        assert_eq!(r.billed_secs(37), 42);
        assert_eq!(r.charge(0), Money::ZERO);
        assert_eq!(r.charge(31), Money::from_units(0.36)); // 36 s at 0.60/min
        let per_minute = rate("1", "0", 60, 60);
        assert_eq!(per_minute.charge(61), Money::from_units(2.0));
        let per_second = rate("0.06", "0", 1, 1);
        assert_eq!(per_second.charge(61), Money::from_units(0.061));
    }

    #[test]
    fn connection_fee_is_charged_once_on_answered_calls() {
        let r = rate("1.20", "0.05", 60, 60);
        assert_eq!(r.charge(0), Money::ZERO);
        assert_eq!(r.charge(10), Money::from_units(1.25));
        assert_eq!(r.charge(125), Money::from_units(3.65));
    }

    #[test]
    fn sub_millionth_prices_round_up_not_away() {
        // 0.000007/min for 1 s is 0.0000001166..: still charged one millionth.
        assert_eq!(rate("0.000007", "0", 1, 1).charge(1), Money(1));
    }

    #[test]
    fn max_duration_is_the_longest_whole_increment_the_funds_cover() {
        let r = rate("0.60", "0.10", 30, 6);
        // 0.10 fee leaves 0.40: 40 s of time, so 36 s (30 + one 6 s block).
        assert_eq!(r.max_duration_secs(Money::from_units(0.50)), Some(36));
        assert!(r.charge(36) <= Money::from_units(0.50));
        assert!(r.charge(37) > Money::from_units(0.50));
        // Less than the fee and the first block: nothing.
        assert_eq!(r.max_duration_secs(Money::from_units(0.35)), Some(0));
        assert_eq!(r.max_duration_secs(Money::from_units(-1.0)), Some(0));
        assert_eq!(
            rate("0", "0", 60, 60).max_duration_secs(Money::ZERO),
            Some(u64::MAX)
        );
    }

    #[test]
    fn the_longest_prefix_picks_the_rate_and_bad_rows_say_why() {
        let table = TableIndex::new(vec![
            Row {
                key: "44".into(),
                fields: vec!["0.10".into()],
            },
            Row {
                key: "4420".into(),
                fields: vec!["0.05".into(), "".into(), "1".into()],
            },
            Row {
                key: "33".into(),
                fields: vec!["cheap".into()],
            },
        ]);
        let london = Rate::lookup(&table, "442071234567").unwrap().unwrap();
        assert_eq!(
            (
                london.prefix.as_str(),
                london.first_increment_secs,
                london.next_increment_secs
            ),
            ("4420", 1, 1)
        );
        assert_eq!(
            Rate::lookup(&table, "4413").unwrap().unwrap().per_minute,
            Money::from_units(0.10)
        );
        assert!(Rate::lookup(&table, "1212").unwrap().is_none());
        assert!(Rate::lookup(&table, "331")
            .unwrap_err()
            .contains("per-minute"));
    }
}
