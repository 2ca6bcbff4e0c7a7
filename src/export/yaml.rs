//! A small YAML emitter for JSON values: block style, quoting whenever a plain scalar could be
//! read as something else.
//!
//! The manifest is built as a `serde_json::Value` (the types that matter are maps, lists,
//! strings, integers and booleans), and Kubernetes reads YAML or JSON alike. `serde_yaml` is
//! unmaintained and the YAML crates that replaced it are young, so this writes the subset
//! needed by hand. Being conservative keeps it correct under both YAML 1.1 (PyYAML, and
//! through it many tools) and 1.2 (Kubernetes' own parser): a string is left unquoted only
//! when it starts with a letter or `/`, holds nothing but letters, digits and `_./-`, and is
//! not one of YAML 1.1's booleans or null. Multi-line strings (shell scripts) are written as
//! literal blocks, so they stay readable.

use serde_json::Value;

/// `value` as a YAML document (no leading `---`), ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

/// Keys that read best first, in this order (Kubernetes' customary order); the others follow
/// alphabetically. `serde_json`'s map is sorted, which would put `args` before `command` and a
/// container's `name` in the middle.
const FIRST_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
];

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let rank = |key: &str| {
        FIRST_KEYS
            .iter()
            .position(|k| *k == key)
            .unwrap_or(usize::MAX)
    };
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        // The first key of a list item sits on the `- ` line, already indented.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        // Keys are field names and label keys: plain, or quoted on one line.
        out.push_str(&if is_plain(key) {
            key.clone()
        } else {
            double_quoted(key)
        });
        out.push(':');
        write_value(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            scalar => {
                write_scalar(out, scalar, indent + 2);
                out.push('\n');
            }
        }
    }
}

/// The value after `key:`.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, indent + 2);
            out.push('\n');
        }
    }
}

/// A scalar, or an empty map or list, on the current line. `indent` is where the lines of a
/// literal block go.
fn write_scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s, indent),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn write_string(out: &mut String, s: &str, indent: usize) {
    if is_plain(s) {
        out.push_str(s);
    } else if let Some(block) = literal_block(s, indent) {
        out.push_str(&block);
    } else {
        out.push_str(&double_quoted(s));
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Whether `s` reads back as the same string without quotes, in YAML 1.1 and 1.2.
fn is_plain(s: &str) -> bool {
    const RESERVED: &[&str] = &["y", "yes", "n", "no", "true", "false", "on", "off", "null"];
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// `|`, `|-` or `|+` and the lines, for a multi-line string whose every line can be written
/// as it is; `None` when quoting is safer.
fn literal_block(s: &str, indent: usize) -> Option<String> {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    if !body.contains('\n')
        || body.starts_with([' ', '\t'])
        || body
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_special_break(c))
        // A line of blanks would be read as (part of) an empty line.
        || body.lines().any(|l| !l.is_empty() && l.trim().is_empty())
    {
        return None;
    }
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut block = format!("|{chomp}\n");
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            block.push('\n');
        }
        if !line.is_empty() {
            pad(&mut block, indent);
            block.push_str(line);
        }
    }
    // The caller ends the line; kept trailing newlines beyond the first are empty lines.
    for _ in 1..trailing {
        block.push('\n');
    }
    Some(block)
}

/// Characters YAML 1.1 treats as line breaks or that must not appear raw.
fn is_special_break(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// A double-quoted scalar; its escapes are a subset both YAML versions share with JSON.
fn double_quoted(s: &str) -> String {
    crate::quote::double_quoted(s, |c| {
        crate::quote::unicode_escape(c, false, is_special_break)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_lists_and_scalars_in_block_style() {
        let doc = json!({
            "apiVersion": "apps/v1",
            "spec": {
                "replicas": 1,
                "containers": [
                    {"name": "web", "args": ["-m", "http.server", "8000"], "env": []},
                    {"name": "db", "ports": [{"containerPort": 6379}]}
                ],
                "labels": {}
            }
        });
        assert_eq!(
            to_yaml(&doc),
            "\
apiVersion: apps/v1
spec:
  containers:
    - name: web
      args:
        - \"-m\"
        - http.server
        - \"8000\"
      env: []
    - name: db
      ports:
        - containerPort: 6379
  labels: {}
  replicas: 1
"
        );
    }

    #[test]
    fn strings_that_would_change_meaning_are_quoted() {
        for (s, expected) in [
            ("web", "web"),
            ("/usr/bin/env", "/usr/bin/env"),
            ("yes", "\"yes\""),
            ("No", "\"No\""),
            ("null", "\"null\""),
            ("8000", "\"8000\""),
            ("1:30", "\"1:30\""),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("key: value", "\"key: value\""),
            ("- item", "\"- item\""),
            ("#comment", "\"#comment\""),
            ("$(VAR)", "\"$(VAR)\""),
            ("say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""),
            ("tab\there", "\"tab\\there\""),
            ("bell\u{7}", "\"bell\\u0007\""),
            ("line\u{2028}sep", "\"line\\u2028sep\""),
            ("REPLACE-ME:latest", "\"REPLACE-ME:latest\""),
        ] {
            let mut out = String::new();
            write_string(&mut out, s, 0);
            assert_eq!(out, expected, "for {s:?}");
        }
    }

    #[test]
    fn multi_line_strings_become_literal_blocks_with_the_right_chomping() {
        let doc = json!({"a": ["echo 1\necho 2\n"], "b": "x\n\ny", "c": "z\ny\n\n"});
        assert_eq!(
            to_yaml(&doc),
            "a:\n  - |\n    echo 1\n    echo 2\nb: |-\n  x\n\n  y\nc: |+\n  z\n  y\n\n"
        );
        // Where a block would be ambiguous, the string is quoted instead.
        let doc = json!({"a": "  indented\nfirst line", "b": "x\n   \ny", "c": "x\r\ny"});
        assert_eq!(
            to_yaml(&doc),
            "a: \"  indented\\nfirst line\"\nb: \"x\\n   \\ny\"\nc: \"x\\r\\ny\"\n"
        );
    }
}
