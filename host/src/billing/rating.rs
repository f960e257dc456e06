//! Rates and what a call costs under them. A rate table is a data table whose rows are
//! `prefix, per-minute, connection fee, first increment s, next increment s, effective
//! from` (fee defaults to 0, first to 60, next to first; effective from is a UTC date
//! `2026-12-01` or instant `2026-12-01T08:00:00Z`, empty = always). The callee's longest
//! prefix with a rate in effect picks it; of several rows for that prefix, the one that
//! took effect last wins, so a price change is loaded ahead of its date.

use serde::Serialize;

use crate::store::{Row, TableIndex};
use switchyard_model::Money;

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
    /// In effect from, Unix ms (none: always).
    pub effective_from_ms: Option<u64>,
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
        let effective_from_ms = effective_from(row)?;
        Ok(Rate {
            prefix: row.key.clone(),
            per_minute,
            connection_fee,
            first_increment_secs: first,
            next_increment_secs: next,
            effective_from_ms,
        })
    }

    /// The rate of `number` in `table` in effect at `now_ms`: none when no prefix has
    /// one.
    pub fn lookup(table: &TableIndex, number: &str, now_ms: u64) -> Result<Option<Rate>, String> {
        super::rate_table::RateTable::lookup_in(table, number, now_ms)
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

/// When a row's rate takes effect (its sixth field), Unix ms; none: always.
pub(super) fn effective_from(row: &Row) -> Result<Option<u64>, String> {
    match row
        .fields
        .get(4)
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    {
        None => Ok(None),
        Some(f) => parse_instant(f)
            .map(Some)
            .ok_or_else(|| format!("row {:?}: bad effective date", row.key)),
    }
}

/// `2026-12-01` (UTC midnight) or an RFC 3339 instant, as Unix ms.
fn parse_instant(text: &str) -> Option<u64> {
    let at = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => date.and_hms_opt(0, 0, 0)?.and_utc(),
        Err(_) => chrono::DateTime::parse_from_rfc3339(text).ok()?.to_utc(),
    };
    u64::try_from(at.timestamp_millis()).ok()
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
        let london = Rate::lookup(&table, "442071234567", 0).unwrap().unwrap();
        assert_eq!(
            (
                london.prefix.as_str(),
                london.first_increment_secs,
                london.next_increment_secs
            ),
            ("4420", 1, 1)
        );
        assert_eq!(
            Rate::lookup(&table, "4413", 0).unwrap().unwrap().per_minute,
            Money::from_units(0.10)
        );
        assert!(Rate::lookup(&table, "1212", 0).unwrap().is_none());
        assert!(Rate::lookup(&table, "331", 0)
            .unwrap_err()
            .contains("per-minute"));
    }

    #[test]
    fn a_price_change_takes_effect_on_its_date_and_not_before() {
        let row = |key: &str, price: &str, from: &str| Row {
            key: key.into(),
            fields: vec![price.into(), "".into(), "".into(), "".into(), from.into()],
        };
        let table = TableIndex::new(vec![
            row("44", "0.10", ""),
            row("44", "0.08", "2026-12-01"),
            row("44", "0.09", "2026-11-01"),
            // A new, more specific prefix that only starts next year.
            row("4420", "0.05", "2027-01-01T00:00:00Z"),
        ]);
        let at = |date: &str| parse_instant(date).unwrap();
        let price = |now: u64| Rate::lookup(&table, "442071234567", now).unwrap().unwrap();
        assert_eq!(price(at("2026-10-15")).per_minute, Money::from_units(0.10));
        assert_eq!(price(at("2026-11-23")).per_minute, Money::from_units(0.09));
        assert_eq!(price(at("2026-12-01")).per_minute, Money::from_units(0.08));
        let next_year = price(at("2027-01-01"));
        assert_eq!(
            (next_year.prefix.as_str(), next_year.per_minute),
            ("4420", Money::from_units(0.05))
        );
        assert!(Rate::from_row(&row("44", "0.1", "soon"))
            .unwrap_err()
            .contains("effective date"));
    }
}
