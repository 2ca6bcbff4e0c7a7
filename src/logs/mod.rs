//! The services' output: captured line by line from their pipes and handed to a sink. The
//! daemon's sink is the [`LogHub`], which writes each service's rotated log file, keeps its
//! in-memory tail, feeds the live followers and, under `runpm up`, the prefixed console.

mod batch;
mod capture;
mod console;
mod events;
mod file;
mod hub;
pub mod journal;
mod read;
pub mod stderr;
mod tail;

pub use capture::{LineSink, Lines, MAX_LINE, OVERLOAD_REPORT, Stream, TURN_BYTES, capture};
pub use console::Console;
pub use events::{EventFormat, JsonFormat};
pub use file::{LogFile, LogFileError, check_name, stream_marker};
pub use hub::{FOLLOW_BUFFER, Followed, Follower, LogHub, LogLine};
pub use read::{ReadError, logged_services, parse_record, read_logs};
pub use stderr::EventWriter;
pub use tail::{TAIL_BYTES, TAIL_LINES, Tail, TailLine};
