//! Whether to colour: through anstream's reading of the conventions, so `NO_COLOR` (set and
//! not empty, as no-color.org says), `CLICOLOR_FORCE`, `CLICOLOR=0` and `TERM=dumb` mean what
//! they mean in every other Rust tool that users have.

use anstream::{AutoStream, ColorChoice};

/// Colour for stdout, unless `--no-color` (`off`) said no.
pub fn stdout(off: bool) -> bool {
    !off && AutoStream::choice(&std::io::stdout()) != ColorChoice::Never
}

/// Colour for stderr, unless `off`.
pub fn stderr(off: bool) -> bool {
    !off && AutoStream::choice(&std::io::stderr()) != ColorChoice::Never
}
