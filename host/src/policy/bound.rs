//! The policy a call holds: one module version and binding for the call's life, each
//! hook run within the binding's limits, the fallback answering when the module fails.

use std::sync::Arc;

use super::*;

/// The policy one call uses from its first decision to its last: pinned to one
/// module version and one binding, whatever happens to the bindings meanwhile.
pub struct BoundPolicy {
    pub(super) engine: Arc<PolicyEngine>,
    /// None when the bound version could not be loaded: every hook falls back.
    pub(super) module: Option<Arc<LoadedModule>>,
    pub(super) key: ModuleKey,
    pub(super) is_canary: bool,
    pub(super) binding: Arc<Binding>,
}

/// A hook's result as the call sees it: the module's answer or the fallback.
#[derive(Debug, Clone)]
pub struct Decided<T> {
    /// What to do.
    pub value: T,
    /// Why the fallback was used, when it was.
    pub failure: Option<Failure>,
    /// What the module logged.
    pub logs: Vec<LogLine>,
}

impl BoundPolicy {
    /// The module version deciding this call.
    pub fn version(&self) -> &ModuleKey {
        &self.key
    }

    /// Whether this call was picked for the canary.
    pub fn is_canary(&self) -> bool {
        self.is_canary
    }

    async fn run(
        &self,
        hook: HookCall,
    ) -> Result<(HookAnswer, Vec<LogLine>), (Failure, Vec<LogLine>)> {
        let Some(module) = self.module.clone() else {
            return Err((
                Failure {
                    kind: FailureKind::Instantiate,
                    message: format!("module {} is not loaded", self.key),
                },
                Vec::new(),
            ));
        };
        let engine = self.engine.clone();
        let limits = RunLimits {
            deadline_ms: self.binding.deadline_ms,
            memory_mib: self.binding.memory_mib,
            now_ms: None,
        };
        let call_id = hook.call().call_id.clone();
        let _permit = self
            .engine
            .running
            .acquire()
            .await
            .expect("semaphore is never closed");
        // A version proven fast runs here when the inline lane is free (see
        // `lane`); otherwise on the blocking pool, where a slow guest stalls no
        // tokio worker.
        let inline = (module.lane.may_run_inline() && lane::runtime_has_other_workers())
            .then(|| self.engine.inline_lane.try_acquire().ok())
            .flatten();
        let deadline_ms = limits.deadline_ms;
        let inv = if inline.is_some() {
            self.engine
                .inline_decisions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            invoke::run(
                &engine.engine,
                &engine.ticker,
                &engine.runtime,
                &module,
                hook,
                limits,
            )
        } else {
            let module = module.clone();
            let joined = tokio::task::spawn_blocking(move || {
                invoke::run(
                    &engine.engine,
                    &engine.ticker,
                    &engine.runtime,
                    &module,
                    hook,
                    limits,
                )
            })
            .await;
            match joined {
                Ok(inv) => inv,
                Err(e) => {
                    return Err((
                        Failure {
                            kind: FailureKind::Trap,
                            message: format!("policy task failed: {e}"),
                        },
                        Vec::new(),
                    ))
                }
            }
        };
        drop(inline);
        let failure = inv.answer.as_ref().err().map(|f| f.kind);
        if module.lane.learn(inv.cpu_us, deadline_ms, failure) {
            tracing::info!(%call_id, module = %self.key, cpu_us = inv.cpu_us, deadline_ms, ?failure,
                "module version decides on the blocking pool from now on");
        }
        self.engine.after_invocation(self, &inv);
        match inv.answer {
            Ok(answer) => Ok((answer, inv.logs)),
            Err(failure) => {
                tracing::warn!(%call_id, module = %self.key, kind = ?failure.kind, reason = %failure.message, "policy failed; using fallback");
                Err((failure, inv.logs))
            }
        }
    }

    /// Screen the call. A failing screen lets the call through (fail open, counted and
    /// logged): a broken fraud rule should not take a carrier's traffic down.
    pub async fn screen(&self, call: &Call) -> Decided<Verdict> {
        match self.run(HookCall::Screen { call: call.clone() }).await {
            Ok((HookAnswer::Verdict(v), logs)) => Decided {
                value: v,
                failure: None,
                logs,
            },
            Ok((other, logs)) => unexpected(other, Verdict::Allow, logs),
            Err((f, logs)) => Decided {
                value: Verdict::Allow,
                failure: Some(f),
                logs,
            },
        }
    }

    /// Route the call; the binding's fallback when the module fails.
    pub async fn route(&self, call: &Call) -> Decided<Decision> {
        match self.run(HookCall::Route { call: call.clone() }).await {
            Ok((HookAnswer::Decision(d), logs)) => Decided {
                value: d,
                failure: None,
                logs,
            },
            Ok((other, logs)) => unexpected(other, self.fallback_decision(call), logs),
            Err((f, logs)) => Decided {
                value: self.fallback_decision(call),
                failure: Some(f),
                logs,
            },
        }
    }

    /// Decide after a failed attempt; the stock rule (stop on 403/404/486/487/603,
    /// otherwise go on) when the module fails.
    pub async fn on_attempt_failed(
        &self,
        call: &Call,
        attempt: &Attempt,
        outcome: &Outcome,
    ) -> Decided<NextStep> {
        let hook = HookCall::OnAttemptFailed {
            call: call.clone(),
            attempt: attempt.clone(),
            outcome: outcome.clone(),
        };
        match self.run(hook).await {
            Ok((HookAnswer::NextStep(n), logs)) => Decided {
                value: n,
                failure: None,
                logs,
            },
            Ok((other, logs)) => unexpected(other, stock_next_step(outcome), logs),
            Err((f, logs)) => Decided {
                value: stock_next_step(outcome),
                failure: Some(f),
                logs,
            },
        }
    }

    /// The binding's fallback as a decision.
    pub fn fallback_decision(&self, call: &Call) -> Decision {
        fallback_decision(&self.binding.fallback, call)
    }
}

/// A binding's fallback as a decision for `call`.
pub fn fallback_decision(fallback: &Fallback, call: &Call) -> Decision {
    match fallback {
        Fallback::Reject { code, reason } => Decision::Reject(Reject {
            code: *code,
            reason: reason.clone(),
        }),
        Fallback::Routes { gateways } => Decision::Attempts(
            gateways
                .iter()
                .map(|gw| Attempt::to(gw.clone(), call.callee.clone()))
                .collect(),
        ),
    }
}

/// The host's failover rule when no module answers (same as the SDK default).
pub fn stock_next_step(outcome: &Outcome) -> NextStep {
    match outcome.code {
        Some(code) if switchyard_model::carrier::DEFAULT_STOP_CODES.contains(&code) => {
            NextStep::Stop(Reject {
                code,
                reason: outcome.reason.clone(),
            })
        }
        _ => NextStep::Continue,
    }
}

fn unexpected<T>(answer: HookAnswer, fallback: T, logs: Vec<LogLine>) -> Decided<T> {
    // Cannot happen: each hook's typed call returns its own answer kind.
    Decided {
        value: fallback,
        failure: Some(Failure {
            kind: FailureKind::Malformed,
            message: format!("unexpected answer {answer:?}"),
        }),
        logs,
    }
}
