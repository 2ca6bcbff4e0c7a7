//! Whose is a listening TCP socket: the proof behind `ready = { tcp = … }`.
//!
//! A connect that succeeds proves that *something* listens on the address, not that the
//! service does: when another process already holds the port, nginx loops on `bind() failed`
//! while a bare connect says ready. So after the connect, the listening sockets for the
//! address are looked up in `/proc/net/tcp` and `/proc/net/tcp6` (state `0A`, LISTEN; a
//! wildcard `0.0.0.0` or `::` listener on the port counts), and their inodes are looked for
//! as `socket:[INODE]` among the descriptors of the service's processes: every process in its
//! process group, and every descendant of its main process. A root daemon can read all of
//! them, a user daemon its own. When someone else holds the socket, the search goes on
//! through every process, to name the holder.
//!
//! The tables show runpm's own network namespace. When no listener for the address is
//! there at all (a NAT rule, a service in another namespace), nothing can be proved either
//! way and the connect alone counts.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub comm: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.comm)
    }
}

/// Whose listening socket accepted a connection to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// A process of the service holds it.
    Service(Holder),
    /// Someone else holds it; `None` when runpm cannot see who (another user's process).
    Other(Option<Holder>),
    /// No listening socket for the address in runpm's network namespace.
    NotFound,
}

/// Whose listening socket serves `addr`, for the service whose process group is `pgid`
/// (which is also its main pid).
pub fn owner(addr: SocketAddr, pgid: i32) -> Listener {
    let mut listeners = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(table) = std::fs::read_to_string(path) {
            listeners.extend(parse_table(&table, v6));
        }
    }
    let inodes = serving(&listeners, addr);
    if inodes.is_empty() {
        return Listener::NotFound;
    }
    // Most often the main process holds the socket itself: no need to walk every process.
    if holds_any(pgid, &inodes) {
        return Listener::Service(Holder {
            pid: pgid,
            comm: comm(pgid),
        });
    }
    let processes = processes();
    let service = members(&processes, pgid);
    if let Some(h) = holder(service.iter().copied(), &inodes) {
        return Listener::Service(h);
    }
    let others = processes.keys().copied().filter(|p| !service.contains(p));
    Listener::Other(holder(others, &inodes))
}

/// The first of `pids` that has a descriptor on one of the sockets `inodes`.
fn holder(mut pids: impl Iterator<Item = i32>, inodes: &BTreeSet<u64>) -> Option<Holder> {
    pids.find(|&pid| holds_any(pid, inodes)).map(|pid| Holder {
        pid,
        comm: comm(pid),
    })
}

/// One LISTEN entry of a `/proc/net/tcp{,6}` table: address, port, socket inode.
type Entry = (IpAddr, u16, u64);

/// The LISTEN entries of a `/proc/net/tcp` (or `tcp6`, with `v6`) table.
fn parse_table(table: &str, v6: bool) -> Vec<Entry> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let (ip, port) = fields.get(1)?.split_once(':')?;
            let ip = if v6 { parse_v6(ip)? } else { parse_v4(ip)? };
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((ip, port, inode))
        })
        .collect()
}

/// The kernel prints the address as the 32-bit word it stores, in this machine's byte
/// order, so its bytes are the native bytes of the parsed number.
fn parse_v4(hex: &str) -> Option<IpAddr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes())))
}

/// Four such words for IPv6.
fn parse_v6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

/// The inodes of the listeners that accept connections to `addr`: the same address, or a
/// wildcard of either family on the same port (a `::` socket also takes IPv4 unless it is
/// IPv6-only, which the table does not say).
fn serving(listeners: &[Entry], addr: SocketAddr) -> BTreeSet<u64> {
    let target = canonical(addr.ip());
    listeners
        .iter()
        .filter(|(ip, port, _)| {
            *port == addr.port() && (ip.is_unspecified() || canonical(*ip) == target)
        })
        .map(|(_, _, inode)| *inode)
        .collect()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Every process: pid → (parent pid, process group).
fn processes() -> HashMap<i32, (i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&stat)?))
        })
        .collect()
}

/// Fields 4 and 5 (parent pid, process group) of a `/proc/PID/stat` line, counted after the
/// last `)`: the command name before it may contain anything.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(1);
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((ppid, pgid))
}

/// The service's processes: its process group, and the descendants of its main process
/// (`pgid`), which may have left the group.
fn members(processes: &HashMap<i32, (i32, i32)>, pgid: i32) -> BTreeSet<i32> {
    let mut found: BTreeSet<i32> = processes
        .iter()
        .filter(|(pid, (_, group))| *group == pgid || **pid == pgid)
        .map(|(pid, _)| *pid)
        .collect();
    loop {
        let more: Vec<i32> = processes
            .iter()
            .filter(|(pid, (ppid, _))| !found.contains(pid) && found.contains(ppid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

/// Whether `pid` has a descriptor on one of the sockets `inodes`.
fn holds_any(pid: i32, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|target| socket_inode(target.to_str()?))
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

/// The inode in a descriptor's link text `socket:[INODE]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn parses_the_listeners_of_an_ipv4_table() {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            parse_table(TCP, false),
            [(local, 8080, 4242), (any, 80, 4343)],
            "the established connection (01) is not a listener"
        );
    }

    #[test]
    fn parses_an_ipv6_table() {
        let table = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(
            parse_table(table, true),
            [
                (IpAddr::V6(Ipv6Addr::LOCALHOST), 8080, 777),
                (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 22, 778)
            ]
        );
    }

    #[test]
    fn the_same_address_or_a_wildcard_on_the_port_serves() {
        let local4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let listeners = [
            (local4, 8080, 1),
            (any4, 8080, 2),
            (any6, 8080, 3),
            (mapped, 8080, 4),
            (other, 8080, 5),
            (local4, 9090, 6),
        ];
        let addr = SocketAddr::new(local4, 8080);
        assert_eq!(serving(&listeners, addr), BTreeSet::from([1, 2, 3, 4]));
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let stat = "4242 (a) b (c) S 17 4200 4200 0 -1 4194560 0 0";
        assert_eq!(parse_stat(stat), Some((17, 4200)));
    }

    #[test]
    fn the_service_is_its_group_and_its_main_process_descendants() {
        let processes = HashMap::from([
            (100, (1, 100)),
            (101, (100, 100)),
            // Left the group (setsid), still a descendant.
            (102, (100, 102)),
            (103, (102, 102)),
            // Orphaned into the group's pgid: re-parented to runpm, still in the group.
            (104, (1, 100)),
            (200, (1, 200)),
        ]);
        assert_eq!(
            members(&processes, 100),
            BTreeSet::from([100, 101, 102, 103, 104])
        );
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn finds_this_process_as_the_holder_of_its_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = std::process::id() as i32;
        let pgid = nix::unistd::getpgrp().as_raw();
        match owner(addr, pgid) {
            Listener::Service(h) => assert_eq!(h.pid, me),
            other => panic!("{other:?}"),
        }
        // For another group, the listener is someone else's: this process's, named.
        match owner(addr, i32::MAX) {
            Listener::Other(Some(h)) => assert_eq!(h.pid, me),
            other => panic!("{other:?}"),
        }
        drop(listener);
        assert_eq!(owner(addr, pgid), Listener::NotFound);
    }
}
