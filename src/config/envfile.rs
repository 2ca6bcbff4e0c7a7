//! `env_file` contents: the dotenv subset that shells and Docker agree on.
//!
//! `KEY=VALUE` per line, blank lines and `#` comment lines ignored, an optional `export `
//! prefix (so the same file can be `source`d by a shell), and one pair of matching quotes
//! around the value stripped. Nothing is expanded or unescaped: a value means what it says,
//! which avoids a half-implemented shell.

/// A line that is not a variable assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadLine {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

/// The variables in file order (later ones win when applied), and every malformed line.
pub(super) fn parse(text: &str) -> (Vec<(String, String)>, Vec<BadLine>) {
    let mut vars = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            bad.push(BadLine { line: line_no, message: "expected `KEY=VALUE`".into() });
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            bad.push(BadLine { line: line_no, message: format!("invalid variable name `{key}`") });
            continue;
        }
        vars.push((key.to_owned(), unquote(value.trim()).to_owned()));
    }
    (vars, bad)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2
            && value.starts_with(quote)
            && value.ends_with(quote)
        {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        let text = "\
# database
DB_URL=postgres://localhost/x?a=b

export PORT = 8000
SINGLE='a b'
DOUBLE=\"c # d\"
EMPTY=
HALF=\"open
";
        let (vars, bad) = parse(text);
        assert!(bad.is_empty(), "{bad:?}");
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            vars,
            [
                ("DB_URL", "postgres://localhost/x?a=b"),
                ("PORT", "8000"),
                ("SINGLE", "a b"),
                ("DOUBLE", "c # d"),
                ("EMPTY", ""),
                ("HALF", "\"open"),
            ]
        );
    }

    #[test]
    fn reports_every_bad_line() {
        let (vars, bad) = parse("A=1\nnonsense\n=2\nB=2\n");
        assert_eq!(vars, [("A".into(), "1".into()), ("B".into(), "2".into())]);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(bad[0].message, "expected `KEY=VALUE`");
    }
}
