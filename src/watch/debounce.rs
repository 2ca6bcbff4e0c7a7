//! Turning a burst of file events into one notification.
//!
//! The task sleeps on its channel while nothing happens. The first event that concerns the
//! config opens a burst; each further one moves the deadline to `window` after it. When the
//! deadline passes with the channel quiet, one `()` goes out. So an editor's seven-event save
//! and a `git checkout` touching ten unit files are each one reload, made after the files
//! settled rather than halfway through.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::{Instant, timeout_at};

use super::filter::{Target, Verdict, concerns};
use super::fingerprint::{Fingerprint, fingerprint};

/// What is watched now, shared with the [`Watcher`](super::Watcher) that changes it after a
/// reload, and what the watched files resolved to after the last notification.
#[derive(Debug)]
pub(super) struct Watched {
    pub(super) target: Target,
    pub(super) known: Fingerprint,
}

impl Watched {
    pub(super) fn new(target: Target) -> Watched {
        let known = fingerprint(&target);
        Watched { target, known }
    }
}

pub(super) type Shared = Arc<Mutex<Watched>>;

/// Runs until the event source closes (the watcher was dropped) or nobody listens.
pub(super) async fn debounce(
    mut events: UnboundedReceiver<notify::Result<notify::Event>>,
    watched: Shared,
    window: Duration,
    out: UnboundedSender<()>,
) {
    loop {
        loop {
            match events.recv().await {
                None => return,
                Some(event) if settle(&watched, &event) => break,
                Some(_) => {}
            }
        }
        let mut deadline = Instant::now() + window;
        loop {
            match timeout_at(deadline, events.recv()).await {
                Err(_quiet) => break,
                // Dropped mid-burst: the owner no longer wants reloads.
                Ok(None) => return,
                Ok(Some(event)) => {
                    if settle(&watched, &event) {
                        deadline = Instant::now() + window;
                    }
                }
            }
        }
        // What the reload is about to read: the next event not naming a file compares
        // against this.
        let mut w = watched.lock().unwrap_or_else(PoisonError::into_inner);
        w.known = fingerprint(&w.target);
        drop(w);
        if out.send(()).is_err() {
            return;
        }
    }
}

/// Whether `event` concerns the config, looking at the files when the event alone cannot
/// tell.
fn settle(watched: &Mutex<Watched>, event: &notify::Result<notify::Event>) -> bool {
    let mut w = watched.lock().unwrap_or_else(PoisonError::into_inner);
    match concerns(&w.target, event) {
        Verdict::Yes => true,
        Verdict::No => false,
        Verdict::Maybe => {
            let now = fingerprint(&w.target);
            if now == w.known {
                false
            } else {
                w.known = now;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, DataChange, ModifyKind};
    use notify::{Event, EventKind};
    use tokio::sync::mpsc::{UnboundedSender, error::TryRecvError, unbounded_channel};
    use tokio::time::{advance, sleep};

    use super::*;

    const WINDOW: Duration = Duration::from_millis(150);

    fn target() -> Shared {
        Arc::new(Mutex::new(Watched::new(Target {
            files: vec!["/p/services.toml".into()],
            unit_dir: None,
        })))
    }

    fn write(tx: &UnboundedSender<notify::Result<Event>>, path: &str) {
        let kind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        tx.send(Ok(Event::new(kind).add_path(path.into()))).unwrap();
    }

    /// Lets the spawned task run until it blocks again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_one_notification_after_the_last_event() {
        let (tx, rx) = unbounded_channel();
        let (out, mut notes) = unbounded_channel();
        tokio::spawn(debounce(rx, target(), WINDOW, out));
        for _ in 0..5 {
            write(&tx, "/p/services.toml");
            settle().await;
            advance(Duration::from_millis(100)).await;
        }
        // 100 ms after the last event: still inside the window.
        settle().await;
        assert_eq!(notes.try_recv(), Err(TryRecvError::Empty));
        sleep(Duration::from_millis(60)).await;
        settle().await;
        assert_eq!(notes.try_recv(), Ok(()));
        sleep(WINDOW * 10).await;
        assert_eq!(notes.try_recv(), Err(TryRecvError::Empty));
    }

    #[tokio::test(start_paused = true)]
    async fn separate_bursts_are_separate_notifications() {
        let (tx, rx) = unbounded_channel();
        let (out, mut notes) = unbounded_channel();
        tokio::spawn(debounce(rx, target(), WINDOW, out));
        write(&tx, "/p/services.toml");
        assert_eq!(notes.recv().await, Some(()));
        write(&tx, "/p/services.toml");
        assert_eq!(notes.recv().await, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn noise_neither_opens_nor_extends_a_burst() {
        let (tx, rx) = unbounded_channel();
        let (out, mut notes) = unbounded_channel();
        tokio::spawn(debounce(rx, target(), WINDOW, out));
        write(&tx, "/p/README");
        sleep(WINDOW * 2).await;
        assert_eq!(notes.try_recv(), Err(TryRecvError::Empty));

        write(&tx, "/p/services.toml");
        settle().await;
        advance(Duration::from_millis(100)).await;
        let read = EventKind::Access(AccessKind::Any);
        tx.send(Ok(Event::new(read).add_path("/p/services.toml".into())))
            .unwrap();
        settle().await;
        advance(Duration::from_millis(60)).await;
        settle().await;
        assert_eq!(notes.try_recv(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_source_ends_the_notifications() {
        let (tx, rx) = unbounded_channel();
        let (out, mut notes) = unbounded_channel();
        tokio::spawn(debounce(rx, target(), WINDOW, out));
        write(&tx, "/p/services.toml");
        drop(tx);
        assert_eq!(notes.recv().await, None);
    }
}
