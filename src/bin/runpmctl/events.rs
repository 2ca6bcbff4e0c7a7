//! `runpmctl events`: the daemon's lifecycle events as they happen, one line each (or one
//! JSON object per line with `--json`, passed through as the daemon wrote it), flushed per
//! line so that `runpmctl events --json | jq` is live. Ends when the daemon closes the
//! stream (it stops), with exit 0.

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
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
    })?;
    match failure {
        Some(Failure::Daemon(e)) if *json => {
            let error = serde_json::json!({ "error": e });
            print(&format!("{error}\n"))?;
            Err(Failure::Daemon(e))
        }
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}
