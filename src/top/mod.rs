//! `runpmctl top`: a live, full-screen view of the services.
//!
//! Theory of operation: one thread owns the terminal and the [`app::App`]; everything
//! else is a feed thread that talks to the daemon on its own connection and sends messages
//! to it over one channel: the keys (crossterm's reader), the `events` stream (rows change
//! the moment something happens), the `status` reader (every second while attached, for
//! uptime, CPU and memory, and soon after each event for the details), the followed log,
//! and each operator command (so a slow `restart` never freezes the screen). The UI thread
//! sleeps on that channel; it redraws only when a message arrived.
//!
//! The table, the keys and the drawing are pure (`model`, `app`, `format`, `view`) and
//! tested without a terminal; `terminal` puts the terminal back on every way out.
//!
//! Only `runpmctl` uses this module: the daemon never links ratatui or crossterm.

pub mod app;
pub mod event;
pub mod feed;
pub mod format;
pub mod model;
mod run;
pub mod terminal;
pub mod usage;
pub mod view;

pub use run::{Options, Outcome, TopError, check_terminal, reraise, run};
