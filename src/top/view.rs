//! Drawing the screen with ratatui: a header line (the config and how many services are in
//! each state), the table or the log pane, a status line, and a footer with the keys.
//!
//! Pure too: it renders an [`App`] into a frame, so tests draw it on ratatui's
//! `TestBackend` at 80×24 and read the text back.

use std::time::SystemTime;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState};

use super::app::{App, LogPane, Message, Mode};
use super::format::{self, HEADERS, SPACING, STATUS};
use crate::ipc::ServiceInfo;

pub const TABLE_KEYS: &str =
    "↑↓ select  ⏎ log  s start  x stop  r restart  R reload  / filter  ? help  q quit";
pub const LOG_KEYS: &str = "↑↓ scroll  PgUp/PgDn page  g top  G end  esc back  q quit";

const HELP: &[(&str, &str)] = &[
    ("↑ ↓  k j", "select a service"),
    (
        "enter  l",
        "follow its log (scroll back: ↑ ↓ PgUp PgDn, G end)",
    ),
    ("esc  h", "back from the log; clear the filter"),
    ("s", "start the service"),
    ("x", "stop it (asks y/n)"),
    ("r", "restart it (asks y/n)"),
    ("R", "reload the config (shows the plan)"),
    ("/", "filter by name (enter keeps it, esc clears)"),
    ("?", "this help (any key closes)"),
    ("q  Ctrl-C", "quit"),
];

/// Rows left for the body (table or log) on a screen of `height` rows: the header, the
/// status line and the footer take one each.
pub fn body_height(height: u16) -> u16 {
    height.saturating_sub(3)
}

pub fn draw(frame: &mut Frame, app: &App, colour: bool, now: SystemTime) {
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let keys = match &app.mode {
        Mode::Log(pane) => {
            frame.render_widget(log_header(pane, body.height), header);
            draw_log(frame, pane, body);
            LOG_KEYS
        }
        _ => {
            frame.render_widget(table_header(app, header.width), header);
            draw_table(frame, app, body, colour, now);
            TABLE_KEYS
        }
    };
    frame.render_widget(status_line(app, colour), status);
    frame.render_widget(
        Paragraph::new(keys).style(Style::new().add_modifier(Modifier::REVERSED)),
        footer,
    );
    if app.mode == Mode::Help {
        draw_help(frame, frame.area());
    }
}

/// `runpm /srv/app/services.toml    3 running · 1 failed`: the counts keep their place on
/// the right, the config's path gives way from its left.
fn table_header(app: &App, width: u16) -> Line<'static> {
    let counts = app.table.counts();
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let mut right = counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(" · ");
    if right.is_empty() {
        right = "no services".to_owned();
    } else {
        let plural = if total == 1 { "" } else { "s" };
        right = format!("{total} service{plural}: {right}");
    }
    if !app.events_live {
        right.push_str(" (polling)");
    }
    let room = usize::from(width).saturating_sub(right.chars().count() + 7);
    let config = shorten_path(&app.config, room);
    let left = format!("runpm {config}");
    let gap = usize::from(width).saturating_sub(left.chars().count() + right.chars().count());
    Line::from(vec![
        Span::styled(left, Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(" ".repeat(gap.max(1))),
        Span::raw(right),
    ])
}

/// `path` in at most `room` columns: whole, else its last components after `…/`, else
/// its end after `…`.
fn shorten_path(path: &str, room: usize) -> String {
    if path.chars().count() <= room {
        return path.to_owned();
    }
    let mut tail = String::new();
    for component in path.rsplit('/') {
        let longer = if tail.is_empty() {
            component.to_owned()
        } else {
            format!("{component}/{tail}")
        };
        if longer.chars().count() + 2 > room {
            break;
        }
        tail = longer;
    }
    if !tail.is_empty() {
        return format!("…/{tail}");
    }
    let chars: Vec<char> = path.chars().collect();
    let keep = room.saturating_sub(1).min(chars.len());
    let end: String = chars[chars.len() - keep..].iter().collect();
    format!("…{end}")
}

