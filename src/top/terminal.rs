//! The terminal while `top` runs: raw mode and the alternate screen, put back on every way
//! out — a normal return, an error (the guard's `Drop`), and a panic (a hook that restores
//! first, then prints the panic where the user can read it). Signals are turned into
//! messages by the loop (see `feed::signals`), so they take the same way out.

use std::io::{self, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::crossterm::{
    cursor,
    event::{DisableMouseCapture, EnableMouseCapture},
    execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};

/// Whether the terminal is ours (in raw mode, on the alternate screen) right now.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether mouse capture is on and must be turned off.
static MOUSE: AtomicBool = AtomicBool::new(false);

/// Restores the terminal when dropped.
pub struct Screen(());

impl Screen {
    /// Takes the terminal over. Mouse capture only with `mouse`: without it, text on the
    /// screen can be selected and copied as usual.
    pub fn enter(mouse: bool) -> io::Result<Screen> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on, a failure returns an error and the guard puts things back.
        let screen = Screen(());
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        if mouse {
            MOUSE.store(true, Ordering::SeqCst);
            execute!(io::stdout(), EnableMouseCapture)?;
        }
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as it was: main screen, cooked mode, cursor shown. Once only,
/// however many ways out are taken. Failures are ignored: on the way out there is nothing
/// better to do, and a terminal that is gone (a closed window) cannot be restored anyway.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    if MOUSE.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
    let _ = out.flush();
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
