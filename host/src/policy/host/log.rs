use super::super::bindings::log::{Host, Level};
use super::super::limits::{MAX_LOG_BYTES_PER_SEC, MAX_LOG_LINES_PER_CALL, MAX_LOG_LINE_BYTES};
use super::super::state::{level_name, LogLine};
use super::PolicyState;

/// The byte length of `s` cut to at most `max` on a character boundary.
fn truncate_at(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    s.truncate(truncate_at(&s, max));
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
        let c = &self.ctx;
        let (call_id, module) = (&c.call_id, &c.module);
        let msg = &message[..truncate_at(&message, MAX_LOG_LINE_BYTES)];
        // Past the module's log rate a line is still kept for the call, not logged.
        let bytes = (msg.len() as u64).max(1);
        let now_ms = crate::now_ms();
        if c.runtime
            .may_log(&c.tenant, module, bytes, MAX_LOG_BYTES_PER_SEC, now_ms)
        {
            match level {
                Level::Trace => tracing::trace!(%call_id, %module, "{msg}"),
                Level::Debug => tracing::debug!(%call_id, %module, "{msg}"),
                Level::Info => tracing::info!(%call_id, %module, "{msg}"),
                Level::Warn => tracing::warn!(%call_id, %module, "{msg}"),
                Level::Error => tracing::error!(%call_id, %module, "{msg}"),
            }
        }
        self.push_log(level_name(level), message);
        Ok(())
    }

    fn event(
        &mut self,
        level: Level,
        kind: String,
        subject: String,
        detail: String,
    ) -> wasmtime::Result<()> {
        let c = &self.ctx;
        let bytes = (kind.len() + subject.len() + detail.len()) as u64;
        if !c.runtime.may_log(
            &c.tenant,
            &c.module,
            bytes.max(1),
            MAX_LOG_BYTES_PER_SEC,
            crate::now_ms(),
        ) {
            return Ok(());
        }
        let event = crate::runtime::events::Event {
            seq: 0,
            at_ms: self.now_ms(),
            tenant: c.tenant.clone(),
            module: c.module.clone(),
            call_id: c.call_id.clone(),
            level: level_name(level),
            kind: truncate(kind, MAX_EVENT_FIELD_BYTES),
            subject: truncate(subject, MAX_EVENT_FIELD_BYTES),
            detail: truncate(detail, MAX_EVENT_FIELD_BYTES),
        };
        let (call_id, module) = (&event.call_id, &event.module);
        let (kind, subject, detail) = (&event.kind, &event.subject, &event.detail);
        match level {
            Level::Error => tracing::error!(%call_id, %module, %kind, %subject, "{detail}"),
            Level::Warn => tracing::warn!(%call_id, %module, %kind, %subject, "{detail}"),
            _ => tracing::info!(%call_id, %module, %kind, %subject, "{detail}"),
        }
        let line = format!("event {kind} {subject}: {detail}");
        c.runtime.events.push(event);
        self.push_log(level_name(level), line);
        Ok(())
    }
}

/// Each text of an event is cut to this.
const MAX_EVENT_FIELD_BYTES: usize = 1024;
