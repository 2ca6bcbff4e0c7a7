//! systemd service units (`*.service`), imported together so that `After=`/`Requires=`
//! between them become `depends_on`.
//!
//! | systemd                                   | runpm                                       |
//! |-------------------------------------------|---------------------------------------------|
//! | `ExecStart=` (quoting, C escapes, `$$`, specifiers) | `cmd`; `shell` when it uses `$VAR` (systemd substitutes, runpm's `sh` does) or is `/bin/sh -c SCRIPT` |
//! | several `ExecStart=` (`Type=oneshot`)     | one `shell` running them in turn (`&&`)     |
//! | `ExecStart=` prefixes `-` `@` `:` `+` `!`  | `-`: `|| true`; `:`: no substitution; `@`, `+`, `!`: reported |
//! | `WorkingDirectory=` (default `/`)         | `cwd`                                       |
//! | `Environment=`, `EnvironmentFile=`        | `env`, `env_file`                           |
//! | `User=`, `Group=`                         | `user`, `group` when they exist here        |
//! | `Type=notify`, `Type=oneshot`             | `ready = { notify = true }`; a task (`restart = "never"`) |
//! | `Restart=`, `RestartSec=`, `RestartSteps=`+`RestartMaxDelaySec=` | `restart`, `restart_delay`, `restart_delay_max` |
//! | `StartLimitBurst=`, `StartLimitIntervalSec=` | `max_restarts` (burst − 1), `restart_window` |
//! | `SuccessExitStatus=`, `WatchdogSec=`, `TimeoutStartSec=` | `success_exit_codes`, `watchdog`, `ready_timeout` |
//! | `KillSignal=`, `TimeoutStopSec=`, `KillMode=` | `stop_signal`, `kill_timeout`, `kill_mode` |
//! | `After=`/`Requires=`/`Wants=`/`BindsTo=` between imported units | `depends_on` (`completed` on a restarting oneshot) |
//! | `Limit*=`, `MemoryMax=`, `MemoryHigh=`, `CPUQuota=`, `CPUWeight=`, `TasksMax=` | `rlimits`, `memory_max`, `memory_high`, `cpu_max`, `cpu_weight`, `pids_max` |
//! | `[Install] WantedBy=` (absent)            | (`autostart = false`)                       |
//!
//! Specifiers are resolved as the system manager would (`%n`, `%N`, `%p`, `%i`, `%h`=/root,
//! `%u`=root, `%t`=/run, `%H`…); the rest are reported. `runpmctl export systemd`'s own
//! readiness loop (`ExecStartPost=/bin/sh -c "until PROBE …"`) is read back as `ready.exec`,
//! so exporting and importing again keeps a config's meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use camino::Utf8PathBuf;

use super::error::{ImportError, Position};
use super::model::{Command, Imported, Limit, Probe, Service};
use super::words::{binary_size, shell_quote, shell_split, systemd_duration};
use super::{Source, account_exists, service_name};
use crate::config::{Condition, RestartPolicy, Signal};

/// One `Key=Value` line, with its section and line number.
struct Entry {
    section: String,
    key: String,
    value: String,
    line: usize,
}

/// A unit file's assignments in order; continuation lines joined, comments dropped.
fn parse(file: &str, text: &str) -> Result<Vec<Entry>, ImportError> {
    let mut entries = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                Some(name) => section = name.to_owned(),
                None => {
                    return Err(ImportError::Syntax {
                        file: file.to_owned(),
                        at: Position {
                            line: i + 1,
                            column: 1,
                        },
                        message: "a section header is `[Name]`".into(),
                    });
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ImportError::Syntax {
                file: file.to_owned(),
                at: Position {
                    line: i + 1,
                    column: raw.len() - raw.trim_start().len() + 1,
                },
                message: "expected `Key=Value`, a `[Section]` or a comment".into(),
            });
        };
        if section.is_empty() {
            return Err(ImportError::Syntax {
                file: file.to_owned(),
                at: Position {
                    line: i + 1,
                    column: 1,
                },
                message: "an assignment before the first `[Section]`".into(),
            });
        }
        let mut value = value.trim().to_owned();
        // A trailing backslash continues the value on the next line (comment lines in
        // between are skipped), joined with a space.
        while value.ends_with('\\') {
            value.pop();
            match lines.next() {
                Some((_, next)) if next.trim_start().starts_with(['#', ';']) => {}
                Some((_, next)) => {
                    value.push(' ');
                    value.push_str(next.trim());
                }
                None => break,
            }
        }
        entries.push(Entry {
            section: section.clone(),
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
            line: i + 1,
        });
    }
    Ok(entries)
}

