//! `runpmctl events --json` as a test reads it: in the background, each stdout line one
//! event, waited for by condition. Tests that need to know what the daemon decided assert on
//! these events rather than on the wording of its log lines.

use serde_json::Value;

use super::{Project, RUNPMCTL, Runpm, secs, wait_for_some};

/// A running `runpmctl events ARGS…`.
pub struct EventStream {
    pub reader: Runpm,
}

impl Project {
    /// Starts `runpmctl events ARGS…` in the project (add `--json` to read [`EventStream::events`]).
    pub fn events(&self, args: &[&str]) -> EventStream {
        let mut all = vec!["events"];
        all.extend_from_slice(args);
        EventStream {
            reader: Runpm::start(self.program(RUNPMCTL, all)),
        }
    }
}

impl EventStream {
    /// Every event so far, parsed (each line must be one JSON object).
    pub fn events(&self) -> Vec<Value> {
        self.reader
            .stdout()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON object per line: {e}: {line:?}"))
            })
            .collect()
    }

    /// Waits (20 s at most) for the first event from index `from` on that `wanted` accepts;
    /// its index.
    pub fn wait(&self, from: usize, what: &str, wanted: impl Fn(&Value) -> bool) -> usize {
        let found = wait_for_some(secs(20), || {
            self.events()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, e)| wanted(e))
                .map(|(i, _)| i)
        });
        found.unwrap_or_else(|| panic!("no {what} event after #{from}\n{}", self.reader.describe()))
    }

    /// Waits for `event` of `service` (None: a daemon-wide one) from index `from` on.
    pub fn wait_event(&self, from: usize, service: Option<&str>, event: &str) -> usize {
        self.wait(from, &format!("{service:?} {event}"), |e| {
            e["event"] == event && e["service"].as_str() == service
        })
    }
}
