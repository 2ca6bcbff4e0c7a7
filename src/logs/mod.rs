//! The services' output: captured line by line from their pipes and handed to a sink
//! (the prefixed console of `runpm up` for now).

mod capture;
mod console;
mod events;

pub use capture::{LineSink, MAX_LINE, Stream, capture};
pub use console::Console;
pub use events::EventFormat;
