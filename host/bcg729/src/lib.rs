//! G.729 (annex A decoder-compatible) encoding and decoding through bcg729. A frame is
//! 10 ms: 80 samples of 16-bit PCM at 8 kHz in, 10 bytes out (2 bytes for a SID frame
//! when VAD is on). Each [`Encoder`] and [`Decoder`] keeps one channel's state, so a
//! call direction owns one of each.

use std::ffi::c_void;

/// Samples in one 10 ms frame.
pub const FRAME_SAMPLES: usize = 80;
/// Bytes of one encoded voice frame.
pub const FRAME_BYTES: usize = 10;

#[link(name = "bcg729")]
extern "C" {
    fn initBcg729EncoderChannel(enable_vad: u8) -> *mut c_void;
    fn closeBcg729EncoderChannel(ctx: *mut c_void);
    fn bcg729Encoder(ctx: *mut c_void, input: *const i16, bitstream: *mut u8, length: *mut u8);
    fn initBcg729DecoderChannel() -> *mut c_void;
    fn closeBcg729DecoderChannel(ctx: *mut c_void);
    fn bcg729Decoder(
        ctx: *mut c_void,
        bitstream: *const u8,
        length: u8,
        frame_erasure: u8,
        sid_frame: u8,
        rfc3389_payload: u8,
        signal: *mut i16,
    );
}

/// One channel's G.729 encoder.
pub struct Encoder(*mut c_void);

// The context is plain memory owned by this value; bcg729 keeps no global state.
unsafe impl Send for Encoder {}

impl Encoder {
    /// A new channel; `vad` turns on voice activity detection (annex B silence frames).
    pub fn new(vad: bool) -> Encoder {
        // SAFETY: returns a fresh context (or null on allocation failure, checked).
        let ctx = unsafe { initBcg729EncoderChannel(u8::from(vad)) };
        assert!(!ctx.is_null(), "bcg729 could not allocate an encoder");
        Encoder(ctx)
    }

    /// Encode one frame into `out`; returns the bytes written (10, 2 for a SID frame,
    /// 0 for an untransmitted silent frame).
    pub fn encode(&mut self, frame: &[i16; FRAME_SAMPLES], out: &mut [u8; FRAME_BYTES]) -> usize {
        let mut len = 0u8;
        // SAFETY: the context is live; input is 80 samples, output 10 bytes as required.
        unsafe { bcg729Encoder(self.0, frame.as_ptr(), out.as_mut_ptr(), &mut len) };
        usize::from(len)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the context came from initBcg729EncoderChannel and is closed once.
        unsafe { closeBcg729EncoderChannel(self.0) }
    }
}

/// One channel's G.729 decoder.
pub struct Decoder(*mut c_void);

// As for Encoder.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A new channel.
    pub fn new() -> Decoder {
        // SAFETY: returns a fresh context (or null on allocation failure, checked).
        let ctx = unsafe { initBcg729DecoderChannel() };
        assert!(!ctx.is_null(), "bcg729 could not allocate a decoder");
        Decoder(ctx)
    }

    /// Decode one frame: 10 bytes of voice, 2 of SID (comfort noise), or none for a
    /// lost frame (concealed from the previous ones).
    pub fn decode(&mut self, frame: Option<&[u8]>, out: &mut [i16; FRAME_SAMPLES]) {
        let (ptr, len, lost, sid) = match frame {
            Some(f) if f.len() >= FRAME_BYTES => (f.as_ptr(), FRAME_BYTES as u8, 0, 0),
            Some(f) if f.len() >= 2 => (f.as_ptr(), 2, 0, 1),
            _ => (std::ptr::null(), 0, 1, 0),
        };
        // A lost frame still needs a readable buffer.
        let silence = [0u8; FRAME_BYTES];
        let ptr = if ptr.is_null() { silence.as_ptr() } else { ptr };
        // SAFETY: the context is live; the bitstream has `len` bytes (10 for an erased
        // frame's dummy), the output 80 samples.
        unsafe { bcg729Decoder(self.0, ptr, len, lost, sid, 0, out.as_mut_ptr()) };
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from initBcg729DecoderChannel and is closed once.
        unsafe { closeBcg729DecoderChannel(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Energy of `samples` at `hz` (Goertzel) relative to their total energy.
    fn share_at(samples: &[i16], hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
        power / (total * samples.len() as f64 / 2.0)
    }

    #[test]
    fn a_tone_survives_encoding_and_decoding() {
        let (mut enc, mut dec) = (Encoder::new(false), Decoder::new());
        let mut decoded = Vec::new();
        for f in 0..50 {
            let frame: [i16; FRAME_SAMPLES] = std::array::from_fn(|i| {
                let t = (f * FRAME_SAMPLES + i) as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            });
            let mut bits = [0u8; FRAME_BYTES];
            assert_eq!(enc.encode(&frame, &mut bits), FRAME_BYTES);
            let mut out = [0i16; FRAME_SAMPLES];
            dec.decode(Some(&bits), &mut out);
            decoded.extend_from_slice(&out);
        }
        // Skip the codec's start-up; the rest is mostly the 1 kHz tone.
        let steady = &decoded[800..];
        assert!(
            share_at(steady, 1000.0) > 0.8,
            "{}",
            share_at(steady, 1000.0)
        );
        assert!(share_at(steady, 1700.0) < 0.05);
    }
}
