//! What the relay counts of each leg's RTP, the "Current Call" figures of VOS3000:
//! packets received from and sent to each side, packets lost on the way in
//! (RFC 3550 A.3: expected from the sequence numbers, less received) and
//! interarrival jitter (A.8). Each leg's reception state is kept by the one task that
//! reads its socket; it publishes into atomics that any reader (the live view, the
//! alarms) takes without a lock. The host's totals over every relay feed Prometheus.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

/// Every voice and event payload the relay carries (G.711, G.729, telephone-event)
/// has an 8 kHz RTP clock, so a timestamp unit is 125 µs.
const CLOCK_HZ: i64 = 8_000;

/// A sequence number this far past the highest seen is a gap (packets lost); farther,
/// or this close behind it, a restart or a stray (RFC 3550 A.1's `MAX_DROPOUT` and
/// `MAX_MISORDER`).
const MAX_DROPOUT: u16 = 3_000;
const MAX_MISORDER: u16 = 100;

/// One leg's figures as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LegRtp {
    /// RTP packets that came from this side (after latching; strangers' are dropped).
    pub received: u64,
    /// RTP packets the relay sent to this side.
    pub sent: u64,
    /// Packets this side sent that never arrived.
    pub lost: u64,
    /// `lost` over the packets expected, percent.
    pub loss_percent: f64,
    /// Interarrival jitter of this side's packets, ms.
    pub jitter_ms: f64,
    /// Packets arriving on this side's port that were not relayed: from a stranger,
    /// or before the other side's address was known.
    pub dropped: u64,
}

/// The counters of one leg, written by the relay's tasks.
#[derive(Debug, Default)]
pub struct LegCounters {
    received: AtomicU64,
    sent: AtomicU64,
    expected: AtomicU64,
    jitter_us: AtomicU64,
    dropped: AtomicU64,
}

