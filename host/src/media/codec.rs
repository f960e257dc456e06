//! Voice codecs the relay can convert between: G.711 A-law and µ-law (table-free
//! encoders per ITU-T G.711) and G.729 through bcg729 (cargo feature `g729`, on by
//! default). Every codec here runs at 8 kHz, so RTP timestamps carry over unchanged.

pub use switchyard_model::Codec;

/// Whether this build's relay can convert to and from `codec` (G.729 needs the
/// `g729` feature).
pub fn can_convert(codec: Codec) -> bool {
    codec != Codec::G729 || cfg!(feature = "g729")
}

/// G.711 A-law of a 16-bit sample.
pub fn alaw_encode(sample: i16) -> u8 {
    let sign = if sample >= 0 { 0xD5 } else { 0x55 };
    let magnitude = (i32::from(sample).abs().min(32635) >> 3) as u16;
    let code = if magnitude < 32 {
        (magnitude >> 1) as u8
    } else {
        let exponent = 15 - magnitude.leading_zeros() as u8 - 4;
        (exponent << 4) | ((magnitude >> exponent) & 0x0F) as u8
    };
    code ^ sign
}

/// The 16-bit sample of a G.711 A-law byte.
pub fn alaw_decode(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i16::from(b & 0x0F);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    if b & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// G.711 µ-law of a 16-bit sample.
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = (i32::from(sample).abs().min(32635) + BIAS) as u16;
    let exponent = 15 - magnitude.leading_zeros() as u8 - 7;
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// The 16-bit sample of a G.711 µ-law byte.
pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i16::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if b & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The share of `samples`' energy at `hz` (Goertzel over 8 kHz samples): near 1 for a
/// pure tone at that frequency, near 0 without it.
pub fn tone_share(samples: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    if total == 0.0 {
        return 0.0;
    }
    power / (total * samples.len() as f64 / 2.0)
}

/// One direction's conversion: decodes payloads of `from` to PCM and encodes them as
/// `to`, keeping codec state across packets.
pub struct Transcoder {
    from: Codec,
    to: Codec,
    #[cfg(feature = "g729")]
    g729_decoder: Option<bcg729::Decoder>,
    #[cfg(feature = "g729")]
    g729_encoder: Option<bcg729::Encoder>,
    pcm: Vec<i16>,
}

impl Transcoder {
    /// A converter from `from` to `to`.
    pub fn new(from: Codec, to: Codec) -> Transcoder {
        Transcoder {
            from,
            to,
            #[cfg(feature = "g729")]
            g729_decoder: (from == Codec::G729).then(bcg729::Decoder::new),
            #[cfg(feature = "g729")]
            g729_encoder: (to == Codec::G729).then(|| bcg729::Encoder::new(false)),
            pcm: Vec::with_capacity(480),
        }
    }

    /// The codec it reads.
    pub fn from(&self) -> Codec {
        self.from
    }

    /// The codec it writes.
    pub fn to(&self) -> Codec {
        self.to
    }

    /// `payload` (one RTP packet's worth of `from`) as `to`; the same duration.
    pub fn convert(&mut self, payload: &[u8]) -> Vec<u8> {
        self.pcm.clear();
        match self.from {
            Codec::Pcma => self.pcm.extend(payload.iter().map(|&b| alaw_decode(b))),
            Codec::Pcmu => self.pcm.extend(payload.iter().map(|&b| ulaw_decode(b))),
            Codec::G729 => self.decode_g729(payload),
        }
        match self.to {
            Codec::Pcma => self.pcm.iter().map(|&s| alaw_encode(s)).collect(),
            Codec::Pcmu => self.pcm.iter().map(|&s| ulaw_encode(s)).collect(),
            Codec::G729 => self.encode_g729(),
        }
    }

    #[cfg(feature = "g729")]
    fn decode_g729(&mut self, payload: &[u8]) {
        let Some(decoder) = self.g729_decoder.as_mut() else {
            return;
        };
        let mut out = [0i16; bcg729::FRAME_SAMPLES];
        for frame in payload.chunks(bcg729::FRAME_BYTES) {
            decoder.decode(Some(frame), &mut out);
            self.pcm.extend_from_slice(&out);
        }
    }

    #[cfg(feature = "g729")]
    fn encode_g729(&mut self) -> Vec<u8> {
        let Some(encoder) = self.g729_encoder.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.pcm.len() / 8);
        // Whole 10 ms frames; G.711 packets carry 10 ms multiples.
        for chunk in self.pcm.chunks_exact(bcg729::FRAME_SAMPLES) {
            let frame: &[i16; bcg729::FRAME_SAMPLES] = chunk.try_into().expect("exact chunk");
            let mut bits = [0u8; bcg729::FRAME_BYTES];
            let n = encoder.encode(frame, &mut bits);
            out.extend_from_slice(&bits[..n]);
        }
        out
    }

    #[cfg(not(feature = "g729"))]
    fn decode_g729(&mut self, _payload: &[u8]) {}

    #[cfg(not(feature = "g729"))]
    fn encode_g729(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for sample in (-32768i32..32768).step_by(37).map(|s| s as i16) {
            let tolerance = (i32::from(sample).abs() / 16).max(16);
            let a = i32::from(alaw_decode(alaw_encode(sample)));
            let u = i32::from(ulaw_decode(ulaw_encode(sample)));
            assert!(
                (a - i32::from(sample)).abs() <= tolerance,
                "A-law {sample} -> {a}"
            );
            assert!(
                (u - i32::from(sample)).abs() <= tolerance,
                "µ-law {sample} -> {u}"
            );
        }
        // The reference values of G.711's tables.
        assert_eq!((alaw_encode(0), ulaw_encode(0)), (0xD5, 0xFF));
        assert_eq!((alaw_decode(0xD5), ulaw_decode(0xFF)), (8, 0));
    }

    #[cfg(feature = "g729")]
    #[test]
    fn pcma_to_g729_and_back_keeps_duration() {
        let mut there = Transcoder::new(Codec::Pcma, Codec::G729);
        let mut back = Transcoder::new(Codec::G729, Codec::Pcmu);
        let pcma: Vec<u8> = (0..160)
            .map(|i| alaw_encode(((i % 16) * 1000) as i16))
            .collect();
        let g729 = there.convert(&pcma);
        assert_eq!(g729.len(), 20);
        assert_eq!(back.convert(&g729).len(), 160);
    }
}
