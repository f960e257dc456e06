//! Payments into accounts: each changes the balance and is kept, in one atomic step,
//! as the account's payment history.

use serde::{Deserialize, Serialize};

use super::engine::Batch;
use super::{from_json, key, to_json, CarrierObject, Result, Store};
use switchyard_model::Account;
use switchyard_model::Money;

/// One payment (negative: a correction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// The account paid into.
    pub account: String,
    /// Amount added to the balance.
    pub amount: Money,
    /// The balance after it.
    pub balance_after: Money,
    /// When, Unix ms.
    pub at_ms: u64,
    /// The name of the token that made it.
    pub by: String,
    /// Free text from the operator.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Key prefix of an account's payments; keys then carry time and a counter, so they
/// sort oldest first.
fn account_prefix(account: &str) -> Vec<u8> {
    key(&[account, ""])
}

impl Store {
    /// Add `amount` to an account's balance and record the payment, atomically; the
    /// payment, or none when the account does not exist. Durable after
    /// [`Store::commit`].
    pub fn pay(
        &self,
        account: &str,
        amount: Money,
        by: &str,
        note: &str,
    ) -> Result<Option<Payment>> {
        let account_key = key(&[Account::KIND, account]);
        let at_ms = crate::now_ms();
        let mut payment_key = account_prefix(account);
        payment_key.extend_from_slice(&at_ms.to_be_bytes());
        payment_key.extend_from_slice(&self.engine.generate_id()?.to_be_bytes());
        // Under the cache lock, as calls settle: no stale account snapshot lands.
        let mut kinds = self.carrier_cache_lock();
        let Some(v) = self.carrier.get(&account_key)? else {
            return Ok(None);
        };
        let mut stored: Account = from_json(&v)?;
        stored.balance = stored.balance + amount;
        let payment = Payment {
            account: account.into(),
            amount,
            balance_after: stored.balance,
            at_ms,
            by: by.into(),
            note: note.into(),
        };
        let mut batch = Batch::default();
        batch.insert(&self.carrier, account_key, to_json(&stored)?);
        batch.insert(&self.payments, payment_key, to_json(&payment)?);
        let result = self.engine.apply(batch);
        kinds.remove(Account::KIND);
        result.map(|()| Some(payment))
    }

    /// An account's payments, newest first, at most `limit`.
    pub fn payments(&self, account: &str, limit: usize) -> Result<Vec<Payment>> {
        self.payments
            .scan_prefix(account_prefix(account))
            .rev()
            .take(limit)
            .map(|kv| from_json(&kv?.1))
            .collect()
    }
}