impl LegCounters {
    /// A packet went out to this side.
    pub(super) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A packet arriving on this side's port was not relayed.
    pub(super) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures now.
    pub fn read(&self) -> LegRtp {
        let received = self.received.load(Ordering::Relaxed);
        let expected = self.expected.load(Ordering::Relaxed);
        // Duplicates can make received exceed expected; that is no loss.
        let lost = expected.saturating_sub(received);
        LegRtp {
            received,
            sent: self.sent.load(Ordering::Relaxed),
            lost,
            loss_percent: if expected == 0 {
                0.0
            } else {
                (lost as f64 * 100.0 / expected as f64 * 100.0).round() / 100.0
            },
            jitter_ms: (self.jitter_us.load(Ordering::Relaxed) as f64 / 10.0).round() / 100.0,
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The reception state of one leg's stream (RFC 3550 A.1 and A.8), kept by the task
/// that reads it. A new SSRC starts a new stream; what the old one expected stays
/// counted.
#[derive(Debug, Default)]
pub(super) struct Reception {
    stream: Option<Stream>,
    /// Packets expected of the streams before this one.
    expected_before: u64,
}

#[derive(Debug)]
struct Stream {
    ssrc: u32,
    /// First sequence number, extended.
    base: u64,
    /// Highest sequence number seen, extended by its wrap-arounds.
    max: u64,
    /// Previous packet's transit time (arrival in clock units less its timestamp).
    transit: i64,
    /// RFC 3550's jitter estimate, in clock units × 16.
    jitter16: i64,
}

impl Reception {
    /// A packet of `ssrc` numbered `seq` with `timestamp` arrived `arrival_us` after
    /// the relay started; its figures are published into `counters`.
    pub(super) fn arrived(
        &mut self,
        counters: &LegCounters,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        arrival_us: u64,
    ) {
        let arrival = (arrival_us as i64).wrapping_mul(CLOCK_HZ) / 1_000_000;
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        match self.stream.as_mut() {
            Some(s) if s.ssrc == ssrc => {
                let max_seq = s.max as u16;
                let ahead = seq.wrapping_sub(max_seq);
                if ahead != 0 && ahead < MAX_DROPOUT {
                    s.max += u64::from(ahead);
                } else if ahead != 0 && ahead <= u16::MAX - MAX_MISORDER {
                    // A jump: the sender restarted its numbering.
                    self.expected_before += s.max - s.base + 1;
                    s.base = u64::from(seq);
                    s.max = s.base;
                }
                // Timestamps are 32 bits: their difference wraps like them.
                let d = i64::from((transit.wrapping_sub(s.transit)) as i32).abs();
                s.transit = transit;
                s.jitter16 += d - ((s.jitter16 + 8) >> 4);
            }
            _ => {
                if let Some(old) = self.stream.take() {
                    self.expected_before += old.max - old.base + 1;
                }
                // Extended numbers start one cycle up, so a first packet just after
                // a wrap-around cannot go below zero.
                let base = (1 << 16) + u64::from(seq);
                self.stream = Some(Stream {
                    ssrc,
                    base,
                    max: base,
                    transit,
                    jitter16: 0,
                });
            }
        }
        let s = self.stream.as_ref().expect("set above");
        counters.received.fetch_add(1, Ordering::Relaxed);
        counters
            .expected
            .store(self.expected_before + s.max - s.base + 1, Ordering::Relaxed);
        let jitter_us = (s.jitter16 >> 4).max(0) as u64 * 1_000_000 / CLOCK_HZ as u64;
        counters.jitter_us.store(jitter_us, Ordering::Relaxed);
    }
}

/// The host's RTP totals over every relay, for Prometheus.
#[derive(Debug, Default)]
pub struct RtpTotals {
    pub(super) received: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) dropped_stranger: AtomicU64,
    pub(super) dropped_unrouted: AtomicU64,
    /// Voice packets converted by the transcoding workers.
    pub(super) transcoded: AtomicU64,
    /// Voice packets dropped because their worker was behind.
    pub(super) transcode_dropped: AtomicU64,
    /// Packets waiting for a transcoding worker now.
    pub(super) transcode_queued: AtomicUsize,
    /// Call directions being transcoded now.
    pub(super) transcode_directions: AtomicUsize,
}

/// [`RtpTotals`] as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MediaStats {
    /// RTP packets received from latched peers.
    pub rtp_received: u64,
    /// RTP packets sent to peers.
    pub rtp_sent: u64,
    /// Packets dropped because they came from a stranger to a latched leg.
    pub rtp_dropped_stranger: u64,
    /// Packets dropped because the other side's address was not known yet.
    pub rtp_dropped_unrouted: u64,
    /// Voice packets dropped because transcoding fell behind.
    pub transcode_drops: u64,
    /// Voice packets converted.
    pub transcoded: u64,
    /// Packets waiting for a transcoding worker.
    pub transcode_queued: usize,
    /// Call directions being transcoded (two per transcoded call).
    pub transcode_directions: usize,
    /// Transcoding workers (one per core).
    pub transcode_workers: usize,
}

impl RtpTotals {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals now, with the pool's `workers`.
    pub(super) fn read(&self, workers: usize) -> MediaStats {
        let r = Ordering::Relaxed;
        MediaStats {
            rtp_received: self.received.load(r),
            rtp_sent: self.sent.load(r),
            rtp_dropped_stranger: self.dropped_stranger.load(r),
            rtp_dropped_unrouted: self.dropped_unrouted.load(r),
            transcode_drops: self.transcode_dropped.load(r),
            transcoded: self.transcoded.load(r),
            transcode_queued: self.transcode_queued.load(r),
            transcode_directions: self.transcode_directions.load(r),
            transcode_workers: workers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed packets `seqs` of one SSRC, 20 ms apart on the wire, their timestamps
    /// 160 apart per sequence step plus `ts_skew(i)` clock units.
    fn feed(seqs: &[u16], arrival_ms: impl Fn(usize) -> u64) -> LegRtp {
        let counters = LegCounters::default();
        let mut r = Reception::default();
        let first = seqs[0];
        for (i, &seq) in seqs.iter().enumerate() {
            let ts = u32::from(seq.wrapping_sub(first)) * 160;
            r.arrived(&counters, 7, seq, ts, arrival_ms(i) * 1000);
        }
        counters.read()
    }

    #[test]
    fn a_steady_stream_has_no_loss_and_no_jitter() {
        let seqs: Vec<u16> = (65_500..=65_535).chain(0..64).collect();
        let rtp = feed(&seqs, |i| i as u64 * 20);
        assert_eq!((rtp.received, rtp.lost, rtp.jitter_ms), (100, 0, 0.0));
    }

    #[test]
    fn gaps_are_counted_as_lost_across_a_wrap_around() {
        // 100 numbers from 65,486, with 65,530 and 3 … 6 missing.
        let seqs: Vec<u16> = (0u16..100)
            .map(|i| 65_486u16.wrapping_add(i))
            .filter(|&s| s != 65_530 && !(3..=6).contains(&s))
            .collect();
        let rtp = feed(&seqs, |i| i as u64 * 20);
        assert_eq!((rtp.received, rtp.lost, rtp.loss_percent), (95, 5, 5.0));
    }

    #[test]
    fn jitter_follows_rfc_3550_for_alternating_delays() {
        // Packets every 20 ms of timestamp, arriving alternately 0 and 10 ms late:
        // each transit differs from the last by 80 clock units (10 ms), so the
        // estimate converges on 10 ms (J += (|D| - J) / 16).
        let seqs: Vec<u16> = (0..400).collect();
        let rtp = feed(&seqs, |i| i as u64 * 20 + if i % 2 == 1 { 10 } else { 0 });
        assert!(
            (rtp.jitter_ms - 10.0).abs() < 0.2,
            "jitter {} ms",
            rtp.jitter_ms
        );
    }

    #[test]
    fn a_new_ssrc_keeps_what_the_old_stream_lost() {
        let counters = LegCounters::default();
        let mut r = Reception::default();
        for seq in [10u16, 11, 13] {
            r.arrived(&counters, 1, seq, 0, 0);
        }
        for seq in [500u16, 501, 502] {
            r.arrived(&counters, 2, seq, 0, 0);
        }
        let rtp = counters.read();
        assert_eq!((rtp.received, rtp.lost), (6, 1));
    }

    #[test]
    fn duplicates_and_late_packets_are_not_loss() {
        let rtp = feed(&[1, 2, 2, 4, 3, 5], |i| i as u64 * 20);
        assert_eq!((rtp.received, rtp.lost), (6, 0));
    }
}
