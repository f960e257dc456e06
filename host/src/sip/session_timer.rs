//! RFC 4028 session timers, one per leg. On each leg either we refresh (an UPDATE every
//! interval / `session_update_segment`, SS_SIP_SESSION_UPDATE_SEGMENT) or the peer
//! does; a refresh that fails, or one the peer never sends before the session
//! expires (less `session_timeout_early_hangup`, and RFC 4028's min(32, SE/3) margin),
//! ends the call with reason "session timeout".

use std::time::Duration;

use tokio::time::Instant;

use super::message::param;

/// `Session-Expires: N;refresher=uac|uas` as (N, refresher).
pub(super) fn parse_session_expires(value: &str) -> Option<(u32, Option<String>)> {
    let secs = value.split(';').next()?.trim().parse().ok()?;
    Some((secs, param(value, "refresher").map(str::to_ascii_lowercase)))
}

/// A leg's session timer.
#[derive(Debug, Clone)]
pub(super) struct LegTimer {
    /// The negotiated session interval.
    pub interval: Duration,
    /// We send the refreshes (else the peer must).
    pub we_refresh: bool,
    segment: u32,
    early_hangup: Duration,
    /// When we must refresh, or give up waiting for the peer's refresh.
    pub due: Instant,
}

impl LegTimer {
    /// A timer starting now.
    pub(super) fn new(
        interval_secs: u32,
        we_refresh: bool,
        segment: u32,
        early_hangup_secs: u32,
    ) -> LegTimer {
        let mut t = LegTimer {
            interval: Duration::from_secs(u64::from(interval_secs.max(1))),
            we_refresh,
            segment: segment.clamp(2, 10),
            early_hangup: Duration::from_secs(u64::from(early_hangup_secs)),
            due: Instant::now(),
        };
        t.refreshed();
        t
    }

    /// The session was refreshed now: schedule the next refresh or deadline.
    pub(super) fn refreshed(&mut self) {
        let now = Instant::now();
        self.due = if self.we_refresh {
            now + self.interval / self.segment
        } else {
            // RFC 4028 §10: hang up min(32, SE/3) seconds before expiry, or earlier.
            let margin = (self.interval / 3)
                .min(Duration::from_secs(32))
                .max(self.early_hangup);
            now + self.interval.saturating_sub(margin)
        };
    }

    /// A refresh of ours is in flight: nothing is due until it is answered.
    pub(super) fn refreshing(&mut self) {
        self.due = Instant::now() + Duration::from_secs(86_400);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_schedules() {
        assert_eq!(
            parse_session_expires("1800;refresher=UAS"),
            Some((1800, Some("uas".into())))
        );
        assert_eq!(parse_session_expires("90"), Some((90, None)));
        assert_eq!(parse_session_expires("x"), None);
        let now = Instant::now();
        let ours = LegTimer::new(600, true, 2, 0);
        assert!(
            ours.due >= now + Duration::from_secs(299)
                && ours.due <= now + Duration::from_secs(301)
        );
        let theirs = LegTimer::new(600, false, 2, 0);
        // 600 - min(32, 200) = 568 s.
        assert!(
            theirs.due >= now + Duration::from_secs(567)
                && theirs.due <= now + Duration::from_secs(569)
        );
    }
}
