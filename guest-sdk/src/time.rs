//! Time-period matching for time-based routing: days of week, hours, holidays, time
//! zone. A [`Calendar`] answers "which named period is it now?" through the host
//! clock, so the same rules work against a controllable fake clock in tests.

use crate::{Error, Host, LocalTime};

/// A set of ISO weekdays (1 = Monday .. 7 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays(u8);

impl Weekdays {
    /// Monday to Friday.
    pub const MON_FRI: Weekdays = Weekdays(0b0011111);
    /// Saturday and Sunday.
    pub const WEEKEND: Weekdays = Weekdays(0b1100000);
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0b1111111);

    /// The set of the given ISO weekdays; numbers outside 1..=7 are ignored.
    pub fn of(days: &[u8]) -> Weekdays {
        Weekdays(
            days.iter()
                .filter(|d| (1..=7).contains(*d))
                .fold(0, |set, d| set | 1 << (d - 1)),
        )
    }

    /// Whether ISO weekday `day` is in the set.
    pub fn contains(self, day: u8) -> bool {
        (1..=7).contains(&day) && self.0 & (1 << (day - 1)) != 0
    }
}

/// Which kind of day a [`Period`] applies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// Working days that are not holidays.
    Working,
    /// Non-working days and holidays.
    NonWorking,
    /// Every day.
    Any,
}

/// A named time window `[start, end)` in minutes after local midnight. When `end` is
/// not after `start` the window crosses midnight (22:00-06:00); `start == end` is all day.
/// The day kind is that of the local date at the instant being matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Name that rate tables and routes refer to ("peak", "night").
    pub name: String,
    /// Which days it applies on.
    pub days: DayKind,
    /// Start, minutes after midnight (0..1440).
    pub start_minute: u16,
    /// End, minutes after midnight (0..=1440), exclusive.
    pub end_minute: u16,
}

impl Period {
    /// A period from `start` to `end`, each given as (hour, minute).
    pub fn new(name: &str, days: DayKind, start: (u8, u8), end: (u8, u8)) -> Self {
        Period {
            name: name.into(),
            days,
            start_minute: u16::from(start.0) * 60 + u16::from(start.1),
            end_minute: u16::from(end.0) * 60 + u16::from(end.1),
        }
    }

    fn contains_minute(&self, minute: u16) -> bool {
        let (start, end) = (self.start_minute, self.end_minute);
        match start.cmp(&end) {
            std::cmp::Ordering::Less => (start..end).contains(&minute),
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => minute >= start || minute < end,
        }
    }
}

/// Working days, holidays and named periods in one time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// IANA zone the hours are in, e.g. "Europe/London".
    pub zone: String,
    /// Which weekdays are working days.
    pub working_days: Weekdays,
    /// Holiday dates (year, month, day) in the calendar's zone.
    pub holidays: Vec<(i32, u8, u8)>,
    /// Periods in priority order: the first that matches wins.
    pub periods: Vec<Period>,
}

impl Calendar {
    /// Whether `t` falls on a working day that is not a holiday.
    pub fn is_working_day(&self, t: &LocalTime) -> bool {
        self.working_days.contains(t.weekday) && !self.holidays.contains(&(t.year, t.month, t.day))
    }

    /// The first period matching local time `t`.
    pub fn period_at_local(&self, t: &LocalTime) -> Option<&Period> {
        let working = self.is_working_day(t);
        let minute = u16::from(t.hour) * 60 + u16::from(t.minute);
        self.periods.iter().find(|p| {
            let day_ok = match p.days {
                DayKind::Working => working,
                DayKind::NonWorking => !working,
                DayKind::Any => true,
            };
            day_ok && p.contains_minute(minute)
        })
    }

    /// The period in force at `at_ms` (Unix milliseconds), using the host's time zones.
    pub fn period_at(&self, host: &dyn Host, at_ms: u64) -> Result<Option<&Period>, Error> {
        let local = host.local_time(&self.zone, at_ms)?;
        Ok(self.period_at_local(&local))
    }
}

/// Civil time at Unix second `secs` with a fixed UTC offset (proleptic Gregorian).
pub fn civil_from_unix(secs: i64, utc_offset_secs: i32) -> LocalTime {
    let local = secs + i64::from(utc_offset_secs);
    let days = local.div_euclid(86_400);
    let in_day = local.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    // 1970-01-01 was a Thursday (ISO 4).
    let weekday = ((days + 3).rem_euclid(7) + 1) as u8;
    LocalTime {
        year,
        month,
        day,
        hour: (in_day / 3600) as u8,
        minute: (in_day % 3600 / 60) as u8,
        second: (in_day % 60) as u8,
        weekday,
        utc_offset_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHost;

    #[test]
    fn civil_time_of_known_instants() {
        let t = civil_from_unix(0, 0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1970, 1, 1, 4));
        // 2024-02-29T23:30:00Z is a Thursday; at +01:00 it is Friday 1 March 00:30.
        let t = civil_from_unix(1_709_249_400, 3600);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.weekday),
            (2024, 3, 1, 0, 30, 5)
        );
        let t = civil_from_unix(-1, 0);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.second),
            (1969, 12, 31, 23, 59)
        );
    }

    fn calendar() -> Calendar {
        Calendar {
            zone: "Test/Plus1".into(),
            working_days: Weekdays::MON_FRI,
            holidays: vec![(2024, 12, 25)],
            periods: vec![
                Period::new("peak", DayKind::Working, (8, 0), (18, 0)),
                Period::new("night", DayKind::Any, (22, 0), (6, 0)),
                Period::new("offpeak", DayKind::Any, (0, 0), (0, 0)),
            ],
        }
    }

    #[test]
    fn periods_follow_zone_working_days_holidays_and_midnight() {
        let host = FakeHost::new().with_zone("Test/Plus1", 3600);
        let cal = calendar();
        let at = |utc: i64| {
            cal.period_at(&host, (utc * 1000) as u64)
                .unwrap()
                .unwrap()
                .name
                .clone()
        };
        // Tue 2024-12-24 07:00Z = 08:00 local: peak starts (inclusive).
        assert_eq!(at(1_735_023_600), "peak");
        // 06:59Z = 07:59 local: not yet peak.
        assert_eq!(at(1_735_023_540), "offpeak");
        // 17:00Z = 18:00 local: peak has ended (exclusive).
        assert_eq!(at(1_735_059_600), "offpeak");
        // Wed 2024-12-25 09:00Z = 10:00 local, a holiday: no peak.
        assert_eq!(at(1_735_117_200), "offpeak");
        // 23:30Z = 00:30 local next day: night crosses midnight.
        assert_eq!(at(1_735_083_000), "night");
        assert!(matches!(
            calendar().period_at(&FakeHost::new(), 0),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn weekdays_sets() {
        assert!(Weekdays::MON_FRI.contains(1) && Weekdays::MON_FRI.contains(5));
        assert!(!Weekdays::MON_FRI.contains(6) && !Weekdays::MON_FRI.contains(0));
        assert_eq!(Weekdays::of(&[6, 7, 9]), Weekdays::WEEKEND);
    }
}
