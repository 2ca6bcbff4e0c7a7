//! Deserializing one table so that every bad key is reported, not only the first.
//!
//! A derived `Deserialize` stops at the first error. To find the others without writing a
//! second schema, each error is pinned to the innermost key whose span holds it, reported,
//! and that key is removed; deserialization then runs again on what is left, until it
//! succeeds. The derived struct stays the single schema, and the result is still a usable
//! value (the bad keys count as absent), so checks across fields can go on. Which top-level
//! keys were dropped is kept, so those checks can stay quiet about keys already reported.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::suggest::{did_you_mean, foreign_key, value_hint};

/// A table's value after recovery.
#[derive(Debug)]
pub(super) struct Recovered<T> {
    pub value: T,
    /// Top-level keys that were removed because something in them was wrong.
    pub dropped: BTreeSet<String>,
    /// Something could not be pinned to any key, so `value` is only the default.
    pub wholly_failed: bool,
}

impl<T> Recovered<T> {
    /// Whether any of these keys was dropped (or everything was).
    pub fn dropped_any(&self, keys: &[&str]) -> bool {
        self.wholly_failed || keys.iter().any(|k| self.dropped.contains(*k))
    }
}

/// The field names expected in the table at a key path (empty path: the table itself), for
/// "did you mean" hints on unknown keys. `None` where any key is fine (like `env`).
pub(super) type Schema<'a> = &'a dyn Fn(&[String]) -> Option<&'static [&'static str]>;

pub(super) fn deserialize<T: for<'de> Deserialize<'de> + Default>(
    table: &DeTable<'_>,
    span: Range<usize>,
    schema: Schema<'_>,
    mut report: impl FnMut(Range<usize>, String),
) -> Recovered<T> {
    let mut table = table.clone();
    let mut dropped = BTreeSet::new();
    // Each round removes a key, so this ends; the bound is a guard against a parser that
    // reports an error inside a key it does not let us remove.
    for _ in 0..=count_keys(&table) {
        let de = ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(table.clone())));
        let error = match T::deserialize(de) {
            Ok(value) => {
                return Recovered {
                    value,
                    dropped,
                    wholly_failed: false,
                };
            }
            Err(error) => error,
        };
        let error_span = error.span().unwrap_or(span.clone());
        let Some(located) = locate(&table, &error_span) else {
            report(error_span, error.message().to_owned());
            break;
        };
        let (parent, key) = located.path.split_at(located.path.len() - 1);
        let key = &key[0];
        let message = if located.on_key {
            // The only error serde raises at a key of a struct is an unknown field.
            let within = if parent.is_empty() {
                String::new()
            } else {
                format!(" in `{}`", parent.join("."))
            };
            let suggestion =
                schema(parent).and_then(|fields| did_you_mean(key, fields.iter().copied()));
            if let (true, Some(meant)) = (parent.is_empty(), suggestion) {
                // The key was most likely meant as `meant`, so checks on `meant` (such as
                // "no `cmd` given" after `cmnd`) would only repeat this error.
                dropped.insert(meant.to_owned());
            }
            // A key from another tool (`command`, `environment`) is too far from ours for a
            // typo distance; it gets its translation when the table is a service's.
            let foreign = schema(parent)
                .filter(|fields| fields.contains(&"cmd"))
                .and(suggestion.is_none().then(|| foreign_key(key)).flatten());
            if let (true, Some((meant, _))) = (parent.is_empty(), foreign) {
                dropped.insert(meant.to_owned());
            }
            let hint = match (suggestion, foreign) {
                (Some(s), _) => format!(" (did you mean `{s}`?)"),
                (None, Some((_, advice))) => format!(": {advice}"),
                (None, None) => String::new(),
            };
            format!("unknown field `{key}`{within}{hint}")
        } else {
            let advice = value_hint(&located.path, error.message())
                .map(|a| format!("; {a}"))
                .unwrap_or_default();
            format!("`{}`: {}{advice}", located.path.join("."), error.message())
        };
        report(error_span, message);
        remove(&mut table, &located.path);
        dropped.insert(located.path[0].clone());
    }
    Recovered {
        value: T::default(),
        dropped,
        wholly_failed: true,
    }
}

struct Located {
    path: Vec<String>,
    /// The error is at the key itself, not its value.
    on_key: bool,
}

/// The path of the innermost key whose key or value span holds `span`.
fn locate(table: &DeTable<'_>, span: &Range<usize>) -> Option<Located> {
    let holds = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    for (key, value) in table.iter() {
        if holds(key.span()) {
            return Some(Located {
                path: vec![key.get_ref().to_string()],
                on_key: true,
            });
        }
        if holds(value.span()) {
            let mut located = match value.get_ref() {
                DeValue::Table(inner) => locate(inner, span),
                _ => None,
            }
            .unwrap_or(Located {
                path: Vec::new(),
                on_key: false,
            });
            located.path.insert(0, key.get_ref().to_string());
            return Some(located);
        }
    }
    // A `[table]` header's value span may not cover the keys below it; look deeper.
    for (key, value) in table.iter() {
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(mut located) = locate(inner, span)
        {
            located.path.insert(0, key.get_ref().to_string());
            return Some(located);
        }
    }
    None
}

fn remove(table: &mut DeTable<'_>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        table.remove(first.as_str());
    } else if let Some(value) = table.get_mut(first.as_str())
        && let DeValue::Table(inner) = value.get_mut()
    {
        remove(inner, rest);
    }
}

fn count_keys(table: &DeTable<'_>) -> usize {
    table
        .values()
        .map(|v| match v.get_ref() {
            DeValue::Table(inner) => 1 + count_keys(inner),
            _ => 1,
        })
        .sum()
}
