//! Bindings: which module version serves which scope, with an optional canary.
//! Each scope keeps a history of its earlier bindings for one-call rollback.

use serde::{Deserialize, Serialize};

use super::{from_json, to_json, Result, Store};

/// Where a binding applies. The most specific binding for a call wins:
/// mapping gateway, then account, then global.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every call without a more specific binding.
    Global,
    /// Calls billed to this account.
    Account(String),
    /// Calls arriving through this mapping (customer-side) gateway.
    Gateway(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Account(id) => write!(f, "account:{id}"),
            Scope::Gateway(id) => write!(f, "gateway:{id}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "global" => Ok(Scope::Global),
            Some(("account", id)) if !id.is_empty() => Ok(Scope::Account(id.into())),
            Some(("gateway", id)) if !id.is_empty() => Ok(Scope::Gateway(id.into())),
            _ => Err(format!(
                "scope {s:?} is not one of \"global\", \"account:<id>\", \"gateway:<id>\""
            )),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Which hooks a binding serves. A carrier can keep the stock fraud rules bound for
/// `screen` while its own router serves the call.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// `route` and `on-attempt-failed`; `screen` too where no screen binding applies.
    #[default]
    Call,
    /// `screen` only.
    Screen,
}

impl std::str::FromStr for Hook {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "call" => Ok(Hook::Call),
            "screen" => Ok(Hook::Screen),
            _ => Err(format!("hook {s:?} is not \"call\" or \"screen\"")),
        }
    }
}

/// What one binding occupies: a hook at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// The hooks it serves.
    pub hook: Hook,
    /// Where.
    pub scope: Scope,
}

impl Slot {
    /// The call hooks at `scope`.
    pub fn call(scope: Scope) -> Slot {
        Slot {
            hook: Hook::Call,
            scope,
        }
    }

    /// The screen hook at `scope`.
    pub fn screen(scope: Scope) -> Slot {
        Slot {
            hook: Hook::Screen,
            scope,
        }
    }
}

/// The store's key: the scope alone for the call hooks (as bindings were first
/// stored), `screen/<scope>` for screen.
impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hook {
            Hook::Call => write!(f, "{}", self.scope),
            Hook::Screen => write!(f, "screen/{}", self.scope),
        }
    }
}

/// What the host does when the module fails (trap, deadline, memory, malformed answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fallback {
    /// Refuse the call.
    Reject {
        /// SIP status.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Try these routing gateways in order with the callee unchanged.
    Routes {
        /// Routing gateway ids.
        gateways: Vec<String>,
    },
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback::Reject {
            code: 503,
            reason: "Routing policy unavailable".into(),
        }
    }
}

/// Roll a canary back by itself when it fails too often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoRollback {
    /// Sliding window over which failures are counted, seconds.
    pub window_secs: u32,
    /// No verdict before the canary has served this many decisions in the window.
    pub min_invocations: u32,
    /// Roll back when failures / invocations in the window exceed this (0.0..=1.0).
    pub max_failure_rate: f64,
}

/// A second version taking a share of the calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// Version id of the canary (same module name and tenant).
    pub version: String,
    /// Share of calls, 0.0..=100.0, chosen by a hash of the Call-ID.
    pub percent: f64,
    /// Automatic rollback rule, if any.
    #[serde(default)]
    pub auto_rollback: Option<AutoRollback>,
}

/// One scope's binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// Where it applies.
    pub scope: Scope,
    /// Which hooks it serves.
    #[serde(default)]
    pub hook: Hook,
    /// Tenant that owns it (and the module).
    pub tenant: String,
    /// Module name.
    pub module: String,
    /// Active version id.
    pub version: String,
    /// Optional canary.
    #[serde(default)]
    pub canary: Option<Canary>,
    /// Used when the module fails.
    #[serde(default)]
    pub fallback: Fallback,
    /// CPU deadline per decision, milliseconds.
    pub deadline_ms: u32,
    /// Memory cap per instance, MiB.
    pub memory_mib: u32,
    /// When it was set, Unix milliseconds.
    pub updated_at_ms: u64,
    /// Token name that set it (or "auto-rollback").
    pub updated_by: String,
}

impl Binding {
    /// The hook and scope it occupies.
    pub fn slot(&self) -> Slot {
        Slot {
            hook: self.hook,
            scope: self.scope.clone(),
        }
    }
}

/// An entry of a scope's history: the binding that was replaced, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingEvent {
    /// The binding before the change (none when the scope was unbound).
    pub previous: Option<Binding>,
    /// "put", "delete", "rollback" or "auto-rollback".
    pub action: String,
    /// When, Unix milliseconds.
    pub at_ms: u64,
}

/// How many earlier bindings a scope remembers.
const HISTORY_DEPTH: usize = 50;

impl Store {
    /// Every binding.
    pub fn bindings(&self) -> Result<Vec<Binding>> {
        self.bindings.iter().map(|kv| from_json(&kv?.1)).collect()
    }

    /// The binding of one slot.
    pub fn binding(&self, scope: &Slot) -> Result<Option<Binding>> {
        self.bindings
            .get(scope.to_string())?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// Replace (or with `None`, remove) the binding of `scope`, pushing the old one
    /// onto its history. `action` names the change in the history.
    pub fn set_binding(&self, scope: &Slot, new: Option<&Binding>, action: &str) -> Result<()> {
        let previous = self.binding(scope)?;
        let mut history = self.binding_history(scope)?;
        history.push(BindingEvent {
            previous,
            action: action.into(),
            at_ms: crate::now_ms(),
        });
        if history.len() > HISTORY_DEPTH {
            history.drain(..history.len() - HISTORY_DEPTH);
        }
        self.binding_history
            .insert(scope.to_string(), to_json(&history)?)?;
        match new {
            Some(b) => self.bindings.insert(scope.to_string(), to_json(b)?)?,
            None => self.bindings.remove(scope.to_string())?,
        };
        Ok(())
    }

    /// A scope's history, oldest first.
    pub fn binding_history(&self, scope: &Slot) -> Result<Vec<BindingEvent>> {
        Ok(self
            .binding_history
            .get(scope.to_string())?
            .map(|v| from_json(&v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Undo the last change of `scope`: restore the binding it replaced, and drop that
    /// entry from the history. `None` when there is nothing to roll back to.
    pub fn rollback_binding(&self, scope: &Slot) -> Result<Option<Option<Binding>>> {
        let mut history = self.binding_history(scope)?;
        let Some(last) = history.pop() else {
            return Ok(None);
        };
        self.binding_history
            .insert(scope.to_string(), to_json(&history)?)?;
        match &last.previous {
            Some(b) => self.bindings.insert(scope.to_string(), to_json(b)?)?,
            None => self.bindings.remove(scope.to_string())?,
        };
        Ok(Some(last.previous))
    }
}
