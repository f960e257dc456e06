//! DTMF: the three ways a key press travels and what converting between them needs.
//! RFC 4733 telephone-events ride in the RTP stream as their own payload type; SIP
//! INFO (`application/dtmf-relay`) rides in the signalling; inband digits are dual
//! tones in the voice itself (ITU-T Q.23), found here with a Goertzel detector.

use serde::Serialize;

use super::codec::tone_share;
use switchyard_model::{DtmfReceive, DtmfSend, MediaSettings};

/// How a digit travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// RFC 2833/4733 telephone-event packets.
    Rfc2833,
    /// SIP INFO.
    Info,
    /// Tones in the audio.
    Inband,
}

/// How long a converted digit lasts when its source did not say, milliseconds.
pub const DEFAULT_DURATION_MS: u32 = 100;

/// The RFC 4733 event code of a key: 0-9, `*` 10, `#` 11, A-D 12-15, flash 16.
pub fn event_of_digit(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        '!' => Some(16),
        _ => None,
    }
}

/// The key of an RFC 4733 event code (flash is `!`, as SIP INFO writes it).
pub fn digit_of_event(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        16 => Some('!'),
        _ => None,
    }
}

/// One RFC 4733 event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event code.
    pub code: u8,
    /// The E bit: the event has ended (sent three times).
    pub end: bool,
    /// Volume, -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in 8 kHz timestamp units.
    pub duration: u16,
}

impl Event {
    /// Parse a telephone-event payload.
    pub fn parse(payload: &[u8]) -> Option<Event> {
        let p: &[u8; 4] = payload.get(..4)?.try_into().ok()?;
        Some(Event {
            code: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3f,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    /// Its four payload bytes.
    pub fn bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.code,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// The payloads that send `code` for `duration_ms`: one every 20 ms with the duration
/// so far, then the end payload three times (RFC 4733 §2.5.1.4).
pub fn event_payloads(code: u8, duration_ms: u32) -> Vec<Event> {
    let total = (duration_ms.clamp(40, 5_000) * 8) as u16;
    let event = |duration, end| Event {
        code,
        end,
        volume: 10,
        duration,
    };
    let mut out: Vec<Event> = (1..)
        .map(|i| i * 160)
        .take_while(|d| *d < total)
        .map(|d| event(d, false))
        .collect();
    out.extend([event(total, true); 3]);
    out
}

/// The digit and duration (ms) of a SIP INFO body: `application/dtmf-relay`
/// (`Signal=5` / `Duration=160`) or `application/dtmf` (the key alone).
pub fn parse_info(content_type: &str, body: &[u8]) -> Option<(char, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let kind = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match kind.as_str() {
        "application/dtmf-relay" => {
            let (mut digit, mut duration) = (None, DEFAULT_DURATION_MS);
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = info_signal(value.trim()),
                    "duration" => duration = value.trim().parse().unwrap_or(duration),
                    _ => {}
                }
            }
            digit.map(|d| (d, duration))
        }
        "application/dtmf" => info_signal(text.trim()).map(|d| (d, DEFAULT_DURATION_MS)),
        _ => None,
    }
}

/// A key as INFO writes it: the character, or its event number ("10" for `*`).
fn info_signal(value: &str) -> Option<char> {
    match value.parse::<u8>() {
        Ok(code) if value.len() > 1 => digit_of_event(code),
        _ => {
            let mut chars = value.chars();
            let d = chars.next()?;
            (chars.next().is_none() && event_of_digit(d).is_some()).then(|| d.to_ascii_uppercase())
        }
    }
}

/// The `application/dtmf-relay` body of a digit.
pub fn info_body(digit: char, duration_ms: u32) -> String {
    format!("Signal={digit}\r\nDuration={duration_ms}\r\n")
}

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The (row, column) frequencies of a key; none for flash and non-keys.
pub fn frequencies(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(r, row)| {
        let c = row.iter().position(|k| *k == d)?;
        Some((ROWS[r], COLUMNS[c]))
    })
}

/// Writes a key's dual tone into outgoing audio, 8 kHz samples at a time, for a set
/// length, keeping the phase across packets.
#[derive(Debug, Clone)]
pub struct ToneWriter {
    low: f64,
    high: f64,
    written: usize,
    total: usize,
}

impl ToneWriter {
    /// A tone of `digit` lasting `duration_ms`; none when the key has no tone.
    pub fn new(digit: char, duration_ms: u32) -> Option<ToneWriter> {
        let (low, high) = frequencies(digit)?;
        Some(ToneWriter {
            low,
            high,
            written: 0,
            total: duration_ms.clamp(40, 5_000) as usize * 8,
        })
    }

