//! The Linux side of process identity: `/proc` and pidfds.
//!
//! [`verify`] never uses `kill(pid, 0)`: that succeeds for zombies and (with EPERM) for other
//! users' processes, so it proves nothing about whose process holds a pid.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use super::identity::{Identity, Verified, parse_ns_link, parse_start_time_bytes};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const PID_NS: &str = "/proc/self/ns/pid";

/// The start time of `pid` (field 22 of `/proc/PID/stat`, clock ticks since boot).
pub fn start_time(pid: i32) -> io::Result<u64> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pid} is not a process id"),
        ));
    }
    // A stat line is a few hundred bytes; the cap only guards against a strange /proc.
    let mut stat = Vec::with_capacity(512);
    std::fs::File::open(format!("/proc/{pid}/stat"))?
        .take(64 * 1024)
        .read_to_end(&mut stat)?;
    parse_start_time_bytes(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot find the start time in /proc/{pid}/stat"),
        )
    })
}

/// This boot's id, which changes on every boot.
pub fn boot_id() -> io::Result<String> {
    let id = std::fs::read_to_string(BOOT_ID)?;
    let id = id.trim();
    if id.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{BOOT_ID} is empty"),
        ));
    }
    Ok(id.to_owned())
}

/// The inode of our pid namespace, as a decimal string.
pub fn pid_ns() -> io::Result<String> {
    let link = std::fs::read_link(PID_NS)?;
    link.to_str().and_then(parse_ns_link).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected link {} -> {}", PID_NS, link.display()),
        )
    })
}

/// Whether the recorded process is still the same one, and if so a pidfd for it.
///
/// The order matters. The pidfd is taken first: from then on it refers to one process
/// whatever happens to the number. Then the start time is read through the number, and
/// finally the pidfd is asked whether its process is still alive. If it is, it was alive
/// during the read too, so the start time read was its own and the comparison is about the
/// process the pidfd holds; had the pid been reused in between, the pidfd would show the
/// old process as exited and the answer is [`Verified::Gone`].
pub fn verify(identity: Identity) -> Verified {
    // rustix's `Pid` is for positive numbers only; 0 and negatives are not processes (and
    // the state parser refuses them).
    let Some(pid) = Pid::from_raw(identity.pid.max(0)) else {
        return Verified::Gone;
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Verified::Gone,
        Err(e) => {
            return Verified::Unverifiable(format!("pidfd_open({}): {e}", identity.pid));
        }
    };
    let now = match start_time(identity.pid) {
        Ok(t) => t,
        // Exited (and reaped) between pidfd_open and the read.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(Errno::SRCH.raw_os_error()) =>
        {
            return Verified::Gone;
        }
        Err(e) => {
            return Verified::Unverifiable(format!("/proc/{}/stat: {e}", identity.pid));
        }
    };
    match has_exited(&pidfd) {
        Ok(true) => Verified::Gone,
        Ok(false) if now == identity.start_time => Verified::Ours(pidfd),
        Ok(false) => Verified::Stranger,
        Err(e) => Verified::Unverifiable(format!("poll on the pidfd of {}: {e}", identity.pid)),
    }
}

