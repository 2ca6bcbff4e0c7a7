//! Reading unit files from disk, in either form, into raw units for validation.
//!
//! A path names either one `services.toml` or a directory of `NAME.toml` unit files (plus an
//! optional `runpm.toml` for the `[runpm]` settings, written at its top level). In the
//! directory, only regular `*.toml` files count; hidden files (editor leftovers) and anything
//! else are ignored, so a directory can also hold `.env` files and notes.
//!
//! Diagnostics name files as the caller spelled the path, so `runpm validate -f x.toml`
//! points at `x.toml:3:1`, while the `Config` itself holds absolute paths.

use std::ops::Range;
use std::rc::Rc;

use camino::{Utf8Path, Utf8PathBuf};
use toml::de::{DeTable, DeValue};

use super::diagnostic::{ConfigErrors, Diagnostic, Diagnostics, Source};
use super::raw::{RawHealth, RawReady, RawService, RawSettings, TOP_LEVEL_KEYS, fields_of};
use super::recover::{self, Recovered};
use super::spec::Config;
use super::suggest::hint;
use super::validate::{self, SettingsUnit, Unit};

/// The settings file in directory form.
const SETTINGS_FILE: &str = "runpm.toml";

/// Loads and validates a `services.toml` file or a directory of unit files.
pub fn load(path: &Utf8Path) -> Result<Config, ConfigErrors> {
    let mut diags = Diagnostics::default();
    let config = read_and_validate(path, &mut diags);
    diags.finish(config)
}

/// `None` only when nothing could be read at all, after reporting why.
fn read_and_validate(path: &Utf8Path, diags: &mut Diagnostics) -> Option<Config> {
    let cwd = match std::env::current_dir().map(Utf8PathBuf::try_from) {
        Ok(Ok(cwd)) => cwd,
        Ok(Err(e)) => {
            diags.in_file(path, None, format!("current directory is not UTF-8: {e}"));
            return None;
        }
        Err(e) => {
            diags.in_file(
                path,
                None,
                format!("cannot find the current directory: {e}"),
            );
            return None;
        }
    };
    let absolute = validate::absolute(&cwd, path);
    let is_dir = match std::fs::metadata(&absolute) {
        Ok(meta) => meta.is_dir(),
        Err(e) => {
            diags.in_file(path, None, format!("cannot read: {e}"));
            return None;
        }
    };
    let (base_dir, (settings, units)) = if is_dir {
        (absolute.clone(), read_dir(path, diags))
    } else {
        let base_dir = absolute
            .parent()
            .map_or_else(|| absolute.clone(), Utf8Path::to_owned);
        let parsed = match read(path, diags) {
            Some(source) => parse_file(source, diags),
            None => (None, Vec::new()),
        };
        (base_dir, parsed)
    };
    Some(validate::config(absolute, base_dir, settings, units, diags))
}

fn read(path: &Utf8Path, diags: &mut Diagnostics) -> Option<Rc<Source>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            diags.in_file(path, None, format!("cannot read: {e}"));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(Rc::new(Source {
            path: path.to_owned(),
            text,
        })),
        Err(e) => {
            diags.push(not_utf8(path, e.as_bytes(), e.utf8_error().valid_up_to()));
            None
        }
    }
}

/// Where the first byte that is not UTF-8 (at `at`) is: its 1-based line, its column in
/// characters (what comes before it on its line is valid UTF-8), and what to say of it.
pub fn utf8_error_position(bytes: &[u8], at: usize) -> (usize, usize, String) {
    let before = &bytes[..at.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = std::str::from_utf8(&before[line_start..]).map_or(1, |s| s.chars().count() + 1);
    let message = format!(
        "byte 0x{:02x} is not UTF-8: save the file as UTF-8",
        bytes.get(at).copied().unwrap_or(0)
    );
    (
        before.iter().filter(|&&b| b == b'\n').count() + 1,
        column,
        message,
    )
}

fn not_utf8(path: &Utf8Path, bytes: &[u8], at: usize) -> Diagnostic {
    let (line, column, message) = utf8_error_position(bytes, at);
    Diagnostic {
        file: path.to_owned(),
        line: Some(line),
        column: Some(column),
        service: None,
        message,
    }
}

/// The document's top-level table, or a diagnostic for its syntax error.
fn parse<'a>(source: &'a Source, diags: &mut Diagnostics) -> Option<DeTable<'a>> {
    match DeTable::parse(&source.text) {
        Ok(doc) => Some(doc.into_inner()),
        Err(e) => {
            diags.at(source, e.span(), None, e.message().trim_end().to_owned());
            None
        }
    }
}

