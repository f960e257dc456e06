//! Payments into accounts: each changes the balance and is kept, in one atomic step,
//! as the account's payment history.

use serde::{Deserialize, Serialize};

use super::{from_json, key, to_json, CarrierObject, Error, Result, Store};
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
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let account_key = key(&[Account::KIND, account]);
        let at_ms = crate::now_ms();
        let mut payment_key = account_prefix(account);
        payment_key.extend_from_slice(&at_ms.to_be_bytes());
        payment_key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        // Under the cache lock, as calls settle: no stale account snapshot lands.
        let mut kinds = self.carrier_cache_lock();
        let result = (&self.carrier, &self.payments).transaction(|(carrier, payments)| {
            let abort = |e: Error| ConflictableTransactionError::Abort(e);
            let Some(v) = carrier.get(&account_key)? else {
                return Ok(None);
            };
            let mut stored: Account = from_json(&v).map_err(abort)?;
            stored.balance = stored.balance + amount;
            carrier.insert(account_key.as_slice(), to_json(&stored).map_err(abort)?)?;
            let payment = Payment {
                account: account.into(),
                amount,
                balance_after: stored.balance,
                at_ms,
                by: by.into(),
                note: note.into(),
            };
            payments.insert(payment_key.as_slice(), to_json(&payment).map_err(abort)?)?;
            Ok(Some(payment))
        });
        kinds.remove(Account::KIND);
        match result {
            Ok(payment) => Ok(payment),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(Error::Db(e)),
        }
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
