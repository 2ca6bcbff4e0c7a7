//! The I/O edge: writing the state file atomically and loading it defensively.
//!
//! A write goes to a fresh temporary file in the same directory (created exclusively, mode
//! 0600), is fsynced, renamed over the state file, and then the directory is fsynced so the
//! rename itself survives a power cut. A crash at any instant therefore leaves the old file
//! or the new one, never a mixture; at worst a temporary file is left behind, which
//! [`sweep_temp_files`] removes at the next start-up. Any failure removes the temporary file
//! and is returned: the caller logs it and retries (see `Coalescer`), supervision goes on.
//!
//! A load never treats a bad file as empty. Whatever cannot be read or understood is moved
//! aside under a timestamped name (kept, never deleted), and the caller starts from the
//! config and says so.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};

use super::StateError;
use super::error::WriteStep;
use super::file::{StateFile, parse, render_to};

/// Larger than any real state file (a spec is a few hundred bytes), small enough that a
/// planted huge file cannot exhaust memory.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// What [`load`] found.
#[derive(Debug)]
pub enum LoadOutcome {
    /// No state file: a first start.
    Missing,
    Loaded(StateFile),
    /// Unusable. `moved_to` is where the file now is; `None` when it could not be moved,
    /// and then `move_error` says why.
    Bad {
        error: StateError,
        moved_to: Option<Utf8PathBuf>,
        move_error: Option<StateError>,
    },
}

/// Distinguishes the temporary files of successive writes of one process. Together with the
/// pid it makes a name no other writer uses; `create_new` catches the rest (a file left by a
/// crashed daemon that had the same pid, as PID 1 in a container always has).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn write_atomic(path: &Utf8Path, doc: &StateFile) -> Result<(), StateError> {
    let dir = parent_dir(path);
    let (temp, file) = create_temp(path)?;
    let fail = |step, source| StateError::Write {
        path: path.to_owned(),
        step,
        source,
    };

    // Streamed through a small buffer rather than rendered whole first: with a thousand
    // services the document is a megabyte, which the heap would keep after every write.
    let mut out = std::io::BufWriter::with_capacity(16 * 1024, &file);
    let written =
        render_to(doc, &mut out).and_then(|()| out.flush().map_err(serde_json::Error::io));
    drop(out);
    if let Err(e) = written {
        discard(&temp);
        return Err(if e.is_io() {
            fail(WriteStep::WriteTemp, e.into())
        } else {
            StateError::Serialize { source: e }
        });
    }
    // Without this fsync the rename could reach the disk before the data, and a power cut
    // would leave an empty or partial state.json: the one outcome this module exists to
    // prevent. After a failed fsync the page cache cannot be trusted, so the temporary file
    // is abandoned, not retried.
    if let Err(e) = file.sync_all() {
        discard(&temp);
        return Err(fail(WriteStep::SyncTemp, e));
    }
    drop(file);
    if let Err(e) = std::fs::rename(&temp, path) {
        discard(&temp);
        return Err(fail(WriteStep::Rename, e));
    }
    // The rename is only durable once the directory entry is: fsync the directory.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(WriteStep::SyncDir, e))
}

