//! Running one hook of one module version on a fresh instance, within a CPU deadline
//! (see [`super::budget`]) and a memory cap, and classifying whatever goes wrong. Blocking: callers run it
//! off the async reactor.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::CallPolicyPre;
use super::budget::{Overrun, RunBudget};
use super::convert;
use super::epoch::EpochTicker;
use super::health::FailureKind;
use super::limits::MAX_STDIO_BYTES;
use super::state::{CallContext, LogLine, MemoryCap, PolicyState};
use super::validate;
use crate::runtime::Runtime;
use crate::store::ModuleVersion;
use switchyard_model::call::{Attempt, Call, Decision, NextStep, Outcome, Verdict};

/// A compiled, pre-linked module version, ready to instantiate.
pub struct LoadedModule {
    /// Its registry entry.
    pub meta: ModuleVersion,
    pub(crate) pre: CallPolicyPre<PolicyState>,
    /// Whether its decisions may run on the calling worker.
    pub(crate) lane: super::lane::LaneRecord,
}

/// Which hook to run, with its arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "hook")]
#[allow(
    clippy::large_enum_variant,
    reason = "one lives per decision, never in bulk; boxing would only add an allocation"
)]
pub enum HookCall {
    /// `screen(call)`.
    Screen {
        /// The call.
        call: Call,
    },
    /// `route(call)`.
    Route {
        /// The call.
        call: Call,
    },
    /// `on-attempt-failed(call, attempt, outcome)`.
    OnAttemptFailed {
        /// The call.
        call: Call,
        /// The attempt that failed.
        attempt: Attempt,
        /// How it failed.
        outcome: Outcome,
    },
}

impl HookCall {
    /// The call it is about.
    pub fn call(&self) -> &Call {
        match self {
            HookCall::Screen { call } | HookCall::Route { call } => call,
            HookCall::OnAttemptFailed { call, .. } => call,
        }
    }
}

/// A hook's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookAnswer {
    /// From `screen`.
    Verdict(Verdict),
    /// From `route`.
    Decision(Decision),
    /// From `on-attempt-failed`.
    NextStep(NextStep),
}

/// Limits and clock of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// CPU deadline, milliseconds.
    pub deadline_ms: u32,
    /// Memory cap, MiB.
    pub memory_mib: u32,
    /// Fixed clock (Unix ms) for the module's `now-ms`; none reads the system clock.
    pub now_ms: Option<u64>,
}

/// Why the module's answer could not be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Details (trap message, validation error).
    pub message: String,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    /// The answer, or why there is none.
    pub answer: Result<HookAnswer, Failure>,
    /// What the module logged (and printed).
    pub logs: Vec<LogLine>,
    /// Lines beyond the per-call bound that were not kept.
    pub dropped_logs: usize,
    /// Host calls refused because the module or its tenant reached a quota.
    pub quota_refusals: u32,
    /// Instantiate + hook, microseconds.
    pub elapsed_us: u64,
    /// CPU time of the same, microseconds (what the deadline counts).
    pub cpu_us: u64,
}

