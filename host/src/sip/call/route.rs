//! Routing: the policy's screen and route, then the attempts in order with failover
//! (the module's `on_attempt_failed`, stop codes, the switch limit), and what the
//! caller hears when every attempt failed.

use super::*;

impl CallTask {
    /// Screen, route, try the attempts; then, if answered, carry the call to its end.
    pub(super) async fn decide_and_connect(&mut self) -> EndReason {
        let Some(policy) = self.core.policy.for_call(&self.wit) else {
            tracing::warn!("no routing module bound; refusing the call");
            self.reply(503, "No Routing Policy").await;
            return EndReason::NoPolicy;
        };
        let key = policy.version().clone();
        self.record.module = Some(format!("{}/{}", key.tenant, key.name));
        self.record.module_version = Some(key.version.clone());

        // The screen's limit holds whatever the session timers do.
        let mut max_duration = 0;
        match policy.screen(&self.wit).await.value {
            Verdict::Allow => {}
            Verdict::AllowWithLimits(l) => max_duration = l.max_duration_secs,
            Verdict::Reject(r) => {
                tracing::info!(code = r.code, reason = %r.reason, "screen rejected the call");
                self.reply(r.code, &r.reason).await;
                return EndReason::RejectedByModule;
            }
        }
        let attempts = match policy.route(&self.wit).await.value {
            Decision::Reject(r) => {
                self.reply(r.code, &r.reason).await;
                return EndReason::RejectedByModule;
            }
            Decision::Attempts(list) => list,
        };
        if attempts.is_empty() {
            self.reply(404, "No Route").await;
            return EndReason::NoRoute;
        }

        let rules = FailoverRules {
            switch_limit: self.core.config.gateway_switch_limit.max(1) as usize,
            stop_after_invite_timeout: self.core.config.stop_switch_after_invite_timeout,
        };
        match fail_over(self, &policy, attempts, rules).await {
            Routed::Answered(attempt, answered) => {
                self.connected(
                    answered.b,
                    answered.b_invite,
                    *answered.answer,
                    &attempt,
                    max_duration,
                )
                .await
            }
            Routed::CallerCancelled => {
                self.record.final_code = 487;
                EndReason::CallerCancel
            }
            Routed::Stopped(r) => {
                self.reply(r.code, &r.reason).await;
                EndReason::CalleeRejected
            }
            Routed::Exhausted(answer) => {
                let mut resp = Outgoing::response(
                    &self.invite,
                    answer.code,
                    &answer.phrase,
                    Some(&self.a_tag),
                );
                if let Some((name, value)) = &answer.header {
                    resp.push(name, value);
                }
                self.core.txs.respond(&self.tx, resp).await;
                self.record.final_code = answer.code;
                self.record.final_reason = answer.recorded;
                answer.reason
            }
        }
    }
}

/// The policy's part in failover: what to do after a failed attempt.
pub(super) trait FailoverPolicy {
    async fn next_step(&self, call: &Call, attempt: &Attempt, outcome: &Outcome) -> NextStep;
}

impl FailoverPolicy for crate::policy::BoundPolicy {
    async fn next_step(&self, call: &Call, attempt: &Attempt, outcome: &Outcome) -> NextStep {
        self.on_attempt_failed(call, attempt, outcome).await.value
    }
}

/// What failover needs of the call: run an attempt, and keep its record.
pub(super) trait AttemptRunner {
    /// What an answered attempt hands on to the established call.
    type Answered;
    fn call(&self) -> &Call;
    /// The attempts recorded so far, sent or skipped.
    fn recorded(&self) -> &[AttemptRecord];
    async fn attempt(&mut self, attempt: &Attempt, index: u32) -> AttemptEnd<Self::Answered>;
    /// The attempt on `attempt.gateway` is over, answered or not.
    fn attempt_over(&mut self, attempt: &Attempt, answered: bool);
    /// Record an attempt that sent nothing.
    fn record_skipped(&mut self, attempt: &Attempt, why: String);
}

impl AttemptRunner for CallTask {
    type Answered = Answered;

    fn call(&self) -> &Call {
        &self.wit
    }

    fn recorded(&self) -> &[AttemptRecord] {
        &self.record.attempts
    }

    async fn attempt(&mut self, attempt: &Attempt, index: u32) -> AttemptEnd {
        CallTask::attempt(self, attempt, index).await
    }

    fn attempt_over(&mut self, attempt: &Attempt, answered: bool) {
        // A pool number borrowed for the attempt's gateway is free again, or,
        // answered, those borrowed for the others are.
        self.core
            .runtime
            .pools
            .release_where(&self.record.call_id, |g| (g == attempt.gateway) != answered);
    }

    fn record_skipped(&mut self, attempt: &Attempt, why: String) {
        self.record.attempts.push(AttemptRecord {
            gateway: attempt.gateway.clone(),
            leg_call_id: String::new(),
            callee: attempt.callee.clone(),
            caller: self.caller_for(attempt),
            started_ms: crate::now_ms(),
            pdd_ms: None,
            code: None,
            reason: why,
            timed_out: false,
            ended_ms: Some(crate::now_ms()),
        });
    }
}

/// The switch's own limits on failover.
#[derive(Debug, Clone, Copy)]
pub(super) struct FailoverRules {
    /// Vendor INVITEs one call may send (skipped attempts send none).
    pub switch_limit: usize,
    /// An attempt that got no answer in time ends the failover.
    pub stop_after_invite_timeout: bool,
}

/// How failover over a call's attempts ended.
pub(super) enum Routed<A> {
    Answered(Attempt, A),
    CallerCancelled,
    /// The policy stopped failover with this answer for the caller.
    Stopped(Reject),
    /// No attempt carried the call; the caller hears this.
    Exhausted(FinalAnswer),
}