    /// The next `n` samples of the tone, or none once it is over. Each frequency at
    /// -7 dBm0 or so, well inside the levels Q.24 receivers accept.
    pub fn next_samples(&mut self, n: usize) -> Option<Vec<i16>> {
        if self.written >= self.total {
            return None;
        }
        let tau = 2.0 * std::f64::consts::PI;
        let samples = (self.written..self.written + n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (6000.0 * ((tau * self.low * t).sin() + (tau * self.high * t).sin())) as i16
            })
            .collect();
        self.written += n;
        Some(samples)
    }
}

/// Finds keys in 8 kHz audio fed a packet at a time. A key counts when two blocks in
/// a row carry the same row and column tones with most of their energy, and is
/// reported once until the tones stop.
#[derive(Debug, Default)]
pub struct Detector {
    candidate: Option<char>,
    run: u8,
    reported: bool,
}

/// Quietest block examined: an RMS of 200 (about -44 dBm0); quieter is silence.
const MIN_RMS: f64 = 200.0;

impl Detector {
    /// Feed one block (a packet's samples, 80-400 of them); the key, when this block
    /// completes one.
    pub fn push(&mut self, samples: &[i16]) -> Option<char> {
        let key = block_key(samples);
        if key.is_some() && key == self.candidate {
            self.run = self.run.saturating_add(1);
        } else {
            self.candidate = key;
            self.run = u8::from(key.is_some());
            self.reported = false;
        }
        if self.run >= 2 && !self.reported {
            self.reported = true;
            return self.candidate;
        }
        None
    }
}

/// The key one block carries, if it is a clean dual tone.
fn block_key(samples: &[i16]) -> Option<char> {
    if samples.len() < 80 {
        return None;
    }
    let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    if (energy / samples.len() as f64).sqrt() < MIN_RMS {
        return None;
    }
    let strongest = |freqs: &[f64; 4]| {
        let shares = freqs.map(|f| tone_share(samples, f));
        let best = (0..4).max_by(|a, b| shares[*a].total_cmp(&shares[*b]))?;
        let second = (0..4)
            .filter(|i| *i != best)
            .map(|i| shares[i])
            .fold(0.0, f64::max);
        Some((best, shares[best], second))
    };
    let (row, row_share, row_next) = strongest(&ROWS)?;
    let (col, col_share, col_next) = strongest(&COLUMNS)?;
    // Each tone strong (twist within about 8 dB), the pair most of the energy, and
    // no rival tone near either.
    let clean = row_share > 0.12
        && col_share > 0.12
        && row_share + col_share > 0.7
        && row_next < row_share / 6.0
        && col_next < col_share / 6.0;
    clean.then_some(KEYPAD[row][col])
}

/// How a digit is to reach a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// As telephone-events with this payload type.
    Rfc2833(u8),
    /// As a SIP INFO.
    Info,
    /// As tones written into its audio.
    Inband,
    /// The way it came: an INFO relayed as it is, a tone left in the audio.
    AsIs,
}

/// What happens to the packets of a telephone-event a leg is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFate {
    /// Relayed with the other leg's payload type.
    Forward(u8),
    /// Converted (or refused): the packets go no further.
    Drop,
}

