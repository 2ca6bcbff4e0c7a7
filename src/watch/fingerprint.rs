//! What the watched files resolve to, to settle the events that do not name them.
//!
//! A file created or renamed beside the config under another name is either noise (a pid
//! file, a `touch`) or a symlink swap that changed what the config's own name points at. The
//! fingerprint tells them apart: per watched file, the identity and size and modification
//! time of the file its path resolves to (following symlinks), and for a unit directory the
//! same for each of its unit files. Noise leaves it as it was; a swap does not.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::filter::Target;

/// One resolved file: device, inode, size, modification time (seconds, nanoseconds); `None`
/// when it cannot be read (missing, mid-save).
type Identity = Option<(u64, u64, u64, i64, i64)>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Fingerprint(Vec<(PathBuf, Identity)>);

pub(super) fn fingerprint(target: &Target) -> Fingerprint {
    let mut entries: Vec<(PathBuf, Identity)> = target
        .files
        .iter()
        .map(|f| (f.clone(), identity(f)))
        .collect();
    if let Some(dir) = &target.unit_dir {
        // A directory that cannot be listed is one entry: it changes when it comes back.
        match std::fs::read_dir(dir) {
            Ok(list) => {
                let mut units: Vec<PathBuf> = list
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|e| e == "toml")
                            && !p
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect();
                units.sort();
                entries.extend(units.into_iter().map(|u| {
                    let id = identity(&u);
                    (u, id)
                }));
            }
            Err(_) => entries.push((dir.clone(), None)),
        }
    }
    Fingerprint(entries)
}

fn identity(path: &Path) -> Identity {
    std::fs::metadata(path)
        .ok()
        .map(|m: Metadata| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_beside_it_changes_nothing_a_symlink_swap_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("v1")).unwrap();
        std::fs::create_dir(root.join("v2")).unwrap();
        std::fs::write(root.join("v1/services.toml"), "# v1\n").unwrap();
        std::fs::write(root.join("v2/services.toml"), "# v2\n").unwrap();
        std::os::unix::fs::symlink("v1", root.join("data")).unwrap();
        std::os::unix::fs::symlink("data/services.toml", root.join("services.toml")).unwrap();
        let target = Target {
            files: vec![root.join("services.toml")],
            unit_dir: None,
        };
        let before = fingerprint(&target);
        std::fs::write(root.join("nginx.pid"), "42\n").unwrap();
        assert_eq!(fingerprint(&target), before);
        std::os::unix::fs::symlink("v2", root.join("data_tmp")).unwrap();
        std::fs::rename(root.join("data_tmp"), root.join("data")).unwrap();
        assert_ne!(fingerprint(&target), before);
    }

    #[test]
    fn a_unit_directory_counts_its_unit_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let units = dir.path().to_path_buf();
        std::fs::write(units.join("web.toml"), "cmd = [\"true\"]\n").unwrap();
        let target = Target {
            files: Vec::new(),
            unit_dir: Some(units.clone()),
        };
        let before = fingerprint(&target);
        std::fs::write(units.join("web.pid"), "42\n").unwrap();
        assert_eq!(fingerprint(&target), before);
        std::fs::write(units.join("worker.toml"), "cmd = [\"true\"]\n").unwrap();
        assert_ne!(fingerprint(&target), before);
    }
}
