//! What the SIP layer's live state shows Prometheus at each scrape: calls, dialogs and
//! transactions in progress, registrations, relay ports, the shield's bans and drops.
//! Counted events (messages, calls ended, attempts) are in `runtime::metrics`.

use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::SipCore;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::runtime::metrics::scrape::{family, one};

/// Reads the SIP core while it lives; a stopped switch shows nothing.
pub(super) struct SipGauges(pub(super) Weak<SipCore>);

impl std::fmt::Debug for SipGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipGauges")
    }
}

impl Collector for SipGauges {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(core) = self.0.upgrade() else {
            return Ok(());
        };
        let s = core.stats();
        let g = |v: usize| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        let c = ConstCounter::new;
        one(&mut e, "calls_active", "Calls in progress", g(s.calls))?;
        one(
            &mut e,
            "sip_dialogs_active",
            "Dialogs in progress (two per established call)",
            g(s.dialogs),
        )?;
        family(
            &mut e,
            "sip_transactions_active",
            "SIP transactions alive, by side",
            &[
                ([("side", "client")], g(s.client_transactions)),
                ([("side", "server")], g(s.server_transactions)),
            ],
        )?;
        one(
            &mut e,
            "registrations_active",
            "Phones registered",
            g(s.registrations),
        )?;
        one(
            &mut e,
            "media_ports_free",
            "Relay ports free",
            g(s.media_ports_free),
        )?;
        let m = &s.media;
        family(
            &mut e,
            "rtp_packets",
            "RTP packets the relay received from and sent to calls' sides",
            &[
                ([("direction", "received")], c(m.rtp_received)),
                ([("direction", "sent")], c(m.rtp_sent)),
            ],
        )?;
        family(
            &mut e,
            "rtp_dropped_packets",
            "RTP packets the relay dropped, by why",
            &[
                ([("reason", "stranger")], c(m.rtp_dropped_stranger)),
                ([("reason", "unrouted")], c(m.rtp_dropped_unrouted)),
                ([("reason", "transcoder_behind")], c(m.transcode_drops)),
            ],
        )?;
        one(
            &mut e,
            "rtp_transcoded_packets",
            "Voice packets converted between codecs",
            c(m.transcoded),
        )?;
        one(
            &mut e,
            "transcoder_queued_packets",
            "Voice packets waiting for a transcoding worker",
            g(m.transcode_queued),
        )?;
        one(
            &mut e,
            "transcoder_directions_active",
            "Call directions being transcoded (two per transcoded call)",
            g(m.transcode_directions),
        )?;
        one(
            &mut e,
            "transcoder_workers",
            "Transcoding worker threads",
            g(m.transcode_workers),
        )?;
        let (up, down) = core.routing_gateways_up_down();
        family(
            &mut e,
            "routing_gateways",
            "Routing gateways, by health",
            &[([("state", "up")], g(up)), ([("state", "down")], g(down))],
        )?;
        one(
            &mut e,
            "bans_active",
            "Sources banned now",
            g(s.shield.bans_active),
        )?;
        one(
            &mut e,
            "bans",
            "Bans set since start",
            c(s.shield.bans_total),
        )?;
        family(
            &mut e,
            "shield_dropped_packets",
            "Packets the shield dropped before parsing, by why",
            &[
                ([("reason", "denied")], c(s.shield.dropped_denied)),
                ([("reason", "banned")], c(s.shield.dropped_banned)),
                ([("reason", "scanner")], c(s.shield.dropped_scanner)),
            ],
        )?;
        one(
            &mut e,
            "sip_malformed_messages",
            "Messages that did not parse",
            c(s.messages_malformed),
        )?;
        Ok(())
    }
}