/// The unit's name parts, for specifiers.
struct UnitName {
    /// `web@a.service`
    full: String,
    /// `web@a`
    without_suffix: String,
    /// `web`
    prefix: String,
    /// `a`
    instance: String,
}

impl UnitName {
    fn new(full: &str) -> UnitName {
        let without_suffix = full.rsplit_once('.').map_or(full, |(n, _)| n).to_owned();
        let (prefix, instance) = match without_suffix.split_once('@') {
            Some((p, i)) => (p.to_owned(), i.to_owned()),
            None => (without_suffix.clone(), String::new()),
        };
        UnitName {
            full: full.to_owned(),
            without_suffix,
            prefix,
            instance,
        }
    }
}

/// systemd's unit name unescaping: `-` is `/`, `\xNN` a byte.
fn unescape_name(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' => out.push(b'/'),
            b'\\' if bytes.get(i + 1) == Some(&b'x') => {
                match text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => out.push(b'\\'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves specifiers as the system manager would; those it cannot know here are kept
/// and listed in `unresolved`.
fn specifiers(text: &str, unit: &UnitName, unresolved: &mut BTreeSet<char>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let hostname = || {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default()
        };
        let value = match spec {
            '%' => "%".to_owned(),
            'n' => unit.full.clone(),
            'N' => unit.without_suffix.clone(),
            'p' => unit.prefix.clone(),
            'P' => unescape_name(&unit.prefix),
            'i' => unit.instance.clone(),
            'I' => unescape_name(&unit.instance),
            'j' => unit.prefix.rsplit('-').next().unwrap_or("").to_owned(),
            'J' => unescape_name(unit.prefix.rsplit('-').next().unwrap_or("")),
            'f' => {
                let name = if unit.instance.is_empty() {
                    &unit.prefix
                } else {
                    &unit.instance
                };
                format!("/{}", unescape_name(name).trim_start_matches('/'))
            }
            // The system manager's own user, whatever the unit's User= says.
            'u' | 'g' => "root".into(),
            'U' | 'G' => "0".into(),
            'h' => "/root".into(),
            's' => "/bin/sh".into(),
            't' => "/run".into(),
            'S' => "/var/lib".into(),
            'C' => "/var/cache".into(),
            'L' => "/var/log".into(),
            'E' => "/etc".into(),
            'T' => "/tmp".into(),
            'V' => "/var/tmp".into(),
            'H' => hostname(),
            'l' => hostname().split('.').next().unwrap_or("").to_owned(),
            other => {
                unresolved.insert(other);
                format!("%{other}")
            }
        };
        out.push_str(&value);
    }
    out
}

/// Splits a value into words as systemd does: blanks separate, `"…"` and `'…'` quote, C
/// escapes (`\n`, `\t`, `\"`, `\\`, `\xNN`, `\s`…) inside and outside quotes.
fn words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        loop {
            let Some(c) = chars.next() else {
                if let Some(q) = quote {
                    return Err(format!("the quote {q} is not closed"));
                }
                break;
            };
            match c {
                '\\' => {
                    let escaped = chars.next().ok_or("a trailing backslash")?;
                    match escaped {
                        'n' => word.push('\n'),
                        't' => word.push('\t'),
                        'r' => word.push('\r'),
                        'a' => word.push('\x07'),
                        'b' => word.push('\x08'),
                        'f' => word.push('\x0c'),
                        'v' => word.push('\x0b'),
                        's' => word.push(' '),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).collect();
                            let byte = u8::from_str_radix(&hex, 16)
                                .map_err(|_| format!("`\\x{hex}` is not a hex escape"))?;
                            word.push(char::from(byte));
                        }
                        other => word.push(other),
                    }
                }
                q if quote == Some(q) => quote = None,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                c if c.is_whitespace() && quote.is_none() => break,
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

/// One `ExecStart=` line, read.
struct Exec {
    argv: Vec<String>,
    /// `-`: a failing exit code is ignored.
    ignore_failure: bool,
    /// `$VAR`/`${VAR}` were used: only a shell can substitute them for runpm.
    uses_variables: bool,
}

fn exec(
    value: &str,
    unit: &UnitName,
    unresolved: &mut BTreeSet<char>,
    s: &mut Service,
) -> Result<Exec, String> {
    let mut rest = value.trim_start();
    let mut ignore_failure = false;
    let mut substitute = true;
    while let Some(c) = rest.chars().next().filter(|c| "-@:+!".contains(*c)) {
        match c {
            '-' => ignore_failure = true,
            ':' => substitute = false,
            '@' => s.lose(
                "ExecStart= prefix `@` (a different argv[0]) is not imported; the program sees \
                 its own path",
            ),
            _ => s.lose(format!(
                "ExecStart= prefix `{c}` (privileges) is not imported: runpm runs the program \
                 as `user`, or as itself"
            )),
        }
        rest = &rest[1..];
    }
    let mut argv = words(rest)?;
    if argv.is_empty() {
        return Err("an empty command".into());
    }
    let mut uses_variables = false;
    for word in &mut argv {
        *word = specifiers(word, unit, unresolved);
        if substitute && has_variable(word) {
            uses_variables = true;
        }
    }
    if !uses_variables && substitute {
        for word in &mut argv {
            *word = word.replace("$$", "$");
        }
    }
    Ok(Exec {
        argv,
        ignore_failure,
        uses_variables,
    })
}

/// Whether a word refers to a variable (`$NAME`, `${NAME}`), `$$` being a literal `$`.
fn has_variable(word: &str) -> bool {
    let bytes = word.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            match bytes.get(i + 1) {
                Some(b'$') => i += 1,
                Some(b'{') => return true,
                Some(c) if c.is_ascii_alphabetic() || *c == b'_' => return true,
                _ => {}
            }
        }
        i += 1;
    }
    false
}

