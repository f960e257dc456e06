//! Checking a call's numbers against the tenant's number lists, over the cached list
//! objects and the indexed data tables that hold their entries.

use switchyard_model::number_lists::entry_matches;
use switchyard_model::{ListHit, ListKind, ListScope, NumberList, NumberSide};

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
}
