//! Double-quoted strings for the formats runpm writes (TOML by `import`, YAML by the
//! Kubernetes export, systemd's unit syntax): the escapes they share, and each format's own
//! for the characters that need one besides.

use std::fmt::Write;

/// `"…"` with `\"`, `\\`, `\n`, `\t` and `\r`, and `other(c)` for any other character that
/// it says needs an escape.
pub fn double_quoted(value: &str, other: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => match other(c) {
                Some(escape) => out.push_str(&escape),
                None => out.push(c),
            },
        }
    }
    out.push('"');
    out
}

/// `\uXXXX` (upper-case hex digits when `upper`) for the control characters, and for the
/// characters `also` names.
pub fn unicode_escape(c: char, upper: bool, also: impl Fn(char) -> bool) -> Option<String> {
    (c.is_control() || also(c)).then(|| {
        let mut out = String::new();
        if upper {
            let _ = write!(out, "\\u{:04X}", c as u32);
        } else {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_escapes_then_the_formats_own() {
        let toml = double_quoted("a\"b\\c\nd\u{1}", |c| unicode_escape(c, true, |_| false));
        assert_eq!(toml, r#""a\"b\\c\nd\u0001""#);
        let plain = double_quoted("tab\there", |_| None);
        assert_eq!(plain, r#""tab\there""#);
    }
}
