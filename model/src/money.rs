//! Money as whole millionths of the currency unit: exact sums, no float drift in
//! balances. JSON carries it as a plain number (`12.5`), rounded to the millionth.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money, in millionths of the currency unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    /// Millionths per unit.
    pub const SCALE: i64 = 1_000_000;
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// From a decimal amount, rounded to the nearest millionth.
    pub fn from_units(units: f64) -> Money {
        Money((units * Self::SCALE as f64).round() as i64)
    }

    /// From a decimal string such as `0.0123` (what rate table cells hold).
    pub fn parse(text: &str) -> Option<Money> {
        let units: f64 = text.trim().parse().ok()?;
        units.is_finite().then(|| Money::from_units(units))
    }

    /// As a decimal amount.
    pub fn units(self) -> f64 {
        self.0 as f64 / Self::SCALE as f64
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}", self.units())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.units())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let units = f64::deserialize(d)?;
        if !units.is_finite() || units.abs() > 1e12 {
            return Err(serde::de::Error::custom("amount out of range"));
        }
        Ok(Money::from_units(units))
    }
}
