use super::*;
use crate::policy::stock_next_step;
use std::collections::HashMap;
use switchyard_model::call::{Caller, CallerHeader};

/// A call whose attempts end as scripted per gateway, recording what it tried.
struct Scripted {
    call: Call,
    ends: HashMap<&'static str, Vec<AttemptEnd<&'static str>>>,
    recorded: Vec<AttemptRecord>,
    tried: Vec<String>,
    /// Gateways whose attempt ended, with whether it was answered.
    over: Vec<(String, bool)>,
}

impl Scripted {
    fn new(ends: Vec<(&'static str, AttemptEnd<&'static str>)>) -> Scripted {
        let mut by_gateway: HashMap<_, Vec<_>> = HashMap::new();
        for (gateway, end) in ends.into_iter().rev() {
            by_gateway.entry(gateway).or_default().push(end);
        }
        Scripted {
            call: Call {
                call_id: "c1".into(),
                account: "acme".into(),
                tenant: "default".into(),
                ingress_gateway: String::new(),
                source_address: "127.0.0.2:5060".into(),
                caller: Caller {
                    user: "100".into(),
                    display: None,
                    source: CallerHeader::From,
                },
                callee: "4420".into(),
                request_uri: "sip:4420@127.0.0.1".into(),
                headers: vec![],
                codecs: vec!["PCMA".into()],
                arrived_at_ms: 0,
            },
            ends: by_gateway,
            recorded: Vec::new(),
            tried: Vec::new(),
            over: Vec::new(),
        }
    }
}

impl AttemptRunner for Scripted {
    type Answered = &'static str;

    fn call(&self) -> &Call {
        &self.call
    }

    fn recorded(&self) -> &[AttemptRecord] {
        &self.recorded
    }

    async fn attempt(&mut self, attempt: &Attempt, index: u32) -> AttemptEnd<&'static str> {
        assert_eq!(
            index as usize,
            self.tried.len(),
            "attempts are numbered in order"
        );
        self.tried.push(attempt.gateway.clone());
        let end = self
            .ends
            .get_mut(attempt.gateway.as_str())
            .and_then(Vec::pop)
            .unwrap_or_else(|| panic!("no scripted end for {}", attempt.gateway));
        // As the real attempt does: one sent is recorded with its leg.
        if matches!(end, AttemptEnd::Failed(_) | AttemptEnd::Answered(_)) {
            let mut sent = skipped(&attempt.gateway, "");
            sent.leg_call_id = format!("leg-{index}");
            self.recorded.push(sent);
        }
        end
    }

    fn attempt_over(&mut self, attempt: &Attempt, answered: bool) {
        self.over.push((attempt.gateway.clone(), answered));
    }

    fn record_skipped(&mut self, attempt: &Attempt, why: String) {
        self.recorded.push(skipped(&attempt.gateway, &why));
    }
}

/// A policy that answers failures with a rule of its own, seeing what it is asked.
struct FakePolicy<F>(F);

impl<F: Fn(&Attempt, &Outcome) -> NextStep> FailoverPolicy for FakePolicy<F> {
    async fn next_step(&self, call: &Call, attempt: &Attempt, outcome: &Outcome) -> NextStep {
        assert_eq!(call.call_id, "c1");
        (self.0)(attempt, outcome)
    }
}

const STOCK: FakePolicy<fn(&Attempt, &Outcome) -> NextStep> =
    FakePolicy(|_, outcome| stock_next_step(outcome));

fn to(gateway: &str) -> Attempt {
    Attempt::to(gateway, "4420")
}

fn failed(code: Option<u16>, timed_out: bool) -> AttemptEnd<&'static str> {
    AttemptEnd::Failed(Outcome {
        index: 0,
        code,
        reason: code.map_or("no answer", |_| "vendor says no").into(),
        pdd_ms: None,
        timed_out,
    })
}

const RULES: FailoverRules = FailoverRules {
    switch_limit: 10,
    stop_after_invite_timeout: false,
};

