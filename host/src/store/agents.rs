//! The agent (reseller) tree: an account with sub-accounts is an agent; an agent token
//! sees and changes only its own subtree, as far as its authorisation flags allow. The
//! flags of an account are the ones set on it, narrowed by every agent above it, so a
//! sub-agent never holds more than its parent.

use std::collections::{BTreeMap, BTreeSet};
use switchyard_model::Permission;

use super::{Result, Store};
use switchyard_model::Account;

/// Deepest agent tree.
pub(super) const MAX_AGENT_DEPTH: usize = 32;

/// What an agent (reseller) token may do with a kind of carrier object. The rules
/// live in this module's per-kind functions; a kind that says nothing is neither
/// seen nor changed by agents.
pub trait AgentAccess: super::CarrierObject {
    /// Whether an agent token sees this object.
    fn agent_sees(&self, _id: &str, _agent: &AgentScope, _store: &Store) -> bool {
        false
    }
    /// Why an agent may not store this object as `id` (replacing `old`), if it may not.
    fn agent_may_store(
        &self,
        _id: &str,
        _old: Option<&Self>,
        _agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        Err(format!("agent tokens cannot change {}", Self::KIND))
    }
    /// Why an agent may not delete this object, if it may not.
    fn agent_may_delete(
        &self,
        _id: &str,
        _agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        Err(format!("agent tokens cannot delete {}", Self::KIND))
    }
}

/// What an agent token may reach: its account, the accounts below it, and its
/// effective flags.
#[derive(Debug, Clone)]
pub struct AgentScope {
    /// The agent's own account.
    pub account: String,
    /// Its tenant.
    pub tenant: String,
    /// Its flags, narrowed by the agents above it.
    pub permissions: BTreeSet<Permission>,
    /// Its account and every account below it.
    pub subtree: BTreeSet<String>,
}

impl AgentScope {
    /// Refuse unless the agent holds `flag`.
    pub fn require(&self, flag: Permission) -> Result<(), String> {
        match self.permissions.contains(&flag) {
            true => Ok(()),
            false => Err(format!(
                "agent {:?} lacks the {} permission",
                self.account,
                crate::names::variant_name(&flag)
            )),
        }
    }

    /// Whether `account` is the agent's or below it.
    pub fn covers(&self, account: &str) -> bool {
        self.subtree.contains(account)
    }

    /// Whether `account` is strictly below the agent.
    pub fn is_below(&self, account: &str) -> bool {
        account != self.account && self.covers(account)
    }
}

/// What an agent may do with accounts: see its subtree; with [`Permission::Accounts`]
/// create, change and delete the accounts strictly below it (never its own, so it
/// cannot raise its own limits), each under a parent in its subtree. Money moves only
/// through payments: a new sub-account starts at zero.
pub(super) mod accounts {
    use super::*;

    pub(in crate::store) fn sees(id: &str, agent: &AgentScope) -> bool {
        agent.covers(id)
    }

    pub(in crate::store) fn may_store(
        id: &str,
        new: &Account,
        old: Option<&Account>,
        agent: &AgentScope,
    ) -> Result<(), String> {
        agent.require(Permission::Accounts)?;
        if id == agent.account {
            return Err("an agent cannot change its own account".into());
        }
        if old.is_some() && !agent.is_below(id) {
            return Err(format!(
                "account {id:?} is not below agent {:?}",
                agent.account
            ));
        }
        if !new.parent.as_deref().is_some_and(|p| agent.covers(p)) {
            return Err(format!(
                "an agent's accounts must have a parent in its tree (agent {:?})",
                agent.account
            ));
        }
        if old.is_none() && new.balance != switchyard_model::Money::ZERO {
            return Err("a sub-account starts at balance 0; use payments".into());
        }
        Ok(())
    }

    pub(in crate::store) fn may_delete(id: &str, agent: &AgentScope) -> Result<(), String> {
        agent.require(Permission::Accounts)?;
        match agent.is_below(id) {
            true => Ok(()),
            false => Err("an agent can delete only accounts below it".into()),
        }
    }
}

/// What an agent may do with mapping gateways: see those of its subtree's accounts;
/// add or delete them with [`Permission::AddDeleteGateways`]; change their settings
/// with [`Permission::ModifyGateways`] and their capacity (concurrent calls, CPS) with
/// [`Permission::GatewayCapacity`].
pub(super) mod mapping_gateways {
    use super::*;
    use switchyard_model::MappingGateway;

    pub(in crate::store) fn sees(gateway: &MappingGateway, agent: &AgentScope) -> bool {
        agent.covers(&gateway.account)
    }