/// Run `hook` on a fresh instance of `module`.
pub(crate) fn run(
    engine: &Engine,
    ticker: &EpochTicker,
    runtime: &Arc<Runtime>,
    module: &LoadedModule,
    hook: HookCall,
    limits: RunLimits,
) -> Invocation {
    let started = Instant::now();
    let stdio = MemoryOutputPipe::new(MAX_STDIO_BYTES);
    // Empty WASI: no directories, environment, arguments or network; clocks and
    // random work; stdout and stderr are captured into the module's log.
    let wasi = WasiCtxBuilder::new()
        .stdout(stdio.clone())
        .stderr(stdio.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = PolicyState {
        wasi,
        table: ResourceTable::new(),
        memory: MemoryCap {
            max_bytes: (limits.memory_mib as usize) << 20,
            breached: false,
        },
        ctx: CallContext {
            runtime: runtime.clone(),
            tenant: module.meta.tenant.clone(),
            module: module.meta.name.clone(),
            call_id: hook.call().call_id.clone(),
            now_ms: limits.now_ms,
            logs: Vec::new(),
            dropped_logs: 0,
            quota_refusals: 0,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    let budget = RunBudget::start(limits.deadline_ms);
    // The ticker bumps the epoch only when some run's check is due; every bump makes
    // this store look at its own budget and say when to look next. The watch ends
    // with the store, which owns it. The deadline is armed before the watch: a bump
    // for this run's first check that came before it (a worker preempted between the
    // two on a busy box) was otherwise lost, and the run was never stopped.
    store.set_epoch_deadline(1);
    let mut watch = ticker.watch(budget.first_check());
    let deadline = budget.clone();
    store.epoch_deadline_callback(move |_| {
        watch.reschedule(deadline.on_epoch_deadline()?);
        Ok(UpdateDeadline::Continue(1))
    });

    let outcome = call_hook(&mut store, module, hook);
    let answer = match outcome {
        Ok(answer) => check(&answer).map(|()| answer).map_err(|message| Failure {
            kind: FailureKind::Malformed,
            message,
        }),
        Err((kind, e)) => Err(classify(kind, &e, store.data().memory.breached, limits)),
    };
    let printed = String::from_utf8_lossy(&stdio.contents()).into_owned();
    let mut state = store.into_data();
    for line in printed.lines().filter(|l| !l.trim().is_empty()) {
        state.push_log("stdout", line.to_string());
    }
    Invocation {
        answer,
        logs: state.ctx.logs,
        dropped_logs: state.ctx.dropped_logs,
        quota_refusals: state.ctx.quota_refusals,
        elapsed_us: started.elapsed().as_micros() as u64,
        cpu_us: budget.cpu_used().as_micros() as u64,
    }
}

type HookError = (FailureKind, wasmtime::Error);

/// Run the hook; its arguments move into the WIT records the module is given.
fn call_hook(
    store: &mut Store<PolicyState>,
    module: &LoadedModule,
    hook: HookCall,
) -> Result<HookAnswer, HookError> {
    let instance = module
        .pre
        .instantiate(&mut *store)
        .map_err(|e| (FailureKind::Instantiate, e))?;
    let policy = instance.switchyard_callctl_policy();
    let trap = |e| (FailureKind::Trap, e);
    Ok(match hook {
        HookCall::Screen { call } => HookAnswer::Verdict(convert::model_verdict(
            policy
                .call_screen(&mut *store, &convert::wit_call(call))
                .map_err(trap)?,
        )),
        HookCall::Route { call } => HookAnswer::Decision(convert::model_decision(
            policy
                .call_route(&mut *store, &convert::wit_call(call))
                .map_err(trap)?,
        )),
        HookCall::OnAttemptFailed {
            call,
            attempt,
            outcome,
        } => HookAnswer::NextStep(convert::model_next_step(
            policy
                .call_on_attempt_failed(
                    &mut *store,
                    &convert::wit_call(call),
                    &convert::wit_attempt(attempt),
                    &convert::wit_outcome(outcome),
                )
                .map_err(trap)?,
        )),
    })
}

fn check(answer: &HookAnswer) -> Result<(), validate::Malformed> {
    match answer {
        HookAnswer::Verdict(v) => validate::verdict(v),
        HookAnswer::Decision(d) => validate::decision(d),
        HookAnswer::NextStep(n) => validate::next_step(n),
    }
}

fn classify(
    kind: FailureKind,
    e: &wasmtime::Error,
    memory_breached: bool,
    limits: RunLimits,
) -> Failure {
    if let Some(overrun) = e.downcast_ref::<Overrun>() {
        return Failure {
            kind: FailureKind::Deadline,
            message: overrun.to_string(),
        };
    }
    if memory_breached {
        return Failure {
            kind: FailureKind::Memory,
            message: format!(
                "tried to grow memory past its {} MiB cap",
                limits.memory_mib
            ),
        };
    }
    let mut message = format!("{e:#}");
    message.truncate(
        message
            .find("\nwasm backtrace")
            .unwrap_or(message.len())
            .min(2_000),
    );
    Failure { kind, message }
}
