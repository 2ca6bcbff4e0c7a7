//! One service's log file, `<logs dir>/<name>.log`, with size-based rotation.
//!
//! Each line becomes one record, `2026-11-22T03:45:12.345Z out <line>\n`, written with a
//! single `write` on an `O_APPEND` descriptor, so a reader (`tail -f`, `runpmctl logs`) never
//! sees half a record from us. Before a record would push the file past `max_size`, the
//! file is rotated: `name.log.{k-1}` → `name.log.{k}` … `name.log` → `name.log.1`, with
//! `k = keep`, and a fresh `name.log` is opened. The rename over `.{keep}` drops the oldest
//! file. With `keep = 0` there is nothing to keep and the file is truncated instead. A record
//! larger than `max_size` is still written whole, alone in a fresh file: cutting it would
//! corrupt the line, and capture already bounds lines to 16 KiB.
//!
//! A log file must never take the supervisor down with it: a failing write (disk full, the
//! directory removed or replaced) is reported once through `tracing`, the lost lines are
//! counted, and the next line tries again from a fresh `open`. The first success after a
//! failure says how many lines were lost.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};

use super::capture::Stream;

#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    #[error("cannot use `{name}` as a log file name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("cannot create the log directory `{path}`")]
    CreateDir {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the log file `{path}`")]
    Open {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rotate the log file `{path}`")]
    Rotate {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write to the log file `{path}`")]
    Write {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The marker written after the timestamp, and used on the socket.
pub fn stream_marker(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
    }
}

/// Refuses a service name that would not stay a single file inside the logs directory.
/// Config validation already restricts names; this is the last line of defence, because a
/// name reaches a path here.
pub fn check_name(name: &str) -> Result<(), LogFileError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it names a directory"
    } else if name.contains('/') {
        "it contains `/`"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(LogFileError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

pub struct LogFile {
    name: String,
    dir: Utf8PathBuf,
    path: Utf8PathBuf,
    max_size: u64,
    keep: u32,
    /// Open lazily, and dropped after any error so that the next line starts from a fresh
    /// `open` (the directory may have been recreated, space freed).
    file: Option<File>,
    /// Bytes in the open file: read from its metadata when opened, then counted.
    size: u64,
    /// Whether the last attempt failed: the warning is given once per run of failures.
    failing: bool,
    /// Lines lost in the current run of failures.
    lost: u64,
    /// Lines lost over the file's lifetime.
    lost_total: u64,
    record: Vec<u8>,
}

impl LogFile {
    /// Nothing is touched on disk until the first line.
    pub fn new(
        dir: &Utf8Path,
        name: &str,
        max_size: u64,
        keep: u32,
    ) -> Result<LogFile, LogFileError> {
        check_name(name)?;
        Ok(LogFile {
            name: name.to_owned(),
            dir: dir.to_owned(),
            path: dir.join(format!("{name}.log")),
            max_size,
            keep,
            file: None,
            size: 0,
            failing: false,
            lost: 0,
            lost_total: 0,
            record: Vec::with_capacity(256),
        })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// The path of the `n`th old file (`name.log.n`).
    pub fn rotated_path(&self, n: u32) -> Utf8PathBuf {
        self.dir.join(format!("{}.log.{n}", self.name))
    }

    /// New limits take effect from the next line; the file is reopened then, which also
    /// picks up a file that someone moved away.
    pub fn set_limits(&mut self, max_size: u64, keep: u32) {
        self.max_size = max_size;
        self.keep = keep;
        self.file = None;
    }

    /// Lines that could not be written since this file was created.
    pub fn lost_lines(&self) -> u64 {
        self.lost_total
    }

    /// Appends one record. Never fails: errors are reported and counted (module doc).
    pub fn write_line(&mut self, at: SystemTime, stream: Stream, line: &str) {
        match self.append(at, stream, line) {
            Ok(()) => {
                if self.failing {
                    tracing::warn!(
                        "{}: log file writable again; {} lines were lost",
                        self.name,
                        self.lost
                    );
                    self.failing = false;
                    self.lost = 0;
                }
            }
            Err(e) => {
                self.file = None;
                self.lost += 1;
                self.lost_total += 1;
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        "{}: failed to write its log: {}; dropping lines until it works again",
                        self.name,
                        error_chain(&e)
                    );
                }
            }
        }
    }

    fn append(&mut self, at: SystemTime, stream: Stream, line: &str) -> Result<(), LogFileError> {
        self.record.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            self.record,
            "{} {} ",
            humantime::format_rfc3339_millis(at),
            stream_marker(stream)
        );
        self.record.extend_from_slice(line.as_bytes());
        self.record.push(b'\n');
        let len = self.record.len() as u64;

        if self.file.is_none() {
            self.open()?;
        }
        if self.size > 0 && self.size.saturating_add(len) > self.max_size {
            self.rotate()?;
        }
        let Some(file) = self.file.as_mut() else {
            // `open` and `rotate` leave a file behind on success.
            return Err(self.write_error(io::ErrorKind::NotFound.into()));
        };
        match file.write_all(&self.record) {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(source) => Err(self.write_error(source)),
        }
    }

    fn write_error(&self, source: io::Error) -> LogFileError {
        LogFileError::Write {
            path: self.path.clone(),
            source,
        }
    }

    fn open(&mut self) -> Result<(), LogFileError> {
        // Recreated on every open, so a logs directory removed under a running daemon comes
        // back; `recursive` leaves an existing one (and its mode) alone.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| LogFileError::CreateDir {
                path: self.dir.clone(),
                source,
            })?;
        let open_error = |source| LogFileError::Open {
            path: self.path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        // The mode only applies to a file we create; one left by an older run, or made by
        // someone else, is made private too. A file we cannot chmod (a device such as
        // /dev/null put there on purpose) is still written to.
        if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
        self.size = meta.len();
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogFileError> {
        let rotate_error = |path: &Utf8Path, source| LogFileError::Rotate {
            path: path.to_owned(),
            source,
        };
        if self.keep == 0 {
            if let Some(file) = &self.file {
                // O_APPEND writes follow the new end, so the next record lands at offset 0.
                file.set_len(0)
                    .map_err(|source| rotate_error(&self.path, source))?;
            }
            self.size = 0;
            return Ok(());
        }
        self.file = None;
        // Files numbered beyond `keep` are left over from a larger `keep` before a reload.
        let mut n = self.keep + 1;
        loop {
            match std::fs::remove_file(self.rotated_path(n)) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(source) => return Err(rotate_error(&self.rotated_path(n), source)),
            }
        }
        for n in (1..self.keep).rev() {
            let from = self.rotated_path(n);
            match std::fs::rename(&from, self.rotated_path(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(rotate_error(&from, source)),
            }
        }
        std::fs::rename(&self.path, self.rotated_path(1))
            .map_err(|source| rotate_error(&self.path, source))?;
        self.open()
    }
}

/// `cannot … : cause: cause`, since `tracing` prints only the top error's message.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
