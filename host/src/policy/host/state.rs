use super::super::bindings::state::Host;
use super::super::bindings::types::Error;
use super::super::bindings::HostError;
use super::super::limits::{
    MAX_COUNTER_WINDOW_SECS, MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES, STATE_QUOTA,
};
use super::{internal, PolicyState};

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.len() > MAX_STATE_KEY_BYTES || key.contains('\0') {
        return Err(Error::Invalid(format!(
            "key must be 1..={MAX_STATE_KEY_BYTES} bytes without NUL"
        ))
        .into());
    }
    Ok(())
}

impl PolicyState {
    fn count_events(
        &mut self,
        key: &str,
        window_secs: u32,
        record: bool,
    ) -> Result<u64, HostError> {
        check_key(key)?;
        if window_secs == 0 || window_secs > MAX_COUNTER_WINDOW_SECS {
            return Err(
                Error::Invalid(format!("window must be 1..={MAX_COUNTER_WINDOW_SECS} s")).into(),
            );
        }
        let now = self.now_ms();
        let c = &self.ctx;
        c.runtime
            .counter(
                &c.tenant,
                &c.module,
                key,
                u64::from(window_secs) * 1000,
                now,
                record,
            )
            .map_err(|e| Error::LimitExceeded(e).into())
    }
}

impl Host for PolicyState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let c = &self.ctx;
        c.runtime
            .store
            .state_get(&c.tenant, &c.module, &key)
            .map_err(|e| wasmtime::Error::msg(format!("host fault: module state read: {e}")))
    }

    fn set(&mut self, key: String, value: String) -> Result<(), HostError> {
        check_key(&key)?;
        if value.len() > MAX_STATE_VALUE_BYTES {
            return Err(Error::LimitExceeded(format!(
                "values are at most {MAX_STATE_VALUE_BYTES} bytes"
            ))
            .into());
        }
        let c = &mut self.ctx;
        match c
            .runtime
            .store
            .state_set(&c.tenant, &c.module, &key, &value, &STATE_QUOTA)
        {
            Err(crate::store::Error::Quota(why)) => {
                c.quota_refusals += 1;
                Err(Error::LimitExceeded(why).into())
            }
            other => other.map_err(internal),
        }
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        let c = &self.ctx;
        c.runtime
            .store
            .state_delete(&c.tenant, &c.module, &key)
            .map_err(|e| wasmtime::Error::msg(format!("host fault: module state delete: {e}")))
    }

    fn incr(&mut self, key: String, window_secs: u32) -> Result<u64, HostError> {
        self.count_events(&key, window_secs, true)
    }

    fn count(&mut self, key: String, window_secs: u32) -> Result<u64, HostError> {
        self.count_events(&key, window_secs, false)
    }
}
