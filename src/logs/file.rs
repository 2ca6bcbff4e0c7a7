//! One service's log file, `<logs dir>/<name>.log`, with size-based rotation.
//!
//! Each line becomes one record, `2026-11-22T03:45:12.345Z out <line>\n`. The records of a
//! batch (the lines one turn of a capture read) are written together, and every `write` on
//! the `O_APPEND` descriptor holds whole records only, so a reader (`tail -f`, `runpmctl
//! logs`) never sees half a record from us, and a flood of short lines costs one system
//! call per batch rather than one per line. Before a record would push the file past `max_size`, the
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

use std::cell::RefCell;
use std::fs::{DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use nix::fcntl::OFlag;
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};

use super::capture::Stream;
use crate::errors::error_chain;

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
    #[error(transparent)]
    Untrusted(#[from] crate::owner::Untrusted),
    #[error("`{path}` is a symlink; runpm never writes logs through one (remove it)")]
    Symlink { path: Utf8PathBuf },
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
}

/// Records are written in pieces of about this size: a flood's batch does not need a
/// buffer the size of the batch.
const MAX_WRITE: usize = 64 * 1024;

thread_local! {
    /// Where records are put together before their write: one buffer per thread rather than
    /// one per service.
    static RECORDS: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
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
        self.write_lines(at, stream, std::iter::once(line));
    }

    /// Appends a record per line, all stamped `at`, with as few `write`s as the size limit
    /// and [`MAX_WRITE`] allow (one for a turn of a flood's short lines). Never fails:
    /// errors are reported and counted (module doc).
    pub fn write_lines<'a>(
        &mut self,
        at: SystemTime,
        stream: Stream,
        lines: impl ExactSizeIterator<Item = &'a str>,
    ) {
        let count = lines.len() as u64;
        match self.append(at, stream, lines) {
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
            Err((e, written)) => {
                self.file = None;
                let lost = count - written;
                self.lost += lost;
                self.lost_total += lost;
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

    /// On failure, also says how many lines did reach the file.
    fn append<'a>(
        &mut self,
        at: SystemTime,
        stream: Stream,
        lines: impl Iterator<Item = &'a str>,
    ) -> Result<(), (LogFileError, u64)> {
        RECORDS.with_borrow_mut(|records| {
            records.clear();
            let mut prefix = [0u8; 64];
            let prefix = {
                let mut cursor = io::Cursor::new(&mut prefix[..]);
                // The timestamp and marker are 28 bytes: they always fit.
                let _ = write!(
                    cursor,
                    "{} {} ",
                    humantime::format_rfc3339_millis(at),
                    stream_marker(stream)
                );
                let len = cursor.position() as usize;
                &prefix[..len]
            };
            // Lines in `records`, and lines already written.
            let (mut held, mut written) = (0u64, 0u64);
            for line in lines {
                let len = (prefix.len() + line.len() + 1) as u64;
                // Before the record that would take the file past its limit, what is held
                // goes out and the file rotates; a record is never split between files.
                if self.would_overflow(records.len() as u64, len) {
                    self.write_held(records).map_err(|e| (e, written))?;
                    written += held;
                    held = 0;
                    self.rotate().map_err(|e| (e, written))?;
                }
                records.extend_from_slice(prefix);
                records.extend_from_slice(line.as_bytes());
                records.push(b'\n');
                held += 1;
                if records.len() >= MAX_WRITE {
                    self.write_held(records).map_err(|e| (e, written))?;
                    written += held;
                    held = 0;
                }
            }
            self.write_held(records).map_err(|e| (e, written))?;
            // A flood's buffer is not kept for the quiet that follows.
            if records.capacity() > 2 * MAX_WRITE {
                *records = Vec::new();
            }
            Ok(())
        })
    }

    /// Whether a record of `len` bytes after `held` bytes not yet written would take the
    /// file past the size limit, unless it would be the file's first record (opening the
    /// file first, to learn its size).
    fn would_overflow(&mut self, held: u64, len: u64) -> bool {
        if self.file.is_none() && self.open().is_err() {
            // The write that follows reports the error.
            return false;
        }
        let before = self.size.saturating_add(held);
        before > 0 && before.saturating_add(len) > self.max_size
    }

    /// Writes whole records with one `write` (emptying `records`).
    fn write_held(&mut self, records: &mut Vec<u8>) -> Result<(), LogFileError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.open()?;
        }
        let Some(file) = self.file.as_mut() else {
            // `open` and `rotate` leave a file behind on success.
            return Err(self.write_error(io::ErrorKind::NotFound.into()));
        };
        let result = file.write_all(records);
        let len = records.len() as u64;
        records.clear();
        match result {
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
        // The directory and the file are judged on their descriptors, and the file is
        // opened relative to the judged directory: a `logs` symlink or a planted
        // `NAME.log -> /etc/...` is refused, never written through.
        let dir = crate::owner::open_dir(&self.dir).map_err(|source| {
            if crate::owner::is_symlink_error(&source) {
                LogFileError::Symlink {
                    path: self.dir.clone(),
                }
            } else {
                LogFileError::CreateDir {
                    path: self.dir.clone(),
                    source,
                }
            }
        })?;
        let dir_meta = dir.metadata().map_err(|source| LogFileError::CreateDir {
            path: self.dir.clone(),
            source,
        })?;
        crate::owner::check(&dir_meta, &self.dir, crate::owner::Trust::Daemon)?;
        let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT;
        let file = crate::owner::open_in(&dir, &format!("{}.log", self.name), &self.path, flags)
            .map_err(|e| match e {
                crate::owner::OpenError::Io(source) if crate::owner::is_symlink_error(&source) => {
                    LogFileError::Symlink {
                        path: self.path.clone(),
                    }
                }
                crate::owner::OpenError::Io(source) => open_error(source),
                crate::owner::OpenError::Untrusted(e) => LogFileError::Untrusted(e),
            })?;
        let meta = file.metadata().map_err(open_error)?;
        // The mode only applies to a file we create; one left by an older run is made
        // private too. A device (such as /dev/null put there on purpose) is left as it is.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// 2026-11-22T03:45:12.345Z
    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_319_112_345)
    }

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(tmp.path().join("logs")).unwrap();
        (tmp, dir)
    }

    fn read(path: &Utf8Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// The line texts of a log file, without timestamp and marker.
    fn texts(path: &Utf8Path) -> Vec<String> {
        read(path)
            .lines()
            .map(|l| l.splitn(3, ' ').nth(2).unwrap().to_owned())
            .collect()
    }

    /// Everything `tracing` prints while `f` runs.
    fn warnings(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_land_with_timestamp_and_marker_in_private_files() {
        let (_tmp, dir) = temp();
        let mut log = LogFile::new(&dir, "web", 1_000_000, 5).unwrap();
        log.write_line(at(), Stream::Stdout, "listening on :8000");
        log.write_line(at(), Stream::Stderr, "");
        assert_eq!(
            read(&dir.join("web.log")),
            "2026-11-22T03:45:12.345Z out listening on :8000\n\
             2026-11-22T03:45:12.345Z err \n"
        );
        let mode = |p: &Utf8Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(log.path()), 0o600);
        assert_eq!(log.lost_lines(), 0);
    }

    #[test]
    fn an_existing_file_is_appended_to_and_made_private() {
        let (_tmp, dir) = temp();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("web.log"), "old\n").unwrap();
        std::fs::set_permissions(dir.join("web.log"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let mut log = LogFile::new(&dir, "web", 1_000_000, 5).unwrap();
        log.write_line(at(), Stream::Stdout, "new");
        assert_eq!(read(log.path()), "old\n2026-11-22T03:45:12.345Z out new\n");
        let mode = std::fs::metadata(log.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// Records here are 24 (timestamp) + 5 (marker and spaces) + 4 (text) + 1 = 34 bytes.
    fn line(i: usize) -> String {
        format!("{i:04}")
    }

    #[test]
    fn rotation_keeps_exactly_keep_files_with_the_newest_in_dot_1() {
        let (_tmp, dir) = temp();
        // Three records per file.
        let mut log = LogFile::new(&dir, "web", 110, 3).unwrap();
        for i in 0..40 {
            log.write_line(at(), Stream::Stdout, &line(i));
        }
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["web.log", "web.log.1", "web.log.2", "web.log.3"]);
        // 40 = 13 full files and one line: the current file holds the last line, `.1` the
        // three before it, and so on back.
        assert_eq!(texts(log.path()), [line(39)]);
        assert_eq!(texts(&log.rotated_path(1)), [line(36), line(37), line(38)]);
        assert_eq!(texts(&log.rotated_path(2)), [line(33), line(34), line(35)]);
        assert_eq!(texts(&log.rotated_path(3)), [line(30), line(31), line(32)]);
        for n in 1..=3 {
            assert!(std::fs::metadata(log.rotated_path(n)).unwrap().len() <= 110);
        }
    }

    #[test]
    fn a_smaller_keep_drops_the_extra_files_at_the_next_rotation() {
        let (_tmp, dir) = temp();
        let mut log = LogFile::new(&dir, "web", 110, 5).unwrap();
        for i in 0..30 {
            log.write_line(at(), Stream::Stdout, &line(i));
        }
        assert!(log.rotated_path(5).exists());
        log.set_limits(110, 2);
        for i in 30..33 {
            log.write_line(at(), Stream::Stdout, &line(i));
        }
        assert!(log.rotated_path(2).exists());
        for n in 3..=6 {
            assert!(!log.rotated_path(n).exists(), "web.log.{n} is left");
        }
        assert_eq!(texts(&log.rotated_path(1)), [line(27), line(28), line(29)]);
    }

    #[test]
    fn a_batch_is_rotated_where_the_limit_falls() {
        let (_tmp, dir) = temp();
        // Three 34-byte records per file, written as one batch of ten.
        let mut log = LogFile::new(&dir, "web", 110, 5).unwrap();
        let lines: Vec<String> = (0..10).map(line).collect();
        log.write_lines(at(), Stream::Stdout, lines.iter().map(String::as_str));
        assert_eq!(texts(log.path()), [line(9)]);
        assert_eq!(texts(&log.rotated_path(1)), [line(6), line(7), line(8)]);
        assert_eq!(texts(&log.rotated_path(2)), [line(3), line(4), line(5)]);
        assert_eq!(texts(&log.rotated_path(3)), [line(0), line(1), line(2)]);
    }

    #[test]
    fn keep_zero_truncates_in_place() {
        let (_tmp, dir) = temp();
        let mut log = LogFile::new(&dir, "web", 110, 0).unwrap();
        for i in 0..10 {
            log.write_line(at(), Stream::Stdout, &line(i));
        }
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(texts(log.path()), [line(9)]);
        assert!(std::fs::metadata(log.path()).unwrap().len() <= 110);
    }

    #[test]
    fn huge_lines_and_decoded_binary_are_written_whole() {
        let (_tmp, dir) = temp();
        let mut log = LogFile::new(&dir, "web", 1000, 2).unwrap();
        let huge = "h".repeat(super::super::MAX_LINE);
        let binary = "\u{fffd}\u{fffd}bin\x00\x1b[31m\ttab\rcr";
        log.write_line(at(), Stream::Stdout, "before");
        log.write_line(at(), Stream::Stdout, &huge);
        log.write_line(at(), Stream::Stderr, binary);
        // The huge record is alone in its file, bigger than the limit rather than cut.
        assert_eq!(texts(&log.rotated_path(2)), ["before"]);
        assert_eq!(texts(&log.rotated_path(1)), [huge]);
        assert_eq!(
            read(log.path()),
            format!("2026-11-22T03:45:12.345Z err {binary}\n")
        );
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        let (_tmp, dir) = temp();
        for name in ["../x", "..", ".", "", "a/b", "/etc/passwd", "a\0b"] {
            assert!(
                matches!(
                    LogFile::new(&dir, name, 100, 1),
                    Err(LogFileError::InvalidName { .. })
                ),
                "{name:?} accepted"
            );
        }
        for name in ["web", "a..b", ".hidden", "web.1"] {
            assert!(LogFile::new(&dir, name, 100, 1).is_ok(), "{name:?} refused");
        }
    }

    #[test]
    fn an_unwritable_directory_is_reported_once_and_recovered_from() {
        let (_tmp, dir) = temp();
        // A file where the directory should be: mkdir and open fail, even for root.
        std::fs::write(&dir, "not a directory").unwrap();
        let mut log = LogFile::new(&dir, "web", 1000, 2).unwrap();
        let printed = warnings(|| {
            for i in 0..5 {
                log.write_line(at(), Stream::Stdout, &line(i));
            }
        });
        assert_eq!(printed.matches("WARN").count(), 1, "{printed}");
        assert!(printed.contains("web: failed to write its log: cannot create the log directory"));
        assert_eq!(log.lost_lines(), 5);

        std::fs::remove_file(&dir).unwrap();
        let printed = warnings(|| log.write_line(at(), Stream::Stdout, &line(5)));
        assert!(printed.contains("web: log file writable again; 5 lines were lost"));
        assert_eq!(texts(log.path()), [line(5)]);
        assert_eq!(log.lost_lines(), 5);
    }

    #[test]
    fn a_planted_symlink_or_a_logs_dir_of_others_is_refused() {
        let (_tmp, dir) = temp();
        std::fs::create_dir(&dir).unwrap();
        let target = dir.with_file_name("target");
        std::fs::write(&target, "keep\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("web.log")).unwrap();
        let mut log = LogFile::new(&dir, "web", 1000, 2).unwrap();
        let printed = warnings(|| log.write_line(at(), Stream::Stdout, &line(0)));
        assert!(printed.contains("web.log` is a symlink"), "{printed}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        std::fs::remove_file(dir.join("web.log")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        // A fresh file: the first one warns once per run of failures.
        let mut log = LogFile::new(&dir, "web", 1000, 2).unwrap();
        let printed = warnings(|| log.write_line(at(), Stream::Stdout, &line(1)));
        assert!(printed.contains("other users may write to it"), "{printed}");
        assert!(!dir.join("web.log").exists());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        log.write_line(at(), Stream::Stdout, &line(2));
        assert_eq!(texts(log.path()), [line(2)]);
    }

    #[test]
    fn a_full_disk_is_reported_once_and_recovered_from() {
        let (_tmp, dir) = temp();
        std::fs::create_dir(&dir).unwrap();
        // Every write to /dev/full (char device 1:7) fails with ENOSPC. Made in place, as
        // root (CI runs as root): a symlink to it would be refused.
        nix::sys::stat::mknod(
            dir.join("web.log").as_std_path(),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 7),
        )
        .expect("mknod needs root (CI runs the tests as root)");
        let mut log = LogFile::new(&dir, "web", 1000, 2).unwrap();
        let printed = warnings(|| {
            for i in 0..3 {
                log.write_line(at(), Stream::Stdout, &line(i));
            }
        });
        assert_eq!(printed.matches("WARN").count(), 1, "{printed}");
        assert!(printed.contains("No space left on device"), "{printed}");
        assert_eq!(log.lost_lines(), 3);

        std::fs::remove_file(dir.join("web.log")).unwrap();
        log.write_line(at(), Stream::Stdout, &line(3));
        assert_eq!(texts(log.path()), [line(3)]);
    }
}
