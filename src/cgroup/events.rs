//! Watching cgroup files for change: `cgroup.events` (is the cgroup empty yet?) and
//! `memory.events` (did the service go above `memory_high`?).
//!
//! The kernel reports a change of either file as an inotify `IN_MODIFY` on it, so runpm
//! waits on one inotify descriptor and reads the file again when it fires: no polling,
//! and nothing at all while no stop is under way and no `memory_restart` is set.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::tree::{keyed, populated_in};

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The cgroup of `service` (whose main process led group `pgid`) is empty.
    Empty { service: String, pgid: i32 },
    /// The memory of `service` (main process `pid`) went above `memory_restart`.
    MemoryHigh { service: String, pid: i32 },
}

#[derive(Debug)]
enum Watch {
    Empty {
        service: String,
        pgid: i32,
        events: PathBuf,
    },
    Memory {
        service: String,
        pid: i32,
        dir: PathBuf,
        /// `memory.events` `high` when the watch began.
        seen: u64,
        restart: u64,
    },
}

type Watches = Arc<Mutex<HashMap<i32, Watch>>>;

pub struct Events {
    fd: Arc<AsyncFd<OwnedFd>>,
    watches: Watches,
}

impl Events {
    /// Starts the watcher on the current tokio runtime; `notify` hears what it sees.
    pub fn new(notify: impl Fn(Notice) + Send + 'static) -> io::Result<Events> {
        // SAFETY: plain system call; the descriptor is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns the descriptor until it is dropped.
        let fd = Arc::new(
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(io::Error::from)?,
        );
        let watches: Watches = Arc::default();
        tokio::spawn(run(fd.clone(), watches.clone(), notify));
        Ok(Events { fd, watches })
    }

    fn add(&self, file: &Path) -> io::Result<i32> {
        let path = CString::new(file.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.get_ref().as_raw_fd(),
                path.as_ptr(),
                libc::IN_MODIFY,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Reports [`Notice::Empty`] once the cgroup `dir` is empty. Returns `Ok(true)` when it
    /// already is (then nothing is reported).
    pub fn until_empty(&self, dir: &Path, service: &str, pgid: i32) -> io::Result<bool> {
        let events = dir.join("cgroup.events");
        let wd = self.add(&events)?;
        // Read after the watch is in place: an emptying in between is then either seen
        // here or reported by the watch.
        let text = std::fs::read_to_string(&events)?;
        if populated_in(&text) == Some(false) {
            self.remove(wd);
            return Ok(true);
        }
        self.lock().insert(
            wd,
            Watch::Empty {
                service: service.to_owned(),
                pgid,
                events,
            },
        );
        Ok(false)
    }

    /// Reports [`Notice::MemoryHigh`] when the cgroup `dir` counts a `high` event and its
    /// memory is at or above `restart` bytes.
    pub fn memory(&self, dir: &Path, service: &str, pid: i32, restart: u64) -> io::Result<()> {
        let file = dir.join("memory.events");
        let wd = self.add(&file)?;
        let seen = keyed(&std::fs::read_to_string(&file)?, "high").unwrap_or(0);
        self.lock().insert(
            wd,
            Watch::Memory {
                service: service.to_owned(),
                pid,
                dir: dir.to_owned(),
                seen,
                restart,
            },
        );
        Ok(())
    }

    fn remove(&self, wd: i32) {
        // SAFETY: a valid descriptor; a stale wd is only an error return.
        unsafe { libc::inotify_rm_watch(self.fd.get_ref().as_raw_fd(), wd) };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Watch>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn run(fd: Arc<AsyncFd<OwnedFd>>, watches: Watches, notify: impl Fn(Notice)) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        let mut fired = Vec::new();
        loop {
            // SAFETY: reads into our buffer, within its length.
            let n =
                unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                guard.clear_ready();
                break;
            }
            fired.extend(watch_descriptors(&buf[..n as usize]));
        }
        fired.sort_unstable();
        fired.dedup();
        let mut notices = Vec::new();
        {
            let mut map = watches.lock().unwrap_or_else(|e| e.into_inner());
            for wd in fired {
                match map.get_mut(&wd) {
                    Some(Watch::Empty {
                        service,
                        pgid,
                        events,
                    }) => {
                        let text = std::fs::read_to_string(&*events).unwrap_or_default();
                        if populated_in(&text) != Some(true) {
                            notices.push(Notice::Empty {
                                service: service.clone(),
                                pgid: *pgid,
                            });
                            map.remove(&wd);
                            // SAFETY: a valid descriptor.
                            unsafe { libc::inotify_rm_watch(fd.get_ref().as_raw_fd(), wd) };
                        }
                    }
                    Some(Watch::Memory {
                        service,
                        pid,
                        dir,
                        seen,
                        restart,
                    }) => {
                        let read =
                            |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                        let high = keyed(&read("memory.events"), "high").unwrap_or(0);
                        let current: u64 = read("memory.current").trim().parse().unwrap_or(0);
                        if high > *seen && current >= *restart {
                            *seen = high;
                            notices.push(Notice::MemoryHigh {
                                service: service.clone(),
                                pid: *pid,
                            });
                        }
                    }
                    None => {}
                }
            }
        }
        for notice in notices {
            notify(notice);
        }
    }
}

/// The watch descriptors of the `inotify_event` records in `buf`.
fn watch_descriptors(buf: &[u8]) -> Vec<i32> {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= buf.len() {
        let wd = i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let len =
            u32::from_ne_bytes([buf[at + 12], buf[at + 13], buf[at + 14], buf[at + 15]]) as usize;
        out.push(wd);
        at += HEADER + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inotify_records() {
        let mut buf = Vec::new();
        for (wd, name_len) in [(3i32, 0u32), (7, 16)] {
            buf.extend(wd.to_ne_bytes());
            buf.extend(libc::IN_MODIFY.to_ne_bytes());
            buf.extend(0u32.to_ne_bytes());
            buf.extend(name_len.to_ne_bytes());
            buf.extend(std::iter::repeat_n(0u8, name_len as usize));
        }
        assert_eq!(watch_descriptors(&buf), [3, 7]);
    }

    #[tokio::test]
    async fn reports_a_file_change_as_an_event_on_a_fake_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("cgroup.events");
        std::fs::write(&events, "populated 1\nfrozen 0\n").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = Events::new(move |n| {
            let _ = tx.send(n);
        })
        .unwrap();
        assert!(!watcher.until_empty(dir.path(), "web", 42).unwrap());
        std::fs::write(&events, "populated 0\nfrozen 0\n").unwrap();
        let notice = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(
            notice,
            Some(Notice::Empty {
                service: "web".into(),
                pgid: 42
            })
        );
        // Already empty: answered at once, nothing reported later.
        assert!(watcher.until_empty(dir.path(), "web", 43).unwrap());
    }

    #[tokio::test]
    async fn memory_above_the_restart_value_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).unwrap();
        write("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
        write("memory.current", "1000\n");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = Events::new(move |n| {
            let _ = tx.send(n);
        })
        .unwrap();
        watcher.memory(dir.path(), "web", 7, 5000).unwrap();
        // A `high` event below the restart value (memory_high is lower): nothing.
        write("memory.events", "low 0\nhigh 1\nmax 0\noom 0\noom_kill 0\n");
        // Then above it.
        write("memory.current", "6000\n");
        write("memory.events", "low 0\nhigh 2\nmax 0\noom 0\noom_kill 0\n");
        let notice = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(
            notice,
            Some(Notice::MemoryHigh {
                service: "web".into(),
                pid: 7
            })
        );
    }
}
