//! Whose files runpm may use: the state directory and everything in it must belong to
//! runpm's own user and be writable by nobody else.
//!
//! A directory that another user owns, or may write to, lets that user plant a symlink
//! (`logs -> /etc`), swap `state.json` (whose specs a root daemon would run as
//! last-known-good) or read the daemon's secret. So every directory and file runpm opens
//! there is judged on the opened descriptor (`fstat`, never a path `stat` before the open,
//! which a swap between the two would fool), and opened with `O_NOFOLLOW` so that a planted
//! symlink is refused rather than followed. [`judge`] is the pure rule; the rest opens and
//! asks it.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use camino::{Utf8Path, Utf8PathBuf};

/// Why a file or directory is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NotOurs { owner: u32, uid: u32 },
    WritableByOthers { mode: u32 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NotOurs { owner, uid } => {
                write!(
                    f,
                    "it is owned by uid {owner}, not by runpm's user (uid {uid})"
                )
            }
            Problem::WritableByOthers { mode } => {
                write!(f, "other users may write to it (mode {mode:o})")
            }
        }
    }
}

/// A file or directory that runpm refuses to use, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("runpm refuses `{path}`: {problem}; {}", fix(&self.path, self.problem))]
pub struct Untrusted {
    pub path: Utf8PathBuf,
    pub problem: Problem,
}

fn fix(path: &Utf8Path, problem: Problem) -> String {
    match problem {
        Problem::NotOurs { uid, .. } => format!(
            "remove it (runpm recreates what it needs), or if that user is you, \
             `chown -R {uid} {path}`"
        ),
        Problem::WritableByOthers { .. } => format!(
            "someone else may have put or changed things in it: check it, then \
             `chmod go-w {path}`"
        ),
    }
}

/// Who may own what runpm uses: the daemon trusts only its own user; a client also trusts
/// root's files (root may run a daemon for anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    Daemon,
    Client,
}

/// The rule: owned by `uid` (or by root, for a client), and for a directory or a regular
/// file, not writable by group or others. Device nodes (a `/dev/null` put in place of a log
/// on purpose, which only root can make) are judged by owner alone.
pub fn judge(owner: u32, mode: u32, uid: u32, trust: Trust) -> Result<(), Problem> {
    let accepted = owner == uid || (trust == Trust::Client && owner == 0);
    if !accepted {
        return Err(Problem::NotOurs { owner, uid });
    }
    let kind = mode & nix::libc::S_IFMT;
    let plain = kind == nix::libc::S_IFDIR || kind == nix::libc::S_IFREG;
    if plain && mode & 0o022 != 0 {
        return Err(Problem::WritableByOthers {
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// [`judge`] applied to the metadata of an opened file (`File::metadata` is `fstat`).
pub fn check(meta: &Metadata, path: &Utf8Path, trust: Trust) -> Result<(), Untrusted> {
    let uid = nix::unistd::geteuid().as_raw();
    judge(meta.uid(), meta.mode(), uid, trust).map_err(|problem| Untrusted {
        path: path.to_owned(),
        problem,
    })
}

/// Opens a directory without following a symlink at `path` itself (`ELOOP` then).
pub fn open_dir(path: &Utf8Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            // With O_DIRECTORY the kernel reports a symlink as "not a directory"; look
            // again, only to say which it was.
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if e.raw_os_error() == Some(nix::libc::ENOTDIR) && link {
                io::Error::from_raw_os_error(nix::libc::ELOOP)
            } else {
                e
            }
        })
}

/// Whether an open failed because `path` is a symlink (`O_NOFOLLOW`).
pub fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ELOOP)
}

/// Opens (creating it 0600 when missing) `name` inside the already opened and judged
/// directory `dir`, never through a symlink, and judges what was opened. Relative to the
/// directory's descriptor, so a directory swapped after it was judged is not the one used.
pub fn open_in(
    dir: &File,
    name: &str,
    path: &Utf8Path,
    flags: nix::fcntl::OFlag,
) -> Result<File, OpenError> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd: OwnedFd = nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(0o600))
        .map_err(|errno| OpenError::Io(io::Error::from(errno)))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(OpenError::Io)?;
    check(&meta, path, Trust::Daemon).map_err(OpenError::Untrusted)?;
    Ok(file)
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Io(io::Error),
    #[error(transparent)]
    Untrusted(Untrusted),
}

