//! Keeping `state.json` equal to what runs: the supervisor's records, written through a
//! coalescer (bursts become one write; a new or vanished process makes it urgent), retried
//! when a write fails, never stopping supervision.

use camino::Utf8PathBuf;

use crate::state::{self, Coalescer, StateFile};

use crate::supervisor::Supervisor;
/// Keeps `state.json` equal to what runs: coalesced writes, retried when they fail.
pub(super) struct Persist {
    pub path: Utf8PathBuf,
    coalescer: Coalescer,
    /// The fingerprint of what was last handed to the coalescer.
    seen: Option<(u64, u64)>,
    boot_id: String,
    pid_ns: String,
}

impl Persist {
    pub fn new(path: Utf8PathBuf) -> Persist {
        Persist {
            path,
            coalescer: Coalescer::new(),
            seen: None,
            boot_id: state::boot_id().unwrap_or_default(),
            pid_ns: state::pid_ns().unwrap_or_default(),
        }
    }

    /// Notes whether what runs changed since the last look. A process that appeared or
    /// went makes the write urgent: until it is written, a crash of runpm would lose it.
    pub fn changed(&mut self, sup: &Supervisor, now: std::time::Instant) {
        let print = sup.fingerprint();
        match self.seen {
            Some(seen) if seen == print => {}
            Some(seen) if seen.1 == print.1 => self.coalescer.mark_dirty(now),
            _ => self.coalescer.mark_urgent(now),
        }
        self.seen = Some(print);
    }

    pub fn due(&self) -> Option<std::time::Instant> {
        self.coalescer.due()
    }

    pub fn write(&mut self, sup: &Supervisor, now: std::time::Instant) -> Result<(), String> {
        let doc = StateFile {
            version: state::STATE_VERSION,
            boot_id: self.boot_id.clone(),
            pid_ns: self.pid_ns.clone(),
            written_at: state::timestamp(std::time::SystemTime::now()),
            daemon_pid: std::process::id(),
            config: sup.source().to_string(),
            cleaned_boot: None,
            clean_shutdown: sup.ended_cleanly(),
            services: sup.records(),
            scaled: sup.scaled().clone(),
        };
        let ticket = self.coalescer.begin(now);
        match state::write_atomic(&self.path, &doc) {
            Ok(()) => {
                self.coalescer.written(ticket, now);
                Ok(())
            }
            Err(e) => {
                self.coalescer.failed(ticket, now);
                let message = crate::errors::error_chain(&e);
                // Supervision goes on; the write is retried with a growing delay.
                tracing::warn!("{message} (retrying)");
                Err(message)
            }
        }
    }
}