/// Try `attempts` in order until one is answered, the caller cancels, the policy
/// stops, or the switch's rules end failover. After each failure the policy may go
/// on, insert an attempt to try next, or stop.
pub(super) async fn fail_over<R: AttemptRunner>(
    runner: &mut R,
    policy: &impl FailoverPolicy,
    attempts: Vec<Attempt>,
    rules: FailoverRules,
) -> Routed<R::Answered> {
    let mut attempts = std::collections::VecDeque::from(attempts);
    let mut index = 0u32;
    let mut last_failure: Option<(u16, String)> = None;
    let mut all_skipped = true;
    let mut all_unacceptable = true;
    while let Some(attempt) = attempts.pop_front() {
        let sent = runner
            .recorded()
            .iter()
            .filter(|a| !a.leg_call_id.is_empty())
            .count();
        if sent >= rules.switch_limit {
            tracing::info!(limit = rules.switch_limit, "gateway switch limit reached");
            break;
        }
        let end = runner.attempt(&attempt, index).await;
        all_unacceptable &= matches!(end, AttemptEnd::Unacceptable(_));
        runner.attempt_over(&attempt, matches!(end, AttemptEnd::Answered(_)));
        match end {
            AttemptEnd::Answered(answered) => return Routed::Answered(attempt, answered),
            AttemptEnd::CallerCancelled => return Routed::CallerCancelled,
            AttemptEnd::Skipped(why) | AttemptEnd::Unacceptable(why) => {
                tracing::info!(gateway = %attempt.gateway, reason = %why, "attempt skipped");
                runner.record_skipped(&attempt, why);
            }
            AttemptEnd::Failed(outcome) => {
                all_skipped = false;
                tracing::info!(gateway = %attempt.gateway, code = ?outcome.code, timed_out = outcome.timed_out, "attempt failed");
                if let Some(code) = outcome.code {
                    last_failure = Some((code, outcome.reason.clone()));
                }
                if outcome.timed_out && rules.stop_after_invite_timeout {
                    break;
                }
                match policy.next_step(runner.call(), &attempt, &outcome).await {
                    NextStep::Continue => {}
                    NextStep::Insert(next) => attempts.push_front(next),
                    NextStep::Stop(r) => return Routed::Stopped(r),
                }
            }
        }
        index += 1;
    }
    Routed::Exhausted(final_answer(
        runner.recorded(),
        last_failure,
        all_skipped,
        all_unacceptable,
    ))
}

/// What the caller hears when no attempt carried the call.
#[derive(Debug, PartialEq)]
pub(super) struct FinalAnswer {
    code: u16,
    phrase: String,
    /// A header saying why (Warning or Reason).
    header: Option<(&'static str, String)>,
    /// The call record's final reason text.
    recorded: Option<String>,
    reason: EndReason,
}

/// The caller's final answer after `attempts` (as recorded) all failed or were
/// skipped; `last_failure` is the last vendor's final code and phrase.
fn final_answer(
    attempts: &[AttemptRecord],
    last_failure: Option<(u16, String)>,
    all_skipped: bool,
    all_unacceptable: bool,
) -> FinalAnswer {
    // Every gateway tried refused the caller's codecs: that is the caller's offer
    // being unacceptable (RFC 3261 §21.4.26), not the gateways being busy.
    if all_unacceptable && !attempts.is_empty() {
        let why = attempts
            .last()
            .map(|a| a.reason.clone())
            .unwrap_or_default();
        return FinalAnswer {
            code: 488,
            phrase: "Not Acceptable Here".into(),
            header: Some(("Warning", format!("304 switchyard \"{why}\""))),
            recorded: Some(why),
            reason: EndReason::CodecNotOffered,
        };
    }
    // Spec decision 18: when every attempt fails the caller gets 503.
    if all_skipped {
        // Nothing was sent: every gateway was full, down or unusable. Say which.
        let why = attempts
            .last()
            .map_or("no usable gateway", |a| a.reason.as_str())
            .to_string();
        let at_capacity = !attempts.is_empty() && attempts.iter().all(|a| a.reason == AT_CAPACITY);
        return FinalAnswer {
            code: 503,
            phrase: "All Gateways Busy Or Down".into(),
            header: Some(("Reason", format!("SIP;cause=503;text=\"{why}\""))),
            recorded: Some(why),
            reason: match at_capacity {
                true => EndReason::Limit,
                false => EndReason::FailoverExhausted,
            },
        };
    }
    // A vendor's final client failure goes back as it is; timeouts and server
    // failures become 503.
    let (code, phrase) = match last_failure {
        Some((code, phrase))
            if (400..700).contains(&code) && code != 408 && !(500..600).contains(&code) =>
        {
            (code, phrase)
        }
        _ => (503, "All Routes Failed".to_string()),
    };
    FinalAnswer {
        code,
        recorded: (!phrase.is_empty()).then(|| phrase.clone()),
        phrase,
        header: None,
        reason: EndReason::FailoverExhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{stock_next_step, Caller, CallerHeader};
    use std::collections::HashMap;

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
        Attempt {
            gateway: gateway.into(),
            callee: "4420".into(),
            caller: None,
            display: None,
            p_asserted_identity: None,
            privacy: None,
            p_preferred_identity: None,
            add_headers: vec![],
            remove_headers: vec![],
            timeout_ms: None,
        }
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
        let Routed::Exhausted(answer) = run(&mut call, &STOCK, &["full", "a", "b", "c"], rules)
        else {
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
}