/// A pidfd polls readable once its process has exited (zombies included).
fn has_exited(pidfd: &OwnedFd) -> io::Result<bool> {
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => return Ok(false),
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                return Ok(revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// A child that lives until killed; the guard kills and reaps it whatever the test does.
    struct Sleeper(Child);

    impl Sleeper {
        fn spawn() -> Sleeper {
            Sleeper(
                Command::new("sleep")
                    .arg("300")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn sleep"),
            )
        }

        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn boot_id_and_namespace_of_this_machine() {
        let id = boot_id().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(boot_id().unwrap(), id);
        let ns = pid_ns().unwrap();
        assert!(ns.parse::<u64>().is_ok(), "{ns}");
    }

    #[test]
    fn start_time_of_ourselves_is_stable() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(t > 0);
        assert_eq!(start_time(me).unwrap(), t);
        assert!(start_time(0).is_err());
        assert!(start_time(-1).is_err());
    }

    #[test]
    fn a_live_child_with_its_start_time_is_ours() {
        let child = Sleeper::spawn();
        let identity = Identity {
            pid: child.pid(),
            start_time: start_time(child.pid()).unwrap(),
        };
        let Verified::Ours(pidfd) = verify(identity) else {
            panic!("expected Ours");
        };
        // The pidfd is the handle to use from now on: a signal through it reaches the child.
        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL).unwrap();
        let mut child = child;
        let status = child.0.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn a_live_process_with_another_start_time_is_a_stranger() {
        let child = Sleeper::spawn();
        let actual = start_time(child.pid()).unwrap();
        for wrong in [actual + 1, actual.saturating_sub(1), 0] {
            let v = verify(Identity {
                pid: child.pid(),
                start_time: wrong,
            });
            assert!(matches!(v, Verified::Stranger), "{wrong}: {v:?}");
        }
        // And it was not touched.
        let mut child = child;
        assert!(child.0.try_wait().unwrap().is_none());
    }

    #[test]
    fn a_reaped_process_is_gone() {
        let mut child = Sleeper::spawn();
        let identity = Identity {
            pid: child.pid(),
            start_time: start_time(child.pid()).unwrap(),
        };
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert!(matches!(verify(identity), Verified::Gone));
    }

    #[test]
    fn a_zombie_is_gone() {
        // `kill(pid, 0)` would call this process alive; the pidfd knows it exited.
        let mut child = Sleeper::spawn();
        let identity = Identity {
            pid: child.pid(),
            start_time: start_time(child.pid()).unwrap(),
        };
        child.0.kill().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{}/stat", child.pid())).unwrap();
            if state
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z')
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(matches!(verify(identity), Verified::Gone));
    }

    #[test]
    fn impossible_pids_are_gone() {
        for pid in [0, -1, i32::MIN] {
            let v = verify(Identity { pid, start_time: 1 });
            assert!(matches!(v, Verified::Gone), "{pid}: {v:?}");
        }
        // Above pid_max: no such process.
        let v = verify(Identity {
            pid: i32::MAX,
            start_time: 1,
        });
        assert!(matches!(v, Verified::Gone), "{v:?}");
    }
}

/// The environment variables every process runpm starts carries: which daemon (its state
/// directory) and which service. They let a new daemon find processes that an earlier one
/// started but did not live to record (a `kill -9` between a spawn and the state write).
/// Anyone can set them: only the token ([`super::TOKEN_VAR`]) proves anything.
pub const INSTANCE_VAR: &str = "RUNPM_INSTANCE";
pub const SERVICE_VAR: &str = "RUNPM_SERVICE";

/// A live process tagged as started by the daemon of `instance`.
#[derive(Debug)]
pub struct Tagged {
    pub pid: i32,
    /// Its session id: a service's main process leads its own session.
    pub sid: i32,
    pub service: String,
    pub start_time: u64,
    /// Taken before the tag was read, so the tag is this process's own.
    pub pidfd: OwnedFd,
}

/// The tag variables of one environment (`/proc/PID/environ`), each the first of its name
/// as `getenv` would see it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tag<'a> {
    instance: Option<&'a [u8]>,
    service: Option<&'a [u8]>,
    token: Option<&'a [u8]>,
}

fn parse_tag(environ: &[u8]) -> Tag<'_> {
    let mut tag = Tag::default();
    for var in environ.split(|&b| b == 0) {
        let Some(eq) = var.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&var[..eq], &var[eq + 1..]);
        let slot = match name {
            n if n == INSTANCE_VAR.as_bytes() => &mut tag.instance,
            n if n == SERVICE_VAR.as_bytes() => &mut tag.service,
            n if n == super::TOKEN_VAR.as_bytes() => &mut tag.token,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    tag
}

/// Whether a daemon running as `daemon_uid` may act on a process whose real and effective
/// uids are `uids`, once its token verified. A non-root daemon could only have started
/// processes of its own uid; a root daemon starts services as any user (`user = …`).
fn may_act_on(daemon_uid: u32, uids: [u32; 2]) -> bool {
    daemon_uid == 0 || uids == [daemon_uid, daemon_uid]
}

/// The real and effective uid from `/proc/PID/status`.
fn parse_uids(status: &str) -> Option<[u32; 2]> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().map(|n| n.parse::<u32>().ok());
    Some([ids.next()??, ids.next()??])
}

