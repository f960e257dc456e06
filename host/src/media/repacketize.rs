//! Repacketising a transcoded stream: the receiving side's ptime decides how much audio
//! each of its packets carries, whatever the sender's ptime was (a 20 ms PCMA caller and
//! a vendor asking for 40 ms of G.729 per packet).

/// Gathers converted audio and cuts it into packets of the receiver's ptime, with a
/// sequence and timestamps of its own.
#[derive(Debug, Default)]
pub(super) struct Repacketizer {
    pending: Vec<u8>,
    /// RTP timestamp of the first pending byte's audio.
    pending_ts: u32,
    ssrc: u32,
    next_seq: Option<u16>,
    /// The next packet starts a talk spurt.
    marker: bool,
}

/// What the incoming packet's header said.
#[derive(Debug, Clone, Copy)]
pub(super) struct Incoming {
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub marker: bool,
}

/// How the outgoing packets are cut: payload type, bytes per 10 ms frame, frames each.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    pub pt: u8,
    pub frame_bytes: usize,
    pub frames: usize,
}

impl Repacketizer {
    /// Add `audio`, the converted payload of one incoming packet; the packets now due.
    /// Audio that does not follow on from what is pending (a lost packet, a new
    /// source) restarts the gathering: the pending part is sent short rather than
    /// joined to audio it does not belong next to.
    pub(super) fn push(&mut self, incoming: Incoming, audio: &[u8], cut: Cut) -> Vec<Vec<u8>> {
        let samples = |bytes: usize| (bytes * 80 / cut.frame_bytes.max(1)) as u32;
        let mut out = Vec::new();
        let follows = incoming.ssrc == self.ssrc
            && incoming.ts == self.pending_ts.wrapping_add(samples(self.pending.len()));
        if !follows {
            if !self.pending.is_empty() {
                let rest = std::mem::take(&mut self.pending);
                out.push(self.packet(cut.pt, &rest));
                self.pending_ts = self.pending_ts.wrapping_add(samples(rest.len()));
            }
            self.pending_ts = incoming.ts;
            self.ssrc = incoming.ssrc;
        }
        self.next_seq.get_or_insert(incoming.seq);
        self.marker |= incoming.marker;
        self.pending.extend_from_slice(audio);
        let size = cut.frame_bytes * cut.frames.max(1);
        while self.pending.len() >= size {
            let chunk: Vec<u8> = self.pending.drain(..size).collect();
            out.push(self.packet(cut.pt, &chunk));
            self.pending_ts = self.pending_ts.wrapping_add(samples(size));
        }
        out
    }

    fn packet(&mut self, pt: u8, payload: &[u8]) -> Vec<u8> {
        let seq = self.next_seq.unwrap_or_default();
        self.next_seq = Some(seq.wrapping_add(1));
        let marker = std::mem::take(&mut self.marker);
        super::rtp::packet(marker, pt, seq, self.pending_ts, self.ssrc, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G729_40MS: Cut = Cut {
        pt: 18,
        frame_bytes: 10,
        frames: 4,
    };

    fn incoming(seq: u16) -> Incoming {
        Incoming {
            seq,
            ts: u32::from(seq) * 160,
            ssrc: 7,
            marker: seq == 0,
        }
    }

    fn header(p: &[u8]) -> (u8, u16, u32, usize) {
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        (p[1], seq, ts, p.len() - 12)
    }

    #[test]
    fn twenty_ms_packets_become_forty_ms_packets_with_their_own_numbering() {
        let mut r = Repacketizer::default();
        let out: Vec<Vec<u8>> = (0..6)
            .flat_map(|n| r.push(incoming(n), &[n as u8; 20], G729_40MS))
            .collect();
        let headers: Vec<_> = out.iter().map(|p| header(p)).collect();
        assert_eq!(
            headers,
            [(0x80 | 18, 0, 0, 40), (18, 1, 320, 40), (18, 2, 640, 40)]
        );
        assert_eq!(&out[1][12..32], &[2; 20]);
    }

    #[test]
    fn a_gap_sends_what_was_pending_and_starts_again() {
        let mut r = Repacketizer::default();
        assert!(r.push(incoming(0), &[0; 20], G729_40MS).is_empty());
        // Packet 1 was lost: 2 does not follow 0.
        let out = r.push(incoming(2), &[2; 20], G729_40MS);
        assert_eq!(
            out.iter().map(|p| header(p)).collect::<Vec<_>>(),
            [(0x80 | 18, 0, 0, 20)]
        );
        let out = r.push(incoming(3), &[3; 20], G729_40MS);
        assert_eq!(
            out.iter().map(|p| header(p)).collect::<Vec<_>>(),
            [(18, 1, 320, 40)]
        );
    }

    #[test]
    fn long_packets_are_cut_into_several() {
        let mut r = Repacketizer::default();
        let pcma_20ms = Cut {
            pt: 8,
            frame_bytes: 80,
            frames: 2,
        };
        let sixty_ms = Incoming {
            ts: 0,
            ..incoming(0)
        };
        let out = r.push(sixty_ms, &[1; 480], pcma_20ms);
        let headers: Vec<_> = out.iter().map(|p| header(p)).collect();
        assert_eq!(
            headers,
            [(0x80 | 8, 0, 0, 160), (8, 1, 160, 160), (8, 2, 320, 160)]
        );
    }
}
