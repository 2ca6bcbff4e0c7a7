//! runpm's subtree: one cgroup for the project, a leaf for runpm itself, one per service.
//!
//! ```text
//! <own>/runpm-<id>/                 the project (id: a hash of the state directory)
//!                  supervisor/      runpm itself
//!                  web.service/     every process of `web`, and nothing else
//! ```
//!
//! cgroup v2 lets a cgroup with controllers enabled for its children hold no process of
//! its own, so runpm moves itself into the `supervisor/` leaf before it enables any. The
//! project cgroup is a child of runpm's own rather than that cgroup itself, so that
//! several runpm (one per project) can share a parent, and a restarted daemon finds the
//! cgroups of its predecessor by name.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::Limits;

use super::limits;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move runpm into cgroup {path}")]
    Enter {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {path} to place the service in its cgroup")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The controllers runpm asks for, for its services' limits.
const WANTED: &[&str] = &["cpu", "io", "memory", "pids"];

/// A service's cgroup, open for a spawn into it.
pub struct Placement {
    /// `None` for a cgroup that a `cgroup.kill` reached and that still holds processes:
    /// the child then joins it itself (see [`Tree::signal`]).
    pub dir: Option<OwnedFd>,
    pub procs: OwnedFd,
}

impl Placement {
    pub fn fds(&self) -> crate::process::Cgroup<'_> {
        use std::os::fd::AsFd;
        crate::process::Cgroup {
            dir: self.dir.as_ref().map(|d| d.as_fd()),
            procs: self.procs.as_fd(),
        }
    }
}

pub struct Tree {
    /// runpm's cgroup when it started, where it goes back on its way out.
    pub origin: PathBuf,
    /// The project cgroup.
    pub root: PathBuf,
    /// The controllers enabled for the services (in the project's `cgroup.subtree_control`).
    pub controllers: Vec<String>,
    /// The limits last written per service, so a spawn does not write them again.
    applied: Mutex<HashMap<String, Limits>>,
    /// Per service, `memory.events` `oom_kill` when its current run started.
    oom_baseline: Mutex<HashMap<String, u64>>,
    /// Services whose cgroup a `cgroup.kill` reached. This kernel (6.18) kills every child
    /// that clone3 later places into such a cgroup with `CLONE_INTO_CGROUP` (the kill
    /// sequence it compares is the parent's cgroup's), so the cgroup is made anew once it
    /// is empty, and until then children join it from inside.
    killed: Mutex<std::collections::HashSet<String>>,
}

/// A short stable name for the project cgroup: FNV-1a of `instance` (its state directory).
pub fn project_name(instance: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("runpm-{:012x}", hash & 0xffff_ffff_ffff)
}

