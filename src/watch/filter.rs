//! Which file-system events could concern the config.
//!
//! The test is deliberately generous: a spurious reload costs a re-read and an empty plan,
//! a missed one leaves a user wondering why the edit did nothing. Only what is known to be
//! noise is dropped: reads (runpm's own reload opens the file, and reacting to that would
//! loop), runpm's state directory, and editors' swap and backup files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use notify::event::ModifyKind;
use notify::{Event, EventKind};

/// What is watched: one config file (through its directory), or a directory of unit files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    File { dir: PathBuf, name: PathBuf },
    Dir { dir: PathBuf },
}

impl Target {
    /// The directory the watch is placed on.
    pub(super) fn dir(&self) -> &Path {
        match self {
            Target::File { dir, .. } | Target::Dir { dir } => dir,
        }
    }
}

/// Whether `event` could mean the config changed.
pub(super) fn concerns(target: &Target, event: &notify::Result<Event>) -> bool {
    let event = match event {
        // An error (such as a queue overflow) means events may have been lost: reloading
        // re-reads everything, so it is the safe answer.
        Err(_) => return true,
        Ok(event) => event,
    };
    if event.need_rescan() {
        return true;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    // The watched directory itself moved or vanished: the next load will say what is left.
    if event.paths.iter().any(|path| path == target.dir()) {
        return true;
    }
    match target {
        Target::File { name, .. } => {
            if event
                .paths
                .iter()
                .any(|path| path.file_name() == Some(name.as_os_str()))
            {
                return true;
            }
            // A rename or create that does not name the file can still replace what it
            // points at: a symlink swap (`..data` → `..2024_…`) changes a symlinked
            // config without ever naming it.
            let reshapes = matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_))
            );
            reshapes && event.paths.iter().any(|path| !ignored(path))
        }
        Target::Dir { .. } => event.paths.iter().any(|path| !ignored(path)),
    }
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
        AccessKind, AccessMode, CreateKind, DataChange, Flag, RemoveKind, RenameMode,
    };

    use super::*;

    fn file() -> Target {
        Target::File {
            dir: "/p".into(),
            name: "services.toml".into(),
        }
    }

    fn units() -> Target {
        Target::Dir {
            dir: "/p/units".into(),
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

    #[test]
    fn any_change_naming_the_file_concerns_it() {
        for kind in [WRITE, CREATE, RENAME, EventKind::Remove(RemoveKind::Any)] {
            assert!(concerns(&file(), &event(kind, &["/p/services.toml"])));
        }
    }

    #[test]
    fn reads_never_concern_it() {
        let read = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!concerns(&file(), &event(read, &["/p/services.toml"])));
        assert!(!concerns(&units(), &event(read, &["/p/units/web.toml"])));
    }

    #[test]
    fn a_write_to_another_file_does_not_concern_it() {
        assert!(!concerns(&file(), &event(WRITE, &["/p/README"])));
    }

    #[test]
    fn a_rename_or_create_of_another_file_may_be_a_symlink_swap() {
        assert!(concerns(
            &file(),
            &event(RENAME, &["/p/..data_tmp", "/p/..data"])
        ));
        assert!(concerns(&file(), &event(CREATE, &["/p/..2024_01_01"])));
    }

    #[test]
    fn a_vim_save_concerns_it() {
        // Vim renames the original to its backup name, then writes a new file.
        let away = event(RENAME, &["/p/services.toml", "/p/services.toml~"]);
        assert!(concerns(&file(), &away));
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
            assert!(!concerns(&file(), &event(CREATE, &[path])), "{path}");
            let unit = path.replace("/p/", "/p/units/");
            assert!(!concerns(&units(), &event(CREATE, &[&unit])), "{unit}");
        }
    }

    #[test]
    fn any_change_in_a_unit_directory_concerns_it() {
        for kind in [WRITE, CREATE, RENAME, EventKind::Remove(RemoveKind::Any)] {
            assert!(concerns(&units(), &event(kind, &["/p/units/web.toml"])));
        }
    }

    #[test]
    fn the_watched_directory_itself_changing_concerns_it() {
        let gone = EventKind::Remove(RemoveKind::Any);
        assert!(concerns(&file(), &event(gone, &["/p"])));
    }

    #[test]
    fn lost_events_concern_it() {
        let rescan = Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan));
        assert!(concerns(&file(), &rescan));
        assert!(concerns(&file(), &Err(notify::Error::generic("overflow"))));
    }
}
