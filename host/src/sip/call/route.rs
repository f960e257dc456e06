//! Routing: the policy's screen and route, then the attempts in order with failover
//! (the module's `on_attempt_failed`, stop codes, the switch limit), and what the
//! caller hears when every attempt failed.

use super::*;

impl CallTask {
    /// Screen, route, try the attempts; then, if answered, carry the call to its end.
    pub(super) async fn decide_and_connect(&mut self) -> EndReason {
        let Some(policy) = self.core.policy.for_call(&self.call) else {
            tracing::warn!("no routing module bound; refusing the call");
            self.reply(503, "No Routing Policy").await;
            return EndReason::NoPolicy;
        };
        let key = policy.version().clone();
        self.record.module = Some(format!("{}/{}", key.tenant, key.name));
        self.record.module_version = Some(key.version.clone());

        // The screen's limit holds whatever the session timers do.
        let mut max_duration = 0;
        // A screen binding (the stock fraud rules, say) screens in place of the router.
        let screen = self.core.policy.screen_for(&self.call);
        match screen
            .as_ref()
            .unwrap_or(&policy)
            .screen(&self.call)
            .await
            .value
        {
            Verdict::Allow => {}
            Verdict::AllowWithLimits(l) => max_duration = l.max_duration_secs,
            Verdict::Reject(r) => {
                tracing::info!(code = r.code, reason = %r.reason, "screen rejected the call");
                self.reply(r.code, &r.reason).await;
                return EndReason::RejectedByModule;
            }
        }
        let attempts = match policy.route(&self.call).await.value {
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
        &self.call
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
mod tests;
