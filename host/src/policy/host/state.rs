use super::super::bindings::state::Host;
use super::super::bindings::types::Error;
use super::super::limits::{MAX_COUNTER_WINDOW_SECS, MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES};
use super::{internal, PolicyState};

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_STATE_KEY_BYTES || key.contains('\0') {
        return Err(Error::Invalid(format!(
            "key must be 1..={MAX_STATE_KEY_BYTES} bytes without NUL"
        )));
    }
    Ok(())
}

impl PolicyState {
    fn count_events(&mut self, key: &str, window_secs: u32, record: bool) -> Result<u64, Error> {
        check_key(key)?;
        if window_secs == 0 || window_secs > MAX_COUNTER_WINDOW_SECS {
            return Err(Error::Invalid(format!(
                "window must be 1..={MAX_COUNTER_WINDOW_SECS} s"
            )));
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
            .map_err(Error::LimitExceeded)
    }
}

impl Host for PolicyState {
    fn get(&mut self, key: String) -> Option<String> {
        let c = &self.ctx;
        c.runtime
            .store
            .state_get(&c.tenant, &c.module, &key)
            .unwrap_or_else(|e| {
                tracing::error!(call_id = %c.call_id, error = %e, "module state read failed");
                None
            })
    }

    fn set(&mut self, key: String, value: String) -> Result<(), Error> {
        check_key(&key)?;
        if value.len() > MAX_STATE_VALUE_BYTES {
            return Err(Error::LimitExceeded(format!(
                "values are at most {MAX_STATE_VALUE_BYTES} bytes"
            )));
        }
        let c = &self.ctx;
        c.runtime
            .store
            .state_set(&c.tenant, &c.module, &key, &value)
            .map_err(internal)
    }

    fn delete(&mut self, key: String) {
        let c = &self.ctx;
        if let Err(e) = c.runtime.store.state_delete(&c.tenant, &c.module, &key) {
            tracing::error!(call_id = %c.call_id, error = %e, "module state delete failed");
        }
    }

    fn incr(&mut self, key: String, window_secs: u32) -> Result<u64, Error> {
        self.count_events(&key, window_secs, true)
    }

    fn count(&mut self, key: String, window_secs: u32) -> Result<u64, Error> {
        self.count_events(&key, window_secs, false)
    }
}
