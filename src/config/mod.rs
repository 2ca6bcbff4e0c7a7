//! Unit files: loading, validation and the resolved service specs.

mod spec;

pub use spec::*;
