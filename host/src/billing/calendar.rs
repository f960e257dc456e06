//! Work calendars (spec decision 16): a time zone, working days, holidays and named
//! periods of the day; an account binds rate tables to period names, so a call is
//! rated by the table of the period it starts in.

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

/// Which days a period applies on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Days {
    /// Every day.
    #[default]
    All,
    /// Working days that are not holidays.
    Working,
    /// Weekends and holidays.
    NonWorking,
}

/// A named period: [start, end) local time; it may cross midnight (22:00-06:00), and
/// then its day is the day it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Name rate tables are bound to (`peak`, `night` ...).
    pub name: String,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`; equal to start means the whole day.
    pub end: String,
    /// Which days.
    #[serde(default)]
    pub days: Days,
}

/// A calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// IANA time zone the periods are in.
    pub time_zone: String,
    /// Working days, 1 = Monday .. 7 = Sunday.
    #[serde(default = "monday_to_friday")]
    pub working_days: Vec<u8>,
    /// Holidays (`2026-12-25`): not working days.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Periods, in order of precedence.
    #[serde(default)]
    pub periods: Vec<Period>,
}

fn monday_to_friday() -> Vec<u8> {
    vec![1, 2, 3, 4, 5]
}

fn time_of(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

// Calendars are stored with the carrier objects.
crate::owned_by_tenant!(Calendar, "calendars", Calendar::check);

impl Calendar {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        self.time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("time zone {:?} is not an IANA zone", self.time_zone))?;
        if let Some(d) = self.working_days.iter().find(|d| !(1..=7).contains(*d)) {
            return Err(format!("working day {d} is not 1 (Monday) to 7 (Sunday)"));
        }
        if let Some(h) = self
            .holidays
            .iter()
            .find(|h| NaiveDate::parse_from_str(h, "%Y-%m-%d").is_err())
        {
            return Err(format!("holiday {h:?} is not YYYY-MM-DD"));
        }
        for p in &self.periods {
            if time_of(&p.start).is_none() || time_of(&p.end).is_none() {
                return Err(format!("period {:?}: start and end are HH:MM", p.name));
            }
        }
        Ok(())
    }

    fn is_working(&self, date: NaiveDate) -> bool {
        let weekday = date.weekday().number_from_monday() as u8;
        self.working_days.contains(&weekday)
            && !self
                .holidays
                .iter()
                .any(|h| *h == date.format("%Y-%m-%d").to_string())
    }

    /// The names of the periods `at_ms` falls in, in order of precedence.
    pub fn periods_at(&self, at_ms: u64) -> Vec<&str> {
        let Ok(tz) = self.time_zone.parse::<chrono_tz::Tz>() else {
            return Vec::new();
        };
        let Some(at) = i64::try_from(at_ms)
            .ok()
            .and_then(|ms| chrono::Utc.timestamp_millis_opt(ms).single())
        else {
            return Vec::new();
        };
        let local = at.with_timezone(&tz).naive_local();
        let (today, now) = (local.date(), local.time());
        let minute = |t: NaiveTime| t.hour() * 60 + t.minute();
        self.periods
            .iter()
            .filter(|p| {
                let (Some(start), Some(end)) = (time_of(&p.start), time_of(&p.end)) else {
                    return false;
                };
                let (s, e, n) = (minute(start), minute(end), minute(now));
                // The day the period began: yesterday for the small hours of a period
                // that crosses midnight.
                let began = if s == e || (s < e && (s..e).contains(&n)) || (s > e && n >= s) {
                    Some(today)
                } else if s > e && n < e {
                    today.pred_opt()
                } else {
                    None
                };
                began.is_some_and(|day| match p.days {
                    Days::All => true,
                    Days::Working => self.is_working(day),
                    Days::NonWorking => !self.is_working(day),
                })
            })
            .map(|p| p.name.as_str())
            .collect()
    }
}

/// The rate tables to try, in order, for a price at `now_ms`: the table `by_period`
/// binds to each period `calendar` (of `tenant`) is in, in precedence order, then
/// `default`. An error names a calendar that does not exist.
pub(super) fn tables_at<'a>(
    store: &crate::store::Store,
    tenant: &str,
    calendar: Option<&str>,
    by_period: &'a std::collections::BTreeMap<String, String>,
    default: Option<&'a str>,
    now_ms: u64,
) -> Result<Vec<&'a str>, String> {
    let mut tables = Vec::new();
    if let Some(id) = calendar.filter(|_| !by_period.is_empty()) {
        let calendar = match store.carrier_get::<Calendar>(id) {
            Ok(Some(c)) if c.tenant == tenant => c,
            Ok(_) => return Err(format!("calendar {id:?} does not exist")),
            Err(e) => return Err(format!("calendar {id:?}: {e}")),
        };
        for period in calendar.periods_at(now_ms) {
            tables.extend(by_period.get(period).map(String::as_str));
        }
    }
    tables.extend(default);
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(local: &str, zone: &str) -> u64 {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        tz.from_local_datetime(&naive)
            .single()
            .unwrap()
            .timestamp_millis() as u64
    }

    fn calendar() -> Calendar {
        let period = |name: &str, start: &str, end: &str, days| Period {
            name: name.into(),
            start: start.into(),
            end: end.into(),
            days,
        };
        Calendar {
            tenant: String::new(),
            time_zone: "Europe/London".into(),
            working_days: monday_to_friday(),
            holidays: vec!["2026-12-25".into()],
            periods: vec![
                period("peak", "08:00", "18:00", Days::Working),
                period("night", "22:00", "06:00", Days::All),
                period("weekend", "00:00", "00:00", Days::NonWorking),
            ],
        }
    }

    #[test]
    fn periods_follow_the_zone_working_days_holidays_and_midnight() {
        let c = calendar();
        assert!(c.check().is_ok());
        let z = "Europe/London";
        // Monday 23 November 2026.
        assert_eq!(c.periods_at(at("2026-11-23 09:30", z)), ["peak"]);
        assert_eq!(c.periods_at(at("2026-11-23 18:00", z)), Vec::<&str>::new());
        assert_eq!(c.periods_at(at("2026-11-23 23:10", z)), ["night"]);
        assert_eq!(c.periods_at(at("2026-11-24 05:59", z)), ["night"]);
        // 09:30 in London is 04:30 in New York: the zone is the calendar's.
        assert_eq!(
            c.periods_at(at("2026-11-23 04:30", "America/New_York")),
            ["peak"]
        );
        // Christmas Day (a Friday) is a holiday; Saturday is no working day.
        assert_eq!(c.periods_at(at("2026-12-25 09:30", z)), ["weekend"]);
        assert_eq!(c.periods_at(at("2026-11-28 12:00", z)), ["weekend"]);
        assert_eq!(
            c.periods_at(at("2026-11-28 23:00", z)),
            ["night", "weekend"]
        );
    }

    #[test]
    fn a_bad_calendar_says_why() {
        let mut c = calendar();
        c.time_zone = "Mars/Olympus".into();
        assert!(c.check().unwrap_err().contains("IANA"));
        let mut c = calendar();
        c.periods[0].end = "6pm".into();
        assert!(c.check().unwrap_err().contains("HH:MM"));
    }
}
