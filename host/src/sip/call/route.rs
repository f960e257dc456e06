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
        let mut attempts: std::collections::VecDeque<Attempt> =
            match policy.route(&self.wit).await.value {
                Decision::Reject(r) => {
                    self.reply(r.code, &r.reason).await;
                    return EndReason::RejectedByModule;
                }
                Decision::Attempts(list) => list.into(),
            };
        if attempts.is_empty() {
            self.reply(404, "No Route").await;
            return EndReason::NoRoute;
        }

        let limit = self.core.config.gateway_switch_limit.max(1) as usize;
        let mut index = 0u32;
        let mut last_failure: Option<(u16, String)> = None;
        let mut all_skipped = true;
        let mut all_unacceptable = true;
        while let Some(attempt) = attempts.pop_front() {
            if self
                .record
                .attempts
                .iter()
                .filter(|a| !a.leg_call_id.is_empty())
                .count()
                >= limit
            {
                tracing::info!(limit, "gateway switch limit reached");
                break;
            }
            let end = self.attempt(&attempt, index).await;
            all_unacceptable &= matches!(end, AttemptEnd::Unacceptable(_));
            // The attempt is over: a pool number borrowed for its gateway is free again,
            // or, answered, those borrowed for the others are.
            let answered = matches!(end, AttemptEnd::Answered { .. });
            self.core
                .policy
                .runtime()
                .pools
                .release_where(&self.record.call_id, |g| (g == attempt.gateway) != answered);
            match end {
                AttemptEnd::Answered {
                    b,
                    b_invite,
                    answer,
                } => {
                    return self
                        .connected(b, b_invite, *answer, &attempt, max_duration)
                        .await;
                }
                AttemptEnd::CallerCancelled => {
                    self.record.final_code = 487;
                    return EndReason::CallerCancel;
                }
                AttemptEnd::Skipped(why) | AttemptEnd::Unacceptable(why) => {
                    tracing::info!(gateway = %attempt.gateway, reason = %why, "attempt skipped");
                    self.record.attempts.push(AttemptRecord {
                        gateway: attempt.gateway.clone(),
                        leg_call_id: String::new(),
                        callee: attempt.callee.clone(),
                        caller: self.caller_for(&attempt),
                        started_ms: crate::now_ms(),
                        pdd_ms: None,
                        code: None,
                        reason: why,
                        timed_out: false,
                        ended_ms: Some(crate::now_ms()),
                    });
                }
                AttemptEnd::Failed(outcome) => {
                    all_skipped = false;
                    tracing::info!(gateway = %attempt.gateway, code = ?outcome.code, timed_out = outcome.timed_out, "attempt failed");
                    if let Some(code) = outcome.code {
                        last_failure = Some((code, outcome.reason.clone()));
                    }
                    if outcome.timed_out && self.core.config.stop_switch_after_invite_timeout {
                        break;
                    }
                    match policy
                        .on_attempt_failed(&self.wit, &attempt, &outcome)
                        .await
                        .value
                    {
                        NextStep::Continue => {}
                        NextStep::Insert(next) => attempts.push_front(next),
                        NextStep::Stop(r) => {
                            self.reply(r.code, &r.reason).await;
                            return EndReason::CalleeRejected;
                        }
                    }
                }
            }
            index += 1;
        }
        // Every gateway tried refused the caller's codecs: that is the caller's offer
        // being unacceptable (RFC 3261 §21.4.26), not the gateways being busy.
        if all_unacceptable && !self.record.attempts.is_empty() {
            let why = self.record.attempts.last().map(|a| a.reason.clone());
            let resp =
                Outgoing::response(&self.invite, 488, "Not Acceptable Here", Some(&self.a_tag))
                    .header(
                        "Warning",
                        format!("304 switchyard \"{}\"", why.as_deref().unwrap_or_default()),
                    );
            self.core.txs.respond(&self.tx, resp).await;
            self.record.final_code = 488;
            self.record.final_reason = why;
            return EndReason::CodecNotOffered;
        }
        // Spec decision 18: when every attempt fails the caller gets 503.
        if all_skipped {
            // Nothing was sent: every gateway was full, down or unusable. Say which.
            let why = self
                .record
                .attempts
                .last()
                .map_or("no usable gateway", |a| a.reason.as_str())
                .to_string();
            let resp = Outgoing::response(
                &self.invite,
                503,
                "All Gateways Busy Or Down",
                Some(&self.a_tag),
            )
            .header("Reason", format!("SIP;cause=503;text=\"{why}\""));
            self.core.txs.respond(&self.tx, resp).await;
            self.record.final_code = 503;
            self.record.final_reason = Some(why);
            let at_capacity = self.record.attempts.iter().all(|a| a.reason == AT_CAPACITY);
            return if at_capacity && !self.record.attempts.is_empty() {
                EndReason::Limit
            } else {
                EndReason::FailoverExhausted
            };
        }
        let (code, reason) = {
            match last_failure {
                Some((code, reason))
                    if (400..700).contains(&code) && code != 408 && !(500..600).contains(&code) =>
                {
                    (code, reason)
                }
                _ => (503, "All Routes Failed".to_string()),
            }
        };
        self.reply(code, &reason).await;
        EndReason::FailoverExhausted
    }
}
