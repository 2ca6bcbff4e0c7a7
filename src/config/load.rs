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

use super::diagnostic::{ConfigErrors, Diagnostics, Source};
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
    let absolute = match std::env::current_dir() {
        Ok(cwd) => match Utf8PathBuf::try_from(cwd) {
            Ok(cwd) => validate::absolute(&cwd, path),
            Err(e) => {
                diags.in_file(path, None, format!("current directory is not UTF-8: {e}"));
                return diags.finish(|| unreachable_config(path));
            }
        },
        Err(e) => {
            diags.in_file(path, None, format!("cannot find the current directory: {e}"));
            return diags.finish(|| unreachable_config(path));
        }
    };
    let is_dir = match std::fs::metadata(&absolute) {
        Ok(meta) => meta.is_dir(),
        Err(e) => {
            diags.in_file(path, None, format!("cannot read: {e}"));
            return diags.finish(|| unreachable_config(path));
        }
    };
    let (base_dir, settings, units) = if is_dir {
        let (settings, units) = read_dir(path, &mut diags);
        (absolute.clone(), settings, units)
    } else {
        let base_dir = absolute.parent().map_or_else(|| absolute.clone(), Utf8Path::to_owned);
        let (settings, units) = match read(path, &mut diags) {
            Some(source) => parse_file(source, &mut diags),
            None => (None, Vec::new()),
        };
        (base_dir, settings, units)
    };
    let config = validate::config(absolute, base_dir, settings, units, &mut diags);
    diags.finish(|| config)
}

/// Never built: `finish` only calls it when no diagnostic was recorded, and every caller has
/// just recorded one. A plain value keeps the early returns free of `unwrap`.
fn unreachable_config(path: &Utf8Path) -> Config {
    Config {
        source: path.to_owned(),
        base_dir: path.to_owned(),
        settings: Default::default(),
        services: Default::default(),
    }
}

fn read(path: &Utf8Path, diags: &mut Diagnostics) -> Option<Rc<Source>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(Rc::new(Source { path: path.to_owned(), text })),
        Err(e) => {
            diags.in_file(path, None, format!("cannot read: {e}"));
            None
        }
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
    let Some(doc) = parse(&source, diags) else { return (None, Vec::new()) };
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
                        diags.at(&source, Some(value.span()), Some(name.get_ref()), message);
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
                diags.at(&source, Some(value.span()), None, format!("`{}` must be a table", key.get_ref()));
            }
            (other, value) => {
                let looks_like_service = matches!(value, DeValue::Table(t)
                    if t.contains_key("cmd") || t.contains_key("shell"));
                let message = if looks_like_service {
                    format!("unknown table `{other}` (did you mean `services.{other}`?)")
                } else {
                    format!("unknown field `{other}`{}", hint(other, TOP_LEVEL_KEYS.iter().copied()))
                };
                diags.at(&source, Some(key.span()), None, message);
            }
        }
    }
    (settings, units)
}

fn read_dir(dir: &Utf8Path, diags: &mut Diagnostics) -> (Option<SettingsUnit>, Vec<Unit>) {
    let entries = match dir.read_dir_utf8() {
        Ok(entries) => entries,
        Err(e) => {
            diags.in_file(dir, None, format!("cannot read directory: {e}"));
            return (None, Vec::new());
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                // `metadata` follows symlinks, so a linked unit file counts.
                let is_file = entry.path().metadata().is_ok_and(|m| m.is_file());
                if is_file && name.ends_with(".toml") && !name.starts_with('.') {
                    files.push(entry.into_path());
                }
            }
            Err(e) => diags.in_file(dir, None, format!("cannot read directory: {e}")),
        }
    }
    files.sort();

    let mut settings = None;
    let mut units = Vec::new();
    for file in files {
        let Some(source) = read(&file, diags) else { continue };
        let Some(doc) = parse(&source, diags) else { continue };
        let span = 0..source.text.len();
        if file.file_name() == Some(SETTINGS_FILE) {
            if doc.contains_key("cmd") || doc.contains_key("shell") {
                let message = format!(
                    "`{SETTINGS_FILE}` holds the `[runpm]` settings, so a service cannot be \
                     named `runpm` in a directory of unit files"
                );
                diags.at(&source, None, None, message);
                continue;
            }
            settings = Some(read_settings(&source, &doc, span, diags));
        } else {
            let name = file.file_stem().unwrap_or_default().to_owned();
            units.push(read_service(&source, name, None, &doc, span, diags));
        }
    }
    (settings, units)
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
    let keys = table.iter().map(|(k, _)| (k.get_ref().to_string(), k.span())).collect();
    Unit { name, source: Rc::clone(source), header, keys, raw }
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
    SettingsUnit { source: Rc::clone(source), raw }
}
