//! What a failed load reports: every problem found, each pointing at a file position.
//!
//! Loading never stops at the first problem, so diagnostics are gathered into a
//! [`Diagnostics`] sink as they are found and turned into [`ConfigErrors`] at the end. Spans
//! from the TOML parser are byte ranges; they become 1-based line and column (in characters,
//! as an editor counts them) only here.

use std::fmt;
use std::ops::Range;

use camino::{Utf8Path, Utf8PathBuf};

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Utf8PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub service: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// One line, whatever the values quoted in it hold: a multi-line string from the file,
    /// or a service named `"a\nb"`, is shown escaped, so each diagnostic stays one line
    /// that starts with its position.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", one_line(self.file.as_str()))?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(service) = &self.service {
            write!(f, ": service `{}`", one_line(service))?;
        }
        write!(f, ": {}", one_line(&self.message))
    }
}

/// `text` with its control characters escaped as in Rust and TOML strings (`\n`, `\t`,
/// `\u{1b}`).
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped.into()
}

/// Every problem found while loading a configuration, in file and position order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.diagnostics.iter()
    }

    pub fn len(&self) -> usize {
        self.diagnostics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.diagnostics.iter()
    }
}

/// A file's path (as it is shown to the user) and its text, to turn spans into positions.
#[derive(Debug)]
pub(super) struct Source {
    pub path: Utf8PathBuf,
    pub text: String,
}

impl Source {
    /// The 1-based line and character column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

/// Collects diagnostics while loading goes on.
#[derive(Debug, Default)]
pub(super) struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// A problem at a span of a parsed file (or at the whole file when there is no span).
    pub fn at(
        &mut self,
        source: &Source,
        span: Option<Range<usize>>,
        service: Option<&str>,
        message: impl Into<String>,
    ) {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = source.position(span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        self.push(Diagnostic {
            file: source.path.clone(),
            line,
            column,
            service: service.map(str::to_owned),
            message: message.into(),
        });
    }

    /// A problem with a file that has no parsed text to point into (an unreadable file).
    pub fn in_file(&mut self, file: &Utf8Path, service: Option<&str>, message: impl Into<String>) {
        self.push(Diagnostic {
            file: file.to_owned(),
            line: None,
            column: None,
            service: service.map(str::to_owned),
            message: message.into(),
        });
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.list.push(diagnostic);
    }

    /// `Ok(value)` if nothing was reported, else every diagnostic in reading order. Callers
    /// pass `None` only after reporting why, so an empty error list is never returned in
    /// practice; it is still an error rather than a panic.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        if self.list.is_empty()
            && let Some(value) = value
        {
            return Ok(value);
        }
        let mut diagnostics = self.list;
        // A stable sort keeps the order of discovery among problems at the same place, and
        // puts problems without a position after those of the same file that have one.
        diagnostics.sort_by(|a, b| {
            (
                &a.file,
                a.line.unwrap_or(usize::MAX),
                a.column.unwrap_or(usize::MAX),
            )
                .cmp(&(
                    &b.file,
                    b.line.unwrap_or(usize::MAX),
                    b.column.unwrap_or(usize::MAX),
                ))
        });
        Err(ConfigErrors { diagnostics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source {
            path: "services.toml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let s = source("a = 1\nbé = \"x\"\n");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(4), (1, 5));
        assert_eq!(s.position(6), (2, 1));
        // `=` follows a two-byte character: the 4th character of its line, its 5th byte.
        assert_eq!(s.position(10), (2, 4));
        assert_eq!(s.position(1000), (3, 1));
    }

    #[test]
    fn display_with_and_without_position() {
        let d = Diagnostic {
            file: "services.toml".into(),
            line: Some(12),
            column: Some(7),
            service: Some("web".into()),
            message: "unknown field `cmnd` (did you mean `cmd`?)".into(),
        };
        assert_eq!(
            d.to_string(),
            "services.toml:12:7: service `web`: unknown field `cmnd` (did you mean `cmd`?)"
        );
        let d = Diagnostic {
            line: None,
            column: None,
            service: None,
            ..d
        };
        assert_eq!(
            d.to_string(),
            "services.toml: unknown field `cmnd` (did you mean `cmd`?)"
        );
    }

    #[test]
    fn quoted_values_with_line_breaks_stay_on_one_line() {
        let d = Diagnostic {
            file: "services.toml".into(),
            line: Some(3),
            column: Some(16),
            service: Some("a\nb".into()),
            message: "invalid duration `10s\nfoo\t\u{1b}[31m`: expected number".into(),
        };
        assert_eq!(
            d.to_string(),
            "services.toml:3:16: service `a\\nb`: invalid duration `10s\\nfoo\\t\\u{1b}[31m`: \
             expected number"
        );
    }

    #[test]
    fn errors_are_sorted_by_position_one_per_line() {
        let s = source("a\nb\nc\n");
        let mut d = Diagnostics::default();
        d.at(&s, Some(4..5), None, "third");
        d.in_file("services.toml".into(), None, "last");
        d.at(&s, Some(0..1), Some("x"), "first");
        let errors = d.finish(Some(())).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "services.toml:1:1: service `x`: first\nservices.toml:3:1: third\nservices.toml: last"
        );
    }
}
