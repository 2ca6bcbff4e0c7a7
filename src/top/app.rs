//! What `top` is doing and what a key does: the screen's state, and keys turned into
//! effects (quit, run an operator command, follow a log) that the loop carries out.
//!
//! Pure, like the table: the loop feeds keys and the feeds' messages in and performs the
//! effects, so every key is tested here without a terminal.

use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::Table;

/// How many lines the log pane keeps for scroll-back.
pub const LOG_KEEP: usize = 10_000;

/// An operator command, run on its own connection while the screen stays live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Start(String),
    Stop(String),
    Restart(String),
    Reload,
}

impl Operation {
    /// `restarting web`, for the status line while it runs.
    pub fn doing(&self) -> String {
        match self {
            Operation::Start(name) => format!("starting {name}…"),
            Operation::Stop(name) => format!("stopping {name}…"),
            Operation::Restart(name) => format!("restarting {name}…"),
            Operation::Reload => "reloading the config…".to_owned(),
        }
    }

    /// The question a destructive operation asks first.
    fn question(&self) -> String {
        match self {
            Operation::Stop(name) => format!("stop {name}? [y/n]"),
            Operation::Restart(name) => format!("restart {name}? [y/n]"),
            Operation::Start(name) => format!("start {name}? [y/n]"),
            Operation::Reload => "reload? [y/n]".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    Run(Operation),
    /// Follow this service's log (replacing any other follow).
    FollowLog {
        service: String,
        generation: u64,
    },
    /// Stop following.
    CloseLog,
}

/// The selected service's log, following its end unless scrolled back.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPane {
    pub service: String,
    /// Which follow this is: lines of an earlier one that arrive late are dropped.
    pub generation: u64,
    pub lines: VecDeque<String>,
    /// How many lines the view is scrolled back from the end (0: following).
    pub back: usize,
    /// Why the follow ended, when it did.
    pub ended: Option<String>,
}

impl LogPane {
    fn new(service: String, generation: u64) -> LogPane {
        LogPane {
            service,
            generation,
            lines: VecDeque::new(),
            back: 0,
            ended: None,
        }
    }

    /// Appends lines; a view scrolled back stays on the lines it shows.
    pub fn push(&mut self, lines: impl IntoIterator<Item = String>) {
        for line in lines {
            self.lines.push_back(line);
            if self.back > 0 {
                self.back += 1;
            }
            if self.lines.len() > LOG_KEEP {
                self.lines.pop_front();
            }
        }
        self.back = self.back.min(self.lines.len());
    }

    /// The lines a view of `height` rows shows.
    pub fn window(&self, height: usize) -> impl Iterator<Item = &String> {
        let end = self.lines.len().saturating_sub(self.back);
        let start = end.saturating_sub(height);
        self.lines.range(start..end)
    }

    fn scroll_back(&mut self, rows: usize, height: usize) {
        let most = self.lines.len().saturating_sub(height.max(1));
        self.back = (self.back + rows).min(most);
    }

    fn scroll_forward(&mut self, rows: usize) {
        self.back = self.back.saturating_sub(rows);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Table,
    /// Typing a filter after `/`.
    Filter,
    /// A destructive operation waits for `y`.
    Confirm(Operation),
    Help,
    Log(LogPane),
}

/// What the status line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Info(String),
    Error(String),
}

#[derive(Debug)]
pub struct App {
    pub table: Table,
    pub mode: Mode,
    pub message: Option<Message>,
    /// The config the daemon runs, for the header.
    pub config: String,
    /// Whether the event stream is live (else rows change with the status, once a second).
    pub events_live: bool,
    /// Rows of the log pane's body, as last drawn: a page for PgUp/PgDn.
    pub page: usize,
    generation: u64,
}

impl App {
    pub fn new(config: String) -> App {
        App {
            table: Table::default(),
            mode: Mode::Table,
            message: None,
            config,
            events_live: false,
            page: 20,
            generation: 0,
        }
    }