/// Creates `<state file>.tmp.<pid>.<n>` exclusively with mode 0600.
fn create_temp(path: &Utf8Path) -> Result<(Utf8PathBuf, File), StateError> {
    let pid = std::process::id();
    let mut last_error = None;
    // Stale names from a crashed daemon with the same pid are skipped, a few at a time.
    for _ in 0..64 {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = Utf8PathBuf::from(format!("{path}.tmp.{pid}.{n}"));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp);
        match opened {
            Ok(file) => {
                // The umask can only take bits away from 0600; set it exactly anyway, so the
                // file is never readable by others whatever the umask.
                if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
                    discard(&temp);
                    return Err(StateError::Write {
                        path: path.to_owned(),
                        step: WriteStep::CreateTemp,
                        source: e,
                    });
                }
                return Ok((temp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => {
                return Err(StateError::Write {
                    path: path.to_owned(),
                    step: WriteStep::CreateTemp,
                    source: e,
                });
            }
        }
    }
    Err(StateError::Write {
        path: path.to_owned(),
        step: WriteStep::CreateTemp,
        source: last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
    })
}

/// Removes an abandoned temporary file. Its failure is only logged: the write has already
/// failed with the error that matters, and the next start-up sweeps leftovers.
fn discard(temp: &Utf8Path) {
    if let Err(e) = std::fs::remove_file(temp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove temporary state file `{temp}`: {e}");
    }
}

fn parent_dir(path: &Utf8Path) -> &Utf8Path {
    match path.parent() {
        Some(p) if !p.as_str().is_empty() => p,
        _ => Utf8Path::new("."),
    }
}

/// Removes temporary files that a crashed writer left beside `path`, and returns their
/// names. Call it at start-up under the single-instance lock, before the first write: no
/// other writer can be using them then.
pub fn sweep_temp_files(path: &Utf8Path) -> Result<Vec<Utf8PathBuf>, StateError> {
    let dir = parent_dir(path);
    let Some(name) = path.file_name() else {
        return Ok(vec![]);
    };
    let prefix = format!("{name}.tmp.");
    let sweep_error = |source| StateError::Sweep {
        dir: dir.to_owned(),
        source,
    };
    let mut removed = vec![];
    for entry in std::fs::read_dir(dir).map_err(sweep_error)? {
        let entry = entry.map_err(sweep_error)?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file_name.starts_with(&prefix) {
            let temp = dir.join(&file_name);
            match std::fs::remove_file(&temp) {
                Ok(()) => removed.push(temp),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(sweep_error(e)),
            }
        }
    }
    Ok(removed)
}

/// Reads and parses the state file. Never panics and never deletes: a bad file is moved
/// aside and reported.
pub fn load(path: &Utf8Path) -> LoadOutcome {
    match read(path) {
        Ok(None) => LoadOutcome::Missing,
        Ok(Some(bytes)) => match parse(&bytes) {
            Ok(doc) => LoadOutcome::Loaded(doc),
            Err(reason) => bad(
                path,
                StateError::Invalid {
                    path: path.to_owned(),
                    reason: Box::new(reason),
                },
            ),
        },
        // Without even a file type there is nothing sensible to move.
        Err(error @ StateError::Inspect { .. }) => LoadOutcome::Bad {
            error,
            moved_to: None,
            move_error: None,
        },
        Err(error) => bad(path, error),
    }
}

fn bad(path: &Utf8Path, error: StateError) -> LoadOutcome {
    match move_aside(path, SystemTime::now()) {
        Ok(moved_to) => LoadOutcome::Bad {
            error,
            moved_to: Some(moved_to),
            move_error: None,
        },
        Err(move_error) => LoadOutcome::Bad {
            error,
            moved_to: None,
            move_error: Some(move_error),
        },
    }
}

/// The file's bytes, `None` when there is no file.
fn read(path: &Utf8Path) -> Result<Option<Vec<u8>>, StateError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Inspect {
                path: path.to_owned(),
                source,
            });
        }
    };
    // Following a planted symlink would let whoever planted it choose what runpm resurrects.
    if meta.file_type().is_symlink() {
        return Err(StateError::Symlink {
            path: path.to_owned(),
        });
    }
    if !meta.is_file() {
        return Err(StateError::NotAFile {
            path: path.to_owned(),
        });
    }
    // The path may have been swapped since the lstat: O_NOFOLLOW refuses a symlink, and
    // O_NONBLOCK keeps a FIFO from blocking the open; the type is checked again on the
    // opened file.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(nix::libc::ELOOP) {
                StateError::Symlink {
                    path: path.to_owned(),
                }
            } else {
                StateError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| StateError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(StateError::NotAFile {
            path: path.to_owned(),
        });
    }
    // A state file another user could have written names the specs runpm would run
    // (last-known-good) and the pids it would signal: judged on the opened file.
    crate::owner::check(&meta, path, crate::owner::Trust::Daemon)?;
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| StateError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(StateError::TooLarge {
            path: path.to_owned(),
            limit: MAX_STATE_BYTES,
        });
    }
    Ok(Some(bytes))
}

