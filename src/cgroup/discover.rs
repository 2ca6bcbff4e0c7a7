//! Finding runpm's own cgroup v2 and whether it may write there.
//!
//! The `0::` line of `/proc/self/cgroup` names runpm's cgroup within the v2 hierarchy; the
//! `cgroup2` lines of `/proc/self/mountinfo` say where that hierarchy (or a part of it) is
//! mounted. On a pure v2 host or in a container that is `/sys/fs/cgroup`; on a hybrid host
//! it is often `/sys/fs/cgroup/unified`, with the controllers still on v1. The parsing is
//! pure; [`discover`] adds the reads and the writability check.

use std::path::{Path, PathBuf};

/// Where runpm's cgroups live, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// runpm's own cgroup directory, writable.
    Available {
        own: PathBuf,
    },
    Unavailable {
        reason: String,
    },
}

/// `RUNPM_CGROUPS=0` turns cgroups off (as `[runpm] cgroups = false` does).
pub const OFF_VAR: &str = "RUNPM_CGROUPS";
/// `RUNPM_CGROUP_ROOT=DIR` takes DIR as runpm's own cgroup instead of looking it up: for a
/// test, or a delegated directory that `/proc/self/cgroup` does not name.
pub const ROOT_VAR: &str = "RUNPM_CGROUP_ROOT";

/// The path of the `0::` line (the v2 hierarchy), if any.
pub fn own_path(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_end().trim_end_matches(" (deleted)"))
}

/// A `cgroup2` mount: the part of the hierarchy it shows (`root`) and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub root: String,
    pub point: PathBuf,
}

/// Every `cgroup2` mount in a mountinfo text. Mount points escape spaces as `\040`.
pub fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            if after.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = before.split_whitespace().collect();
            Some(Mount {
                root: unescape(fields.get(3)?),
                point: PathBuf::from(unescape(fields.get(4)?)),
            })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The directory of cgroup `path` under one of `mounts`: the mount whose root is the
/// longest prefix of the path (`/sys/fs/cgroup` preferred on a tie).
pub fn locate(path: &str, mounts: &[Mount]) -> Option<PathBuf> {
    mounts
        .iter()
        .filter_map(|m| {
            let rest = if m.root == "/" {
                Some(path)
            } else {
                path.strip_prefix(m.root.as_str())
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            }?;
            Some((
                m.root.len(),
                m.point == Path::new("/sys/fs/cgroup"),
                m,
                rest,
            ))
        })
        .max_by_key(|(len, preferred, _, _)| (*len, *preferred))
        .map(|(_, _, m, rest)| m.point.join(rest.trim_start_matches('/')))
}

/// Where runpm's cgroup is, from the system (or `RUNPM_CGROUP_ROOT`), and whether runpm
/// may create cgroups there and move processes into them.
pub fn discover() -> Found {
    if let Some(dir) = std::env::var_os(ROOT_VAR) {
        return writable(PathBuf::from(dir));
    }
    let cgroup = match std::fs::read_to_string("/proc/self/cgroup") {
        Ok(text) => text,
        Err(e) => {
            return Found::Unavailable {
                reason: format!("cannot read /proc/self/cgroup: {e}"),
            };
        }
    };
    let Some(path) = own_path(&cgroup) else {
        return Found::Unavailable {
            reason: "no cgroup v2 hierarchy (no `0::` line in /proc/self/cgroup)".into(),
        };
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    match locate(path, &mounts(&mountinfo)) {
        Some(dir) => writable(dir),
        None => Found::Unavailable {
            reason: format!("runpm's cgroup `{path}` is not under any mounted cgroup2 file system"),
        },
    }
}

/// Creating a cgroup needs write access to the directory, and moving processes needs it
/// to `cgroup.procs`.
fn writable(dir: PathBuf) -> Found {
    let ok = |path: &Path| nix::unistd::access(path, nix::unistd::AccessFlags::W_OK);
    let procs = dir.join("cgroup.procs");
    match ok(&dir).and_then(|()| ok(&procs)) {
        Ok(()) => Found::Available { own: dir },
        Err(e) => Found::Unavailable {
            reason: format!(
                "cannot write to runpm's cgroup {} ({}): run runpm where a cgroup v2 subtree \
                 is delegated to it (a container with its own cgroup namespace, a systemd \
                 service with Delegate=yes, or as root)",
                dir.display(),
                e.desc().to_lowercase()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw
31 25 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";

    #[test]
    fn finds_the_v2_line() {
        assert_eq!(own_path("9:name=systemd:/\n0::/\n"), Some("/"));
        assert_eq!(
            own_path("0::/system.slice/app.service\n"),
            Some("/system.slice/app.service")
        );
        assert_eq!(own_path("4:memory:/x\n"), None);
    }

    #[test]
    fn hybrid_and_pure_mounts() {
        let found = mounts(HYBRID);
        assert_eq!(
            found,
            [Mount {
                root: "/".into(),
                point: "/sys/fs/cgroup/unified".into()
            }]
        );
        assert_eq!(
            locate("/", &found),
            Some(PathBuf::from("/sys/fs/cgroup/unified/"))
        );
        let pure = mounts("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(
            locate("/user.slice/u.service", &pure),
            Some(PathBuf::from("/sys/fs/cgroup/user.slice/u.service"))
        );
    }

    #[test]
    fn a_mount_of_part_of_the_tree_is_used_for_paths_under_it() {
        let part = mounts("30 1 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(
            locate("/docker/abc/app", &part),
            Some(PathBuf::from("/sys/fs/cgroup/app"))
        );
        assert_eq!(locate("/docker/abcd", &part), None);
        assert_eq!(locate("/other", &part), None);
        let spaced = mounts("30 1 0:26 / /mnt/my\\040cg rw - cgroup2 none rw\n");
        assert_eq!(spaced[0].point, PathBuf::from("/mnt/my cg"));
    }

    #[test]
    fn a_read_only_directory_is_unavailable_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        assert!(matches!(
            writable(dir.path().into()),
            Found::Available { .. }
        ));
        let missing = dir.path().join("nope");
        let Found::Unavailable { reason } = writable(missing) else {
            panic!("a missing directory is not writable");
        };
        assert!(
            reason.contains("cannot write to runpm's cgroup"),
            "{reason}"
        );
        assert!(reason.contains("Delegate=yes"), "{reason}");
    }
}
