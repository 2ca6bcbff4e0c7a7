//! The small languages of the source formats: durations (Go's `1m30s`, systemd's `1min 30s`),
//! sizes (docker's `512m`, systemd's `4G`), and POSIX shell words.

use std::time::Duration;

/// A sequence of `NUMBER UNIT` parts (`1m30s`, `1min 30s`, `1.5s`), the units looked up in
/// `units` (name, seconds); `bare` is the unit of a number without one, if allowed.
fn duration_in(text: &str, units: &[(&str, f64)], bare: Option<f64>) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = rest[number_end..].trim_start();
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let scale = if unit.is_empty() {
            bare?
        } else {
            units.iter().find(|(name, _)| *name == unit)?.1
        };
        total += number * scale;
        rest = rest[unit_end..].trim_start();
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Go's `time.ParseDuration`, as docker compose reads `interval` and `stop_grace_period`.
pub fn go_duration(text: &str) -> Option<Duration> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    if text.trim() == "0" {
        return Some(Duration::ZERO);
    }
    duration_in(text, UNITS, None)
}

/// systemd's time spans (`RestartSec=5`, `1min 30s`, `100ms`); a bare number is seconds.
pub fn systemd_duration(text: &str) -> Option<Duration> {
    const UNITS: &[(&str, f64)] = &[
        ("usec", 1e-6),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("msec", 1e-3),
        ("ms", 1e-3),
        ("seconds", 1.0),
        ("second", 1.0),
        ("sec", 1.0),
        ("s", 1.0),
        ("minutes", 60.0),
        ("minute", 60.0),
        ("min", 60.0),
        ("m", 60.0),
        ("hours", 3600.0),
        ("hour", 3600.0),
        ("hr", 3600.0),
        ("h", 3600.0),
        ("days", 86400.0),
        ("day", 86400.0),
        ("d", 86400.0),
        ("weeks", 604_800.0),
        ("week", 604_800.0),
        ("w", 604_800.0),
    ];
    duration_in(text, UNITS, Some(1.0))
}

/// A humantime duration as runpm itself reads it, or a Go one.
pub fn any_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim())
        .ok()
        .or_else(|| go_duration(text))
}

/// `NUMBER[UNIT]` with binary units of one or two letters (`512m`, `1gb`, `4G`): docker's and
/// systemd's sizes, both powers of 1024.
pub fn binary_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..number_end].parse().ok()?;
    let shift = match text[number_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    let bytes = number * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A word for `/bin/sh`, quoted only when needed.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a command line into words as `sh` would without expanding anything: blanks
/// separate, `'…'` is literal, `"…"` and `\` escape. `None` when a quote is not closed, or
/// when the line uses the shell (`|`, `;`, `&`, `<`, `>`, `$`, backquote, globs), which
/// only a shell can run.
pub fn shell_split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => w.push(c),
                            '\n' => {}
                            c => {
                                w.push('\\');
                                w.push(c);
                            }
                        },
                        '$' | '`' => return None,
                        c => w.push(c),
                    }
                }
            }
            '\\' => {
                let next = chars.next()?;
                if next != '\n' {
                    word.get_or_insert_with(String::new).push(next);
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[' | '~' | '#' => {
                return None;
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_each_dialect() {
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(go_duration("10"), None);
        assert_eq!(systemd_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(systemd_duration("1min 30s"), Some(Duration::from_secs(90)));
        assert_eq!(systemd_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(systemd_duration("infinity"), None);
        assert_eq!(any_duration("1m 30s"), Some(Duration::from_secs(90)));
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(binary_size("512m"), Some(512 << 20));
        assert_eq!(binary_size("1gb"), Some(1 << 30));
        assert_eq!(binary_size("4G"), Some(4 << 30));
        assert_eq!(binary_size("1000"), Some(1000));
        assert_eq!(binary_size("lots"), None);
    }

    #[test]
    fn shell_words_round_trip() {
        let argv: Vec<String> = ["a b", "it's", "$HOME", "plain"].map(String::from).into();
        assert_eq!(shell_split(&shell_join(&argv)), Some(argv));
        assert_eq!(
            shell_split("a \"b c\" d\\ e"),
            Some(vec!["a".into(), "b c".into(), "d e".into()])
        );
        assert_eq!(shell_split("a | b"), None);
        assert_eq!(shell_split("echo $HOME"), None);
        assert_eq!(shell_split("'open"), None);
    }
}