/// A word with systemd's variables as a POSIX shell word: `$NAME` alone splits into words
/// (as systemd does), `${NAME}` inside a word stays one word.
fn shell_word(word: &str) -> String {
    if !has_variable(word) {
        return shell_quote(&word.replace("$$", "$"));
    }
    let bytes = word.as_bytes();
    if word.len() > 1
        && bytes[0] == b'$'
        && word[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return word.to_owned();
    }
    let mut out = String::from("\"");
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                out.push_str("\\$");
            }
            '$' if chars.peek() == Some(&'{') => {
                out.push('$');
                for c in chars.by_ref() {
                    out.push(c);
                    if c == '}' {
                        break;
                    }
                }
            }
            '$' if chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                out.push_str("${");
                while let Some(&c) = chars
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
                {
                    out.push(c);
                    chars.next();
                }
                out.push('}');
            }
            '"' | '\\' | '`' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn script(exec: &Exec) -> String {
    let line = if exec.uses_variables {
        exec.argv
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        exec.argv
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if exec.ignore_failure {
        format!("{{ {line} || true; }}")
    } else {
        line
    }
}

/// The probe of `runpmctl export systemd`'s readiness loop, if `argv` is one.
fn export_probe(argv: &[String]) -> Option<Vec<String>> {
    let [sh, c, script] = argv else { return None };
    if sh != "/bin/sh" || c != "-c" {
        return None;
    }
    let probe = script
        .strip_prefix("until ")?
        .strip_suffix(" >/dev/null 2>&1; do sleep 0.1; done")?;
    shell_split(probe)
}

/// A unit read, before dependencies are resolved.
struct Unit {
    service: Service,
    oneshot: bool,
    after: Vec<String>,
    requires: Vec<String>,
}

pub(super) fn import(
    files: &[(Utf8PathBuf, Source)],
    imported: &mut Imported,
) -> Result<(), ImportError> {
    let mut units = Vec::new();
    for (path, source) in files {
        let full = match path.file_name() {
            Some(n) if n.ends_with(".service") => n.to_owned(),
            Some(n) => format!("{}.service", path.file_stem().unwrap_or(n)),
            None => "unit.service".into(),
        };
        units.push(one(source, &UnitName::new(&full))?);
    }
    let by_unit: BTreeMap<String, (String, bool, RestartPolicy)> = files
        .iter()
        .zip(&units)
        .map(|((path, _), u)| {
            let stem = path.file_stem().unwrap_or("").to_owned();
            (
                format!("{stem}.service"),
                (
                    u.service.name.clone(),
                    u.oneshot,
                    u.service.restart.unwrap_or_default(),
                ),
            )
        })
        .collect();
    for mut unit in units {
        let all: BTreeSet<&String> = unit.after.iter().chain(&unit.requires).collect();
        for dep in all {
            let Some((name, oneshot, restart)) = by_unit.get(dep.as_str()) else {
                if !dep.ends_with(".target") {
                    unit.service.lose(format!(
                        "the dependency on {dep} (not imported): import its unit too, or start it \
                         before runpm"
                    ));
                }
                continue;
            };
            if !unit.after.contains(dep) {
                unit.service.lose(format!(
                    "{dep} without After=: systemd starts both at once, runpm starts {name} first"
                ));
            }
            // A oneshot counts as started once it exited successfully: runpm's `completed`,
            // which a never-restarting task's `ready` means too.
            let condition = if *oneshot && *restart != RestartPolicy::Never {
                Condition::Completed
            } else {
                Condition::Ready
            };
            unit.service.depends_on.insert(name.clone(), condition);
        }
        imported.services.push(unit.service);
    }
    Ok(())
}

fn one(source: &Source, unit: &UnitName) -> Result<Unit, ImportError> {
    let file = source.file.as_str();
    let entries = parse(file, &source.text)?;
    let mut s = Service::new(&service_name(&unit.without_suffix), file.to_owned());
    let mut unresolved = BTreeSet::new();
    let get = |section: &str, key: &str| -> Vec<&Entry> {
        let mut found: Vec<&Entry> = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.section == section && e.key == key)
        {
            // An empty assignment resets a list.
            if e.value.is_empty() {
                found.clear();
            } else {
                found.push(e);
            }
        }
        found
    };
    let last = |section: &str, key: &str| {
        get(section, key)
            .into_iter()
            .last()
            .map(|e| (e.value.clone(), e))
    };
    let invalid = |e: &Entry, message: String| {
        ImportError::invalid(
            file,
            Position {
                line: e.line,
                column: e.key.len() + 2,
            },
            message,
        )
    };
    let duration_of = |e: &Entry| {
        systemd_duration(&e.value)
            .ok_or_else(|| invalid(e, format!("{}=: `{}` is not a time span", e.key, e.value)))
    };

    let kind = last("Service", "Type");
    let oneshot = kind.as_ref().is_some_and(|(v, _)| v == "oneshot");
    match kind
        .as_ref()
        .map_or(("simple", None), |(v, e)| (v.as_str(), Some(*e)))
    {
        ("simple" | "exec" | "idle" | "oneshot", _) => {}
        ("notify" | "notify-reload", _) => s.ready = Some(Probe::Notify),
        ("forking", _) => s.lose(
            "Type=forking: runpm supervises programs that stay in the foreground; run it \
             without its daemonize option",
        ),
        ("dbus", _) => s.lose("Type=dbus: runpm does not watch the bus; add a `ready` check"),
        (other, e) => {
            let at = e.map_or(Position { line: 1, column: 1 }, |e| Position {
                line: e.line,
                column: e.key.len() + 2,
            });
            return Err(ImportError::invalid(
                file,
                at,
                format!("unknown Type=`{other}`"),
            ));
        }
    }

    // The command.
    let starts = get("Service", "ExecStart");
    let Some(first) = starts.first() else {
        return Err(ImportError::invalid(
            file,
            Position { line: 1, column: 1 },
            format!("{} has no ExecStart=", unit.full),
        ));
    };
    let mut execs = Vec::new();
    for e in &starts {
        execs.push(
            exec(&e.value, unit, &mut unresolved, &mut s)
                .map_err(|m| invalid(e, format!("ExecStart=: {m}")))?,
        );
    }
    s.command = Some(if execs.len() > 1 {
        if !oneshot {
            return Err(invalid(
                first,
                "several ExecStart= need Type=oneshot".into(),
            ));
        }
        Command::Shell(execs.iter().map(script).collect::<Vec<_>>().join(" && "))
    } else {
        let e = &execs[0];
        match e.argv.as_slice() {
            [sh, c, body]
                if !e.uses_variables && !e.ignore_failure && sh == "/bin/sh" && c == "-c" =>
            {
                Command::Shell(body.clone())
            }
            _ if e.ignore_failure => Command::Shell(script(e)),
            _ if e.uses_variables => Command::Shell(format!("exec {}", script(e))),
            _ => Command::Argv(e.argv.clone()),
        }
    });

    for e in &entries {
        let what = format!("{}=", e.key);
        match (e.section.as_str(), e.key.as_str()) {
            (
                "Unit",
                "Description"
                | "Documentation"
                | "After"
                | "Requires"
                | "Wants"
                | "BindsTo"
                | "Requisite"
                | "StartLimitIntervalSec"
                | "StartLimitBurst",
            )
            | (
                "Service",
                "StartLimitIntervalSec"
                | "StartLimitBurst"
                | "Type"
                | "ExecStart"
                | "RemainAfterExit"
                | "NotifyAccess"
                | "WorkingDirectory"
                | "Environment"
                | "EnvironmentFile"
                | "User"
                | "Group"
                | "Restart"
                | "RestartSec"
                | "RestartSteps"
                | "RestartMaxDelaySec"
                | "SuccessExitStatus"
                | "WatchdogSec"
                | "TimeoutStartSec"
                | "TimeoutStopSec"
                | "TimeoutSec"
                | "KillSignal"
                | "KillMode"
                | "MemoryMax"
                | "MemoryHigh"
                | "CPUQuota"
                | "CPUWeight"
                | "TasksMax",
            )
            | ("Install", "WantedBy" | "RequiredBy" | "Alias" | "Also") => {}
            ("Service", k) if k.starts_with("Limit") => {}
            ("Unit", "PartOf") if e.value.ends_with(".target") => {}
            ("Service", "ExecStartPost") => {
                match words(&e.value).ok().and_then(|w| export_probe(&w)) {
                    Some(probe) if s.ready.is_none() => s.ready = Some(Probe::Exec(probe)),
                    _ => s.lose(format!(
                        "{what}{}: runpm runs one command; add it to a `shell` script",
                        e.value
                    )),
                }
            }
            (
                "Service",
                "ExecStartPre" | "ExecStop" | "ExecStopPost" | "ExecReload" | "ExecCondition",
            ) => {
                s.lose(format!(
                    "{what}{}: runpm runs one command; add it to a `shell` script, or make \
                     it a task the service depends on",
                    e.value
                ));
            }
            (
                "Service",
                "StandardOutput" | "StandardError" | "StandardInput" | "SyslogIdentifier",
            ) => {
                s.lose(format!("{what}: runpm captures output into .runpm/logs"));
            }
            ("Service", "PIDFile") => s.lose("PIDFile=: runpm knows its service's pid"),
            (section, key) => s.lose(format!(
                "[{section}] {key}= is not imported: runpm has no equivalent"
            )),
        }
    }

    // Where and as whom.
    match last("Service", "WorkingDirectory") {
        Some((value, _)) => {
            let value = specifiers(value.trim_start_matches('-'), unit, &mut unresolved);
            let value = if value == "~" {
                "/root".to_owned()
            } else {
                value
            };
            s.cwd = Some(source.path(&value));
        }
        // A system unit runs in `/` unless told otherwise.
        None => s.cwd = Some("/".into()),
    }
    for e in get("Service", "Environment") {
        for word in words(&e.value).map_err(|m| invalid(e, format!("Environment=: {m}")))? {
            let word = specifiers(&word, unit, &mut unresolved);
            match word.split_once('=') {
                Some((k, v)) => {
                    s.env.insert(k.to_owned(), v.to_owned());
                }
                None => {
                    return Err(invalid(
                        e,
                        format!("Environment=: `{word}` is not KEY=VALUE"),
                    ));
                }
            }
        }
    }
    for (i, e) in get("Service", "EnvironmentFile").into_iter().enumerate() {
        let optional = e.value.starts_with('-');
        let path = specifiers(e.value.trim_start_matches('-'), unit, &mut unresolved);
        if i > 0 {
            s.lose(format!(
                "EnvironmentFile={path}: runpm reads one env_file; merge it into the first"
            ));
        } else if source.exists(&path) {
            s.env_file = Some(source.path(&path));
        } else if !optional {
            s.lose(format!(
                "EnvironmentFile={path} does not exist here: create it and set `env_file`"
            ));
        }
    }
    for (key, group) in [("User", false), ("Group", true)] {
        if let Some((value, _)) = last("Service", key) {
            let value = specifiers(&value, unit, &mut unresolved);
            if account_exists(group, &value) {
                if group {
                    s.group = Some(value);
                } else {
                    s.user = Some(value);
                }
            } else {
                s.lose(format!(
                    "{key}={value} does not exist on this machine: create it and set `{}`",
                    key.to_lowercase()
                ));
            }
        }
    }

    // Restarts.
    let restart = match last("Service", "Restart") {
        None => RestartPolicy::Never,
        Some((value, e)) => match value.as_str() {
            "no" => RestartPolicy::Never,
            "always" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure,
            "on-success" | "on-abnormal" | "on-abort" | "on-watchdog" => {
                s.lose(format!(
                    "Restart={value}: written `on-failure`, runpm's nearest policy"
                ));
                RestartPolicy::OnFailure
            }
            other => return Err(invalid(e, format!("unknown Restart=`{other}`"))),
        },
    };
    s.restart = Some(restart);
    if restart != RestartPolicy::Never {
        // systemd waits the same 100 ms before every restart unless RestartSteps= says more.
        let delay = match last("Service", "RestartSec") {
            Some((_, e)) => duration_of(e)?,
            None => Duration::from_millis(100),
        };
        s.restart_delay = Some(delay);
        s.restart_delay_max = Some(
            match (
                last("Service", "RestartSteps"),
                last("Service", "RestartMaxDelaySec"),
            ) {
                (Some(_), Some((_, e))) => duration_of(e)?,
                _ => delay,
            },
        );
        // systemd's default start limit: 5 starts within 10 s.
        // Older units set the start limit in [Service].
        let start_limit = |key: &str| last("Unit", key).or_else(|| last("Service", key));
        s.max_restarts = Some(match start_limit("StartLimitBurst") {
            Some((value, e)) => value
                .parse::<u32>()
                .map_err(|_| invalid(e, format!("StartLimitBurst=`{value}` is not a number")))?
                .saturating_sub(1),
            None => 4,
        });
        s.restart_window = Some(match start_limit("StartLimitIntervalSec") {
            Some((_, e)) => duration_of(e)?,
            None => Duration::from_secs(10),
        });
    }
    if let Some((value, e)) = last("Service", "SuccessExitStatus") {
        let mut codes = vec![0];
        for word in value.split_whitespace() {
            match word.parse::<i32>() {
                Ok(code) => codes.push(code),
                Err(_) if Signal::parse(word).is_some() => s.lose(format!(
                    "SuccessExitStatus={word}: runpm counts exit codes only"
                )),
                Err(_) => {
                    return Err(invalid(
                        e,
                        format!("SuccessExitStatus=: `{word}` is not an exit code"),
                    ));
                }
            }
        }
        s.success_exit_codes = Some(codes);
    }
    if let Some((_, e)) = last("Service", "WatchdogSec") {
        s.watchdog = Some(duration_of(e)?);
    }
    for key in ["TimeoutSec", "TimeoutStartSec"] {
        if let Some((value, e)) = last("Service", key)
            && value != "infinity"
            && s.ready.is_some()
            && !oneshot
        {
            s.ready_timeout = Some(duration_of(e)?);
        }
    }
    for key in ["TimeoutSec", "TimeoutStopSec"] {
        if let Some((value, e)) = last("Service", key) {
            if value == "infinity" {
                s.lose(format!(
                    "{key}=infinity: runpm always ends a stop with SIGKILL; `kill_timeout` \
                     sets when"
                ));
            } else {
                s.kill_timeout = Some(duration_of(e)?);
            }
        }
    }
    if let Some((value, e)) = last("Service", "KillSignal") {
        let signal =
            Signal::parse(&value).ok_or_else(|| invalid(e, format!("unknown signal `{value}`")))?;
        s.stop_signal = Some(signal.name().to_owned());
    }
    if let Some((value, e)) = last("Service", "KillMode") {
        match value.as_str() {
            "control-group" => {}
            "process" => s.kill_mode = Some("process"),
            "mixed" => s.lose("KillMode=mixed: runpm signals the whole group at once"),
            "none" => s.lose("KillMode=none: runpm always stops what it started"),
            other => return Err(invalid(e, format!("unknown KillMode=`{other}`"))),
        }
    }

    // Limits.
    for e in entries
        .iter()
        .filter(|e| e.section == "Service" && e.key.starts_with("Limit"))
    {
        let name = e.key["Limit".len()..].to_ascii_lowercase();
        let (soft, hard) = e
            .value
            .split_once(':')
            .map_or((e.value.as_str(), None), |(a, b)| (a, Some(b)));
        if hard.is_some_and(|h| h != soft) {
            s.lose(format!(
                "{}= hard limit `{}`: runpm sets both limits to `{soft}`",
                e.key,
                hard.unwrap_or_default()
            ));
        }
        let limit = if soft == "infinity" {
            Limit::Unlimited
        } else if let Some(n) = binary_size(soft) {
            Limit::Value(n)
        } else {
            s.lose(format!(
                "{}={}: not a number runpm can take",
                e.key, e.value
            ));
            continue;
        };
        s.rlimits.insert(name, limit);
    }
    for (key, field) in [
        ("MemoryMax", &mut s.memory_max),
        ("MemoryHigh", &mut s.memory_high),
    ] {
        if let Some((value, _)) = last("Service", key) {
            match binary_size(&value) {
                Some(n) => *field = Some(n),
                None => s
                    .lost
                    .push(format!("{key}={value}: only a size is imported")),
            }
        }
    }
    if let Some((value, e)) = last("Service", "CPUQuota") {
        let percent = value.strip_suffix('%').and_then(|p| p.parse().ok());
        s.cpu_max = Some(
            percent.ok_or_else(|| invalid(e, format!("CPUQuota=`{value}` is not a percentage")))?,
        );
    }
    if let Some((value, e)) = last("Service", "CPUWeight") {
        s.cpu_weight = Some(
            value
                .parse()
                .map_err(|_| invalid(e, format!("CPUWeight=`{value}` is not a number")))?,
        );
    }
    if let Some((value, e)) = last("Service", "TasksMax") {
        match value.parse() {
            Ok(n) => s.pids_max = Some(n),
            Err(_) if value == "infinity" => {}
            Err(_) => return Err(invalid(e, format!("TasksMax=`{value}` is not a number"))),
        }
    }

    // A unit that no target wants is not started at boot: runpm's `autostart = false`.
    if get("Install", "WantedBy").is_empty() && get("Install", "RequiredBy").is_empty() {
        s.autostart = Some(false);
        s.lose(
            "no [Install] WantedBy=: the unit was not started at boot, so it is not started \
             by `runpm up` (autostart = false)",
        );
    }
    if !unresolved.is_empty() {
        let list: Vec<String> = unresolved.iter().map(|c| format!("%{c}")).collect();
        s.lose(format!(
            "specifiers {} are kept as written: replace them with their values",
            list.join(", ")
        ));
    }
    let names = |key: &str| -> Vec<String> {
        get("Unit", key)
            .iter()
            .flat_map(|e| {
                e.value
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut requires = names("Requires");
    requires.extend(names("Wants"));
    requires.extend(names("BindsTo"));
    requires.extend(names("Requisite"));
    Ok(Unit {
        service: s,
        oneshot,
        after: names("After"),
        requires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_systemd_quoting() {
        assert_eq!(
            words(r#"/bin/echo "a b" 'c d' e\sf "x\"y" \x41"#).unwrap(),
            ["/bin/echo", "a b", "c d", "e f", "x\"y", "A"]
        );
        assert!(words("\"open").is_err());
    }

    #[test]
    fn specifiers_resolve_what_they_can() {
        let unit = UnitName::new("app@blue.service");
        let mut unresolved = BTreeSet::new();
        assert_eq!(
            specifiers("%n %N %p %i %h %u %U %t %%", &unit, &mut unresolved),
            "app@blue.service app@blue app blue /root root 0 /run %"
        );
        assert_eq!(specifiers("%m", &unit, &mut unresolved), "%m");
        assert!(unresolved.contains(&'m'));
    }

    #[test]
    fn variables_become_shell_words() {
        assert!(has_variable("${A}"));
        assert!(has_variable("$A"));
        assert!(!has_variable("$$A"));
        assert_eq!(shell_word("$OPTS"), "$OPTS");
        assert_eq!(shell_word("--port=${PORT}"), "\"--port=${PORT}\"");
        assert_eq!(shell_word("a$$b"), "'a$b'");
        assert_eq!(shell_word("a$$b${C}"), "\"a\\$b${C}\"");
    }

    #[test]
    fn the_export_readiness_loop_is_read_back() {
        let argv: Vec<String> = [
            "/bin/sh",
            "-c",
            "until pg_isready -q >/dev/null 2>&1; do sleep 0.1; done",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            export_probe(&argv),
            Some(vec!["pg_isready".into(), "-q".into()])
        );
    }
}
