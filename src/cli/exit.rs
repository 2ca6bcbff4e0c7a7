//! The exit codes of both binaries: the one table of them (runpm(1), runpmctl(1) and the
//! README's "Exit codes" list the same values).
//!
//! Each binary decides *why* it did not succeed with its own typed failure (`Failure` in
//! `src/bin/runpm.rs` and `src/bin/runpmctl.rs`), maps it to an [`Exit`] in one method, and
//! turns that into the process's code in `main` only. Scripts and orchestrators read these
//! codes, so a value here never changes.

/// How a command ended, as its exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked.
    Ok,
    /// 1: the operation failed (an invalid config, the daemon answered with an error, talking
    /// to it failed); the message on stderr says why.
    Failed,
    /// 2: the command line is wrong (clap's own errors use 2 as well).
    Usage,
    /// 3: no daemon is running for this project (runpmctl).
    NoDaemon,
    /// `runpm up` once its services have ended: 0 when every service stopped cleanly, else
    /// the failing service's code, or 128 + the signal that killed it (137 after SIGKILL).
    Services(u8),
}

impl Exit {
    /// The process's exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::NoDaemon => 3,
            Exit::Services(code) => code,
        }
    }

    /// The exit of a command line clap rejected or answered itself: `--help` and `--version`
    /// (printed on stdout) succeed, anything else is a usage error.
    pub fn of_clap(error: &clap::Error) -> Exit {
        if error.use_stderr() {
            Exit::Usage
        } else {
            Exit::Ok
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;
    use clap::Parser;

    /// The documented table (README "Exit codes", runpmctl(1)): these values never change.
    #[test]
    fn codes_are_the_documented_table() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Failed.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::NoDaemon.code(), 3);
        assert_eq!(Exit::Services(0).code(), 0);
        assert_eq!(Exit::Services(137).code(), 137);
    }

    #[derive(Parser, Debug)]
    #[command(name = "probe", version = "1")]
    struct Probe {
        #[arg(long)]
        count: u32,
    }

    #[test]
    fn help_and_version_succeed_and_bad_arguments_are_usage_errors() {
        let exit = |args: &[&str]| {
            let error = Probe::try_parse_from(args).expect_err("clap answers itself");
            Exit::of_clap(&error)
        };
        assert_eq!(exit(&["probe", "--help"]), Exit::Ok);
        assert_eq!(exit(&["probe", "--version"]), Exit::Ok);
        assert_eq!(exit(&["probe", "--count", "x"]), Exit::Usage);
        assert_eq!(exit(&["probe"]), Exit::Usage);
    }
}
