use super::super::bindings::log::{Host, Level};
use super::super::limits::{MAX_LOG_LINES_PER_CALL, MAX_LOG_LINE_BYTES};
use super::super::state::{level_name, LogLine};
use super::PolicyState;

/// Cut `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl PolicyState {
    /// Keep a line for `simulate` and the health view, within the per-call bound.
    pub(crate) fn push_log(&mut self, level: &str, message: String) {
        if self.ctx.logs.len() >= MAX_LOG_LINES_PER_CALL {
            self.ctx.dropped_logs += 1;
            return;
        }
        self.ctx.logs.push(LogLine {
            level: level.into(),
            message: truncate(message, MAX_LOG_LINE_BYTES),
            call_id: self.ctx.call_id.clone(),
            at_ms: crate::now_ms(),
        });
    }
}

impl Host for PolicyState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let (call_id, module) = (&self.ctx.call_id, &self.ctx.module);
        let msg = message.as_str();
        match level {
            Level::Trace => tracing::trace!(%call_id, %module, "{msg}"),
            Level::Debug => tracing::debug!(%call_id, %module, "{msg}"),
            Level::Info => tracing::info!(%call_id, %module, "{msg}"),
            Level::Warn => tracing::warn!(%call_id, %module, "{msg}"),
            Level::Error => tracing::error!(%call_id, %module, "{msg}"),
        }
        self.push_log(level_name(level), message);
        Ok(())
    }
}
