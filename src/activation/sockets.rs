//! The sockets runpm holds for every service with `listen`.
//!
//! They live here, in the daemon's shell, keyed by service and address, not in a run: a
//! restart, a crash or a reload of the service leaves them open, so connections wait in the
//! backlog while no process accepts. Before each run [`Sockets::prepare`] compares the
//! service's `listen` with what is held: a kept address keeps its socket (a new backlog or
//! mode is applied to it), a new one is bound, a dropped one is closed. A failed bind changes
//! nothing, so the service's other sockets survive its error.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;

use crate::config::{Listen, ListenAddress};

use super::bind::{BindError, bind};

#[derive(Debug)]
struct Held {
    listen: Listen,
    fd: OwnedFd,
}

#[derive(Debug, Default)]
pub struct Sockets {
    by_service: BTreeMap<String, Vec<Held>>,
}

impl Sockets {
    /// Makes the held sockets of `service` those of `wanted`, in its order.
    pub fn prepare(&mut self, service: &str, wanted: &[Listen]) -> Result<(), BindError> {
        let held = self.by_service.remove(service).unwrap_or_default();
        if wanted.is_empty() {
            return Ok(());
        }
        let unchanged =
            held.len() == wanted.len() && held.iter().zip(wanted).all(|(h, w)| h.listen == *w);
        if unchanged {
            self.by_service.insert(service.to_owned(), held);
            return Ok(());
        }
        let mut old: BTreeMap<ListenAddress, Held> = held
            .into_iter()
            .map(|h| (h.listen.address.clone(), h))
            .collect();
        let mut next = Vec::with_capacity(wanted.len());
        for listen in wanted {
            match old.remove(&listen.address) {
                Some(mut kept) => {
                    refresh(&kept, listen);
                    kept.listen = listen.clone();
                    next.push(kept);
                }
                None => match bind(listen) {
                    Ok(fd) => next.push(Held {
                        listen: listen.clone(),
                        fd,
                    }),
                    Err(e) => {
                        // Nothing changes: the sockets held so far stay for the next try.
                        let all = next.into_iter().chain(old.into_values()).collect();
                        self.by_service.insert(service.to_owned(), all);
                        return Err(e);
                    }
                },
            }
        }
        // What is left in `old` is no longer wanted: closed here.
        self.by_service.insert(service.to_owned(), next);
        Ok(())
    }

    /// The sockets of `service` with their names, in `listen` order.
    pub fn of<'a>(&'a self, service: &str) -> impl Iterator<Item = (&'a str, BorrowedFd<'a>)> {
        self.by_service
            .get(service)
            .into_iter()
            .flatten()
            .map(|h| (h.listen.name.as_str(), h.fd.as_fd()))
    }

    /// Closes the sockets of the services `keep` says no to (removed from the config).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.by_service.retain(|name, _| keep(name));
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }

    /// Every held socket, for a re-exec: service, spec and descriptor number.
    pub fn export(&self) -> Vec<(String, Listen, RawFd)> {
        use std::os::fd::AsRawFd;
        self.by_service
            .iter()
            .flat_map(|(name, held)| {
                held.iter()
                    .map(|h| (name.clone(), h.listen.clone(), h.fd.as_raw_fd()))
            })
            .collect()
    }

    /// Takes a socket back after a re-exec.
    pub fn adopt(&mut self, service: String, listen: Listen, fd: OwnedFd) {
        self.by_service
            .entry(service)
            .or_default()
            .push(Held { listen, fd });
    }
}

/// Applies a changed backlog or mode to a socket that is kept.
fn refresh(held: &Held, wanted: &Listen) {
    if held.listen.backlog != wanted.backlog && wanted.address.is_stream() {
        let backlog = wanted.backlog.min(i32::MAX as u32) as i32;
        if let Ok(b) = nix::sys::socket::Backlog::new(backlog)
            && let Err(e) = nix::sys::socket::listen(&held.fd.as_fd(), b)
        {
            tracing::warn!("`{}`: cannot change its backlog: {e}", wanted.address);
        }
    }
    if let ListenAddress::Unix(path) = &wanted.address
        && held.listen.mode != wanted.mode
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted.mode))
    {
        tracing::warn!("`{}`: cannot change its mode: {e}", wanted.address);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    fn listen(address: &str, name: &str) -> Listen {
        Listen {
            template: None,
            address: ListenAddress::parse(address).unwrap(),
            name: name.into(),
            backlog: 8,
            mode: 0o666,
        }
    }

    fn fds(s: &Sockets, service: &str) -> Vec<RawFd> {
        s.of(service).map(|(_, fd)| fd.as_raw_fd()).collect()
    }

    #[test]
    fn kept_addresses_keep_their_socket_and_only_new_ones_are_bound() {
        let (_guard, dir) = crate::testing::tempdir();
        let a = listen(&format!("unix:{dir}/a.sock"), "a");
        let b = listen(&format!("unix:{dir}/b.sock"), "b");
        let mut s = Sockets::default();
        s.prepare("web", std::slice::from_ref(&a)).unwrap();
        let first = fds(&s, "web");
        s.prepare("web", std::slice::from_ref(&a)).unwrap();
        assert_eq!(fds(&s, "web"), first, "same listen: same socket");

        s.prepare("web", &[b.clone(), a.clone()]).unwrap();
        let both = fds(&s, "web");
        assert_eq!(both[1], first[0], "a kept, now second");
        let names: Vec<&str> = s.of("web").map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "a"]);

        // A failing bind leaves what was held.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let bad = listen(&format!("tcp:127.0.0.1:{port}"), "bad");
        assert!(s.prepare("web", &[a.clone(), bad]).is_err());
        assert_eq!(s.of("web").count(), 2);

        s.retain(|name| name != "web");
        assert!(s.is_empty());
    }
}
