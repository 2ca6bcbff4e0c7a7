//! What happened to the services, as typed lifecycle events: the supervisor's core reports
//! them ([`Report`], carried out of the core as `Effect::Report`), and the daemon's shell
//! fans them out to `runpmctl events` subscribers (the [`Ring`] and its broadcast) and to
//! the lifecycle lines of `runpmctl logs -f`. One record type is the core's report, the
//! wire's `EVENT` object and what the client renders, so none of them can drift apart.

mod record;
mod render;
mod ring;

pub use record::{Kind, Report, ts_text};
pub use render::{event_line, phrase};
pub use ring::{Next, RING_CAPACITY, Ring, Subscription};
