//! What the SIP layer's live state shows Prometheus at each scrape: calls, dialogs and
//! transactions in progress, registrations, relay ports, the shield's bans and drops.
//! Counted events (messages, calls ended, attempts) are in `runtime::metrics`.

use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::SipCore;
use crate::runtime::metrics::scrape::{counter, counters, gauge, gauges};

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
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(&mut e, "calls_active", "Calls in progress", n(s.calls))?;
        gauge(
            &mut e,
            "sip_dialogs_active",
            "Dialogs in progress (two per established call)",
            n(s.dialogs),
        )?;
        gauges(
            &mut e,
            "sip_transactions_active",
            "SIP transactions alive, by side",
            &[
                ([("side", "client")], n(s.client_transactions)),
                ([("side", "server")], n(s.server_transactions)),
            ],
        )?;
        gauge(
            &mut e,
            "registrations_active",
            "Phones registered",
            n(s.registrations),
        )?;
        gauge(
            &mut e,
            "media_ports_free",
            "Relay ports free",
            n(s.media_ports_free),
        )?;
        counter(
            &mut e,
            "rtp_transcode_drops",
            "Voice packets dropped because transcoding fell behind",
            s.media_transcode_drops as u64,
        )?;
        let (up, down) = core.routing_gateways_up_down();
        gauges(
            &mut e,
            "routing_gateways",
            "Routing gateways, by health",
            &[([("state", "up")], n(up)), ([("state", "down")], n(down))],
        )?;
        gauge(
            &mut e,
            "bans_active",
            "Sources banned now",
            n(s.shield.bans_active),
        )?;
        counter(&mut e, "bans", "Bans set since start", s.shield.bans_total)?;
        counters(
            &mut e,
            "shield_dropped_packets",
            "Packets the shield dropped before parsing, by why",
            &[
                ([("reason", "denied")], s.shield.dropped_denied),
                ([("reason", "banned")], s.shield.dropped_banned),
                ([("reason", "scanner")], s.shield.dropped_scanner),
            ],
        )?;
        counter(
            &mut e,
            "sip_malformed_messages",
            "Messages that did not parse",
            s.messages_malformed,
        )?;
        Ok(())
    }
}