/// One leg's DTMF settings and what the call has learnt of the leg: the method it is
/// locked to, the telephone-event types it uses, the event it is sending now.
#[derive(Debug)]
pub struct LegDtmf {
    receive: DtmfReceive,
    send: DtmfSend,
    use_peer: bool,
    configured_pt: u8,
    locked: Option<Method>,
    /// Its own SDP has been seen, and the telephone-event type in it.
    sdp_seen: bool,
    own_pt: Option<u8>,
    /// Types its telephone-events may arrive with: its own, and the one it was told.
    event_pts: Vec<u8>,
    /// The event it is sending now: its RTP timestamp and its fate.
    pub(super) current: Option<(u32, EventFate)>,
    /// Finds keys in its G.711 audio.
    pub(super) detector: Detector,
}

impl LegDtmf {
    /// A leg with its gateway's `settings`.
    pub fn new(settings: &MediaSettings) -> LegDtmf {
        LegDtmf {
            receive: settings.dtmf_receive,
            send: settings.dtmf_send,
            use_peer: settings.use_peer_rfc2833,
            configured_pt: settings.rfc2833_payload,
            locked: None,
            sdp_seen: false,
            own_pt: None,
            event_pts: Vec::new(),
            current: None,
            detector: Detector::default(),
        }
    }

    /// Whether a digit the leg sent by `method` counts. Receive mode All locks the
    /// leg to the first method it uses, so one key sent two ways arrives once.
    pub fn accepts(&mut self, method: Method) -> bool {
        match self.receive {
            DtmfReceive::All => *self.locked.get_or_insert(method) == method,
            DtmfReceive::Rfc2833 => method == Method::Rfc2833,
            DtmfReceive::Info => method == Method::Info,
            DtmfReceive::Inband => method == Method::Inband,
        }
    }

    /// The method the leg is locked to (receive mode All), once it has sent a digit.
    pub fn locked(&self) -> Option<Method> {
        self.locked
    }

    /// Whether tones in its audio are looked for.
    pub fn detects_inband(&self) -> bool {
        matches!(self.receive, DtmfReceive::All | DtmfReceive::Inband)
            && self.locked.is_none_or(|m| m == Method::Inband)
    }

    /// How a digit that came by `received` reaches this leg, whose audio is G.711 when
    /// `g711` (tones are only written into G.711). Auto sends telephone-events when the
    /// leg offered them, and otherwise leaves the digit as it came, except that
    /// telephone-events it cannot take become tones (G.711) or an INFO.
    pub fn delivery(&self, received: Method, g711: bool) -> Delivery {
        let tone_or_info = if g711 {
            Delivery::Inband
        } else {
            Delivery::Info
        };
        let wanted = match self.send {
            DtmfSend::Rfc2833 => Delivery::Rfc2833(self.own_pt.unwrap_or(self.configured_pt)),
            DtmfSend::Info => Delivery::Info,
            DtmfSend::Inband => tone_or_info,
            DtmfSend::Auto => match (self.own_pt, received) {
                (Some(pt), _) => Delivery::Rfc2833(pt),
                (None, Method::Rfc2833) => tone_or_info,
                (None, _) => Delivery::AsIs,
            },
        };
        match (wanted, received) {
            (Delivery::Info, Method::Info) | (Delivery::Inband, Method::Inband) => Delivery::AsIs,
            _ => wanted,
        }
    }

    /// Note the leg's own SDP and the telephone-event type in it.
    pub fn saw_sdp(&mut self, own_pt: Option<u8>) {
        self.sdp_seen = true;
        self.own_pt = own_pt;
        if let Some(pt) = own_pt {
            self.note_pt(pt);
        }
    }

    /// The telephone-event type to tell this leg of, given whether the other leg
    /// offered telephone-events: this gateway's own type (RFC 2833 terminates at the
    /// relay), none when "use peer RFC2833 ability" and the peer did not offer it, or
    /// when this leg neither sends nor takes them. An answer to this leg echoes the
    /// type its offer used, and has none when the offer had none.
    pub fn advertised_pt(&self, peer_offered: bool) -> Option<u8> {
        let wanted = (!self.use_peer || peer_offered)
            && (matches!(self.receive, DtmfReceive::All | DtmfReceive::Rfc2833)
                || matches!(self.send, DtmfSend::Auto | DtmfSend::Rfc2833));
        match (wanted, self.sdp_seen) {
            (false, _) => None,
            (true, false) => Some(self.configured_pt),
            (true, true) => self.own_pt,
        }
    }

