//! `runpmctl metrics`: the services as Prometheus metrics, in the text exposition format
//! (0.0.4) that node_exporter's textfile collector and any scraper read.
//!
//! Built client-side from the daemon's `status`: nothing runs in the daemon for it, so a
//! daemon nobody scrapes pays nothing. Memory and CPU come from the status's own
//! accounting (`memory_bytes`, `cpu_usec`) when the daemon reports them (cgroups), else
//! from `/proc` for the service's process group.

mod exposition;
mod proc;

pub use exposition::{Sample, escape_label, render};
pub use proc::{Usage, group_usage};
