//! Procfiles (Heroku, foreman, overmind, honcho): `name: command` lines, `#` comments.
//!
//! Each line becomes a service running its command with `shell` (all these runners use
//! `sh -c`). `PORT` follows foreman's convention, which overmind and honcho share: the
//! process types get `PORT=5000`, `5100`, `5200`… in file order, so a command written for
//! `$PORT` gets the port it got before. A `.env` beside the Procfile, which foreman loads by
//! default, becomes every service's `env_file`. Procfiles say nothing about restarts, so
//! runpm's default (`on-failure`, as Heroku restarts a crashed dyno) applies.

use super::error::{ImportError, Position};
use super::model::{Command, Imported, Service};
use super::{Source, service_name};

/// foreman's first port, and the step between process types.
const BASE_PORT: u32 = 5000;
const PORT_STEP: u32 = 100;

/// One `name: command` line, or `None` for a line that is not one.
fn entry(line: &str) -> Option<(&str, &str)> {
    let (name, command) = line.split_once(':')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (valid && !command.trim().is_empty()).then(|| (name, command.trim()))
}

fn skipped(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// Whether text reads as a Procfile: at least one entry, and nothing else but comments.
pub(super) fn looks_like(text: &str) -> bool {
    let mut entries = text.lines().filter(|l| !skipped(l)).peekable();
    entries.peek().is_some() && entries.all(|l| entry(l).is_some())
}

pub(super) fn import(source: &Source, imported: &mut Imported) -> Result<(), ImportError> {
    let env_file = source.exists(".env").then(|| source.path(".env"));
    let mut index = 0;
    for (number, line) in source.text.lines().enumerate() {
        if skipped(line) {
            continue;
        }
        let Some((name, command)) = entry(line) else {
            let column = line.len() - line.trim_start().len() + 1;
            return Err(ImportError::Syntax {
                file: source.file.clone(),
                at: Position {
                    line: number + 1,
                    column,
                },
                message: "expected `name: command` (a name of letters, digits, `_` and `-`)".into(),
            });
        };
        let mut s = Service::new(
            &service_name(name),
            source.origin(&format!("line {}: {name}", number + 1)),
        );
        s.command = Some(Command::Shell(command.to_owned()));
        s.env
            .insert("PORT".into(), (BASE_PORT + PORT_STEP * index).to_string());
        s.env_file.clone_from(&env_file);
        s.cwd = source.home();
        imported.services.push(s);
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_non_entries() {
        assert_eq!(
            entry("web: bundle exec rails s -p $PORT"),
            Some(("web", "bundle exec rails s -p $PORT"))
        );
        assert_eq!(entry("web:"), None);
        assert_eq!(entry("my app: x"), None);
        assert!(looks_like("# c\nweb: a\n\nworker: b\n"));
        assert!(!looks_like("hello\n"));
    }
}
