//! What a re-exec carries, as versioned JSON in a memfd.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use crate::config::{ExitWhen, Listen};
use crate::supervisor::CarriedTable;

/// The version of [`ReexecState`]. A binary reads only the versions it knows; the old image
/// asks the new one first (`runpm __reexec-check --state-version V`).
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReexecState {
    pub version: u32,
    /// The path the first runpm was started from: every later re-exec uses it again.
    pub binary: PathBuf,
    pub table: CarriedTable,
    pub state_dir: Utf8PathBuf,
    pub exit_when_default: Option<ExitWhen>,
    pub watch: bool,
    /// A foreground `runpm up`: the services' lines go on to the terminal.
    pub console: bool,
    /// Panic re-execs in the last minute (their wall times, seconds since the epoch).
    pub panics: Vec<u64>,
    pub fds: CarriedFds,
}

/// Descriptor numbers that stay open across the exec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CarriedFds {
    pub control: Option<RawFd>,
    pub lock: Option<RawFd>,
    /// The sd_notify sockets with their `NOTIFY_SOCKET` address.
    pub notify: Option<(RawFd, String)>,
    pub notify_others: Option<(RawFd, String)>,
    pub pipes: Vec<CarriedPipe>,
    pub sockets: Vec<(String, Listen, RawFd)>,
    pub store: Vec<(String, String, RawFd)>,
}

/// The read ends of a running service's output pipes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedPipe {
    pub service: String,
    pub pid: i32,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

impl CarriedFds {
    /// Every descriptor number in here.
    pub fn all(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = [self.control, self.lock]
            .into_iter()
            .flatten()
            .chain(self.notify.iter().map(|(fd, _)| *fd))
            .chain(self.notify_others.iter().map(|(fd, _)| *fd))
            .chain(self.pipes.iter().flat_map(|p| [p.stdout, p.stderr]))
            .chain(self.sockets.iter().map(|(_, _, fd)| *fd))
            .chain(self.store.iter().map(|(_, _, fd)| *fd))
            .collect();
        fds.sort_unstable();
        fds.dedup();
        fds
    }
}

/// `state` in a fresh close-on-exec memfd, read from its start.
pub fn write_state(state: &ReexecState) -> std::io::Result<OwnedFd> {
    let text = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    // SAFETY: a plain system call with a NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"runpm-reexec-state".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created and ours alone.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&text)?;
    file.rewind()?;
    Ok(OwnedFd::from(file))
}

#[derive(Debug, thiserror::Error)]
pub enum ReadStateError {
    #[error("cannot read the state passed on descriptor {fd}")]
    Read {
        fd: RawFd,
        #[source]
        source: std::io::Error,
    },
    #[error("the state passed on descriptor {fd} is not runpm's: {message}")]
    Parse { fd: RawFd, message: String },
    #[error(
        "the state is version {found}; this runpm reads version {STATE_VERSION} (a downgrade across a state version)"
    )]
    Version { found: u32 },
}

/// Reads (and closes) the state memfd `fd`.
pub fn read_state(fd: OwnedFd) -> Result<ReexecState, ReadStateError> {
    let raw = fd.as_raw_fd();
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .map_err(|source| ReadStateError::Read { fd: raw, source })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ReadStateError::Parse {
            fd: raw,
            message: e.to_string(),
        })?;
    let found = value["version"].as_u64().unwrap_or(0) as u32;
    if found != STATE_VERSION {
        return Err(ReadStateError::Version { found });
    }
    serde_json::from_value(value).map_err(|e| ReadStateError::Parse {
        fd: raw,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn state(version: u32) -> ReexecState {
        ReexecState {
            version,
            binary: "/usr/bin/runpm".into(),
            table: CarriedTable {
                source: "/x/services.toml".into(),
                settings: Settings::default(),
                exit_when: None,
                last_known_good: None,
                services: Vec::new(),
                replicated: Default::default(),
                scaled: Default::default(),
                selection: Default::default(),
            },
            state_dir: "/x/.runpm".into(),
            exit_when_default: None,
            watch: true,
            console: false,
            panics: Vec::new(),
            fds: CarriedFds {
                control: Some(5),
                lock: Some(4),
                pipes: vec![CarriedPipe {
                    service: "web".into(),
                    pid: 10,
                    stdout: 8,
                    stderr: 9,
                }],
                ..Default::default()
            },
        }
    }

    #[test]
    fn round_trips_through_a_memfd_and_refuses_other_versions() {
        let fd = write_state(&state(STATE_VERSION)).unwrap();
        let back = read_state(fd).unwrap();
        assert_eq!(back.fds.all(), [4, 5, 8, 9]);
        assert_eq!(back.binary, PathBuf::from("/usr/bin/runpm"));
        let fd = write_state(&state(STATE_VERSION + 1)).unwrap();
        let e = read_state(fd).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
    }
}