/// Moves `path` (whatever it is: a file, a symlink, a directory) to
/// `<path>.bad-<UTC timestamp>[-N]` in the same directory, never over an existing file.
pub fn move_aside(path: &Utf8Path, now: SystemTime) -> Result<Utf8PathBuf, StateError> {
    let stamp = compact_timestamp(now);
    let mut last_error = None;
    for n in 0..1000u32 {
        let target = if n == 0 {
            Utf8PathBuf::from(format!("{path}.bad-{stamp}"))
        } else {
            Utf8PathBuf::from(format!("{path}.bad-{stamp}-{n}"))
        };
        match rename_no_replace(path, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(source) => {
                return Err(StateError::MoveAside {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Err(StateError::MoveAside {
        path: path.to_owned(),
        source: last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
    })
}

/// A rename that fails with `AlreadyExists` instead of replacing `to`. A hard link does
/// exactly that on every libc (`renameat2(RENAME_NOREPLACE)` is glibc-only in nix) and
/// links a symlink itself, not its target; directories, and filesystems without hard links,
/// fall back to a checked rename, which is safe because only the lock holder moves state
/// files.
fn rename_no_replace(from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => match std::fs::symlink_metadata(to) {
            Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
            Err(e) => Err(e),
        },
    }
}

/// `20261122T034512Z`: sortable, and free of the `:` that some tools dislike in file names.
fn compact_timestamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::file::render;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::state::testing::{doc, record};
    use crate::testing::tempdir;

    fn entries(dir: &Utf8Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn sample() -> StateFile {
        doc(vec![
            record("web", "running", Some((4242, 99))),
            record("worker", "stopped", None),
        ])
    }

    #[test]
    fn write_then_load() {
        let (_guard, dir) = tempdir();
        let path = dir.join("state.json");
        assert!(matches!(load(&path), LoadOutcome::Missing));
        write_atomic(&path, &sample()).unwrap();
        let LoadOutcome::Loaded(loaded) = load(&path) else {
            panic!("expected Loaded");
        };
        assert_eq!(loaded, sample());
        // Overwrite.
        let mut next = sample();
        next.services[0].restarts = 9;
        write_atomic(&path, &next).unwrap();
        assert!(matches!(load(&path), LoadOutcome::Loaded(d) if d == next));
    }

    #[test]
    fn write_leaves_mode_0600_and_no_temp_files() {
        let (_guard, dir) = tempdir();
        let path = dir.join("state.json");
        // A permissive umask must not leak into the file's mode.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        for _ in 0..5 {
            write_atomic(&path, &sample()).unwrap();
        }
        nix::sys::stat::umask(old);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(entries(&dir), vec!["state.json"]);
    }

    #[test]
    fn a_failed_write_removes_its_temp_file() {
        let (_guard, dir) = tempdir();
        // Renaming a file over a directory fails: the step is named, the temp file is gone.
        let path = dir.join("state.json");
        std::fs::create_dir(&path).unwrap();
        let err = write_atomic(&path, &sample()).unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Write {
                    step: WriteStep::Rename,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("renaming"), "{err}");
        assert_eq!(entries(&dir), vec!["state.json"]);
        // A directory that does not exist: an error, not a panic.
        let err = write_atomic(&dir.join("nope/state.json"), &sample()).unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Write {
                    step: WriteStep::CreateTemp,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn stale_temp_names_are_skipped_and_swept() {
        let (_guard, dir) = tempdir();
        let path = dir.join("state.json");
        // A crashed daemon with our pid left the next few names behind.
        let next = TEMP_COUNTER.load(Ordering::Relaxed);
        for n in next..next + 3 {
            std::fs::write(format!("{path}.tmp.{}.{n}", std::process::id()), "junk").unwrap();
        }
        write_atomic(&path, &sample()).unwrap();
        assert!(matches!(load(&path), LoadOutcome::Loaded(_)));
        let removed = sweep_temp_files(&path).unwrap();
        assert_eq!(removed.len(), 3);
        assert_eq!(entries(&dir), vec!["state.json"]);
    }

    /// Every bad input is reported, moved aside under a `.bad-` name and kept byte for byte.
    #[test]
    fn bad_files_are_moved_aside_and_kept() {
        let valid = render(&sample()).unwrap();
        let mut unknown_version: serde_json::Value = serde_json::from_slice(&valid).unwrap();
        unknown_version["version"] = 7.into();
        let mut wrong_type = unknown_version.clone();
        wrong_type["version"] = 1.into();
        wrong_type["services"][0]["pid"] = "x".into();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated", valid[..valid.len() - 20].to_vec(), "truncated"),
            (
                "not json",
                b"hello\n".to_vec(),
                "not JSON at line 1 column 1",
            ),
            (
                "unknown version",
                serde_json::to_vec(&unknown_version).unwrap(),
                "unsupported version 7",
            ),
            (
                "wrong type",
                serde_json::to_vec(&wrong_type).unwrap(),
                "field services[0].pid: expected an integer or null, found a string",
            ),
            ("empty", vec![], "the file is empty"),
        ];
        for (what, bytes, message) in cases {
            let (_guard, dir) = tempdir();
            let path = dir.join("state.json");
            std::fs::write(&path, &bytes).unwrap();
            let LoadOutcome::Bad {
                error,
                moved_to: Some(moved_to),
                move_error: None,
            } = load(&path)
            else {
                panic!("{what}: expected Bad and moved");
            };
            assert!(matches!(error, StateError::Invalid { .. }), "{what}");
            assert!(
                error.reason().to_string().contains(message),
                "{what}: {}",
                error.reason()
            );
            assert!(error.to_string().contains(path.as_str()), "{what}: {error}");
            assert!(!path.exists(), "{what}");
            assert_eq!(std::fs::read(&moved_to).unwrap(), bytes, "{what}");
            let name = moved_to.file_name().unwrap();
            assert!(name.starts_with("state.json.bad-20"), "{what}: {name}");
            assert!(name.ends_with('Z'), "{what}: {name}");
            // A later start finds no file and starts from the config.
            assert!(matches!(load(&path), LoadOutcome::Missing), "{what}");
        }
    }

    #[test]
    fn a_planted_symlink_is_refused_and_moved_aside_itself() {
        let (_guard, dir) = tempdir();
        let target = dir.join("elsewhere.json");
        write_atomic(&target, &sample()).unwrap();
        let path = dir.join("state.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let LoadOutcome::Bad {
            error,
            moved_to: Some(moved_to),
            ..
        } = load(&path)
        else {
            panic!("expected Bad and moved");
        };
        assert!(matches!(error, StateError::Symlink { .. }), "{error:?}");
        assert!(error.to_string().contains("symlink"), "{error}");
        // The link was moved, not the file it points to.
        assert!(
            std::fs::symlink_metadata(&moved_to)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(matches!(load(&target), LoadOutcome::Loaded(_)));
        assert!(std::fs::symlink_metadata(&path).is_err());
    }

    #[test]
    fn a_fifo_or_directory_is_not_a_file() {
        let (_guard, dir) = tempdir();
        let path = dir.join("state.json");
        nix::unistd::mkfifo(path.as_std_path(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let LoadOutcome::Bad {
            error,
            moved_to: Some(_),
            ..
        } = load(&path)
        else {
            panic!("expected Bad and moved");
        };
        assert!(matches!(error, StateError::NotAFile { .. }), "{error:?}");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "x").unwrap();
        let LoadOutcome::Bad {
            error,
            moved_to: Some(moved_to),
            ..
        } = load(&path)
        else {
            panic!("expected Bad and moved");
        };
        assert!(matches!(error, StateError::NotAFile { .. }), "{error:?}");
        assert!(moved_to.join("inside").exists());
    }

    #[test]
    fn move_aside_never_replaces_an_earlier_bad_file() {
        let (_guard, dir) = tempdir();
        let path = dir.join("state.json");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_318_512);
        let mut moved = vec![];
        for i in 0..3 {
            std::fs::write(&path, format!("bad {i}")).unwrap();
            moved.push(move_aside(&path, now).unwrap());
        }
        let names: Vec<&str> = moved.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            vec![
                "state.json.bad-20261122T033512Z",
                "state.json.bad-20261122T033512Z-1",
                "state.json.bad-20261122T033512Z-2",
            ]
        );
        for (i, p) in moved.iter().enumerate() {
            assert_eq!(std::fs::read_to_string(p).unwrap(), format!("bad {i}"));
        }
    }

    /// Crash safety as a reader sees it: while one thread rewrites the file as fast as it
    /// can, every read by another thread parses and is one of the written versions.
    #[test]
    fn concurrent_readers_never_see_a_partial_file() {
        let (_guard, dir) = tempdir();
        let path = dir.join("state.json");
        let a = sample();
        let mut b = sample();
        // Different sizes, so a torn read would show.
        b.services.push(record("extra", "running", Some((77, 1))));
        write_atomic(&path, &a).unwrap();

        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, done, a, b) = (path.clone(), done.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !done.load(Ordering::Acquire) {
                    let bytes = std::fs::read(&path).expect("the file always exists");
                    let doc = parse(&bytes).expect("every read parses");
                    assert!(doc == a || doc == b);
                    reads += 1;
                }
                reads
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..300 {
            write_atomic(&path, if i % 2 == 0 { &b } else { &a }).unwrap();
            if Instant::now() > deadline {
                break;
            }
        }
        done.store(true, Ordering::Release);
        let reads = reader.join().expect("reader saw only whole files");
        assert!(reads > 0);
        assert_eq!(entries(&dir), vec!["state.json"]);
    }
}
