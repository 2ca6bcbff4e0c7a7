//! The control socket's path, with a short fallback for deep state directories.
//!
//! A Unix socket path must fit `sun_path`: 108 bytes including the terminating NUL. A
//! project deep in a home directory can exceed that with `.runpm/runpm.sock`, so such a
//! socket lives at a short path named by a hash of the state directory instead:
//! `$XDG_RUNTIME_DIR/runpm-HASH.sock` (a private per-user directory that logind manages),
//! else `/tmp/runpm-UID/HASH.sock` (a directory runpm creates 0700 and checks before use).
//! The hash is of the absolute state directory's spelling, so both binaries arrive at the
//! same path without talking to each other.

use std::os::unix::fs::MetadataExt;

use camino::{Utf8Path, Utf8PathBuf};

/// A path from the environment; a value that is not UTF-8 is treated as unset, since every
/// path runpm handles is UTF-8 (camino).
pub(crate) fn env_path(name: &str) -> Option<Utf8PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .and_then(|v| Utf8PathBuf::from_path_buf(v.into()).ok())
}

/// The socket's file name inside the state directory.
pub const SOCKET_NAME: &str = "runpm.sock";

/// The longest path `bind`/`connect` accept: `sun_path` is 108 bytes and needs a NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Where a too-long socket path may go instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallbacks {
    /// `$XDG_RUNTIME_DIR`, only when it is set, absolute, a directory and ours.
    pub runtime_dir: Option<Utf8PathBuf>,
    pub uid: u32,
}

impl Fallbacks {
    pub fn from_env() -> Fallbacks {
        let uid = nix::unistd::geteuid().as_raw();
        let runtime_dir = env_path("XDG_RUNTIME_DIR").filter(|dir| {
            dir.is_absolute()
                && std::fs::metadata(dir).is_ok_and(|meta| meta.is_dir() && meta.uid() == uid)
        });
        Fallbacks { runtime_dir, uid }
    }
}

/// The control socket's path for the state directory `dir`, and the private directory that
/// has to be created for it when it is the `/tmp` fallback.
pub fn choose(dir: &Utf8Path, fallbacks: &Fallbacks) -> (Utf8PathBuf, Option<Utf8PathBuf>) {
    choose_named(dir, SOCKET_NAME, "", fallbacks)
}

/// The path of a socket named `name` inside the state directory `dir`, or, when that is too
/// long, `runpm-HASH{tag}.sock` in the runtime directory or `HASH{tag}.sock` in the private
/// `/tmp` directory (returned second: it has to be created). `tag` keeps the fallbacks of
/// different sockets of one state directory apart; the control socket's is empty.
pub fn choose_named(
    dir: &Utf8Path,
    name: &str,
    tag: &str,
    fallbacks: &Fallbacks,
) -> (Utf8PathBuf, Option<Utf8PathBuf>) {
    let inside = dir.join(name);
    if fits(&inside) {
        return (inside, None);
    }
    let hash = format!("{:016x}", fnv1a64(dir.as_str().as_bytes()));
    if let Some(runtime) = &fallbacks.runtime_dir {
        let path = runtime.join(format!("runpm-{hash}{tag}.sock"));
        if fits(&path) {
            return (path, None);
        }
    }
    let private = Utf8PathBuf::from(format!("/tmp/runpm-{}", fallbacks.uid));
    (private.join(format!("{hash}{tag}.sock")), Some(private))
}

fn fits(path: &Utf8Path) -> bool {
    path.as_str().len() <= MAX_SOCKET_PATH
}

/// FNV-1a, 64 bits: stable across versions and platforms (unlike std's `DefaultHasher`),
/// which the two binaries rely on to agree on the path.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_dir() -> Utf8PathBuf {
        Utf8PathBuf::from(format!("/home/someone/{}/.runpm", "deep/".repeat(20)))
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn short_dirs_keep_the_socket_inside() {
        let fb = Fallbacks {
            runtime_dir: Some("/run/user/1000".into()),
            uid: 1000,
        };
        let (path, private) = choose(Utf8Path::new("/srv/app/.runpm"), &fb);
        assert_eq!(path, "/srv/app/.runpm/runpm.sock");
        assert_eq!(private, None);
    }

    #[test]
    fn the_limit_is_107_bytes() {
        let fb = Fallbacks {
            runtime_dir: None,
            uid: 1000,
        };
        // "/" + name + "/runpm.sock" (11 bytes) = exactly 107.
        let dir = Utf8PathBuf::from(format!("/{}", "x".repeat(107 - 1 - 11)));
        assert_eq!(choose(&dir, &fb).0, dir.join(SOCKET_NAME));
        let dir = Utf8PathBuf::from(format!("/{}", "x".repeat(107 - 11)));
        assert!(choose(&dir, &fb).0.starts_with("/tmp/runpm-1000"));
    }

    #[test]
    fn long_dirs_go_to_the_runtime_dir() {
        let fb = Fallbacks {
            runtime_dir: Some("/run/user/1000".into()),
            uid: 1000,
        };
        let (path, private) = choose(&long_dir(), &fb);
        let hash = format!("{:016x}", fnv1a64(long_dir().as_str().as_bytes()));
        assert_eq!(path, format!("/run/user/1000/runpm-{hash}.sock"));
        assert_eq!(private, None);
    }

    #[test]
    fn else_to_a_private_tmp_dir() {
        let fb = Fallbacks {
            runtime_dir: None,
            uid: 1000,
        };
        let (path, private) = choose(&long_dir(), &fb);
        assert_eq!(private.as_deref(), Some(Utf8Path::new("/tmp/runpm-1000")));
        assert!(path.starts_with("/tmp/runpm-1000/"));
        assert!(path.as_str().len() <= MAX_SOCKET_PATH);
        // Stable: the same input gives the same path; another dir another path.
        assert_eq!(choose(&long_dir(), &fb).0, path);
        let other = long_dir().join("x");
        assert_ne!(choose(&other, &fb).0, path);
    }
}
