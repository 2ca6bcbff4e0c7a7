//! Reading the services' log files back, for `runpmctl logs` when no daemon runs: the files
//! under `STATE_DIR/logs/` outlive the daemon, and after a crash or a `runpm down` they are
//! where the last lines are.
//!
//! A file holds records `2026-11-22T03:45:12.345Z out <line>` (see `file`). Rotation moves
//! older records to `NAME.log.1`, `NAME.log.2`…, so a service's history is read newest file
//! first, and only as far back as the request needs.

use std::io;
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};

use super::capture::Stream;
use super::hub::LogLine;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot list the log directory `{path}`")]
    List {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no log file for `{name}` in `{dir}` (services that printed: {known})")]
    Unknown {
        name: String,
        dir: Utf8PathBuf,
        known: String,
    },
    #[error("cannot read the log file `{path}`")]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The services that have a log file in `dir`, sorted.
pub fn logged_services(dir: &Utf8Path) -> Result<Vec<String>, ReadError> {
    let entries = match dir.read_dir_utf8() {
        Ok(entries) => entries,
        // Nothing ever printed: no directory, and nothing to show.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReadError::List {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().strip_suffix(".log").map(str::to_owned))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    Ok(names)
}

/// The last `per_service` lines of each of `names` (every service with a file when empty)
/// printed at or after `since`, merged in time order.
pub fn read_logs(
    dir: &Utf8Path,
    names: &[String],
    per_service: usize,
    since: Option<SystemTime>,
) -> Result<Vec<LogLine>, ReadError> {
    let known = logged_services(dir)?;
    let names = if names.is_empty() {
        known.clone()
    } else {
        names.to_vec()
    };
    let mut all = Vec::new();
    for name in &names {
        if !known.contains(name) {
            return Err(ReadError::Unknown {
                name: name.clone(),
                dir: dir.to_owned(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        all.extend(service_lines(dir, name, per_service, since)?);
    }
    // Stable: a service's own lines keep their file order on equal timestamps.
    all.sort_by_key(|l| l.at);
    Ok(all)
}

/// One service's lines, newest file first until enough are found.
fn service_lines(
    dir: &Utf8Path,
    name: &str,
    n: usize,
    since: Option<SystemTime>,
) -> Result<Vec<LogLine>, ReadError> {
    let mut newest_first: Vec<LogLine> = Vec::new();
    for k in 0.. {
        let path = if k == 0 {
            dir.join(format!("{name}.log"))
        } else {
            dir.join(format!("{name}.log.{k}"))
        };
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(source) => return Err(ReadError::Read { path, source }),
        };
        let mut reached_since = false;
        for record in text.lines().rev() {
            let Some(line) = parse_record(name, record) else {
                continue;
            };
            if since.is_some_and(|since| line.at < since) {
                reached_since = true;
                break;
            }
            newest_first.push(line);
            if newest_first.len() >= n {
                break;
            }
        }
        if reached_since || newest_first.len() >= n {
            break;
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// `2026-11-22T03:45:12.345Z out text` as a line of `service`; `None` for anything else.
pub fn parse_record(service: &str, record: &str) -> Option<LogLine> {
    let (at, rest) = record.split_once(' ')?;
    let (marker, line) = rest.split_once(' ').unwrap_or((rest, ""));
    let stream = match marker {
        "out" => Stream::Stdout,
        "err" => Stream::Stderr,
        _ => return None,
    };
    Some(LogLine {
        service: service.to_owned(),
        at: humantime::parse_rfc3339(at).ok()?,
        stream,
        line: line.to_owned(),
        runpm: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(dir: &Utf8Path, file: &str, records: &[(u64, &str)]) {
        let text: String = records
            .iter()
            .map(|(s, l)| {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
                format!("{} out {l}\n", humantime::format_rfc3339_millis(at))
            })
            .collect();
        std::fs::write(dir.join(file), text).unwrap();
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{}:{}", l.service, l.line))
            .collect()
    }

    #[test]
    fn counts_per_service_across_rotated_files_and_merges_by_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        write(dir, "web.log.1", &[(1, "w1"), (3, "w2")]);
        write(dir, "web.log", &[(5, "w3")]);
        write(dir, "db.log", &[(2, "d1"), (4, "d2"), (6, "d3")]);
        assert_eq!(logged_services(dir).unwrap(), ["db", "web"]);
        let lines = read_logs(dir, &[], 2, None).unwrap();
        assert_eq!(texts(&lines), ["web:w2", "db:d2", "web:w3", "db:d3"]);
        let web = read_logs(dir, &["web".into()], 10, None).unwrap();
        assert_eq!(texts(&web), ["web:w1", "web:w2", "web:w3"]);
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_003);
        let recent = read_logs(dir, &[], usize::MAX, Some(since)).unwrap();
        assert_eq!(texts(&recent), ["web:w2", "db:d2", "web:w3", "db:d3"]);
        let err = read_logs(dir, &["nope".into()], 1, None).unwrap_err();
        assert!(err.to_string().contains("db, web"), "{err}");
    }

    #[test]
    fn records_keep_their_spaces_and_skip_garbage() {
        let line = parse_record("a", "2026-11-22T03:45:12.345Z err  two  spaces ").unwrap();
        assert_eq!(line.line, " two  spaces ");
        assert_eq!(line.stream, Stream::Stderr);
        assert!(parse_record("a", "not a record").is_none());
        assert_eq!(
            parse_record("a", "2026-11-22T03:45:12.345Z out")
                .unwrap()
                .line,
            ""
        );
    }
}
