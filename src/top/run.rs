//! The UI thread: starts the feeds, draws, and handles one message at a time.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use nix::sys::signal::{SigSet, Signal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::app::{App, Effect, Message};
use super::feed::{self, Connect, LogFollow, Msg};
use super::model::Notice;
use super::terminal::Screen;
use super::view;
use crate::ipc::Client;

pub struct Options {
    /// Capture the mouse (off by default, so that text can be selected).
    pub mouse: bool,
    /// Colour the states (NO_COLOR and the like said yes or no).
    pub colour: bool,
    /// How long an operator command may take.
    pub timeout: Duration,
}

/// How `top` ended, when it ended as asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `q` or Ctrl-C.
    Quit,
    /// This signal asked it to end; the caller re-raises it once the terminal is back
    /// (see [`reraise`]), so that the parent sees how it ended.
    Signalled(Signal),
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(
        "`runpmctl top` needs a terminal on stdin and stdout; scripts can read \
         `runpmctl status --json` or `runpmctl events --json`"
    )]
    NotATerminal,
    #[error("the daemon went away ({0}); runpmctl top ended")]
    DaemonGone(String),
    #[error("cannot use the terminal")]
    Terminal(#[source] std::io::Error),
    #[error("cannot set up signal handling")]
    Signals(#[source] nix::Error),
}

/// The signals that end `top` like `q` does (restoring the terminal first).
fn ending_signals() -> SigSet {
    let mut set = SigSet::empty();
    // Not SIGQUIT: its default action dumps core, which is what its sender asks for.
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(signal);
    }
    set
}

/// Whether `top` can run here: keys come from stdin and the screen goes to stdout.
pub fn check_terminal() -> Result<(), TopError> {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        Ok(())
    } else {
        Err(TopError::NotATerminal)
    }
}

/// Runs `top` until `q`, a signal, or the daemon going away. `client` is the first
/// connection (it proved that a daemon is there); `connect` opens the others.
pub fn run(client: Client, connect: Connect, options: Options) -> Result<Outcome, TopError> {
    check_terminal()?;
    // Blocked before any thread starts, so that every thread inherits the mask and only
    // the signal feed receives them.
    ending_signals().thread_block().map_err(TopError::Signals)?;
    let (tx, rx) = mpsc::channel();
    feed::signals(tx.clone(), ending_signals());
    let mut app = App::new(client.hello().config.clone());
    app.events_live = true;
    let screen = Screen::enter(options.mouse).map_err(TopError::Terminal)?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(TopError::Terminal)?;
    // Events first, so that nothing happens unseen between the first status and them.
    feed::events(connect.clone(), tx.clone());
    let refresh = feed::status(client, connect.clone(), options.timeout, tx.clone());
    feed::input(tx.clone());
    let mut log: Option<LogFollow> = None;
    let outcome = loop {
        let size = terminal.size().map_err(TopError::Terminal)?;
        app.page = usize::from(view::body_height(size.height));
        terminal
            .draw(|frame| view::draw(frame, &app, options.colour, SystemTime::now()))
            .map_err(TopError::Terminal)?;
        let Ok(first) = rx.recv() else {
            break Ok(Outcome::Quit);
        };
        // Everything that arrived meanwhile, then one redraw.
        let mut next = None;
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            let step = handle(msg, &mut app, &mut log, &connect, &options, &tx, &refresh);
            if let Some(end) = step {
                next = Some(end);
                break;
            }
        }
        if let Some(end) = next {
            break end;
        }
    };
    if let Some(log) = log {
        log.cancel();
    }
    drop(terminal);
    drop(screen);
    outcome
}

/// One message: Some when `top` ends.
fn handle(
    msg: Msg,
    app: &mut App,
    log: &mut Option<LogFollow>,
    connect: &Connect,
    options: &Options,
    tx: &mpsc::Sender<Msg>,
    refresh: &mpsc::Sender<()>,
) -> Option<Result<Outcome, TopError>> {
    match msg {
        Msg::Key(key) => match app.key(key)? {
            Effect::Quit => return Some(Ok(Outcome::Quit)),
            Effect::Run(operation) => {
                feed::run(connect.clone(), operation, options.timeout, tx.clone())
            }
            Effect::FollowLog {
                service,
                generation,
            } => {
                if let Some(old) = log.take() {
                    old.cancel();
                }
                *log = Some(feed::log(connect.clone(), service, generation, tx.clone()));
            }
            Effect::CloseLog => {
                if let Some(old) = log.take() {
                    old.cancel();
                }
            }
        },
        Msg::Resize => {}
        Msg::InputFailed(e) => return Some(Err(TopError::Terminal(e))),
        Msg::Status(snapshot) => app.table.apply_status(snapshot),
        Msg::StatusFailed(why) => app.message = Some(Message::Error(why)),
        Msg::Events(events) => {
            for event in &events {
                match app.table.apply_event(event) {
                    Some(Notice::Text(text)) => app.message = Some(Message::Info(text)),
                    Some(Notice::DaemonStopping) => {
                        app.message = Some(Message::Info("runpm is shutting down".into()))
                    }
                    None => {}
                }
            }
            // The event patched its row; the status fills in the rest (exit history, what
            // a starting service waits for, new services of a reload).
            let _ = refresh.send(());
        }
        Msg::EventsUnsupported => app.events_live = false,
        Msg::EventsEnded(why) => {
            return Some(Err(TopError::DaemonGone(
                why.unwrap_or_else(|| "it closed the event stream".to_owned()),
            )));
        }
        Msg::Log { generation, lines } => app.log_lines(generation, lines),
        Msg::LogEnded { generation, why } => app.log_ended(generation, why),
        Msg::Done(result) => {
            app.message = Some(match result {
                Ok(text) => Message::Info(text),
                Err(text) => Message::Error(text),
            });
            let _ = refresh.send(());
        }
        Msg::Gone(why) => return Some(Err(TopError::DaemonGone(why))),
        Msg::Signal(signal) => return Some(Ok(Outcome::Signalled(signal))),
    }
    None
}

/// Ends the process by `signal`, as it would have without `top` catching it: the default
/// action, unblocked, raised. Called once the terminal is restored.
pub fn reraise(signal: Signal) {
    use nix::sys::signal::{SigHandler, raise, signal as set_handler};
    // SAFETY: SIG_DFL installs no handler code; nothing else in this process relies on a
    // handler for these signals any more.
    let _ = unsafe { set_handler(signal, SigHandler::SigDfl) };
    let mut set = SigSet::empty();
    set.add(signal);
    let _ = set.thread_unblock();
    let _ = raise(signal);
}
