//! The carrier objects policy modules see before the full data model lands: accounts
//! (with their customer rate table), mapping gateways (customer side) and routing
//! gateways (vendor side, with their cost table). Ids are global, because the SIP
//! layer finds them by id; each object belongs to one tenant.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use switchyard_model::{
    Account, Codec, GatewayGroup, MappingGateway, MediaSettings, Permission, Phone, RoutingGateway,
};

use super::agents::{self, effective_permissions, AgentAccess, AgentScope, MAX_AGENT_DEPTH};
use super::{from_json, key, to_json, Result, Store};

/// A kind of carrier object stored as JSON under its id.
pub trait CarrierObject: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Collection name, also the REST path segment.
    const KIND: &'static str;
    /// Owning tenant.
    fn tenant(&self) -> &str;
    /// Set the owner (the API sets it from the caller's token).
    fn set_tenant(&mut self, tenant: String);
    /// Check the fields; the message says what is wrong.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Derive stored fields from given ones before saving (the object's id given).
    fn prepare(&mut self, _id: &str) {}
    /// Check it against the other stored objects before `id` is stored as it.
    fn check_in(&self, _id: &str, _store: &Store) -> Result<(), String> {
        Ok(())
    }
    /// Why `id` may not be deleted, if it may not.
    fn check_delete(_id: &str, _store: &Store) -> Result<(), String> {
        Ok(())
    }
    /// Take from the object it replaces what a replacement may not change: secrets
    /// it left out, fields the server owns.
    fn keep_from(&mut self, _old: &Self) {}
    /// Remove secrets before the object is shown.
    fn redact(&mut self) {}
}

impl CarrierObject for Phone {
    const KIND: &'static str = "phones";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        self.check()
    }
    fn prepare(&mut self, id: &str) {
        self.hash_password(id);
    }
}

impl AgentAccess for Phone {
    fn agent_sees(&self, _id: &str, agent: &AgentScope, store: &Store) -> bool {
        agents::phones::sees(self, agent, store)
    }
    fn agent_may_store(
        &self,
        _id: &str,
        old: Option<&Self>,
        agent: &AgentScope,
        store: &Store,
    ) -> Result<(), String> {
        if let Some(old) = old {
            agents::phones::may_change(old, agent, store)?;
        }
        agents::phones::may_change(self, agent, store)
    }
    fn agent_may_delete(&self, _id: &str, agent: &AgentScope, store: &Store) -> Result<(), String> {
        agents::phones::may_change(self, agent, store)
    }
}

/// `CarrierObject` (and no agent access) for a kind that is owned by a tenant and has
/// no other rules
/// (billing registers its calendars with it).
#[macro_export]
macro_rules! owned_by_tenant {
    ($ty:ty, $kind:literal, $validate:expr) => {
        $crate::owned_by_tenant!(@impl $ty, $kind, fn validate(&self) -> Result<(), String> {
            let check: fn(&$ty) -> Result<(), String> = $validate;
            check(self)
        });
    };
    ($ty:ty, $kind:literal) => {
        $crate::owned_by_tenant!(@impl $ty, $kind,);
    };
    (@impl $ty:ty, $kind:literal, $($validate:item)?) => {
        impl $crate::store::CarrierObject for $ty {
            const KIND: &'static str = $kind;
            fn tenant(&self) -> &str {
                &self.tenant
            }
            fn set_tenant(&mut self, tenant: String) {
                self.tenant = tenant;
            }
            $($validate)?
        }
        // Agents neither see nor change this kind.
        impl $crate::store::AgentAccess for $ty {}
    };
}
impl CarrierObject for Account {
    const KIND: &'static str = "accounts";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        self.check()
    }
    fn keep_from(&mut self, old: &Self) {
        // Calls and payments own the balance once the account exists.
        self.balance = old.balance;
    }
    fn check_in(&self, id: &str, store: &Store) -> Result<(), String> {
        let accounts = store
            .carrier_snapshot::<Account>()
            .map_err(|e| e.to_string())?;
        // Walk up from the parent: it must exist in the same tenant, and the walk must
        // not come back to this account.
        let mut next = self.parent.as_deref();
        let mut depth = 0;
        while let Some(up) = next {
            if up == id {
                return Err(format!("parent {up:?} would make a loop"));
            }
            depth += 1;
            if depth > MAX_AGENT_DEPTH {
                return Err(format!("agent tree deeper than {MAX_AGENT_DEPTH}"));
            }
            match accounts.get(up) {
                Some(a) if a.tenant == self.tenant => next = a.parent.as_deref(),
                _ => return Err(format!("parent account {up:?} does not exist")),
            }
        }
        // A sub-agent holds at most what its parent holds.
        let held = match &self.parent {
            Some(parent) => effective_permissions(&accounts, parent),
            None => return Ok(()),
        };
        match self.permissions.iter().find(|p| !held.contains(p)) {
            Some(extra) => Err(format!(
                "permission {} is not held by parent {:?}",
                crate::names::variant_name(extra),
                self.parent.as_deref().unwrap_or_default()
            )),
            None => Ok(()),
        }
    }
    fn check_delete(id: &str, store: &Store) -> Result<(), String> {
        let accounts = store
            .carrier_snapshot::<Account>()
            .map_err(|e| e.to_string())?;
        match accounts
            .iter()
            .find(|(_, a)| a.parent.as_deref() == Some(id))
        {
            Some((child, _)) => Err(format!(
                "agent {id:?} has sub-account {child:?}: delete those first"
            )),
            None => Ok(()),
        }
    }
}

