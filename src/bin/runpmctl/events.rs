//! `runpmctl events`: the daemon's lifecycle events as they happen, one line each (or one
//! JSON object per line with `--json`, passed through as the daemon wrote it), flushed per
//! line so that `runpmctl events --json | jq` is live. Ends when the daemon closes the
//! stream after its last event, `daemon_stopping`, with exit 0; a stream that ends without
//! it (the daemon was killed) is exit 1, so a script can tell a crash from a stop.

use std::io::Write;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::value::RawValue;

use runpm::cli::runpmctl::{Cli, Command};
use runpm::ipc::Request;
use runpm::report::{Report, event_line};

use super::{Failure, connect, decode, print};

/// An `events` reply as the client reads it: each event kept as the daemon wrote it, so
/// events and fields this runpmctl does not know pass through `--json` untouched.
#[derive(Deserialize)]
struct Batch {
    #[serde(default)]
    events: Vec<Box<RawValue>>,
    #[serde(default)]
    missed: Option<u64>,
}

/// Only the name of an event, to notice the last one.
#[derive(Deserialize)]
struct Name {
    event: String,
}

pub(super) fn events(cli: &Cli) -> Result<(), Failure> {
    let Command::Events { names, json, since } = &cli.command else {
        return Ok(());
    };
    let request = Request::Events {
        services: names.clone(),
        since: since.map(|s| s.at(SystemTime::now())),
    };
    let mut client = connect(cli)?;
    let colour = runpm::cli::colour::stdout(false);
    let mut stdout = std::io::stdout().lock();
    let mut failure = None;
    let mut stopping = false;
    let mut stdout_closed = false;
    client.stream(&request, cli.timeout, |reply| {
        let batch: Batch = match reply.into_result() {
            Ok(result) => match decode(result, "events") {
                Ok(batch) => batch,
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            },
            Err(e) => {
                failure = Some(Failure::Daemon(e));
                return false;
            }
        };
        if let Some(missed) = batch.missed {
            eprintln!("runpmctl: {missed} events were missed (this reader fell behind)");
        }
        let mut text = String::new();
        for event in &batch.events {
            stopping |= serde_json::from_str::<Name>(event.get())
                .is_ok_and(|name| name.event == "daemon_stopping");
            if *json {
                text.push_str(event.get());
                text.push('\n');
            } else {
                // An event this runpmctl does not know is skipped: it cannot say it well.
                if let Ok(report) = serde_json::from_str::<Report>(event.get()) {
                    text.push_str(&event_line(&report, colour));
                }
            }
        }
        // A closed stdout (`| head`) ends the stream quietly.
        let written = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok();
        stdout_closed = !written;
        written
    })?;
    match failure {
        Some(Failure::Daemon(e)) if *json => {
            let error = serde_json::json!({ "error": e });
            print(&format!("{error}\n"))?;
            Err(Failure::Daemon(e))
        }
        Some(failure) => Err(failure),
        None if stopping => Ok(()),
        // Ctrl-C ends runpmctl by the signal; a closed stdout ends it quietly above.
        None if stdout_closed => Ok(()),
        None => Err(Failure::Other(anyhow::anyhow!(
            "the daemon closed the stream without stopping (it was killed or crashed)"
        ))),
    }
}
