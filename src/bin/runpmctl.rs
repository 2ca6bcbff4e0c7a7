//! `runpmctl`: steers a running runpm over its control socket.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "runpmctl: the control socket is not available in this build yet (see README: planned)"
    );
    ExitCode::from(3)
}