fn mkdir(path: &Path) -> Result<(), TreeError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(TreeError::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Whether `cgroup.events` says a process is in the cgroup or below it.
pub fn populated_in(events: &str) -> Option<bool> {
    events
        .lines()
        .find_map(|l| l.strip_prefix("populated "))
        .map(|v| v.trim() != "0")
}

/// A `key value` line of a flat-keyed cgroup file (`memory.events`, `cpu.stat`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Tree {
    /// Creates the project cgroup under `own`, moves runpm into its `supervisor/` leaf and
    /// enables what it can of [`WANTED`] for the services.
    pub fn take(own: &Path, instance: &str) -> Result<Tree, TreeError> {
        let name = project_name(instance);
        // Already in this project's leaf (runpm started again from within it, or re-exec'd
        // in place): the project is the leaf's parent, not a new cgroup below the leaf.
        let own = match (own.file_name(), own.parent()) {
            (Some(leaf), Some(project))
                if leaf == "supervisor"
                    && project.file_name().is_some_and(|p| p == name.as_str()) =>
            {
                project.parent().unwrap_or(own)
            }
            _ => own,
        };
        let root = own.join(&name);
        mkdir(&root)?;
        let leaf = root.join("supervisor");
        mkdir(&leaf)?;
        let procs = leaf.join("cgroup.procs");
        std::fs::write(&procs, "0").map_err(|source| TreeError::Enter {
            path: leaf.clone(),
            source,
        })?;
        // Best effort: a controller runpm's own cgroup does not have, or cannot pass on
        // (another process still sits in it), is reported as unenforceable per limit.
        let own_has = read_list(&own.join("cgroup.controllers"));
        let project_has = read_list(&root.join("cgroup.controllers"));
        for c in WANTED {
            if own_has.iter().any(|h| h == c) && !project_has.iter().any(|h| h == c) {
                let _ = std::fs::write(own.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
        for c in read_list(&root.join("cgroup.controllers")) {
            if WANTED.contains(&c.as_str()) {
                let _ = std::fs::write(root.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
        let controllers = read_list(&root.join("cgroup.subtree_control"));
        Ok(Tree {
            origin: own.to_owned(),
            root,
            controllers,
            applied: Mutex::new(HashMap::new()),
            oom_baseline: Mutex::new(HashMap::new()),
            killed: Mutex::new(std::collections::HashSet::new()),
        })
    }

    pub fn service_dir(&self, service: &str) -> PathBuf {
        self.root.join(format!("{service}.service"))
    }

    /// The service's cgroup, created if needed, with `limits` written when they changed;
    /// returns its directory and its `cgroup.procs` (for a spawn into it, see
    /// [`crate::process::Cgroup`]). A limit that cannot be written is logged: the service
    /// still starts.
    pub fn prepare(&self, service: &str, limits: &Limits) -> Result<Placement, TreeError> {
        let dir = self.service_dir(service);
        let mut killed = self.killed.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = !killed.contains(service) || {
            let renewed = std::fs::remove_dir(&dir).is_ok();
            if renewed {
                killed.remove(service);
                self.applied
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(service);
            }
            renewed
        };
        drop(killed);
        mkdir(&dir)?;
        self.apply(service, limits, false);
        if let Some(count) = self.oom_kills(service) {
            self.lock_baseline().insert(service.to_owned(), count);
        }
        let open = |path: PathBuf, options: &mut std::fs::OpenOptions| {
            options
                .open(&path)
                .map(OwnedFd::from)
                .map_err(|source| TreeError::Open { path, source })
        };
        use std::os::unix::fs::OpenOptionsExt;
        Ok(Placement {
            dir: match fresh {
                true => Some(open(
                    dir.clone(),
                    std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECTORY),
                )?),
                false => None,
            },
            procs: open(
                dir.join("cgroup.procs"),
                std::fs::OpenOptions::new().write(true),
            )?,
        })
    }

    /// Writes `limits` to the service's cgroup (unless they are what was written last, and
    /// `force` is off).
    pub fn apply(&self, service: &str, limits: &Limits, force: bool) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if !force && applied.get(service) == Some(limits) {
            return;
        }
        if limits.is_empty() && !applied.contains_key(service) {
            applied.insert(service.to_owned(), limits.clone());
            return;
        }
        if let Err(e) = limits::apply(&self.service_dir(service), limits, &self.controllers) {
            tracing::warn!("{service}: {e}");
        }
        applied.insert(service.to_owned(), limits.clone());
    }

    fn lock_baseline(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.oom_baseline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `memory.events` `oom_kill` of the service's cgroup, where the memory controller is.
    pub fn oom_kills(&self, service: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.service_dir(service).join("memory.events")).ok()?;
        keyed(&text, "oom_kill")
    }

    /// Whether the OOM killer killed in the service's cgroup since its run started.
    pub fn oom_killed(&self, service: &str) -> bool {
        let Some(now) = self.oom_kills(service) else {
            return false;
        };
        let before = self.lock_baseline().insert(service.to_owned(), now);
        now > before.unwrap_or(0)
    }

    pub fn populated(&self, service: &str) -> io::Result<bool> {
        let text = std::fs::read_to_string(self.service_dir(service).join("cgroup.events"))?;
        Ok(populated_in(&text).unwrap_or(true))
    }

    /// The processes in the service's cgroup now.
    pub fn procs(&self, service: &str) -> Vec<i32> {
        procs_in(&self.service_dir(service))
    }

    /// Sends `signal` to every process in the service's cgroup; SIGKILL through
    /// `cgroup.kill`, which also reaches a process forked while it runs.
    pub fn signal(&self, service: &str, signal: nix::sys::signal::Signal) -> io::Result<()> {
        let dir = self.service_dir(service);
        if signal == nix::sys::signal::Signal::SIGKILL {
            // Nothing left (the main process was the last): no kill, and the cgroup stays
            // fit for `CLONE_INTO_CGROUP`.
            if self.populated(service).ok() == Some(false) {
                return Ok(());
            }
            self.killed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(service.to_owned());
            match std::fs::write(dir.join("cgroup.kill"), "1") {
                Ok(()) => return Ok(()),
                // Before Linux 5.14 there is no cgroup.kill: one SIGKILL each.
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        for pid in procs_in(&dir) {
            if pid > 1 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            }
        }
        Ok(())
    }

    /// Service cgroups left by an earlier daemon that still hold processes.
    pub fn leftovers(&self) -> Vec<(String, Vec<i32>)> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".service")?.to_owned();
                let procs = procs_in(&e.path());
                (!procs.is_empty()).then_some((name, procs))
            })
            .collect()
    }

    /// Removes the service's cgroup if it is empty (a removed service, or on the way out).
    pub fn remove(&self, service: &str) {
        let _ = std::fs::remove_dir(self.service_dir(service));
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(service);
    }

    /// On runpm's way out: every empty service cgroup removed, runpm back in the cgroup it
    /// came from, and the project cgroup removed when nothing is left in it. What still
    /// holds processes stays (and a later runpm finds it).
    pub fn release(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(".service"))
                {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        if std::fs::write(self.origin.join("cgroup.procs"), "0").is_ok() {
            let _ = std::fs::remove_dir(self.root.join("supervisor"));
            let _ = std::fs::remove_dir(&self.root);
        }
    }
}

fn read_list(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn procs_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_stable_and_distinct() {
        assert_eq!(project_name("/srv/a/.runpm"), project_name("/srv/a/.runpm"));
        assert_ne!(project_name("/srv/a/.runpm"), project_name("/srv/b/.runpm"));
        assert!(project_name("x").starts_with("runpm-"));
        assert_eq!(project_name("x").len(), "runpm-".len() + 12);
    }

    #[test]
    fn reads_cgroup_files() {
        assert_eq!(populated_in("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(populated_in("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(populated_in(""), None);
        let events = "low 0\nhigh 3\nmax 0\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(events, "high"), Some(3));
        assert_eq!(keyed(events, "oom_kill"), Some(1));
        assert_eq!(
            keyed("usage_usec 1234\nuser_usec 1000\n", "usage_usec"),
            Some(1234)
        );
        assert_eq!(keyed(events, "nope"), None);
    }
}