    pub(in crate::store) fn may_store(
        new: &MappingGateway,
        old: Option<&MappingGateway>,
        agent: &AgentScope,
    ) -> Result<(), String> {
        if !agent.covers(&new.account) {
            return Err(format!(
                "account {:?} is not in agent {:?}'s tree",
                new.account, agent.account
            ));
        }
        let Some(old) = old else {
            return agent.require(Permission::AddDeleteGateways);
        };
        let capacity = |g: &MappingGateway| (g.max_calls, g.cps_limit);
        if capacity(new) != capacity(old) {
            agent.require(Permission::GatewayCapacity)?;
        }
        let settings = |g: &MappingGateway| MappingGateway {
            max_calls: 0,
            cps_limit: 0,
            ..g.clone()
        };
        if settings(new) != settings(old) {
            agent.require(Permission::ModifyGateways)?;
        }
        Ok(())
    }
}

/// What an agent may do with phones: see, and with [`Permission::Phones`] add,
/// change and delete, the phones on mapping gateways of its subtree.
pub(super) mod phones {
    use super::*;
    use crate::store::CarrierObject;
    use switchyard_model::{MappingGateway, Phone};

    pub(in crate::store) fn sees(phone: &Phone, agent: &AgentScope, store: &Store) -> bool {
        store
            .carrier_get::<MappingGateway>(&phone.mapping_gateway)
            .ok()
            .flatten()
            .is_some_and(|g| agent.covers(&g.account))
    }

    pub(in crate::store) fn may_change(
        phone: &Phone,
        agent: &AgentScope,
        store: &Store,
    ) -> Result<(), String> {
        agent.require(Permission::Phones)?;
        match sees(phone, agent, store) {
            true => Ok(()),
            false => Err(format!(
                "{} {:?} is not in agent {:?}'s tree",
                MappingGateway::KIND,
                phone.mapping_gateway,
                agent.account
            )),
        }
    }
}

/// The accounts directly below each account.
fn children(accounts: &BTreeMap<String, Account>) -> BTreeMap<&str, Vec<&str>> {
    let mut below: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, a) in accounts {
        if let Some(p) = &a.parent {
            below.entry(p.as_str()).or_default().push(id.as_str());
        }
    }
    below
}

impl Store {
    /// The scope of an agent token bound to `account`; none when the account is gone.
    pub fn agent_scope(&self, account: &str) -> Result<Option<AgentScope>> {
        let accounts = self.carrier_snapshot::<Account>()?;
        let Some(own) = accounts.get(account) else {
            return Ok(None);
        };
        let below = children(&accounts);
        let mut subtree = BTreeSet::new();
        let mut todo = vec![account];
        while let Some(id) = todo.pop() {
            if subtree.insert(id.to_string()) {
                todo.extend(below.get(id).into_iter().flatten());
            }
        }
        Ok(Some(AgentScope {
            account: account.into(),
            tenant: own.tenant.clone(),
            permissions: effective_permissions(&accounts, account),
            subtree,
        }))
    }

    /// Whether `account` and every agent above it let it call `callee`.
    pub fn account_may_call(&self, account: &Account, callee: &str) -> Result<bool> {
        if !account.may_call(callee) {
            return Ok(false);
        }
        let accounts = self.carrier_snapshot::<Account>()?;
        let allowed =
            agents_above(&accounts, account.parent.as_deref()).all(|a| a.may_call(callee));
        Ok(allowed)
    }
}

/// The agents from `first` upwards (at most [`MAX_AGENT_DEPTH`]).
fn agents_above<'a>(
    accounts: &'a BTreeMap<String, Account>,
    first: Option<&'a str>,
) -> impl Iterator<Item = &'a Account> {
    let mut next = first;
    std::iter::from_fn(move || {
        let agent = accounts.get(next?)?;
        next = agent.parent.as_deref();
        Some(agent)
    })
    .take(MAX_AGENT_DEPTH)
}

/// The flags of `account` narrowed by every agent above it.
pub(super) fn effective_permissions(
    accounts: &BTreeMap<String, Account>,
    account: &str,
) -> BTreeSet<Permission> {
    let mut chain = agents_above(accounts, Some(account));
    let Some(first) = chain.next() else {
        return BTreeSet::new();
    };
    chain.fold(first.permissions.clone(), |held, agent| {
        held.intersection(&agent.permissions).copied().collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(parent: Option<&str>, flags: &[Permission]) -> Account {
        Account {
            parent: parent.map(str::to_string),
            permissions: flags.iter().copied().collect(),
            ..Account::default()
        }
    }

    #[test]
    fn flags_narrow_down_the_tree() {
        use Permission::*;
        let accounts: BTreeMap<String, Account> = [
            ("top", account(None, &[Accounts, Phones, OwnPayments])),
            ("mid", account(Some("top"), &[Accounts, Phones])),
            ("leaf", account(Some("mid"), &[Accounts, OwnPayments])),
        ]
        .into_iter()
        .map(|(id, a)| (id.to_string(), a))
        .collect();
        assert_eq!(
            effective_permissions(&accounts, "top"),
            [Accounts, Phones, OwnPayments].into()
        );
        // OwnPayments is set on leaf, but mid does not hold it.
        assert_eq!(effective_permissions(&accounts, "leaf"), [Accounts].into());
        assert_eq!(effective_permissions(&accounts, "gone"), BTreeSet::new());
    }
}