    /// What `key` does. Ctrl-C quits from anywhere.
    pub fn key(&mut self, key: KeyEvent) -> Option<Effect> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return match key.code {
                KeyCode::Char('c') => Some(Effect::Quit),
                _ => None,
            };
        }
        match &mut self.mode {
            Mode::Table => self.table_key(key.code),
            Mode::Filter => {
                match key.code {
                    KeyCode::Char(c) => {
                        let mut filter = self.table.filter().to_owned();
                        filter.push(c);
                        self.table.set_filter(filter);
                    }
                    KeyCode::Backspace => {
                        let mut filter = self.table.filter().to_owned();
                        filter.pop();
                        self.table.set_filter(filter);
                    }
                    KeyCode::Enter => self.mode = Mode::Table,
                    KeyCode::Esc => {
                        self.table.set_filter(String::new());
                        self.mode = Mode::Table;
                    }
                    _ => {}
                }
                None
            }
            Mode::Confirm(operation) => {
                let operation = operation.clone();
                self.mode = Mode::Table;
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    self.message = Some(Message::Info(operation.doing()));
                    Some(Effect::Run(operation))
                } else {
                    self.message = Some(Message::Info("cancelled".to_owned()));
                    None
                }
            }
            Mode::Help => {
                self.mode = Mode::Table;
                (key.code == KeyCode::Char('q')).then_some(Effect::Quit)
            }
            Mode::Log(pane) => {
                let page = self.page.max(1);
                match key.code {
                    KeyCode::Char('q') => return Some(Effect::Quit),
                    KeyCode::Esc | KeyCode::Char('h') | KeyCode::Left => {
                        self.mode = Mode::Table;
                        return Some(Effect::CloseLog);
                    }
                    KeyCode::Up | KeyCode::Char('k') => pane.scroll_back(1, page),
                    KeyCode::Down | KeyCode::Char('j') => pane.scroll_forward(1),
                    KeyCode::PageUp => pane.scroll_back(page, page),
                    KeyCode::PageDown => pane.scroll_forward(page),
                    KeyCode::Char('g') | KeyCode::Home => pane.scroll_back(usize::MAX / 2, page),
                    KeyCode::Char('G') | KeyCode::End => pane.back = 0,
                    _ => {}
                }
                None
            }
        }
    }

    fn table_key(&mut self, code: KeyCode) -> Option<Effect> {
        let selected = self.table.selected_name();
        let on_selected = |make: fn(String) -> Operation| selected.clone().map(make);
        match code {
            KeyCode::Char('q') => return Some(Effect::Quit),
            KeyCode::Up | KeyCode::Char('k') => self.table.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.table.move_selection(1),
            KeyCode::Home | KeyCode::Char('g') => self.table.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.table.move_selection(isize::MAX / 2),
            KeyCode::Enter | KeyCode::Char('l') | KeyCode::Right => {
                let service = selected?;
                self.generation += 1;
                self.mode = Mode::Log(LogPane::new(service.clone(), self.generation));
                return Some(Effect::FollowLog {
                    service,
                    generation: self.generation,
                });
            }
            KeyCode::Char('s') => {
                let operation = on_selected(Operation::Start)?;
                self.message = Some(Message::Info(operation.doing()));
                return Some(Effect::Run(operation));
            }
            KeyCode::Char('x') => {
                let operation = on_selected(Operation::Stop)?;
                self.message = Some(Message::Info(operation.question()));
                self.mode = Mode::Confirm(operation);
            }
            KeyCode::Char('r') => {
                let operation = on_selected(Operation::Restart)?;
                self.message = Some(Message::Info(operation.question()));
                self.mode = Mode::Confirm(operation);
            }
            KeyCode::Char('R') => {
                self.message = Some(Message::Info(Operation::Reload.doing()));
                return Some(Effect::Run(Operation::Reload));
            }
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Esc => self.table.set_filter(String::new()),
            _ => {}
        }
        None
    }

    /// Lines of the log being followed; lines of an earlier follow are dropped.
    pub fn log_lines(&mut self, generation: u64, lines: Vec<String>) {
        if let Mode::Log(pane) = &mut self.mode
            && pane.generation == generation
        {
            pane.push(lines);
        }
    }

    /// The follow ended (the daemon closed it, or it failed).
    pub fn log_ended(&mut self, generation: u64, why: String) {
        if let Mode::Log(pane) = &mut self.mode
            && pane.generation == generation
        {
            pane.ended = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::top::model::{Service, Snapshot};

    fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn chars(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    fn app() -> App {
        let mut app = App::new("/srv/services.toml".into());
        let services: Vec<Service> = ["db", "web", "worker"]
            .iter()
            .map(|name| {
                serde_json::from_value(serde_json::json!({
                    "name": name, "status": "running", "pid": 1, "restarts": 0, "since": "t",
                    "uptime_ms": 1, "stopped_by_operator": false, "exits": []
                }))
                .unwrap()
            })
            .collect();
        app.table.apply_status(Snapshot {
            services,
            at: Instant::now(),
        });
        app
    }

    #[test]
    fn quit_keys() {
        let mut a = app();
        assert_eq!(press(&mut a, KeyCode::Char('q')), Some(Effect::Quit));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [Mode::Table, Mode::Filter, Mode::Help] {
            a.mode = mode;
            assert_eq!(a.key(ctrl_c), Some(Effect::Quit));
        }
        // In the filter, `q` is a letter of the name.
        a.mode = Mode::Filter;
        assert_eq!(press(&mut a, KeyCode::Char('q')), None);
        assert_eq!(a.table.filter(), "q");
    }

    #[test]
    fn destructive_keys_ask_first() {
        let mut a = app();
        press(&mut a, KeyCode::Char('j'));
        assert_eq!(press(&mut a, KeyCode::Char('r')), None);
        assert_eq!(a.message, Some(Message::Info("restart web? [y/n]".into())));
        assert_eq!(
            press(&mut a, KeyCode::Char('y')),
            Some(Effect::Run(Operation::Restart("web".into())))
        );
        assert_eq!(press(&mut a, KeyCode::Char('x')), None);
        assert_eq!(press(&mut a, KeyCode::Char('n')), None);
        assert_eq!(a.mode, Mode::Table);
        assert_eq!(a.message, Some(Message::Info("cancelled".into())));
        // Start and reload run at once.
        assert_eq!(
            press(&mut a, KeyCode::Char('s')),
            Some(Effect::Run(Operation::Start("web".into())))
        );
        assert_eq!(
            press(&mut a, KeyCode::Char('R')),
            Some(Effect::Run(Operation::Reload))
        );
    }

    #[test]
    fn filter_narrows_and_escape_clears() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "wor");
        assert_eq!(a.table.visible().len(), 1);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.mode, Mode::Table);
        assert_eq!(a.table.selected_name().as_deref(), Some("worker"));
        assert_eq!(
            press(&mut a, KeyCode::Char('x')),
            None,
            "x asks about the filtered row"
        );
        assert_eq!(a.mode, Mode::Confirm(Operation::Stop("worker".into())));
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.table.visible().len(), 3);
    }

    #[test]
    fn help_opens_and_any_key_closes_it() {
        let mut a = app();
        press(&mut a, KeyCode::Char('?'));
        assert_eq!(a.mode, Mode::Help);
        assert_eq!(press(&mut a, KeyCode::Char('j')), None);
        assert_eq!(a.mode, Mode::Table);
    }

    #[test]
    fn the_log_pane_follows_and_scrolls_back() {
        let mut a = app();
        a.page = 3;
        let Some(Effect::FollowLog {
            service,
            generation,
        }) = press(&mut a, KeyCode::Enter)
        else {
            panic!("enter follows the log");
        };
        assert_eq!(service, "db");
        a.log_lines(generation, (1..=10).map(|i| format!("line {i}")).collect());
        // Lines of an older follow are dropped.
        a.log_lines(generation - 1, vec!["stale".into()]);
        let window = |a: &App| -> Vec<String> {
            match &a.mode {
                Mode::Log(pane) => pane.window(3).cloned().collect(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(window(&a), ["line 8", "line 9", "line 10"]);
        press(&mut a, KeyCode::PageUp);
        assert_eq!(window(&a), ["line 5", "line 6", "line 7"]);
        // New lines do not move a view that is scrolled back.
        a.log_lines(generation, vec!["line 11".into()]);
        assert_eq!(window(&a), ["line 5", "line 6", "line 7"]);
        press(&mut a, KeyCode::Char('k'));
        assert_eq!(window(&a), ["line 4", "line 5", "line 6"]);
        press(&mut a, KeyCode::Char('g'));
        assert_eq!(window(&a), ["line 1", "line 2", "line 3"]);
        press(&mut a, KeyCode::Char('G'));
        assert_eq!(window(&a), ["line 9", "line 10", "line 11"]);
        assert_eq!(press(&mut a, KeyCode::Esc), Some(Effect::CloseLog));
        assert_eq!(a.mode, Mode::Table);
    }

    #[test]
    fn the_log_keeps_a_bounded_scroll_back() {
        let mut pane = LogPane::new("web".into(), 1);
        pane.push((0..LOG_KEEP + 5).map(|i| i.to_string()));
        assert_eq!(pane.lines.len(), LOG_KEEP);
        assert_eq!(pane.lines.front().map(String::as_str), Some("5"));
    }
}
