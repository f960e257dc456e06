//! Media benchmark (run by scripts/bench-media, not in CI):
//! - relayed RTP packets per second at zero loss: one stream of 172-byte packets (20 ms
//!   of G.711) through switchyard's relay, rate stepped up until a step loses a packet;
//!   with `--rtpengine HOST:PORT` the same steps through rtpengine (its ng control
//!   protocol sets up the call), and the ratio of the two;
//! - duplex G.711 <-> G.729 calls one core can transcode: the time to convert one
//!   20 ms packet each way, against the 20 ms a call allows.
//!
//! - the same with bcg729 called directly (no transcoder around it): its own bound on
//!   this machine, measured in the same run.
//!
//! Prints `relay N pps`, (`rtpengine N pps`, `ratio N`,) `transcoded calls per core N`,
//! `of bcg729's own bound N`.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::arg;
use switchyard::media::codec::{alaw_encode, Codec, Transcoder};
use switchyard::media::{MediaConfig, MediaEngine, Side};

/// Seconds each rate step sends for.
const STEP_SECS: f64 = 1.0;

fn main() -> anyhow::Result<()> {
    let start_pps = arg("--start-pps", 10_000);
    let rtpengine = std::env::args()
        .skip_while(|a| a != "--rtpengine")
        .nth(1)
        .map(|a| a.parse::<SocketAddr>())
        .transpose()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let lo: IpAddr = "127.0.0.1".parse()?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let source = UdpSocket::bind("127.0.0.1:0")?;

    // switchyard: a relay whose vendor side sends to the sink.
    let engine = MediaEngine::new(MediaConfig {
        port_start: 43_000,
        port_end: 43_100,
        ..MediaConfig::default()
    });
    let relay = runtime.block_on(engine.relay(lo, lo))?;
    relay.set_peer(Side::Callee, sink.local_addr()?);
    let ours = SocketAddr::new(lo, relay.local_port(Side::Caller));
    let relay_pps = max_lossless_pps(&source, &sink, ours, start_pps)?;
    drop(relay);

    let peer = match rtpengine {
        Some(ng) => {
            let entry = rtpengine_call(ng, &source, &sink)?;
            Some(max_lossless_pps(&source, &sink, entry, start_pps)?)
        }
        None => None,
    };

    let calls = transcoded_calls_per_core();
    let bound = bcg729_calls_per_core();
    println!("bcg729 alone {bound:.0} calls per core");
    println!("relay {relay_pps} pps");
    if let Some(peer) = peer {
        println!("rtpengine {peer} pps");
        println!("ratio {:.2}", relay_pps as f64 / peer.max(1) as f64);
    }
    println!("transcoded calls per core {calls:.0}");
    println!("of bcg729's own bound {:.2}", calls / bound);
    Ok(())
}

/// The highest rate, doubling then stepping by a quarter, at which every packet sent
/// to `entry` for a second reaches `sink` (in one of three tries).
fn max_lossless_pps(
    source: &UdpSocket,
    sink: &UdpSocket,
    entry: SocketAddr,
    start: usize,
) -> anyhow::Result<usize> {
    sink.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut best = 0;
    let mut rate = start;
    let step_up = |rate: usize, best: usize| {
        if best == 0 || rate >= best * 2 {
            rate * 2
        } else {
            rate + rate / 4
        }
    };
    for _ in 0..20 {
        // Best of three: a step fails only when every try loses a packet, so one
        // scheduling hiccup on this small machine does not end the ladder.
        let mut lost = usize::MAX;
        for _ in 0..3 {
            lost = lost.min(step(source, sink, entry, rate)?);
            if lost == 0 {
                break;
            }
        }
        if lost > 0 {
            if best == 0 || rate <= best + best / 4 {
                break;
            }
            // Doubled past it: come back a quarter above the last good rate.
            rate = best + best / 4;
            continue;
        }
        best = rate;
        rate = step_up(rate, best);
    }
    Ok(best)
}

/// Send `rate` packets a second for a step; the packets that did not arrive.
fn step(
    source: &UdpSocket,
    sink: &UdpSocket,
    entry: SocketAddr,
    rate: usize,
) -> anyhow::Result<usize> {
    let total = (rate as f64 * STEP_SECS) as usize;
    let mut packet = vec![0u8; 172];
    packet[0] = 0x80;
    packet[1] = 8;
    let receiver = {
        let sink = sink.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut got = 0usize;
            while sink.recv(&mut buf).is_ok() {
                got += 1;
            }
            got
        })
    };
    let started = Instant::now();
    for n in 0..total {
        packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        // Paced in bursts of 1 ms.
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            if wait > Duration::from_micros(500) {
                std::thread::sleep(wait);
            }
        }
        source.send_to(&packet, entry)?;
    }
    let got = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    Ok(total.saturating_sub(got))
}

