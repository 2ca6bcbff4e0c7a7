//! The fd store: descriptors a service parks in runpm with sd_notify `FDSTORE=1` and gets
//! back, after its own restart, behind its `listen` sockets in `LISTEN_FDS`.
//!
//! As in systemd: each descriptor is named by the message's `FDNAME=` (default `stored`),
//! a service may hold at most `fd_store_max` of them (0, the default, refuses every one
//! with a warning in runpm's log), and `FDSTOREREMOVE=1` with `FDNAME=` closes those of
//! that name. Unlike systemd, runpm does not poll stored descriptors for a hang-up
//! (systemd drops one on `EPOLLHUP` unless `FDPOLL=0`): a stored descriptor stays until the
//! service removes it or the store is emptied. The store is emptied, as with systemd's
//! default `FileDescriptorStorePreserve=no`, when the service is stopped for good or
//! removed from the config (see the daemon's per-turn sweep).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use crate::config::check_fd_name;

/// The name of a stored descriptor when the message gives none (systemd's).
pub const DEFAULT_NAME: &str = "stored";

#[derive(Debug, Default)]
pub struct FdStore {
    by_service: BTreeMap<String, Vec<(String, OwnedFd)>>,
}

/// What became of a `FDSTORE=1` or `FDSTOREREMOVE=1` message.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored this many; `refused` more would have gone beyond `fd_store_max`.
    Stored {
        stored: usize,
        refused: usize,
    },
    /// The service has `fd_store_max = 0`.
    Disabled {
        refused: usize,
    },
    BadName {
        name: String,
    },
    Removed {
        removed: usize,
    },
}

impl FdStore {
    /// Stores `fds` for `service` under `name`, within `max`; the rest are closed.
    pub fn store(
        &mut self,
        service: &str,
        max: u32,
        name: Option<&str>,
        fds: Vec<OwnedFd>,
    ) -> StoreOutcome {
        let name = name.unwrap_or(DEFAULT_NAME);
        if max == 0 {
            return StoreOutcome::Disabled { refused: fds.len() };
        }
        if check_fd_name(name).is_err() {
            return StoreOutcome::BadName { name: name.into() };
        }
        let held = self.by_service.entry(service.to_owned()).or_default();
        let room = (max as usize).saturating_sub(held.len());
        let total = fds.len();
        let stored = total.min(room);
        held.extend(fds.into_iter().take(stored).map(|fd| (name.to_owned(), fd)));
        StoreOutcome::Stored {
            stored,
            refused: total - stored,
        }
    }

    /// `FDSTOREREMOVE=1`: closes the descriptors of `service` named `name`.
    pub fn remove(&mut self, service: &str, name: &str) -> StoreOutcome {
        let Some(held) = self.by_service.get_mut(service) else {
            return StoreOutcome::Removed { removed: 0 };
        };
        let before = held.len();
        held.retain(|(n, _)| n != name);
        StoreOutcome::Removed {
            removed: before - held.len(),
        }
    }

    /// The stored descriptors of `service` with their names, in the order they came.
    pub fn of<'a>(&'a self, service: &str) -> impl Iterator<Item = (&'a str, BorrowedFd<'a>)> {
        self.by_service
            .get(service)
            .into_iter()
            .flatten()
            .map(|(name, fd)| (name.as_str(), fd.as_fd()))
    }

    /// Empties the store of the services `keep` says no to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.by_service
            .retain(|name, held| !held.is_empty() && keep(name));
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }

    /// Every stored descriptor, for a re-exec.
    pub fn export(&self) -> Vec<(String, String, RawFd)> {
        use std::os::fd::AsRawFd;
        self.by_service
            .iter()
            .flat_map(|(service, held)| {
                held.iter()
                    .map(|(name, fd)| (service.clone(), name.clone(), fd.as_raw_fd()))
            })
            .collect()
    }

    /// Takes a stored descriptor back after a re-exec.
    pub fn adopt(&mut self, service: String, name: String, fd: OwnedFd) {
        self.by_service.entry(service).or_default().push((name, fd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
            .collect()
    }

    #[test]
    fn bounded_named_and_removable() {
        let mut store = FdStore::default();
        assert_eq!(
            store.store("web", 0, None, fds(1)),
            StoreOutcome::Disabled { refused: 1 }
        );
        assert_eq!(
            store.store("web", 3, Some("conn"), fds(2)),
            StoreOutcome::Stored {
                stored: 2,
                refused: 0
            }
        );
        assert_eq!(
            store.store("web", 3, None, fds(2)),
            StoreOutcome::Stored {
                stored: 1,
                refused: 1
            }
        );
        let names: Vec<&str> = store.of("web").map(|(n, _)| n).collect();
        assert_eq!(names, ["conn", "conn", "stored"]);
        assert_eq!(
            store.store("web", 3, Some("a:b"), fds(1)),
            StoreOutcome::BadName { name: "a:b".into() }
        );
        assert_eq!(
            store.remove("web", "conn"),
            StoreOutcome::Removed { removed: 2 }
        );
        assert_eq!(store.of("web").count(), 1);
        store.retain(|_| false);
        assert!(store.is_empty());
    }
}
