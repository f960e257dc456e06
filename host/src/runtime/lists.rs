//! Checking a call against the tenant's lists: its numbers against the number lists
//! (their entries in indexed data tables), its source against the address lists.

use switchyard_model::lists::entry_matches;
use switchyard_model::{AddressList, ListHit, ListKind, ListScope, NumberList, NumberSide};

use super::Runtime;

/// A list's refusal: what the caller is answered and what the record keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// SIP status.
    pub code: u16,
    /// Reason phrase.
    pub phrase: String,
    /// The list and entry.
    pub hit: ListHit,
}

impl Runtime {
    /// The first refusal by an enabled list of `tenant` at one of `scopes`, checking
    /// `caller` and `callee`; lists are taken in id order. A list whose table is
    /// missing holds no numbers.
    pub fn number_refusal(
        &self,
        tenant: &str,
        scopes: &[ListScope],
        caller: &str,
        callee: &str,
    ) -> crate::store::Result<Option<Refusal>> {
        let lists = self.store().carrier_snapshot::<NumberList>()?;
        for (id, list) in lists.iter() {
            if list.tenant != tenant || !list.enabled || !scopes.contains(&list.scope) {
                continue;
            }
            let number = match list.number {
                NumberSide::Caller => caller,
                NumberSide::Callee => callee,
            };
            let entry = match self.table(tenant, &list.table)? {
                Some(index) => index
                    .prefixes(number)
                    .find(|r| entry_matches(&r.key, r.fields.first().map(String::as_str), number))
                    .map(|r| r.key.clone()),
                None => None,
            };
            let refused = match list.kind {
                ListKind::Deny => entry.is_some(),
                ListKind::Allow => entry.is_none(),
            };
            if refused {
                return Ok(Some(Refusal {
                    code: list.code,
                    phrase: list.reason.clone(),
                    hit: ListHit {
                        list: id.clone(),
                        entry: entry.filter(|_| list.kind == ListKind::Deny),
                        number: number.to_string(),
                        side: list.number,
                    },
                }));
            }
        }
        Ok(None)
    }

    /// Why the tenant's address lists refuse a call from `ip`, if they do: the first
    /// enabled deny list holding it, or an allow list not holding it.
    pub fn address_refusal(
        &self,
        tenant: &str,
        ip: std::net::IpAddr,
    ) -> crate::store::Result<Option<String>> {
        let lists = self.store().carrier_snapshot::<AddressList>()?;
        for (id, list) in lists.iter() {
            if list.tenant != tenant || !list.enabled {
                continue;
            }
            match (list.kind, list.entry_for(ip)) {
                (ListKind::Deny, Some(entry)) => {
                    return Ok(Some(format!(
                        "source {ip} is on address list {id} (entry {entry})"
                    )))
                }
                (ListKind::Allow, None) => {
                    return Ok(Some(format!("source {ip} is not on allow list {id}")))
                }
                _ => {}
            }
        }
        Ok(None)
    }
}
