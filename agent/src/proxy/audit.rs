//! Where audit records go: one JSON line each on standard output (the
//! agent's own log goes to standard error), written whole under a lock so
//! that concurrent requests never interleave.

use std::io::Write as _;

use lanyard_core::proxy::audit::AuditRecord;

/// The audit sink.
#[derive(Debug, Clone, Copy)]
pub struct Audit;

impl Audit {
    /// Write `record`.
    pub fn record(&self, record: &AuditRecord) {
        let mut line = record.to_line();
        line.push('\n');
        let mut out = std::io::stdout().lock();
        // An audit line that cannot be written is not worth a crash of the proxy; the log pipeline sees the gap.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}