fn parse_file(source: Rc<Source>, diags: &mut Diagnostics) -> (Option<SettingsUnit>, Vec<Unit>) {
    let Some(doc) = parse(&source, diags) else {
        return (None, Vec::new());
    };
    let mut settings = None;
    let mut units = Vec::new();
    for (key, value) in doc.iter() {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("runpm", DeValue::Table(table)) => {
                settings = Some(read_settings(&source, table, value.span(), diags));
            }
            ("services", DeValue::Table(services)) => {
                for (name, value) in services.iter() {
                    let DeValue::Table(table) = value.get_ref() else {
                        let message = "a service must be a table, like `[services.NAME]`";
                        diags.at(&source, Some(name.span()), Some(name.get_ref()), message);
                        continue;
                    };
                    units.push(read_service(
                        &source,
                        name.get_ref().to_string(),
                        Some(name.span()),
                        table,
                        value.span(),
                        diags,
                    ));
                }
            }
            ("runpm" | "services", _) => {
                diags.at(
                    &source,
                    Some(value.span()),
                    None,
                    format!("`{}` must be a table", key.get_ref()),
                );
            }
            (other, value) => {
                let looks_like_service = matches!(value, DeValue::Table(t)
                    if t.contains_key("cmd") || t.contains_key("shell"));
                let message = if looks_like_service {
                    format!("unknown table `{other}` (did you mean `services.{other}`?)")
                } else {
                    format!(
                        "unknown field `{other}`{}",
                        hint(other, TOP_LEVEL_KEYS.iter().copied())
                    )
                };
                diags.at(&source, Some(key.span()), None, message);
            }
        }
    }
    (settings, units)
}

fn read_dir(dir: &Utf8Path, diags: &mut Diagnostics) -> (Option<SettingsUnit>, Vec<Unit>) {
    let entries = match dir.as_std_path().read_dir() {
        Ok(entries) => entries,
        Err(e) => {
            diags.in_file(dir, None, format!("cannot read directory: {e}"));
            return (None, Vec::new());
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                diags.in_file(dir, None, format!("cannot read directory: {e}"));
                continue;
            }
        };
        let name = entry.file_name();
        let lossy = name.to_string_lossy();
        // Editor leftovers (`.web.toml.swp`, `.#web.toml`) and other files are not units.
        if !lossy.ends_with(".toml") || lossy.starts_with('.') {
            continue;
        }
        let path = dir.join(&*lossy);
        if name.to_str().is_none() {
            let message = "the file name is not UTF-8; a unit file's name is its service's \
                           name: rename it";
            diags.in_file(&path, None, message);
            continue;
        }
        // `metadata` follows symlinks, so a linked unit file counts, and a dangling link
        // is reported rather than quietly leaving its service out.
        match path.metadata() {
            Ok(meta) if meta.is_file() => files.push(path),
            Ok(_) => {}
            Err(e) => diags.in_file(&path, None, format!("cannot read: {e}")),
        }
    }
    files.sort();

    let mut settings = None;
    let mut units = Vec::new();
    for file in files {
        let is_settings = file.file_name() == Some(SETTINGS_FILE);
        let name = file.file_stem().unwrap_or_default().to_owned();
        let source = read(&file, diags);
        let doc = source.as_ref().and_then(|source| parse(source, diags));
        let (Some(source), Some(doc)) = (&source, doc) else {
            // The service still exists, so its dependents are not told it is unknown.
            if !is_settings {
                units.push(unreadable_unit(&file, name));
            }
            continue;
        };
        let span = 0..source.text.len();
        if is_settings {
            if doc.contains_key("cmd") || doc.contains_key("shell") {
                let message = format!(
                    "`{SETTINGS_FILE}` holds the `[runpm]` settings, so a service cannot be \
                     named `runpm` in a directory of unit files"
                );
                diags.at(source, None, None, message);
                continue;
            }
            settings = Some(read_settings(source, &doc, span, diags));
        } else {
            units.push(read_service(source, name, None, &doc, span, diags));
        }
    }
    (settings, units)
}

/// A unit whose file was reported as unreadable or unparsable: a name and nothing else.
fn unreadable_unit(file: &Utf8Path, name: String) -> Unit {
    Unit {
        name,
        source: Rc::new(Source {
            path: file.to_owned(),
            text: String::new(),
        }),
        header: None,
        keys: Default::default(),
        raw: Recovered {
            value: Default::default(),
            dropped: Default::default(),
            wholly_failed: true,
        },
    }
}

fn read_service(
    source: &Rc<Source>,
    name: String,
    header: Option<Range<usize>>,
    table: &DeTable<'_>,
    span: Range<usize>,
    diags: &mut Diagnostics,
) -> Unit {
    let schema = |path: &[String]| match path {
        [] => Some(fields_of::<RawService>()),
        [key] if key == "ready" => Some(fields_of::<RawReady>()),
        [key] if key == "health" => Some(fields_of::<RawHealth>()),
        _ => None,
    };
    let raw: Recovered<RawService> = recover::deserialize(table, span, &schema, |span, message| {
        diags.at(source, Some(span), Some(&name), message);
    });
    let keys = table
        .iter()
        .map(|(k, _)| (k.get_ref().to_string(), k.span()))
        .collect();
    Unit {
        name,
        source: Rc::clone(source),
        header,
        keys,
        raw,
    }
}

fn read_settings(
    source: &Rc<Source>,
    table: &DeTable<'_>,
    span: Range<usize>,
    diags: &mut Diagnostics,
) -> SettingsUnit {
    let schema = |path: &[String]| path.is_empty().then(fields_of::<RawSettings>);
    let raw = recover::deserialize(table, span, &schema, |span, message| {
        diags.at(source, Some(span), None, message);
    });
    SettingsUnit {
        source: Rc::clone(source),
        raw,
    }
}