/// Set up a call in rtpengine over its ng protocol: offer from `source`, answer from
/// `sink`; the address `source` must send to.
fn rtpengine_call(
    ng: SocketAddr,
    source: &UdpSocket,
    sink: &UdpSocket,
) -> anyhow::Result<SocketAddr> {
    let control = UdpSocket::bind("127.0.0.1:0")?;
    control.set_read_timeout(Some(Duration::from_secs(2)))?;
    let sdp = |port: u16| {
        format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
    };
    let ask = |command: &str, extra: &str, sdp: &str| -> anyhow::Result<String> {
        let dict = format!(
            "d7:command{}:{command}7:call-id5:bench8:from-tag1:a{extra}3:sdp{}:{sdp}e",
            command.len(),
            sdp.len()
        );
        // A cookie per command: rtpengine answers a repeated cookie from its cache.
        control.send_to(format!("{command} {dict}").as_bytes(), ng)?;
        let mut buf = [0u8; 4096];
        let n = control.recv(&mut buf)?;
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        anyhow::ensure!(
            reply.contains("6:result2:ok"),
            "rtpengine {command}: {reply}"
        );
        Ok(reply)
    };
    ask("offer", "", &sdp(source.local_addr()?.port()))?;
    let answer = ask("answer", "6:to-tag1:b", &sdp(sink.local_addr()?.port()))?;
    let port = answer
        .split("m=audio ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in rtpengine's answer: {answer}"))?;
    Ok(SocketAddr::new("127.0.0.1".parse()?, port))
}

/// Duplex calls one core converts: 20 ms of PCMA to G.729 and 20 ms of G.729 to PCMA
/// per call every 20 ms.
fn transcoded_calls_per_core() -> f64 {
    let mut to_g729 = Transcoder::new(Codec::Pcma, Codec::G729);
    let mut to_pcma = Transcoder::new(Codec::G729, Codec::Pcma);
    let packets = 2_000;
    let pcma: Vec<Vec<u8>> = (0..50)
        .map(|n| {
            (0..160)
                .map(|i| {
                    let t = (n * 160 + i) as f64 / 8000.0;
                    alaw_encode((6000.0 * (2.0 * std::f64::consts::PI * 800.0 * t).sin()) as i16)
                })
                .collect()
        })
        .collect();
    let g729: Vec<Vec<u8>> = pcma.iter().map(|p| to_g729.convert(p)).collect();
    let started = Instant::now();
    let mut bytes = 0;
    for n in 0..packets {
        bytes += to_g729.convert(&pcma[n % pcma.len()]).len();
        bytes += to_pcma.convert(&g729[n % g729.len()]).len();
    }
    let per_call = started.elapsed().as_secs_f64() / packets as f64;
    assert!(bytes > 0);
    0.020 / per_call
}

/// Duplex calls one core could carry if converting cost only bcg729's work: per call
/// every 20 ms, two frames encoded and two decoded, nothing else.
fn bcg729_calls_per_core() -> f64 {
    let mut encoder = bcg729::Encoder::new(false);
    let mut decoder = bcg729::Decoder::new();
    let frames: Vec<[i16; bcg729::FRAME_SAMPLES]> = (0..100)
        .map(|n| {
            std::array::from_fn(|i| {
                let t = (n * bcg729::FRAME_SAMPLES + i) as f64 / 8000.0;
                (6000.0 * (2.0 * std::f64::consts::PI * 800.0 * t).sin()) as i16
            })
        })
        .collect();
    let mut bits = [[0u8; bcg729::FRAME_BYTES]; 100];
    for (frame, out) in frames.iter().zip(bits.iter_mut()) {
        encoder.encode(frame, out);
    }
    let mut pcm = [0i16; bcg729::FRAME_SAMPLES];
    let packets = 2_000;
    let started = Instant::now();
    for n in 0..packets * 2 {
        let mut out = [0u8; bcg729::FRAME_BYTES];
        encoder.encode(&frames[n % frames.len()], &mut out);
        decoder.decode(Some(&bits[n % bits.len()]), &mut pcm);
    }
    let per_call = started.elapsed().as_secs_f64() / packets as f64;
    0.020 / per_call
}
