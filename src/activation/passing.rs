//! What one run receives: its `listen` sockets, then its stored descriptors, as 3, 4, …
//! and the variables that describe them. `LISTEN_PID` is not here: only the child knows its
//! pid, and writes it itself (see `process::vfork`).

use std::os::fd::BorrowedFd;

use super::{FdStore, Sockets};

/// The descriptors for one run, in order, with their names.
pub struct Passing<'a> {
    pub fds: Vec<BorrowedFd<'a>>,
    pub names: Vec<&'a str>,
}

impl<'a> Passing<'a> {
    pub fn of(service: &str, sockets: &'a Sockets, store: &'a FdStore) -> Passing<'a> {
        let (names, fds) = sockets.of(service).chain(store.of(service)).unzip();
        Passing { fds, names }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        listen_env(&self.names)
    }
}

/// `LISTEN_FDS` and `LISTEN_FDNAMES` for descriptors named `names` (none when empty).
pub fn listen_env(names: &[&str]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    vec![
        ("LISTEN_FDS".into(), names.len().to_string()),
        ("LISTEN_FDNAMES".into(), names.join(":")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_colon_separated_and_counted() {
        assert!(listen_env(&[]).is_empty());
        assert_eq!(
            listen_env(&["http", "stored"]),
            [
                ("LISTEN_FDS".to_string(), "2".to_string()),
                ("LISTEN_FDNAMES".to_string(), "http:stored".to_string())
            ]
        );
    }
}
