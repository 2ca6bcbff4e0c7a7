//! Replies as text for people: the status table, per-service result lines, reload plans.
//!
//! Pure functions of the protocol's result types, so the output is tested here and the
//! binary only prints. Machine-readable output is the JSON result itself (`--json`).

use std::time::Duration;

use super::protocol::{Change, DependencyInfo, ExitInfo, ReloadResult, ServiceInfo};

/// A short uptime: `45s`, `3m12s`, `2h05m`, `3d04h`: two units at most, because an uptime
/// is read at a glance, not to the second.
pub fn format_uptime(uptime: Duration) -> String {
    let secs = uptime.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// How the most recent run ended: `code 1`, `SIGKILL`, `spawn failed`, or `-` for none.
pub fn last_exit(exits: &[ExitInfo]) -> String {
    match exits.last() {
        None => "-".to_owned(),
        Some(exit) if exit.reason == "spawn-failed" => "spawn failed".to_owned(),
        Some(ExitInfo {
            code: Some(code), ..
        }) => format!("code {code}"),
        Some(ExitInfo {
            signal: Some(signal),
            ..
        }) => signal.clone(),
        Some(_) => "-".to_owned(),
    }
}

/// What a service that has no process yet waits for: `db (starting), migrate, which exited
/// with code 1`.
fn waiting_for(s: &ServiceInfo) -> Option<String> {
    if s.waiting_for.is_empty() {
        return None;
    }
    let each: Vec<String> = s
        .waiting_for
        .iter()
        .map(
            |name| match s.dependencies.iter().find(|d| &d.name == name) {
                Some(DependencyInfo { why: Some(why), .. }) => why.clone(),
                Some(d) => format!("{} ({})", d.name, d.status),
                None => name.clone(),
            },
        )
        .collect();
    Some(each.join(", "))
}

/// What a glance at a service should add to its row: the `STATUS=` it sent, why it failed,
/// when it starts next.
pub fn info(s: &ServiceInfo) -> String {
    let mut parts = Vec::new();
    if let Some(waiting) = waiting_for(s) {
        parts.push(format!("waiting for {waiting}"));
    }
    if let Some(text) = &s.status_text {
        parts.push(format!("\"{text}\""));
    }
    if let Some(reason) = &s.reason {
        parts.push(reason.clone());
    }
    if let Some(why) = &s.not_ready {
        parts.push(format!("not ready: {why}"));
    }
    if let Some(next) = &s.next_start {
        parts.push(format!("next start {next}"));
    }
    if let Some(next) = s.next_run.as_deref().filter(|_| s.status == "waiting") {
        match humantime::parse_rfc3339_weak(next) {
            Ok(at) => parts.push(format!(
                "next run in {}",
                crate::supervisor::schedule::until(at, std::time::SystemTime::now())
            )),
            Err(_) => parts.push(format!("next run {next}")),
        }
    }
    parts.join("; ")
}

/// The `runpmctl status` table, header included, every line newline-terminated. An INFO
/// column follows when any service has something to add (see [`info`]).
pub fn status_table(services: &[ServiceInfo]) -> String {
    status_table_styled(services, false)
}

/// How a status reads at a glance on a terminal: green is well, yellow is on its way, red
/// needs a look, dim is deliberately down.
pub fn status_style(s: &ServiceInfo) -> anstyle::Style {
    use anstyle::{AnsiColor, Style};
    let colour = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
    match s.status.as_str() {
        "running" => colour(AnsiColor::Green),
        "exited" if s.completed => colour(AnsiColor::Green),
        "starting" | "stopping" => colour(AnsiColor::Yellow),
        "failed" | "backoff" | "exited" => colour(AnsiColor::Red).bold(),
        _ => Style::new().dimmed(),
    }
}

/// [`status_table`], with the STATUS cells coloured by [`status_style`] when `colour`.
pub fn status_table_styled(services: &[ServiceInfo], colour: bool) -> String {
    let with_info = services.iter().any(|s| !info(s).is_empty());
    let with_usage = services
        .iter()
        .any(|s| s.resources.memory_bytes.is_some() || s.resources.cpu_usec.is_some());
    let mut header = vec!["NAME", "STATUS", "PID", "UPTIME", "RESTARTS"];
    // Before LAST-EXIT, which stays the last column before INFO.
    if with_usage {
        header.extend(["MEM", "CPU"]);
    }
    header.push("LAST-EXIT");
    if with_info {
        header.push("INFO");
    }
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(services.iter().map(|s| {
            let mut row = vec![
                s.name.clone(),
                s.status.clone(),
                s.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                s.uptime_ms.map_or_else(
                    || "-".to_owned(),
                    |ms| format_uptime(Duration::from_millis(ms)),
                ),
                s.restarts.to_string(),
            ];
            if with_usage {
                row.extend(super::usage::cells(s));
            }
            row.push(last_exit(&s.exits));
            if with_info {
                row.push(info(s));
            }
            row
        }))
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (row_index, row) in rows.iter().enumerate() {
        let mut line = String::new();
        let style = match row_index.checked_sub(1) {
            Some(i) if colour => status_style(&services[i]),
            _ => anstyle::Style::new(),
        };
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else if i == 1 {
                // Padded outside the escape codes, so the columns stay aligned.
                let pad = width - cell.chars().count();
                line.push_str(&format!("{style}{cell}{style:#}{:pad$}  ", ""));
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line per service after start/stop/restart: `worker: running (pid 4313)`.
pub fn service_line(service: &ServiceInfo) -> String {
    let detail = if let Some(pid) = service.pid {
        Some(format!("pid {pid}"))
    } else if let Some(reason) = &service.reason {
        Some(reason.clone())
    } else if matches!(service.status.as_str(), "exited" | "failed" | "backoff")
        && !service.exits.is_empty()
    {
        Some(format!("last exit: {}", last_exit(&service.exits)))
    } else {
        None
    };
    match detail {
        Some(detail) => format!("{}: {} ({detail})", service.name, service.status),
        None => format!("{}: {}", service.name, service.status),
    }
}

/// The reload plan, one line per change, then the count of unchanged services:
///
/// ```text
/// dry run: nothing was changed
/// + web started
/// ~ worker restarted (cmd changed)
/// - old stopped
/// = 7 unchanged
/// ```
pub fn reload_plan(result: &ReloadResult) -> String {
    let mut out = String::new();
    if result.dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    for change in &result.changes {
        out.push_str(&change_line(change));
        out.push('\n');
    }
    out.push_str(&format!("= {} unchanged\n", result.unchanged));
    out
}

fn change_line(change: &Change) -> String {
    if change.action == "live" {
        return format!("~ {} limits changed (applied live)", change.name);
    }
    let sign = match change.action.as_str() {
        "started" => '+',
        "stopped" => '-',
        _ => '~',
    };
    // `new` and `removed` only restate the sign.
    let reasons: Vec<&str> = change
        .changed
        .iter()
        .map(String::as_str)
        .filter(|r| !matches!(*r, "new" | "removed"))
        .collect();
    // Bare field names (`cmd`, `env_file`) read as "cmd, env changed"; anything else is
    // already a phrase (`dependency db restarted`) and is kept as it is.
    let (fields, phrases): (Vec<&str>, Vec<&str>) = reasons
        .into_iter()
        .partition(|r| r.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    let mut parts = Vec::new();
    if !fields.is_empty() {
        parts.push(format!("{} changed", fields.join(", ")));
    }
    parts.extend(phrases.into_iter().map(str::to_owned));
    let mut line = format!("{sign} {} {}", change.name, change.action);
    if !parts.is_empty() {
        line.push_str(&format!(" ({})", parts.join("; ")));
    }
    line
}

/// Log lines as `NAME | line`, the names padded to `width` (the widest of the services
/// shown, so that prefixes keep one width across batches of a follow stream); with
/// `timestamps`, the time each line was printed first. A gap in a follow stream is said.
pub fn log_lines(batch: &crate::ipc::LogsResult, timestamps: bool, width: usize) -> String {
    let mut out = String::new();
    if let Some(missed) = batch.missed {
        out.push_str(&format!(
            "runpmctl: {missed} lines were missed (reading too slowly)\n"
        ));
    }
    for l in &batch.lines {
        if timestamps {
            out.push_str(&format!("{} ", humantime::format_rfc3339_millis(l.at)));
        }
        if l.runpm {
            out.push_str(&format!("[runpm] {}\n", l.line));
        } else {
            out.push_str(&format!("{:width$} | {}\n", l.service, l.line));
        }
    }
    out
}

/// Why a service does not pass `status --check`, or `None` when it does: it runs (ready),
/// or it is a task that completed successfully.
pub fn check_failure(s: &ServiceInfo) -> Option<String> {
    if s.status == "running" || (s.status == "exited" && s.completed) {
        return None;
    }
    // A scheduled service between runs is fine unless its last run failed.
    if s.status == "waiting" && (s.completed || s.exits.is_empty()) {
        return None;
    }
    Some(service_line(s))
}

/// The services `status --check` looks at without names: those that should run (not
/// stopped by the operator, not left down by `autostart = false`).
pub fn should_run(s: &ServiceInfo) -> bool {
    s.wanted == "up" && !s.stopped_by_operator
}

/// One service in detail, for `runpmctl status NAME`: its state, why it failed or when it
/// starts next, what it last reported over sd_notify, and its recent exits with the lines
/// each run printed last (most recent first).
pub fn service_detail(s: &ServiceInfo) -> String {
    let mut out = format!("{} ({})\n", s.name, s.status);
    let mut field = |key: &str, value: String| out.push_str(&format!("  {key:<10} {value}\n"));
    if let Some(pid) = s.pid {
        let uptime = s
            .uptime_ms
            .map(|ms| format!(", up {}", format_uptime(Duration::from_millis(ms))));
        field("pid", format!("{pid}{}", uptime.unwrap_or_default()));
    }
    field("since", s.since.clone());
    field("restarts", s.restarts.to_string());
    if let Some(waiting) = waiting_for(s) {
        field("waiting", format!("for {waiting}"));
    }
    if let Some(reason) = &s.reason {
        field("reason", reason.clone());
    }
    if let Some(why) = &s.not_ready {
        field("not ready", why.clone());
    }
    if let Some(next) = &s.next_start {
        field("next start", next.clone());
    }
    if let Some(next) = &s.next_run {
        field("next run", next.clone());
    }
    if let Some(last) = &s.last_run {
        field("last run", last.clone());
    }
    if let Some(text) = &s.status_text {
        field("notify", text.clone());
    }
    if s.stopped_by_operator {
        field("stopped", "by the operator".into());
    }
    for (key, value) in super::usage::detail(&s.resources) {
        field(key, value);
    }
    if s.exits.is_empty() {
        return out;
    }
    out.push_str("  exits (most recent first):\n");
    for e in s.exits.iter().rev() {
        let how = match (e.code, &e.signal) {
            _ if e.reason == "spawn-failed" => "could not start".to_string(),
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => signal.clone(),
            (None, None) => "status unknown".to_string(),
        };
        let ran = format_uptime(Duration::from_millis(e.uptime_ms));
        let why = e
            .detail
            .as_ref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {}  {how} after {ran} ({}{why})\n",
            e.at, e.reason
        ));
        for line in &e.last_lines {
            out.push_str(&format!("      | {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, status: &str, pid: Option<i32>) -> ServiceInfo {
        ServiceInfo {
            name: name.into(),
            status: status.into(),
            pid,
            restarts: 0,
            since: "2024-01-01T00:00:00Z".into(),
            uptime_ms: pid.map(|_| 192_000),
            stopped_by_operator: false,
            wanted: "up".into(),
            completed: false,
            reason: None,
            next_start: None,
            status_text: None,
            waiting_for: Vec::new(),
            dependencies: Vec::new(),
            not_ready: None,
            exits: vec![],
            replica_of: None,
            next_run: None,
            last_run: None,
            resources: Default::default(),
        }
    }

    fn exit(code: Option<i32>, signal: Option<&str>, reason: &str) -> ExitInfo {
        ExitInfo {
            code,
            signal: signal.map(Into::into),
            at: "2024-01-01T00:00:00Z".into(),
            uptime_ms: 5,
            reason: reason.into(),
            detail: None,
            last_lines: vec![],
        }
    }

    #[test]
    fn detail_shows_exits_with_their_last_lines_most_recent_first() {
        let mut s = service("worker", "backoff", None);
        s.restarts = 2;
        s.next_start = Some("2026-11-22T04:00:01.000Z".into());
        for (code, line) in [(1, "first crash"), (3, "out of cheese")] {
            s.exits.push(ExitInfo {
                code: Some(code),
                signal: None,
                at: format!("2026-11-22T04:00:0{code}.000Z"),
                uptime_ms: 1500,
                reason: "exited".into(),
                detail: None,
                last_lines: vec![line.into()],
            });
        }
        let text = service_detail(&s);
        assert!(text.starts_with("worker (backoff)\n"), "{text}");
        assert!(
            text.contains("  next start 2026-11-22T04:00:01.000Z\n"),
            "{text}"
        );
        let newest = text.find("code 3 after 1s").unwrap();
        let oldest = text.find("code 1 after 1s").unwrap();
        assert!(newest < oldest, "{text}");
        assert!(text.contains("      | out of cheese\n"), "{text}");
    }

    #[test]
    fn uptimes() {
        let s = Duration::from_secs;
        assert_eq!(format_uptime(Duration::from_millis(999)), "0s");
        assert_eq!(format_uptime(s(45)), "45s");
        assert_eq!(format_uptime(s(192)), "3m12s");
        assert_eq!(format_uptime(s(185)), "3m05s");
        assert_eq!(format_uptime(s(2 * 3600 + 5 * 60 + 9)), "2h05m");
        assert_eq!(format_uptime(s(3 * 86_400 + 4 * 3600 + 1)), "3d04h");
    }

    #[test]
    fn last_exits() {
        assert_eq!(last_exit(&[]), "-");
        assert_eq!(last_exit(&[exit(Some(1), None, "exited")]), "code 1");
        assert_eq!(
            last_exit(&[
                exit(Some(1), None, "exited"),
                exit(None, Some("SIGKILL"), "stopped")
            ]),
            "SIGKILL"
        );
        assert_eq!(
            last_exit(&[exit(None, None, "spawn-failed")]),
            "spawn failed"
        );
    }

    #[test]
    fn the_table_is_aligned() {
        let mut worker = service("worker", "backoff", None);
        worker.restarts = 12;
        worker.exits = vec![exit(Some(1), None, "exited")];
        let table = status_table(&[service("web", "running", Some(4242)), worker]);
        assert_eq!(
            table,
            "\
NAME    STATUS   PID   UPTIME  RESTARTS  LAST-EXIT
web     running  4242  3m12s   0         -
worker  backoff  -     -       12        code 1
"
        );
        assert_eq!(
            status_table(&[]),
            "NAME  STATUS  PID  UPTIME  RESTARTS  LAST-EXIT\n"
        );
    }

    #[test]
    fn check_passes_running_services_and_completed_tasks_only() {
        assert_eq!(check_failure(&service("web", "running", Some(1))), None);
        let mut task = service("migrate", "exited", None);
        task.completed = true;
        assert_eq!(check_failure(&task), None);
        task.completed = false;
        task.exits = vec![exit(Some(2), None, "exited")];
        assert_eq!(
            check_failure(&task).as_deref(),
            Some("migrate: exited (last exit: code 2)")
        );
        for status in ["starting", "backoff", "failed", "stopped", "stopping"] {
            assert!(
                check_failure(&service("x", status, None)).is_some(),
                "{status}"
            );
        }
        let mut down = service("x", "stopped", None);
        assert!(should_run(&down));
        down.wanted = "down".into();
        assert!(!should_run(&down));
    }

    #[test]
    fn coloured_table_keeps_its_columns() {
        let services = [
            service("web", "running", Some(4242)),
            service("db", "failed", None),
        ];
        let plain = status_table(&services);
        let coloured = status_table_styled(&services, true);
        assert!(coloured.contains("\u{1b}["), "{coloured:?}");
        let stripped: String = anstream::adapter::strip_str(&coloured).to_string();
        assert_eq!(stripped, plain);
    }

    #[test]
    fn service_lines() {
        assert_eq!(
            service_line(&service("worker", "running", Some(4313))),
            "worker: running (pid 4313)"
        );
        assert_eq!(service_line(&service("db", "stopped", None)), "db: stopped");
        let mut failed = service("web", "failed", None);
        failed.reason = Some("crash loop: 10 failed runs within 1m".into());
        assert_eq!(
            service_line(&failed),
            "web: failed (crash loop: 10 failed runs within 1m)"
        );
        let mut exited = service("job", "exited", None);
        exited.exits = vec![exit(Some(3), None, "exited")];
        assert_eq!(service_line(&exited), "job: exited (last exit: code 3)");
    }

    #[test]
    fn plans() {
        let change = |name: &str, action: &str, changed: &[&str]| Change {
            name: name.into(),
            action: action.into(),
            changed: changed.iter().map(|s| s.to_string()).collect(),
        };
        let result = ReloadResult {
            dry_run: false,
            config: "/srv/services.toml".into(),
            changes: vec![
                change("web", "started", &["new"]),
                change("worker", "restarted", &["cmd"]),
                change(
                    "api",
                    "restarted",
                    &["cmd", "env", "dependency db restarted"],
                ),
                change("old", "stopped", &["removed"]),
                change("x", "updated", &["env"]),
            ],
            unchanged: 7,
        };
        assert_eq!(
            reload_plan(&result),
            "\
+ web started
~ worker restarted (cmd changed)
~ api restarted (cmd, env changed; dependency db restarted)
- old stopped
~ x updated (env changed)
= 7 unchanged
"
        );
        let dry = ReloadResult {
            dry_run: true,
            changes: vec![],
            unchanged: 2,
            ..result
        };
        assert_eq!(
            reload_plan(&dry),
            "dry run: nothing was changed\n= 2 unchanged\n"
        );
    }
}
