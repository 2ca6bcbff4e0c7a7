//! Watching the config on disk, so that saving a unit file or an `env_file` reloads it.
//!
//! What is watched is what the config is made of: the config file (or the unit files of a
//! unit directory) and every service's `env_file`; the runtime updates the set after each
//! reload. The watch is on each file's directory, never on the file: an editor's atomic save
//! renames a new file over the old one, after which a watch on the file itself goes silent;
//! vim renames the original away first; a ConfigMap-style symlink swap never names the file
//! at all. So every event in those directories is [filtered](filter) for whether it could
//! concern the config (an unrelated file appearing there does not), and a burst of such
//! events (one atomic save is about seven) is [debounced](debounce) into a single
//! notification. The consumer re-reads and diffs the whole config; a save that changed
//! nothing becomes a reload with an empty plan.

mod debounce;
mod filter;
mod fingerprint;
mod watcher;

pub use watcher::{DEFAULT_DEBOUNCE, WatchError, Watcher};
