//! YAML (and JSON, which YAML 1.2 contains) read into a small tree that remembers where each
//! value was written, so every complaint about an imported file names its line and column.
//!
//! The parser is saphyr (pure Rust, maintained, YAML 1.2; serde_yaml is deprecated): it keeps
//! a span on every node, which a serde-based reader would lose after the syntax check. The
//! tree here is deliberately small: scalars as text (the importers decide what a value
//! means), sequences, and mappings in file order with `<<` merge keys applied, as docker
//! compose files use them for shared blocks (`<<: *defaults`).

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::error::{ImportError, Position};

/// A value and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: Position,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text (`true`, `12`, `0.5` become text too): each importer decides what a
    /// value means where it reads it.
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys in file order, each with the position of the key itself.
    Map(Vec<(String, Position, Node)>),
}

impl Node {
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Position, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// What kind of value this is, for messages ("expected a list, found a mapping").
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses `text` (the first document) into a tree; a syntax error carries its position.
pub fn parse(file: &str, text: &str) -> Result<Node, ImportError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| ImportError::Syntax {
        file: file.to_owned(),
        at: Position {
            line: e.marker().line(),
            column: e.marker().col() + 1,
        },
        message: e.info().to_owned(),
    })?;
    match docs.into_iter().next() {
        Some(doc) => convert(file, &doc),
        None => Ok(Node {
            at: Position { line: 1, column: 1 },
            value: Value::Null,
        }),
    }
}

fn position(node: &MarkedYaml) -> Position {
    Position {
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    }
}

fn convert(file: &str, node: &MarkedYaml) -> Result<Node, ImportError> {
    let at = position(node);
    let value = match &node.data {
        YamlData::Value(scalar) => scalar_value(scalar),
        YamlData::Representation(text, _, _) => Value::Scalar(text.to_string()),
        YamlData::Tagged(_, inner) => return convert(file, inner),
        YamlData::Sequence(items) => Value::Seq(
            items
                .iter()
                .map(|item| convert(file, item))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut entries: Vec<(String, Position, Node)> = Vec::new();
            let mut merged: Vec<(String, Position, Node)> = Vec::new();
            for (key, value) in map {
                let key_at = position(key);
                let Some(key_text) = scalar_text(key) else {
                    return Err(ImportError::Invalid {
                        file: file.to_owned(),
                        at: key_at,
                        message: "a mapping key must be a plain value".into(),
                    });
                };
                let value = convert(file, value)?;
                if key_text == "<<" {
                    // A merge key: the keys of the mapping (or of each mapping in a list) that
                    // the mapping itself does not set.
                    let sources = match value.value {
                        Value::Seq(items) => items,
                        _ => vec![value],
                    };
                    for source in sources {
                        match source.value {
                            Value::Map(more) => merged.extend(more),
                            _ => {
                                return Err(ImportError::Invalid {
                                    file: file.to_owned(),
                                    at: source.at,
                                    message: "`<<` merges a mapping (or a list of them)".into(),
                                });
                            }
                        }
                    }
                } else {
                    entries.push((key_text, key_at, value));
                }
            }
            for (key, key_at, value) in merged {
                if !entries.iter().any(|(k, _, _)| *k == key) {
                    entries.push((key, key_at, value));
                }
            }
            Value::Map(entries)
        }
        YamlData::Alias(_) | YamlData::BadValue => Value::Null,
    };
    Ok(Node { at, value })
}

fn scalar_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Scalar(b.to_string()),
        Scalar::Integer(i) => Value::Scalar(i.to_string()),
        Scalar::FloatingPoint(f) => Value::Scalar(f.to_string()),
        Scalar::String(s) => Value::Scalar(s.to_string()),
    }
}

fn scalar_text(node: &MarkedYaml) -> Option<String> {
    match &node.data {
        YamlData::Value(scalar) => match scalar_value(scalar) {
            Value::Scalar(s) => Some(s),
            _ => None,
        },
        YamlData::Representation(text, _, _) => Some(text.to_string()),
        _ => None,
    }
}

/// Typed access with errors that say where and what was expected.
impl Node {
    fn wrong(&self, file: &str, what: &str, expected: &str) -> ImportError {
        ImportError::invalid(
            file,
            self.at,
            format!("{what}: expected {expected}, found {}", self.kind()),
        )
    }

    pub fn text(&self, file: &str, what: &str) -> Result<String, ImportError> {
        self.str()
            .map(str::to_owned)
            .ok_or_else(|| self.wrong(file, what, "a string"))
    }

    pub fn items(&self, file: &str, what: &str) -> Result<&[Node], ImportError> {
        match &self.value {
            Value::Seq(items) => Ok(items),
            _ => Err(self.wrong(file, what, "a list")),
        }
    }

    pub fn map(&self, file: &str, what: &str) -> Result<&[(String, Position, Node)], ImportError> {
        match &self.value {
            Value::Map(entries) => Ok(entries),
            _ => Err(self.wrong(file, what, "a mapping")),
        }
    }

    /// A list of strings (numbers count: `["CMD", "pg_isready", 5]`).
    pub fn texts(&self, file: &str, what: &str) -> Result<Vec<String>, ImportError> {
        self.items(file, what)?
            .iter()
            .map(|item| item.text(file, what))
            .collect()
    }

    pub fn uint(&self, file: &str, what: &str) -> Result<u64, ImportError> {
        self.str()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| self.wrong(file, what, "a whole number"))
    }

    pub fn boolean(&self, file: &str, what: &str) -> Result<bool, ImportError> {
        match self.str() {
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            _ => Err(self.wrong(file, what, "true or false")),
        }
    }

    pub fn invalid(&self, file: &str, message: impl Into<String>) -> ImportError {
        ImportError::invalid(file, self.at, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_merge_keys_apply() {
        let doc = parse(
            "c.yaml",
            "x: &d\n  a: 1\n  b: two\ny:\n  <<: *d\n  b: three\n",
        )
        .unwrap();
        let y = doc.get("y").unwrap();
        assert_eq!(y.get("a").unwrap().str(), Some("1"));
        assert_eq!(y.get("b").unwrap().str(), Some("three"));
        assert_eq!(
            doc.get("x").unwrap().get("b").unwrap().at,
            Position { line: 3, column: 6 }
        );
    }

    #[test]
    fn json_is_read_as_yaml_with_positions() {
        let doc = parse(
            "e.json",
            "{\n\t\"apps\": [{\"name\": \"api\", \"instances\": 2}]\n}\n",
        )
        .unwrap();
        let Value::Seq(apps) = &doc.get("apps").unwrap().value else {
            panic!()
        };
        assert_eq!(apps[0].get("instances").unwrap().str(), Some("2"));
        assert_eq!(apps[0].at.line, 2);
    }

    #[test]
    fn syntax_errors_name_the_line_and_column() {
        let err = parse("c.yaml", "services:\n  web:\n    command: [a, b\n").unwrap_err();
        let ImportError::Syntax { at, .. } = err else {
            panic!("{err:?}")
        };
        assert!(at.line >= 3, "{at:?}");
    }
}
