//! Which file-system events could concern the config.
//!
//! The config is made of the config file (or the unit files of a unit directory) and every
//! `env_file` its services read; each is watched through its directory. An event that names
//! one of those files (or the unit directory, or a watched directory itself) concerns it. A
//! file created or renamed under another name usually does not (nginx writing its pid file
//! beside the config, a `touch`), but it can: a Kubernetes ConfigMap-style symlink swap
//! (`..data` → `..2024_…`) changes a symlinked config without ever naming it. Such events
//! are [`Verdict::Maybe`], and the caller settles them by looking at the files themselves
//! (see `fingerprint`). Reads never concern it: runpm's own reload opens the files, and
//! reacting to that would loop.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use notify::event::ModifyKind;
use notify::{Event, EventKind};

/// What is watched: files (the config file, env files), each through its directory, and
/// possibly a directory of unit files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Target {
    /// Absolute paths of single files.
    pub(super) files: Vec<PathBuf>,
    /// A unit directory: every `NAME.toml` in it is part of the config.
    pub(super) unit_dir: Option<PathBuf>,
}

impl Target {
    /// The directories the watches are placed on, without repeats.
    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .chain(self.unit_dir.clone())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// Whether an event concerns the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Yes,
    No,
    /// Another name in a watched directory was created or renamed: only a look at the
    /// watched files can tell whether what they resolve to changed.
    Maybe,
}

/// Whether `event` could mean the config changed.
pub(super) fn concerns(target: &Target, event: &notify::Result<Event>) -> Verdict {
    let event = match event {
        // An error (such as a queue overflow) means events may have been lost: reloading
        // re-reads everything, so it is the safe answer.
        Err(_) => return Verdict::Yes,
        Ok(event) => event,
    };
    if event.need_rescan() {
        return Verdict::Yes;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return Verdict::No;
    }
    let dirs = target.dirs();
    // A watched directory itself moved or vanished: the next load will say what is left.
    if event.paths.iter().any(|path| dirs.contains(path)) {
        return Verdict::Yes;
    }
    let names_a_file = |path: &PathBuf| {
        target.files.contains(path)
            || target
                .unit_dir
                .as_deref()
                .is_some_and(|dir| path.parent() == Some(dir) && is_unit_name(path))
    };
    if event.paths.iter().any(names_a_file) {
        return Verdict::Yes;
    }
    let reshapes = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_))
    );
    let in_a_watched_dir = |path: &PathBuf| {
        path.parent()
            .is_some_and(|parent| dirs.iter().any(|d| d == parent))
    };
    if reshapes
        && event
            .paths
            .iter()
            .any(|path| in_a_watched_dir(path) && !ignored(path))
    {
        return Verdict::Maybe;
    }
    Verdict::No
}

/// The names the config loader reads from a unit directory.
fn is_unit_name(path: &Path) -> bool {
    path.file_name()
        .map(OsStr::to_string_lossy)
        .is_some_and(|name| name.ends_with(".toml") && !name.starts_with('.'))
}