fn run<P: FailoverPolicy>(
    runner: &mut Scripted,
    policy: &P,
    gateways: &[&str],
    rules: FailoverRules,
) -> Routed<&'static str> {
    let attempts = gateways.iter().map(|g| to(g)).collect();
    // Nothing here awaits I/O: a bare current-thread runtime drives it.
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fail_over(runner, policy, attempts, rules))
}

#[test]
fn failover_tries_each_route_in_order_until_one_answers() {
    let mut call = Scripted::new(vec![
        ("a", failed(Some(503), false)),
        ("b", AttemptEnd::Skipped("gateway down".into())),
        ("c", failed(None, true)),
        ("d", AttemptEnd::Answered("d answered")),
    ]);
    let routed = run(&mut call, &STOCK, &["a", "b", "c", "d", "e"], RULES);
    let Routed::Answered(attempt, answered) = routed else {
        panic!("not answered")
    };
    assert_eq!((attempt.gateway.as_str(), answered), ("d", "d answered"));
    assert_eq!(call.tried, ["a", "b", "c", "d"]);
    // Each attempt's end is reported, so pool numbers are freed for each.
    let over: Vec<_> = call.over.iter().map(|(g, a)| (g.as_str(), *a)).collect();
    assert_eq!(
        over,
        [("a", false), ("b", false), ("c", false), ("d", true)]
    );
    assert_eq!(call.recorded[1].reason, "gateway down");
}

#[test]
fn a_stop_code_ends_failover_with_the_vendors_answer() {
    let mut call = Scripted::new(vec![("a", failed(Some(486), false))]);
    let routed = run(&mut call, &STOCK, &["a", "b"], RULES);
    let Routed::Stopped(reject) = routed else {
        panic!("not stopped")
    };
    assert_eq!(reject.code, 486);
    assert_eq!(call.tried, ["a"]);
}

#[test]
fn the_policy_can_insert_an_attempt_to_try_next() {
    let policy = FakePolicy(|attempt: &Attempt, outcome: &Outcome| {
        match (attempt.gateway.as_str(), outcome.code) {
            ("a", Some(503)) => NextStep::Insert(to("backup")),
            _ => NextStep::Continue,
        }
    });
    let mut call = Scripted::new(vec![
        ("a", failed(Some(503), false)),
        ("backup", failed(Some(500), false)),
        ("b", AttemptEnd::Answered("b")),
    ]);
    assert!(matches!(
        run(&mut call, &policy, &["a", "b"], RULES),
        Routed::Answered(_, "b")
    ));
    assert_eq!(call.tried, ["a", "backup", "b"]);
}

#[test]
fn the_switch_limit_counts_invites_sent_not_gateways_skipped() {
    let mut call = Scripted::new(vec![
        ("full", AttemptEnd::Skipped(AT_CAPACITY.into())),
        ("a", failed(Some(503), false)),
        ("b", failed(Some(503), false)),
    ]);
    let rules = FailoverRules {
        switch_limit: 2,
        ..RULES
    };
    let Routed::Exhausted(answer) = run(&mut call, &STOCK, &["full", "a", "b", "c"], rules) else {
        panic!("not exhausted")
    };
    assert_eq!(call.tried, ["full", "a", "b"]);
    assert_eq!(
        (answer.code, answer.reason),
        (503, EndReason::FailoverExhausted)
    );
}

#[test]
fn an_invite_timeout_ends_failover_only_when_configured() {
    let script = || {
        Scripted::new(vec![
            ("a", failed(None, true)),
            ("b", AttemptEnd::Answered("b")),
        ])
    };
    let mut call = script();
    assert!(matches!(
        run(&mut call, &STOCK, &["a", "b"], RULES),
        Routed::Answered(_, "b")
    ));
    let mut call = script();
    let stop = FailoverRules {
        stop_after_invite_timeout: true,
        ..RULES
    };
    let Routed::Exhausted(answer) = run(&mut call, &STOCK, &["a", "b"], stop) else {
        panic!("not exhausted")
    };
    assert_eq!(call.tried, ["a"]);
    assert_eq!(answer.code, 503);
}