fn draw_table(frame: &mut Frame, app: &App, area: Rect, colour: bool, now: SystemTime) {
    let rows = app.table.visible();
    let cells: Vec<[String; 9]> = rows.iter().map(|r| format::cells(r, now)).collect();
    let widths = format::widths(&cells, area.width);
    let body = rows.iter().zip(&cells).map(|(row, cells)| {
        Row::new(cells.iter().enumerate().map(|(i, text)| {
            let text = format::truncate(text, usize::from(widths[i]));
            if i == STATUS && colour {
                Cell::from(text).style(status_style(&row.info))
            } else {
                Cell::from(text)
            }
        }))
    });
    let header = Row::new(HEADERS).style(Style::new().add_modifier(Modifier::BOLD));
    let table = Table::new(body, widths.map(Constraint::Length))
        .header(header)
        .column_spacing(SPACING)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(app.table.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() {
        let text = if app.table.rows().is_empty() {
            "no services"
        } else {
            "no service matches the filter (esc clears it)"
        };
        let [_, line] =
            Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
        frame.render_widget(Paragraph::new(text), line);
    }
}

/// `runpmctl status`'s colour for a state, in ratatui's terms.
fn status_style(info: &ServiceInfo) -> Style {
    let style = crate::ipc::status_style(info);
    let mut out = Style::new();
    if let Some(anstyle::Color::Ansi(colour)) = style.get_fg_color() {
        use anstyle::AnsiColor as A;
        out = out.fg(match colour {
            A::Green | A::BrightGreen => Color::Green,
            A::Yellow | A::BrightYellow => Color::Yellow,
            A::Red | A::BrightRed => Color::Red,
            A::Blue | A::BrightBlue => Color::Blue,
            A::Cyan | A::BrightCyan => Color::Cyan,
            A::Magenta | A::BrightMagenta => Color::Magenta,
            A::White | A::BrightWhite => Color::White,
            A::Black | A::BrightBlack => Color::DarkGray,
        });
    }
    let effects = style.get_effects();
    if effects.contains(anstyle::Effects::BOLD) {
        out = out.add_modifier(Modifier::BOLD);
    }
    if effects.contains(anstyle::Effects::DIMMED) {
        out = out.add_modifier(Modifier::DIM);
    }
    out
}

fn log_header(pane: &LogPane, height: u16) -> Line<'static> {
    let position = if let Some(why) = &pane.ended {
        format!("ended: {why}")
    } else if pane.back == 0 {
        "following".to_owned()
    } else {
        let shown_end = pane.lines.len() - pane.back;
        let first = shown_end.saturating_sub(usize::from(height)) + 1;
        format!(
            "lines {first}-{shown_end} of {} (G: back to the end)",
            pane.lines.len()
        )
    };
    Line::from(vec![
        Span::styled(
            format!("log of {}", pane.service),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  {position}")),
    ])
}

fn draw_log(frame: &mut Frame, pane: &LogPane, area: Rect) {
    let lines: Vec<Line> = pane
        .window(usize::from(area.height))
        .map(|l| Line::raw(l.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

fn status_line(app: &App, colour: bool) -> Line<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    match (&app.mode, &app.message) {
        (Mode::Filter, _) => Line::from(vec![
            Span::styled("/", bold),
            Span::raw(app.table.filter().to_owned()),
            Span::styled("▏", bold),
            Span::raw("  (enter keeps it, esc clears)"),
        ]),
        (Mode::Confirm(_), Some(Message::Info(question))) => {
            Line::from(Span::styled(question.clone(), bold))
        }
        (_, Some(Message::Error(error))) => {
            let style = if colour {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            Line::from(Span::styled(
                error.clone(),
                style.add_modifier(Modifier::BOLD),
            ))
        }
        (_, Some(Message::Info(info))) => Line::raw(info.clone()),
        (_, None) if !app.table.filter().is_empty() => {
            Line::raw(format!("filter: {} (esc clears)", app.table.filter()))
        }
        (_, None) => Line::raw(""),
    }
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = 64.min(area.width);
    let height = (HELP.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{keys:<10}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(" {what}")),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" runpmctl top: keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::top::model::{Service, Snapshot};

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn app() -> App {
        let mut app = App::new("/srv/shop/services.toml".into());
        app.events_live = true;
        let services = vec![
            service(serde_json::json!({
                "name": "web", "status": "starting", "pid": null, "restarts": 0,
                "since": "t", "uptime_ms": null, "stopped_by_operator": false, "exits": [],
                "waiting_for": ["db"],
                "dependencies": [{"name": "db", "condition": "ready", "status": "starting",
                                  "met": false}]
            })),
            service(serde_json::json!({
                "name": "db", "status": "running", "pid": 4242, "restarts": 1,
                "since": "t", "uptime_ms": 192000, "stopped_by_operator": false,
                "exits": [{"code": null, "signal": "SIGKILL", "at": "t", "uptime_ms": 5,
                           "reason": "exited"}],
                "cpu_usec": 1000, "memory_bytes": 13_000_000u64
            })),
            service(serde_json::json!({
                "name": "worker", "status": "backoff", "pid": null, "restarts": 3,
                "since": "t", "uptime_ms": null, "stopped_by_operator": false,
                "exits": [{"code": 1, "signal": null, "at": "t", "uptime_ms": 5,
                           "reason": "exited"}]
            })),
        ];
        app.table.apply_status(Snapshot {
            services,
            at: Instant::now(),
        });
        app
    }

    fn render(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| draw(f, app, true, SystemTime::UNIX_EPOCH))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn the_table_fits_80x24() {
        let screen = render(&app(), 80, 24);
        assert_eq!(
            screen[0],
            "runpm /srv/shop/services.toml     3 services: 1 running · 1 starting · 1 backoff"
        );
        assert!(screen[1].starts_with("NAME"), "{screen:#?}");
        for header in HEADERS {
            assert!(screen[1].contains(header), "{header} in {}", screen[1]);
        }
        assert!(screen[2].starts_with("db"), "{screen:#?}");
        assert!(screen[2].contains("running") && screen[2].contains("4242"));
        assert!(screen[2].contains("3m12s") && screen[2].contains("SIGKILL"));
        assert!(screen[2].contains("12.4M"), "{}", screen[2]);
        assert!(
            screen[3].contains("waiting for db (start…"),
            "{}",
            screen[3]
        );
        assert!(screen[4].contains("backoff") && screen[4].contains("code 1"));
        assert_eq!(screen[23], TABLE_KEYS);
        assert!(screen.iter().all(|l| l.chars().count() <= 80));
    }

    #[test]
    fn states_are_coloured_and_the_selection_reversed() {
        let app = app();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal
            .draw(|f| draw(f, &app, true, SystemTime::UNIX_EPOCH))
            .unwrap();
        let buffer = terminal.backend().buffer();
        let status_x = screen_column(&render(&app, 80, 24)[1], "STATUS");
        assert_eq!(buffer[(status_x, 2)].fg, Color::Green);
        assert_eq!(buffer[(status_x, 4)].fg, Color::Red);
        assert!(buffer[(0, 2)].modifier.contains(Modifier::REVERSED));
        // NO_COLOR: no colour anywhere.
        terminal
            .draw(|f| draw(f, &app, false, SystemTime::UNIX_EPOCH))
            .unwrap();
        let buffer = terminal.backend().buffer();
        assert!(buffer.content().iter().all(|c| c.fg == Color::Reset));
    }

    fn screen_column(line: &str, word: &str) -> u16 {
        line.find(word).unwrap() as u16
    }

    #[test]
    fn help_and_prompts_draw_over_the_table() {
        let mut app = app();
        app.key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE));
        let screen = render(&app, 80, 24);
        assert!(screen.iter().any(|l| l.contains("runpmctl top: keys")));
        assert!(screen.iter().any(|l| l.contains("reload the config")));
        app.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        app.key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE));
        assert_eq!(render(&app, 80, 24)[22], "restart db? [y/n]");
        app.key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::NONE));
        app.key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
        app.key(KeyEvent::new(KeyCode::Char('w'), KeyModifiers::NONE));
        let screen = render(&app, 80, 24);
        assert!(screen[22].starts_with("/w▏"), "{}", screen[22]);
        assert!(screen[2].starts_with("web") && screen[3].starts_with("worker"));
    }

    #[test]
    fn the_log_pane_shows_the_end() {
        let mut app = app();
        let Some(crate::top::app::Effect::FollowLog { generation, .. }) =
            app.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
        else {
            panic!("enter follows");
        };
        app.log_lines(generation, (1..=50).map(|i| format!("line {i}")).collect());
        let screen = render(&app, 80, 24);
        assert_eq!(screen[0], "log of db  following");
        assert_eq!(screen[1], "line 30");
        assert_eq!(screen[20], "line 49");
        assert_eq!(screen[23], LOG_KEYS);
    }

    #[test]
    fn a_long_config_path_keeps_its_last_components() {
        let path = "/srv/projects/shop/services.toml";
        assert_eq!(shorten_path(path, 40), path);
        assert_eq!(shorten_path(path, 20), "…/shop/services.toml");
        assert_eq!(shorten_path(path, 16), "…/services.toml");
        assert_eq!(shorten_path(path, 8), "…es.toml");
        assert_eq!(shorten_path(path, 0), "…");
    }

    #[test]
    fn a_small_terminal_does_not_panic() {
        let mut app = app();
        for (w, h) in [(1, 1), (10, 3), (20, 5), (0, 0)] {
            render(&app, w, h);
            app.mode = Mode::Help;
            render(&app, w, h);
            app.mode = Mode::Table;
        }
    }
}
