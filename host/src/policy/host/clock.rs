use chrono::{Datelike, Offset, TimeZone, Timelike};

use super::super::bindings::clock::{Host, LocalTime};
use super::super::bindings::types::Error;
use super::super::bindings::HostError;
use super::PolicyState;

impl Host for PolicyState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(PolicyState::now_ms(self))
    }

    fn to_local(&mut self, zone: String, at_ms: u64) -> Result<LocalTime, HostError> {
        let tz: chrono_tz::Tz = zone
            .parse()
            .map_err(|_| Error::NotFound(format!("time zone {zone:?}")))?;
        let at = i64::try_from(at_ms)
            .ok()
            .and_then(|ms| chrono::Utc.timestamp_millis_opt(ms).single())
            .ok_or_else(|| Error::Invalid(format!("instant {at_ms} ms is out of range")))?
            .with_timezone(&tz);
        Ok(LocalTime {
            year: at.year(),
            month: at.month() as u8,
            day: at.day() as u8,
            hour: at.hour() as u8,
            minute: at.minute() as u8,
            second: at.second() as u8,
            weekday: at.weekday().number_from_monday() as u8,
            utc_offset_secs: at.offset().fix().local_minus_utc(),
        })
    }
}