/// Names that never hold the config: runpm's own state directory, and what editors leave
/// beside the file they save (vim's swap files, its `4913` write test and `~` backups,
/// emacs's `.#` lock links).
fn ignored(path: &Path) -> bool {
    let Some(name) = path.file_name().map(OsStr::to_string_lossy) else {
        return false;
    };
    name == ".runpm"
        || name == "4913"
        || name.starts_with(".#")
        || name.ends_with('~')
        || [".swp", ".swx", ".swo"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, MetadataKind, RemoveKind, RenameMode,
    };

    use super::*;

    fn file() -> Target {
        Target {
            files: vec!["/p/services.toml".into(), "/p/env/app.env".into()],
            unit_dir: None,
        }
    }

    fn units() -> Target {
        Target {
            files: Vec::new(),
            unit_dir: Some("/p/units".into()),
        }
    }

    fn event(kind: EventKind, paths: &[&str]) -> notify::Result<Event> {
        Ok(paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(p.into())))
    }

    const WRITE: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    const CREATE: EventKind = EventKind::Create(CreateKind::File);
    const RENAME: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    const TOUCH: EventKind = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));

    #[test]
    fn the_watched_directories_are_those_of_the_files() {
        assert_eq!(
            file().dirs(),
            [PathBuf::from("/p"), PathBuf::from("/p/env")]
        );
        let both = Target {
            files: vec!["/q/a.env".into(), "/p/b.env".into()],
            unit_dir: Some("/p/units".into()),
        };
        assert_eq!(both.dirs().len(), 3);
    }

    #[test]
    fn any_change_naming_a_file_concerns_it() {
        for kind in [
            WRITE,
            CREATE,
            RENAME,
            TOUCH,
            EventKind::Remove(RemoveKind::Any),
        ] {
            assert_eq!(
                concerns(&file(), &event(kind, &["/p/services.toml"])),
                Verdict::Yes
            );
            assert_eq!(
                concerns(&file(), &event(kind, &["/p/env/app.env"])),
                Verdict::Yes
            );
        }
    }

    #[test]
    fn reads_never_concern_it() {
        let read = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert_eq!(
            concerns(&file(), &event(read, &["/p/services.toml"])),
            Verdict::No
        );
        assert_eq!(
            concerns(&units(), &event(read, &["/p/units/web.toml"])),
            Verdict::No
        );
    }

    #[test]
    fn a_write_or_touch_of_another_file_does_not_concern_it() {
        for kind in [WRITE, TOUCH, EventKind::Remove(RemoveKind::Any)] {
            assert_eq!(concerns(&file(), &event(kind, &["/p/README"])), Verdict::No);
            assert_eq!(
                concerns(&file(), &event(kind, &["/p/env/other.env"])),
                Verdict::No
            );
        }
    }

    #[test]
    fn a_file_of_the_same_name_elsewhere_does_not_concern_it() {
        assert_eq!(
            concerns(&file(), &event(WRITE, &["/q/services.toml"])),
            Verdict::No
        );
        assert_eq!(
            concerns(&file(), &event(CREATE, &["/q/services.toml"])),
            Verdict::No
        );
    }

    #[test]
    fn a_rename_or_create_of_another_file_may_be_a_symlink_swap() {
        assert_eq!(
            concerns(&file(), &event(RENAME, &["/p/..data_tmp", "/p/..data"])),
            Verdict::Maybe
        );
        assert_eq!(
            concerns(&file(), &event(CREATE, &["/p/nginx.pid"])),
            Verdict::Maybe
        );
        assert_eq!(
            concerns(&units(), &event(CREATE, &["/p/units/..2024"])),
            Verdict::Maybe
        );
    }

    #[test]
    fn a_vim_save_concerns_it() {
        // Vim renames the original to its backup name, then writes a new file.
        let away = event(RENAME, &["/p/services.toml", "/p/services.toml~"]);
        assert_eq!(concerns(&file(), &away), Verdict::Yes);
    }

    #[test]
    fn the_state_directory_and_editor_leftovers_are_noise() {
        for path in [
            "/p/.runpm",
            "/p/.services.toml.swp",
            "/p/.services.toml.swx",
            "/p/4913",
            "/p/notes~",
            "/p/.#services.toml",
        ] {
            assert_eq!(
                concerns(&file(), &event(CREATE, &[path])),
                Verdict::No,
                "{path}"
            );
            let unit = path.replace("/p/", "/p/units/");
            assert_eq!(
                concerns(&units(), &event(CREATE, &[&unit])),
                Verdict::No,
                "{unit}"
            );
        }
    }

    #[test]
    fn any_change_of_a_unit_file_concerns_it() {
        for kind in [WRITE, CREATE, RENAME, EventKind::Remove(RemoveKind::Any)] {
            assert_eq!(
                concerns(&units(), &event(kind, &["/p/units/web.toml"])),
                Verdict::Yes
            );
        }
    }

    #[test]
    fn other_files_in_a_unit_directory_are_not_units() {
        assert_eq!(
            concerns(&units(), &event(WRITE, &["/p/units/web.pid"])),
            Verdict::No
        );
        assert_eq!(
            concerns(&units(), &event(WRITE, &["/p/units/.web.toml"])),
            Verdict::No
        );
    }

    #[test]
    fn the_watched_directory_itself_changing_concerns_it() {
        let gone = EventKind::Remove(RemoveKind::Any);
        assert_eq!(concerns(&file(), &event(gone, &["/p"])), Verdict::Yes);
        assert_eq!(
            concerns(&units(), &event(gone, &["/p/units"])),
            Verdict::Yes
        );
    }

    #[test]
    fn lost_events_concern_it() {
        let rescan = Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan));
        assert_eq!(concerns(&file(), &rescan), Verdict::Yes);
        assert_eq!(
            concerns(&file(), &Err(notify::Error::generic("overflow"))),
            Verdict::Yes
        );
    }
}