impl AgentAccess for Account {
    fn agent_sees(&self, id: &str, agent: &AgentScope, _store: &Store) -> bool {
        agents::accounts::sees(id, agent)
    }
    fn agent_may_store(
        &self,
        id: &str,
        old: Option<&Self>,
        agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        agents::accounts::may_store(id, self, old, agent)
    }
    fn agent_may_delete(&self, id: &str, agent: &AgentScope, _store: &Store) -> Result<(), String> {
        agents::accounts::may_delete(id, agent)
    }
}
crate::owned_by_tenant!(GatewayGroup, "gateway-groups", GatewayGroup::check);
crate::owned_by_tenant!(
    switchyard_model::AddressList,
    "address-lists",
    switchyard_model::AddressList::check
);
crate::owned_by_tenant!(
    switchyard_model::NumberList,
    "number-lists",
    switchyard_model::NumberList::check
);
impl CarrierObject for MappingGateway {
    const KIND: &'static str = "mapping-gateways";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        self.check()?;
        this_build_converts(&self.media)
    }
}

impl AgentAccess for MappingGateway {
    fn agent_sees(&self, _id: &str, agent: &AgentScope, _store: &Store) -> bool {
        agents::mapping_gateways::sees(self, agent)
    }
    fn agent_may_store(
        &self,
        _id: &str,
        old: Option<&Self>,
        agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        if let Some(old) = old {
            if !agents::mapping_gateways::sees(old, agent) {
                return Err("that gateway is not in the agent's tree".into());
            }
        }
        agents::mapping_gateways::may_store(self, old, agent)
    }
    fn agent_may_delete(
        &self,
        _id: &str,
        agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        agent.require(Permission::AddDeleteGateways)
    }
}
// Agents neither see nor change vendors.
impl AgentAccess for RoutingGateway {}

impl CarrierObject for RoutingGateway {
    const KIND: &'static str = "routing-gateways";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        self.check()?;
        this_build_converts(&self.media)
    }
    fn keep_from(&mut self, old: &Self) {
        self.keep_secret_from(old);
    }
    fn redact(&mut self) {
        RoutingGateway::redact(self);
    }
}

/// Refuse a gateway this build cannot honour: converting to or from G.729 needs the
/// host's `g729` feature (libbcg729), and without it the call would carry no audio.
fn this_build_converts(media: &MediaSettings) -> Result<(), String> {
    match media.pinned() {
        Some(Codec::G729) if media.allow_conversion && !cfg!(feature = "g729") => {
            Err("media: converting G.729 needs a host built with the g729 feature".into())
        }
        _ => Ok(()),
    }
}

/// Decoded carrier objects, one snapshot per kind, loaded from sled on first use and
/// dropped by every change to that kind. The SIP layer reads gateways on every INVITE
/// and modules on every decision; they change only through the API.
#[derive(Default)]
pub(crate) struct CarrierCache {
    /// `KIND` → `Arc<BTreeMap<String, T>>` of that kind's type.
    kinds: std::sync::RwLock<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

/// Every object of one kind by id.
pub type Snapshot<T> = Arc<BTreeMap<String, T>>;

impl Store {
    /// Every object of a kind by id, from memory.
    pub fn carrier_snapshot<T: CarrierObject>(&self) -> Result<Snapshot<T>> {
        let cached = |kinds: &HashMap<&'static str, Arc<dyn Any + Send + Sync>>| {
            kinds
                .get(T::KIND)
                .and_then(|any| any.clone().downcast::<BTreeMap<String, T>>().ok())
        };
        if let Some(snapshot) = cached(
            &self
                .carrier_cache
                .kinds
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        ) {
            return Ok(snapshot);
        }
        // Load under the write lock, so a change that lands meanwhile cannot be
        // overwritten by an older snapshot.
        let mut kinds = self
            .carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = cached(&kinds) {
            return Ok(snapshot);
        }
        let prefix = key(&[T::KIND, ""]);
        let mut all = BTreeMap::new();
        for kv in self.carrier.scan_prefix(&prefix) {
            let (k, v) = kv?;
            all.insert(
                String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                from_json::<T>(&v)?,
            );
        }
        let snapshot = Arc::new(all);
        kinds.insert(T::KIND, snapshot.clone());
        Ok(snapshot)
    }