/// Opens `path` for appending (creating it 0600), never through a symlink, and judges it.
pub fn open_append(path: &Utf8Path) -> Result<File, OpenError> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    check(&meta, path, Trust::Daemon).map_err(OpenError::Untrusted)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: u32 = nix::libc::S_IFDIR;
    const FILE: u32 = nix::libc::S_IFREG;
    const CHR: u32 = nix::libc::S_IFCHR;

    #[test]
    fn the_owner_alone_may_write() {
        assert_eq!(judge(1000, DIR | 0o700, 1000, Trust::Daemon), Ok(()));
        assert_eq!(judge(1000, DIR | 0o755, 1000, Trust::Daemon), Ok(()));
        assert_eq!(judge(1000, FILE | 0o600, 1000, Trust::Daemon), Ok(()));
        assert_eq!(
            judge(65534, DIR | 0o700, 0, Trust::Daemon),
            Err(Problem::NotOurs {
                owner: 65534,
                uid: 0
            })
        );
        assert_eq!(
            judge(0, DIR | 0o777, 0, Trust::Daemon),
            Err(Problem::WritableByOthers { mode: 0o777 })
        );
        assert_eq!(
            judge(0, FILE | 0o620, 0, Trust::Daemon),
            Err(Problem::WritableByOthers { mode: 0o620 })
        );
        // The sticky bit does not make a shared directory private.
        assert_eq!(
            judge(0, DIR | 0o1777, 0, Trust::Daemon),
            Err(Problem::WritableByOthers { mode: 0o1777 })
        );
        // A device node such as /dev/null is judged by its owner only.
        assert_eq!(judge(0, CHR | 0o666, 0, Trust::Daemon), Ok(()));
        assert!(judge(1000, CHR | 0o666, 0, Trust::Daemon).is_err());
    }

    #[test]
    fn a_client_also_trusts_root() {
        assert_eq!(judge(0, DIR | 0o700, 1000, Trust::Client), Ok(()));
        assert!(judge(0, DIR | 0o700, 1000, Trust::Daemon).is_err());
        assert!(judge(65534, DIR | 0o700, 1000, Trust::Client).is_err());
    }

    #[test]
    fn messages_say_how_to_fix_it() {
        let untrusted = |problem| {
            Untrusted {
                path: "/p/.runpm".into(),
                problem,
            }
            .to_string()
        };
        let text = untrusted(Problem::NotOurs {
            owner: 65534,
            uid: 0,
        });
        assert!(
            text.contains("/p/.runpm") && text.contains("65534"),
            "{text}"
        );
        assert!(
            text.contains("remove it") && text.contains("chown"),
            "{text}"
        );
        let text = untrusted(Problem::WritableByOthers { mode: 0o777 });
        assert!(
            text.contains("777") && text.contains("chmod go-w /p/.runpm"),
            "{text}"
        );
    }

    #[test]
    fn symlinks_are_refused_and_files_judged_on_the_descriptor() {
        let (_guard, root) = crate::testing::tempdir();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let e = open_dir(&root.join("link")).unwrap_err();
        assert!(is_symlink_error(&e), "{e}");
        let dir = open_dir(&root.join("real")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("real/planted")).unwrap();
        let flags = nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CREAT;
        let planted = root.join("real/planted");
        match open_in(&dir, "planted", &planted, flags) {
            Err(OpenError::Io(e)) => assert!(is_symlink_error(&e), "{e}"),
            other => panic!("{other:?}"),
        }
        let made = open_in(&dir, "made", &root.join("real/made"), flags).unwrap();
        let mode = made.metadata().unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let e = open_append(&planted).unwrap_err();
        assert!(matches!(&e, OpenError::Io(e) if is_symlink_error(e)), "{e}");
    }
}
