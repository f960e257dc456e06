//! The switch's Prometheus metrics: counters the layers above bump as things happen
//! (calls ended, attempts answered, SIP messages, module decisions, call records
//! written) and collectors they register for what is read off live state at each
//! scrape (active calls, transactions, bans). Every label has a bounded set of
//! values: reasons, methods and codes from fixed lists, and the ids of configured
//! gateways and uploaded modules; never a call id or a number.

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Which way a SIP message went.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    In,
    /// Sent.
    Out,
}

impl EncodeLabelValue for Direction {
    fn encode(&self, e: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        e.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// A SIP message's labels: its direction, its method (a response's is its CSeq
/// method) and, for a response, its status class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub direction: Direction,
    pub method: &'static str,
    /// `request`, or the response's class (`1xx` … `6xx`).
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// The call's end reason (snake_case, a fixed list).
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    gateway: String,
    /// The final status code the vendor gave (0 when it gave none).
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleLabels {
    tenant: String,
    module: String,
    version: String,
    /// `ok`, or the failure's kind.
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleNameLabels {
    tenant: String,
    module: String,
}

/// Buckets of a decision's time: 50 µs doubling to about 0.8 s.
fn decision_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 15))
}

/// Every metric of a running switch.
pub struct Metrics {
    registry: Mutex<Registry>,
    calls: Family<CallLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    sip_messages: Family<MessageLabels, Counter>,
    module_invocations: Family<ModuleLabels, Counter>,
    module_decision_seconds: Family<ModuleNameLabels, Histogram, fn() -> Histogram>,
    cdr_writes: Counter,
    balance_cut_calls: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The metrics, all at zero, named under `switchyard_`.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("switchyard")),
            calls: Family::default(),
            attempts: Family::default(),
            sip_messages: Family::default(),
            module_invocations: Family::default(),
            module_decision_seconds: Family::new_with_constructor(decision_buckets),
            cdr_writes: Counter::default(),
            balance_cut_calls: Counter::default(),
        };
        let mut registry = m.lock();
        registry.register("calls", "Calls ended, by end reason", m.calls.clone());
        registry.register(
            "call_attempts",
            "Attempts towards routing gateways, by gateway and final status code",
            m.attempts.clone(),
        );
        registry.register(
            "sip_messages",
            "SIP messages received and sent, by method and status class",
            m.sip_messages.clone(),
        );
        registry.register(
            "module_invocations",
            "Module decisions, by module, version and outcome",
            m.module_invocations.clone(),
        );
        registry.register_with_unit(
            "module_decision",
            "Time of a module decision (instantiate and hook)",
            Unit::Seconds,
            m.module_decision_seconds.clone(),
        );
        registry.register("cdr_writes", "Call records written", m.cdr_writes.clone());
        registry.register(
            "balance_cut_calls",
            "Calls ended because the account's balance ran out",
            m.balance_cut_calls.clone(),
        );
        drop(registry);
        m
    }

    /// Add what is read off live state at each scrape.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.lock().register_collector(collector);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.lock());
        out
    }

    /// A call ended for `reason` (snake_case).
    pub fn call_ended(&self, reason: &str, balance_cut: bool) {
        self.calls
            .get_or_create(&CallLabels {
                result: reason.to_string(),
            })
            .inc();
        if balance_cut {
            self.balance_cut_calls.inc();
        }
    }

    /// An attempt towards `gateway` ended with `code` (0: none).
    pub fn attempt_ended(&self, gateway: &str, code: u16) {
        self.attempts
            .get_or_create(&AttemptLabels {
                gateway: gateway.to_string(),
                code,
            })
            .inc();
    }

    /// A SIP message went by.
    pub fn sip_message(&self, labels: &MessageLabels) {
        self.sip_messages.get_or_create(labels).inc();
    }

    /// A module decided (`outcome`: `ok` or the failure's kind) in `seconds`.
    pub fn module_decision(
        &self,
        tenant: &str,
        module: &str,
        version: &str,
        outcome: &'static str,
        seconds: f64,
    ) {
        self.module_invocations
            .get_or_create(&ModuleLabels {
                tenant: tenant.to_string(),
                module: module.to_string(),
                version: version.to_string(),
                outcome,
            })
            .inc();
        self.module_decision_seconds
            .get_or_create(&ModuleNameLabels {
                tenant: tenant.to_string(),
                module: module.to_string(),
            })
            .observe(seconds);
    }

    /// A call record was written.
    pub fn cdr_written(&self) {
        self.cdr_writes.inc();
    }
}

/// Write metrics read at scrape time (`ConstGauge`s and `ConstCounter`s; a counter's
/// `name` goes without `_total`).
pub mod scrape {
    use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};

    /// One metric without labels.
    pub fn one<M: EncodeMetric>(
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        metric: M,
    ) -> std::fmt::Result {
        metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
    }

    /// One metric per label set, all of one type.
    pub fn family<L: EncodeLabelSet, M: EncodeMetric>(
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        values: &[(L, M)],
    ) -> std::fmt::Result {
        let Some((_, first)) = values.first() else {
            return Ok(());
        };
        let mut family = e.encode_descriptor(name, help, None, first.metric_type())?;
        for (labels, metric) in values {
            metric.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exposed_under_prometheus_names() {
        let m = Metrics::new();
        m.call_ended("caller_hangup", false);
        m.call_ended("balance_exhausted", true);
        m.attempt_ended("gw-1", 503);
        m.module_decision("t", "router", "abc", "ok", 0.000_2);
        m.sip_message(&MessageLabels {
            direction: Direction::In,
            method: "INVITE",
            status: "request",
        });
        let text = m.encode();
        for line in [
            "switchyard_calls_total{result=\"caller_hangup\"} 1",
            "switchyard_balance_cut_calls_total 1",
            "switchyard_call_attempts_total{gateway=\"gw-1\",code=\"503\"} 1",
            "switchyard_sip_messages_total{direction=\"in\",method=\"INVITE\",status=\"request\"} 1",
            "switchyard_module_invocations_total{tenant=\"t\",module=\"router\",version=\"abc\",outcome=\"ok\"} 1",
            "switchyard_module_decision_seconds_count{tenant=\"t\",module=\"router\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
