//! The command lines of both binaries, as clap definitions.
//!
//! They live in the library rather than in `src/bin/` so that the man pages
//! (`tests/man.rs`) and the shell completions (`runpmctl completions`) are generated from the
//! very definitions the binaries parse with, and can never describe another command line.
//! [`exit`] is the one table of the exit codes both binaries return.

pub mod colour;
pub mod complete;
pub mod exit;
pub mod runpm;
pub mod runpmctl;