    /// The cache's write lock: held across a change so no stale snapshot is cached.
    pub(super) fn carrier_cache_lock(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<&'static str, Arc<dyn Any + Send + Sync>>> {
        self.carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// One object by id.
    pub fn carrier_get<T: CarrierObject>(&self, id: &str) -> Result<Option<T>> {
        Ok(self.carrier_snapshot::<T>()?.get(id).cloned())
    }

    /// Create or replace an object.
    pub fn carrier_put<T: CarrierObject>(&self, id: &str, object: &T) -> Result<()> {
        let mut kinds = self
            .carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.carrier.insert(key(&[T::KIND, id]), to_json(object)?)?;
        kinds.remove(T::KIND);
        Ok(())
    }

    /// Create or replace an object as a client asked: what it may not change is taken
    /// from the stored one ([`CarrierObject::keep_from`]) under the same lock that
    /// calls settle under, so a call charged meanwhile is not undone.
    pub fn carrier_replace<T: CarrierObject>(&self, id: &str, object: &mut T) -> Result<()> {
        let mut kinds = self.carrier_cache_lock();
        let k = key(&[T::KIND, id]);
        if let Some(old) = self.carrier.get(&k)? {
            object.keep_from(&from_json::<T>(&old)?);
        }
        self.carrier.insert(k, to_json(object)?)?;
        kinds.remove(T::KIND);
        Ok(())
    }

    /// Remove an object; false when it did not exist.
    pub fn carrier_delete<T: CarrierObject>(&self, id: &str) -> Result<bool> {
        let mut kinds = self
            .carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let existed = self.carrier.remove(key(&[T::KIND, id]))?.is_some();
        kinds.remove(T::KIND);
        Ok(existed)
    }

    /// Every object of a kind with its id, optionally only a tenant's.
    pub fn carrier_list<T: CarrierObject>(&self, tenant: Option<&str>) -> Result<Vec<(String, T)>> {
        Ok(self
            .carrier_snapshot::<T>()?
            .iter()
            .filter(|(_, object)| tenant.is_none_or(|t| t == object.tenant()))
            .map(|(id, object)| (id.clone(), object.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(tenant: &str, account: &str) -> MappingGateway {
        MappingGateway::for_account(tenant, account)
    }

    #[test]
    fn empty_objects_get_the_defaults() {
        let parsed: RoutingGateway = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, RoutingGateway::default());
        let parsed: Account = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, Account::default());
    }

    #[test]
    fn cached_reads_follow_every_change_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("switchyard-carrier-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            assert!(store.carrier_get::<MappingGateway>("gw").unwrap().is_none());
            store.carrier_put("gw", &gateway("a", "acct-1")).unwrap();
            assert_eq!(
                store
                    .carrier_get::<MappingGateway>("gw")
                    .unwrap()
                    .unwrap()
                    .account,
                "acct-1"
            );
            store.carrier_put("gw", &gateway("a", "acct-2")).unwrap();
            store.carrier_put("other", &gateway("b", "acct-3")).unwrap();
            assert_eq!(
                store
                    .carrier_get::<MappingGateway>("gw")
                    .unwrap()
                    .unwrap()
                    .account,
                "acct-2"
            );
            let ids = |t| {
                store
                    .carrier_list::<MappingGateway>(t)
                    .unwrap()
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(Some("b")), ["other"]);
            assert_eq!(ids(None), ["gw", "other"]);
            // Another kind under the same id is a different object.
            assert!(store.carrier_get::<RoutingGateway>("gw").unwrap().is_none());
            assert!(store.carrier_delete::<MappingGateway>("other").unwrap());
            assert!(!store.carrier_delete::<MappingGateway>("other").unwrap());
            assert_eq!(ids(None), ["gw"]);
            store.commit_blocking().unwrap();
        }
        let store = Store::reopen(&dir).unwrap();
        assert_eq!(
            store
                .carrier_get::<MappingGateway>("gw")
                .unwrap()
                .unwrap()
                .account,
            "acct-2"
        );
        assert!(store
            .carrier_get::<MappingGateway>("other")
            .unwrap()
            .is_none());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn g729_conversion_is_accepted_only_by_a_build_that_can_convert_it() {
        let g729 = |allow_conversion| MediaSettings {
            codec_mode: switchyard_model::CodecMode::Specified,
            codec: Some(Codec::G729),
            allow_conversion,
            ..MediaSettings::default()
        };
        let converting = this_build_converts(&g729(true));
        assert_eq!(converting.is_ok(), cfg!(feature = "g729"), "{converting:?}");
        // Pinning G.729 without conversion only filters SDP: every build can.
        assert!(this_build_converts(&g729(false)).is_ok());
    }
}
