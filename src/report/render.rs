//! Events as people read them: the phrase that `runpmctl logs -f` shows among a service's
//! lines (`[runpm] worker restarted (env changed)`), and the coloured line of `runpmctl
//! events`.

use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::record::{Kind, Report, ts_text};

/// What happened, as a phrase about its subject: `web exited with code 1 after 812ms`,
/// `runpm reloaded: 1 added, 1 changed, 2 unchanged`.
pub fn phrase(report: &Report) -> String {
    let who = report.service.as_deref().unwrap_or("runpm");
    let what = match &report.kind {
        Kind::Spawned { pid } => format!("started (pid {pid})"),
        Kind::Ready { pid } => format!("ready (pid {pid})"),
        Kind::Exited {
            code,
            signal,
            uptime_ms,
            ..
        } => {
            let how = match (code, signal) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(signal)) => format!("killed by {signal}"),
                (None, None) => "ended".to_owned(),
            };
            format!("{how} after {}", millis(*uptime_ms))
        }
        Kind::Restarting { in_ms, restarts } => {
            format!("restarting in {} (restart {restarts})", millis(*in_ms))
        }
        Kind::Failed { reason } => format!("failed: {reason}"),
        Kind::Stopping { pid, signal } => format!("stopping (pid {pid}, {signal})"),
        Kind::Stopped {} => "stopped".to_owned(),
        Kind::HealthFailed { message } => format!("health check failed: {message}"),
        Kind::HealthRecovered {} => "health check passes again".to_owned(),
        Kind::Reloaded {
            added,
            removed,
            changed,
            unchanged,
        } => {
            let mut parts = Vec::new();
            for (label, names) in [("added", added), ("changed", changed), ("removed", removed)] {
                if !names.is_empty() {
                    parts.push(format!("{label} {}", names.join(", ")));
                }
            }
            parts.push(format!("{unchanged} unchanged"));
            format!("reloaded: {}", parts.join("; "))
        }
        Kind::ConfigInvalid { message } => {
            format!("config invalid, nothing changed: {}", first_line(message))
        }
        Kind::DaemonStopping {} => "stopping (the daemon exits)".to_owned(),
        Kind::Planned { action, reason } => match reason {
            Some(reason) => format!("{action} ({reason})"),
            None => action.clone(),
        },
    };
    format!("{who} {what}")
}

/// One line of `runpmctl events`: the time, the event's name (coloured by how good the
/// news is when `colour`) and its phrase.
pub fn event_line(report: &Report, colour: bool) -> String {
    let style = if colour {
        style_of(&report.kind)
    } else {
        Style::new()
    };
    let dim = if colour {
        Style::new().dimmed()
    } else {
        Style::new()
    };
    format!(
        "{dim}{}{dim:#} {style}{:<16}{style:#} {}\n",
        ts_text(report.ts),
        report.kind.name(),
        phrase(report)
    )
}

fn style_of(kind: &Kind) -> Style {
    let colour = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
    match kind {
        Kind::Spawned { .. } | Kind::Ready { .. } | Kind::HealthRecovered {} => {
            colour(AnsiColor::Green)
        }
        Kind::Exited { code: Some(0), .. } => colour(AnsiColor::Green),
        Kind::Exited { .. }
        | Kind::Failed { .. }
        | Kind::HealthFailed { .. }
        | Kind::ConfigInvalid { .. } => colour(AnsiColor::Red).bold(),
        Kind::Restarting { .. } | Kind::Stopping { .. } | Kind::Planned { .. } => {
            colour(AnsiColor::Yellow)
        }
        Kind::Reloaded { .. } => colour(AnsiColor::Cyan),
        Kind::Stopped {} | Kind::DaemonStopping {} => Style::new().dimmed(),
    }
}

fn millis(ms: u64) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(ms))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn about(kind: Kind) -> Report {
        Report::about("worker", SystemTime::UNIX_EPOCH, kind)
    }

    #[test]
    fn phrases_read_as_the_lifecycle_lines_of_logs_follow() {
        let planned = about(Kind::Planned {
            action: "restarted".into(),
            reason: Some("env changed".into()),
        });
        assert_eq!(phrase(&planned), "worker restarted (env changed)");
        assert_eq!(
            phrase(&about(Kind::Spawned { pid: 42 })),
            "worker started (pid 42)"
        );
        let exited = about(Kind::Exited {
            pid: 42,
            code: None,
            signal: Some("SIGKILL".into()),
            uptime_ms: 1500,
            reason: "signal".into(),
        });
        assert_eq!(phrase(&exited), "worker killed by SIGKILL after 1s 500ms");
        let reloaded = Report::daemon(
            SystemTime::UNIX_EPOCH,
            Kind::Reloaded {
                added: vec!["a".into()],
                removed: vec![],
                changed: vec!["b".into(), "c".into()],
                unchanged: 2,
            },
        );
        assert_eq!(
            phrase(&reloaded),
            "runpm reloaded: added a; changed b, c; 2 unchanged"
        );
    }

    #[test]
    fn an_event_line_is_plain_without_colour_and_styled_with_it() {
        let failed = about(Kind::Failed {
            reason: "crash loop".into(),
        });
        let plain = event_line(&failed, false);
        assert_eq!(
            plain,
            "1970-01-01T00:00:00.000Z failed           worker failed: crash loop\n"
        );
        let styled = event_line(&failed, true);
        assert!(styled.contains("\x1b["), "{styled:?}");
        assert!(styled.contains("worker failed: crash loop"), "{styled:?}");
    }
}
