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
                .runtime
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
        let answer = final_answer(
            &self.record.attempts,
            last_failure,
            all_skipped,
            all_unacceptable,
        );
        let mut resp =
            Outgoing::response(&self.invite, answer.code, &answer.phrase, Some(&self.a_tag));
        if let Some((name, value)) = &answer.header {
            resp.push(name, value);
        }
        self.core.txs.respond(&self.tx, resp).await;
        self.record.final_code = answer.code;
        self.record.final_reason = answer.recorded;
        answer.reason
    }
}

/// What the caller hears when no attempt carried the call.
#[derive(Debug, PartialEq)]
struct FinalAnswer {
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