    /// The leg was told to use `pt` for telephone-events.
    pub fn note_pt(&mut self, pt: u8) {
        if !self.event_pts.contains(&pt) {
            self.event_pts.push(pt);
        }
    }

    /// Whether RTP of type `pt` from this leg is a telephone-event.
    pub fn is_event(&self, pt: u8) -> bool {
        self.event_pts.contains(&pt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = "0123456789*#ABCD";

    #[test]
    fn event_codes_and_keys_map_both_ways() {
        for (code, key) in KEYS.chars().enumerate() {
            let code = if key.is_ascii_digit() {
                key as u8 - b'0'
            } else {
                code as u8
            };
            assert_eq!(event_of_digit(key), Some(code));
            assert_eq!(digit_of_event(code), Some(key));
        }
        assert_eq!(event_of_digit('!'), Some(16));
        assert_eq!(event_of_digit('x'), None);
        assert_eq!(digit_of_event(17), None);
    }

    #[test]
    fn an_event_runs_every_20_ms_and_ends_three_times() {
        let payloads = event_payloads(5, 100);
        let durations: Vec<(u16, bool)> = payloads.iter().map(|e| (e.duration, e.end)).collect();
        assert_eq!(
            durations,
            [
                (160, false),
                (320, false),
                (480, false),
                (640, false),
                (800, true),
                (800, true),
                (800, true)
            ]
        );
        let bytes = payloads[4].bytes();
        assert_eq!(Event::parse(&bytes), Some(payloads[4]));
        assert_eq!(bytes, [5, 0x80 | 10, 0x03, 0x20]);
        assert_eq!(Event::parse(&[1, 2]), None);
    }

    #[test]
    fn info_bodies_of_both_content_types_parse() {
        let relay = "application/dtmf-relay";
        assert_eq!(
            parse_info(relay, b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse_info(relay, b"signal= #\nduration=250"),
            Some(('#', 250))
        );
        assert_eq!(parse_info(relay, b"Signal=10\r\n"), Some(('*', 100)));
        assert_eq!(parse_info(relay, b"Signal=d\r\n"), Some(('D', 100)));
        assert_eq!(parse_info("application/dtmf", b"7"), Some(('7', 100)));
        assert_eq!(parse_info(relay, b"Signal=55\r\n"), None);
        assert_eq!(parse_info(relay, b"Duration=160\r\n"), None);
        assert_eq!(parse_info("text/plain", b"Signal=5"), None);
        let body = info_body('9', 120);
        assert_eq!(parse_info(relay, body.as_bytes()), Some(('9', 120)));
    }

    fn tone_packets(key: char, ms: u32) -> Vec<Vec<i16>> {
        let mut writer = ToneWriter::new(key, ms).unwrap();
        std::iter::from_fn(|| writer.next_samples(160)).collect()
    }

    #[test]
    fn every_key_is_detected_once_from_its_tone() {
        for key in KEYS.chars() {
            let mut detector = Detector::default();
            let mut found: Vec<char> = tone_packets(key, 100)
                .iter()
                .filter_map(|p| detector.push(p))
                .collect();
            found.extend((0..5).filter_map(|_| detector.push(&[0; 160])));
            assert_eq!(found, [key], "key {key}");
        }
    }

    #[test]
    fn a_repeated_key_after_a_gap_counts_twice_but_one_block_does_not() {
        let mut detector = Detector::default();
        let mut found = Vec::new();
        for _ in 0..2 {
            for p in tone_packets('3', 80) {
                found.extend(detector.push(&p));
            }
            found.extend(detector.push(&[0; 160]));
        }
        assert_eq!(found, ['3', '3']);
        let single = &tone_packets('8', 20)[0];
        assert_eq!(detector.push(single), None);
        assert_eq!(detector.push(&[0; 160]), None);
    }

    #[test]
    fn speech_like_audio_and_single_tones_are_not_keys() {
        let mut detector = Detector::default();
        let tau = 2.0 * std::f64::consts::PI;
        // A 1 kHz tone, a lone row tone, and a chord of three harmonics of 230 Hz.
        let signals: [&dyn Fn(f64) -> f64; 3] = [
            &|t| (tau * 1000.0 * t).sin(),
            &|t| (tau * 770.0 * t).sin(),
            &|t| (tau * 230.0 * t).sin() + (tau * 690.0 * t).sin() + (tau * 1150.0 * t).sin(),
        ];
        for signal in signals {
            for n in 0..25 {
                let block: Vec<i16> = (0..160)
                    .map(|i| (6000.0 * signal((n * 160 + i) as f64 / 8000.0)) as i16)
                    .collect();
                assert_eq!(detector.push(&block), None);
            }
        }
    }

    fn leg(receive: DtmfReceive, send: DtmfSend) -> LegDtmf {
        LegDtmf::new(&MediaSettings {
            dtmf_receive: receive,
            dtmf_send: send,
            rfc2833_payload: 96,
            ..MediaSettings::default()
        })
    }

    #[test]
    fn receive_all_locks_to_the_first_method_and_fixed_modes_take_one() {
        let mut all = leg(DtmfReceive::All, DtmfSend::Auto);
        assert!(all.detects_inband());
        assert!(all.accepts(Method::Rfc2833));
        assert!(!all.accepts(Method::Info));
        assert!(!all.accepts(Method::Inband));
        assert!(all.accepts(Method::Rfc2833));
        assert_eq!(all.locked(), Some(Method::Rfc2833));
        assert!(!all.detects_inband());
        let mut info = leg(DtmfReceive::Info, DtmfSend::Auto);
        assert!(!info.accepts(Method::Rfc2833) && info.accepts(Method::Info));
        assert!(!info.detects_inband());
    }

    #[test]
    fn auto_sends_events_to_a_leg_that_offers_them_and_otherwise_as_it_came() {
        let mut auto = leg(DtmfReceive::All, DtmfSend::Auto);
        auto.saw_sdp(None);
        assert_eq!(auto.delivery(Method::Info, true), Delivery::AsIs);
        assert_eq!(auto.delivery(Method::Inband, true), Delivery::AsIs);
        assert_eq!(auto.delivery(Method::Rfc2833, true), Delivery::Inband);
        assert_eq!(auto.delivery(Method::Rfc2833, false), Delivery::Info);
        auto.saw_sdp(Some(101));
        assert_eq!(auto.delivery(Method::Info, true), Delivery::Rfc2833(101));
        assert_eq!(auto.delivery(Method::Inband, true), Delivery::Rfc2833(101));
        let forced = leg(DtmfReceive::All, DtmfSend::Rfc2833);
        assert_eq!(forced.delivery(Method::Info, false), Delivery::Rfc2833(96));
        let info = leg(DtmfReceive::All, DtmfSend::Info);
        assert_eq!(info.delivery(Method::Rfc2833, true), Delivery::Info);
        assert_eq!(info.delivery(Method::Info, true), Delivery::AsIs);
        let inband = leg(DtmfReceive::All, DtmfSend::Inband);
        assert_eq!(inband.delivery(Method::Info, true), Delivery::Inband);
        assert_eq!(inband.delivery(Method::Info, false), Delivery::AsIs);
    }

    #[test]
    fn telephone_events_are_advertised_by_the_use_peer_rule() {
        let mut follows = leg(DtmfReceive::All, DtmfSend::Auto);
        assert_eq!(follows.advertised_pt(false), None);
        assert_eq!(follows.advertised_pt(true), Some(96));
        let mut always = LegDtmf::new(&MediaSettings {
            use_peer_rfc2833: false,
            ..MediaSettings::default()
        });
        assert_eq!(always.advertised_pt(false), Some(101));
        // An answer echoes the leg's own offer.
        follows.saw_sdp(Some(100));
        assert_eq!(follows.advertised_pt(true), Some(100));
        always.saw_sdp(None);
        assert_eq!(always.advertised_pt(true), None);
        assert!(follows.is_event(100) && !follows.is_event(96));
        let neither = leg(DtmfReceive::Info, DtmfSend::Info);
        assert_eq!(neither.advertised_pt(true), None);
    }
}
