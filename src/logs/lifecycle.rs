//! runpm's lifecycle lines where the user is looking: `runpmctl logs -f worker` shows
//! `[runpm] worker restarted (env changed)` between worker's own lines.
//!
//! The supervisor already says what it does, per service, through `tracing` (`worker:
//! started (pid 42)`, `reload: ~ worker restarted (env changed)`). [`Tap`] is a tracing
//! layer that hands those events to the [`LogHub`]'s followers, tagged with the service they
//! are about, so the core needs no second way of reporting. It costs nothing while nobody
//! follows: the hub is asked first, without waiting for any lock.

use std::sync::{Arc, PoisonError, RwLock, Weak};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::hub::LogHub;

/// The hub of the daemon in this process, once it runs.
static HUB: RwLock<Option<Weak<LogHub>>> = RwLock::new(None);

/// Lifecycle lines go to `hub`'s followers from now on.
pub fn attach(hub: &Arc<LogHub>) {
    *HUB.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::downgrade(hub));
}

/// The tracing layer; install it beside the daemon's own log output.
pub struct Tap;

impl<S: Subscriber> Layer<S> for Tap {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // Debug chatter is not lifecycle; `DEBUG > INFO` in tracing's order.
        if *event.metadata().level() > Level::INFO {
            return;
        }
        let Ok(slot) = HUB.try_read() else { return };
        let Some(hub) = slot.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        drop(slot);
        if !hub.has_followers() {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if let Some((service, text)) = about(&message.0) {
            hub.lifecycle(service, &text);
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

/// The service a supervisor message is about and the message as a phrase about it:
/// `worker: started (pid 42)` → `worker started (pid 42)`; `reload: ~ worker restarted (env
/// changed)` → `worker restarted (env changed)`. `None` for messages about no one service.
pub fn about(message: &str) -> Option<(&str, String)> {
    // A plan's line, alone or after its verb (`reload: `, `resurrect: `).
    let plan = message
        .split_once(": ")
        .map_or(message, |(_, rest)| rest)
        .strip_prefix(['+', '~', '-'])
        .or_else(|| message.strip_prefix(['+', '~', '-']));
    if let Some(rest) = plan.and_then(|p| p.strip_prefix(' ')) {
        let name = rest.split(' ').next()?;
        return is_name(name).then(|| (name, rest.to_owned()));
    }
    let (name, rest) = message.split_once(": ")?;
    is_name(name).then(|| (name, format!("{name} {rest}")))
}

/// A service name as configs allow them, which rules out phrases such as `received
/// SIGHUP` or `exit_when is met`.
fn is_name(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && !matches!(word, "reload" | "resurrect" | "runpm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_about_a_service_become_phrases_about_it() {
        assert_eq!(
            about("worker: started (pid 42)"),
            Some(("worker", "worker started (pid 42)".into()))
        );
        assert_eq!(
            about("reload: ~ worker restarted (env changed)"),
            Some(("worker", "worker restarted (env changed)".into()))
        );
        assert_eq!(about("+ web started"), Some(("web", "web started".into())));
        assert_eq!(about("received SIGHUP: reloading the configuration"), None);
        assert_eq!(about("reload: nothing changed (3 unchanged)"), None);
        assert_eq!(about("exit_when is met: stopping"), None);
    }
}