/// Every live process (other than this one) that the daemon of `instance` started, or
/// started the ancestor of: tagged with `instance`, carrying `token`, and of a uid this
/// daemon could have started it as. A process with the tag but not the token (a stranger
/// who copied the variables, a forged token) is never returned, so never signalled.
/// Processes runpm may not inspect (other users', when not root) are skipped: runpm would
/// not have started them.
pub fn tagged_processes(instance: &str, token: &super::Token) -> Vec<Tagged> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let daemon_uid = nix::unistd::geteuid().as_raw();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some(rustix_pid) = Pid::from_raw(pid) else {
            continue;
        };
        let Ok(pidfd) = pidfd_open(rustix_pid, PidfdFlags::empty()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let tag = parse_tag(&environ);
        let (Some(tag_instance), Some(service), Some(tag_token)) =
            (tag.instance, tag.service, tag.token)
        else {
            continue;
        };
        if tag_instance != instance.as_bytes() || !token.verifies(tag_token) {
            continue;
        }
        let Ok(service) = String::from_utf8(service.to_vec()) else {
            continue;
        };
        let Some(uids) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .as_deref()
            .and_then(parse_uids)
        else {
            continue;
        };
        if !may_act_on(daemon_uid, uids) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(start_time), Some(sid)) = (
            super::identity::parse_start_time(&stat),
            parse_session(&stat),
        ) else {
            continue;
        };
        // Read while the pidfd held the process: if it is still alive, what was read is its.
        if has_exited(&pidfd).unwrap_or(true) {
            continue;
        }
        found.push(Tagged {
            pid,
            sid,
            service,
            start_time,
            pidfd,
        });
    }
    found
}

/// Field 6 of /proc/PID/stat, the session id (after the last `)`, like the start time).
fn parse_session(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tagged_tests {
    use super::*;

    #[test]
    fn finds_a_tagged_process_with_the_token_and_skips_others() {
        let instance = format!("/tmp/runpm-test-instance-{}", std::process::id());
        let token = crate::state::Token::from_hex(&"5a".repeat(32)).unwrap();
        let forged = "5b".repeat(32);
        let sleep = |instance: &str, token: Option<&str>| {
            let mut cmd = std::process::Command::new("sleep");
            cmd.arg("30")
                .env(INSTANCE_VAR, instance)
                .env(SERVICE_VAR, "web");
            if let Some(token) = token {
                cmd.env(crate::state::TOKEN_VAR, token);
            }
            cmd.spawn().unwrap()
        };
        let mut children = [
            sleep(&instance, Some(token.value())),
            sleep("/elsewhere", Some(token.value())),
            sleep(&instance, None),
            sleep(&instance, Some(&forged)),
        ];
        let found = tagged_processes(&instance, &token);
        let pids: Vec<i32> = found.iter().map(|t| t.pid).collect();
        assert_eq!(pids, [children[0].id() as i32]);
        assert_eq!(found[0].service, "web");
        assert_eq!(
            Some(found[0].start_time),
            start_time(children[0].id() as i32).ok()
        );
        for child in &mut children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn the_first_of_each_variable_counts() {
        let environ = b"A=1\0RUNPM_TOKEN=first\0RUNPM_INSTANCE=/i\0RUNPM_TOKEN=second\0RUNPM_SERVICE=web\0junk\0";
        assert_eq!(
            parse_tag(environ),
            Tag {
                instance: Some(b"/i"),
                service: Some(b"web"),
                token: Some(b"first"),
            }
        );
        assert_eq!(parse_tag(b""), Tag::default());
    }

    #[test]
    fn only_root_acts_on_other_uids() {
        assert!(may_act_on(0, [0, 0]));
        assert!(may_act_on(0, [65534, 65534]));
        assert!(may_act_on(1000, [1000, 1000]));
        assert!(!may_act_on(1000, [65534, 65534]));
        assert!(!may_act_on(1000, [1000, 0]));
        assert_eq!(
            parse_uids("Name:\tx\nUid:\t1000\t1001\t1000\t1000\n"),
            Some([1000, 1001])
        );
        assert_eq!(parse_uids("Name:\tx\n"), None);
    }

    #[test]
    fn parses_the_session_after_the_last_parenthesis() {
        assert_eq!(parse_session("42 (a) b (c) S 1 42 40 0 -1"), Some(40));
    }
}