#[test]
fn every_gateway_full_is_503_as_a_limit_and_the_policy_is_not_asked() {
    let never = FakePolicy(|_: &Attempt, _: &Outcome| -> NextStep {
        panic!("nothing failed, nothing to ask")
    });
    let mut call = Scripted::new(vec![
        ("a", AttemptEnd::Skipped(AT_CAPACITY.into())),
        ("b", AttemptEnd::Skipped(AT_CAPACITY.into())),
    ]);
    let Routed::Exhausted(answer) = run(&mut call, &never, &["a", "b"], RULES) else {
        panic!("not exhausted")
    };
    assert_eq!((answer.code, answer.reason), (503, EndReason::Limit));
}

#[test]
fn the_callers_cancel_ends_failover_at_once() {
    let mut call = Scripted::new(vec![("a", AttemptEnd::CallerCancelled)]);
    assert!(matches!(
        run(&mut call, &STOCK, &["a", "b"], RULES),
        Routed::CallerCancelled
    ));
    assert_eq!(call.tried, ["a"]);
}

#[test]
fn a_vendors_last_client_failure_is_what_the_caller_hears() {
    let mut call = Scripted::new(vec![
        ("a", failed(Some(503), false)),
        ("b", failed(Some(480), false)),
    ]);
    let Routed::Exhausted(answer) = run(&mut call, &STOCK, &["a", "b"], RULES) else {
        panic!("not exhausted")
    };
    assert_eq!(
        (answer.code, answer.phrase.as_str()),
        (480, "vendor says no")
    );
}

fn skipped(gateway: &str, why: &str) -> AttemptRecord {
    AttemptRecord {
        gateway: gateway.into(),
        leg_call_id: String::new(),
        callee: "4420".into(),
        caller: "100".into(),
        started_ms: 0,
        pdd_ms: None,
        code: None,
        reason: why.into(),
        timed_out: false,
        ended_ms: Some(0),
    }
}

#[test]
fn codecs_refused_everywhere_is_488_with_the_reason() {
    let tried = [skipped("a", "the vendor's gateway requires G729 ...")];
    let answer = final_answer(&tried, None, true, true);
    assert_eq!(
        (answer.code, answer.reason),
        (488, EndReason::CodecNotOffered)
    );
    assert_eq!(
        answer.header,
        Some((
            "Warning",
            "304 switchyard \"the vendor's gateway requires G729 ...\"".into()
        ))
    );
}

#[test]
fn nothing_sent_is_503_saying_why_and_full_gateways_are_a_limit() {
    let full = [skipped("a", AT_CAPACITY), skipped("b", AT_CAPACITY)];
    let answer = final_answer(&full, None, true, false);
    assert_eq!((answer.code, answer.reason), (503, EndReason::Limit));
    assert_eq!(
        answer.header.unwrap().1,
        format!("SIP;cause=503;text=\"{AT_CAPACITY}\"")
    );
    let mixed = [skipped("a", AT_CAPACITY), skipped("b", "gateway down")];
    let answer = final_answer(&mixed, None, true, false);
    assert_eq!(
        (answer.reason, answer.recorded.as_deref()),
        (EndReason::FailoverExhausted, Some("gateway down"))
    );
    // Refused for codecs on one gateway, down on another: 503, not 488.
    let some_codecs = [skipped("a", "requires G729"), skipped("b", "gateway down")];
    assert_eq!(final_answer(&some_codecs, None, true, false).code, 503);
}

#[test]
fn a_vendors_client_failure_goes_back_and_server_failures_become_503() {
    let answer = final_answer(&[], Some((404, "Not Found".into())), false, false);
    assert_eq!((answer.code, answer.phrase.as_str()), (404, "Not Found"));
    for code in [408, 500, 503, 302] {
        let answer = final_answer(&[], Some((code, "x".into())), false, false);
        assert_eq!(
            (answer.code, answer.phrase.as_str()),
            (503, "All Routes Failed"),
            "{code}"
        );
    }
    let answer = final_answer(&[], None, false, false);
    assert_eq!(
        (answer.code, answer.reason),
        (503, EndReason::FailoverExhausted)
    );
}
