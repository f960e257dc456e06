//! Transcoding off the async reactor: one worker thread per core converts voice
//! packets and sends them. Each call direction is pinned to one worker, so its codec
//! state is used by one thread and its packets leave in order; a worker that falls
//! behind drops packets rather than deliver them late.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use super::codec::{Codec, Transcoder};
use super::repacketize::{Cut, Incoming, Repacketizer};
use super::rtp;
use super::rtp_stats::RtpTotals;

/// Packets a worker may have waiting: 200 ms of 100 duplex calls.
const QUEUE: usize = 2_000;

/// What a converted packet goes through before it leaves.
pub(super) type Finish = Box<dyn Fn(&mut [u8]) + Send + Sync>;

/// One direction of a transcoded call: its converter, the ptime the receiving side
/// asked for, the socket it leaves by and the worker it runs on.
pub(super) struct Direction {
    state: Mutex<(Transcoder, Repacketizer)>,
    reads: Codec,
    out_ptime_ms: Arc<AtomicU32>,
    out: Arc<UdpSocket>,
    finish: Finish,
    worker: usize,
    /// Counts it among the directions being transcoded while it lives.
    totals: Arc<RtpTotals>,
}

impl Drop for Direction {
    fn drop(&mut self) {
        self.totals
            .transcode_directions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Direction {
    /// The codec it reads.
    pub(super) fn reads(&self) -> Codec {
        self.reads
    }
}

struct Job {
    direction: Arc<Direction>,
    packet: Vec<u8>,
    target: SocketAddr,
}

/// The workers.
pub(super) struct TranscodePool {
    workers: Vec<SyncSender<Job>>,
    next: AtomicUsize,
    totals: Arc<RtpTotals>,
}

impl TranscodePool {
    /// One worker per core, counting its load in `totals`.
    pub(super) fn new(totals: Arc<RtpTotals>) -> Arc<TranscodePool> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (0..cores)
            .map(|i| {
                let (tx, rx) = sync_channel::<Job>(QUEUE);
                let totals = totals.clone();
                std::thread::Builder::new()
                    .name(format!("transcode-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            totals.transcode_queued.fetch_sub(1, Ordering::Relaxed);
                            RtpTotals::add(&totals.transcoded);
                            for mut packet in convert(&job.direction, &job.packet) {
                                (job.direction.finish)(&mut packet);
                                let _ = job.direction.out.try_send_to(&packet, job.target);
                            }
                        }
                    })
                    .expect("spawning a transcoding worker");
                tx
            })
            .collect();
        Arc::new(TranscodePool {
            workers,
            next: AtomicUsize::new(0),
            totals,
        })
    }

    /// A direction converting with `transcoder` into packets of `out_ptime_ms`,
    /// passing each through `finish` and sending it out of `out`, on the next worker
    /// in turn.
    pub(super) fn direction(
        &self,
        transcoder: Transcoder,
        out_ptime_ms: Arc<AtomicU32>,
        out: Arc<UdpSocket>,
        finish: Finish,
    ) -> Arc<Direction> {
        let worker = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.totals
            .transcode_directions
            .fetch_add(1, Ordering::Relaxed);
        Arc::new(Direction {
            reads: transcoder.from(),
            state: Mutex::new((transcoder, Repacketizer::default())),
            out_ptime_ms,
            out,
            finish,
            worker,
            totals: self.totals.clone(),
        })
    }

    /// Queue `packet` of `direction` for conversion and sending to `target`.
    pub(super) fn submit(&self, direction: &Arc<Direction>, packet: Vec<u8>, target: SocketAddr) {
        let job = Job {
            direction: direction.clone(),
            packet,
            target,
        };
        // Counted before it is queued, so the worker's decrement cannot come first.
        self.totals.transcode_queued.fetch_add(1, Ordering::Relaxed);
        match self.workers[direction.worker].try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.totals.transcode_queued.fetch_sub(1, Ordering::Relaxed);
                RtpTotals::add(&self.totals.transcode_dropped);
            }
        }
    }

    /// Its workers.
    pub(super) fn workers(&self) -> usize {
        self.workers.len()
    }
}

/// The packets `packet`'s voice becomes: converted, and cut to the receiving side's
/// ptime (so none, one or several). None when it is not RTP.
fn convert(direction: &Direction, packet: &[u8]) -> Vec<Vec<u8>> {
    let Some(start) = rtp::payload_start(packet) else {
        return Vec::new();
    };
    // Padding (the P bit) is not voice.
    let end = match packet[0] & 0x20 {
        0 => packet.len(),
        _ => packet
            .len()
            .saturating_sub(usize::from(packet.last().copied().unwrap_or(0))),
    };
    let Some(payload) = packet.get(start..end) else {
        return Vec::new();
    };
    let incoming = Incoming {
        seq: rtp::sequence(packet),
        ts: rtp::timestamp(packet),
        ssrc: rtp::ssrc(packet),
        marker: rtp::marker(packet),
    };
    let mut state = direction.state.lock().unwrap_or_else(|e| e.into_inner());
    let (transcoder, repacketizer) = &mut *state;
    let to = transcoder.to();
    let audio = transcoder.convert(payload);
    let cut = Cut {
        pt: to.payload_type(),
        frame_bytes: to.frame_bytes(),
        frames: (direction.out_ptime_ms.load(Ordering::Relaxed) / 10).clamp(1, 20) as usize,
    };
    repacketizer.push(incoming, &audio, cut)
}
