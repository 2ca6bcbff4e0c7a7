//! Where every captured line goes: the service's log file, its in-memory tail, the console
//! of `runpm up` when there is one, and the live followers of `runpmctl logs -f`.
//!
//! The capture tasks hand each turn's lines to [`LogHub`] through [`LineSink::lines`]. Each service has its own
//! mutex around its file and tail, so services never wait for each other's disk writes; the
//! map from name to service is behind a read-mostly lock that the hot path only reads.
//!
//! Followers share one `tokio::sync::broadcast` channel. Sending never waits: a follower
//! that falls more than [`FOLLOW_BUFFER`] lines behind loses the oldest ones and is told how
//! many at its next receive ([`Followed::Gap`]), so a stalled `runpmctl logs -f` can neither
//! block the services' output nor the other followers. A line is timestamped, written, put in
//! the tail and broadcast under its service's lock; [`LogHub::follow`] takes the locks of the
//! services it follows while it subscribes and reads their tails, so the history it returns
//! and the live lines that follow meet exactly: no line is missing or shown twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::capture::{LineSink, Lines, Stream};
use super::file::{LogFile, LogFileError, check_name};
use super::tail::{TAIL_BYTES, TAIL_LINES, Tail};

/// Lines a follower may fall behind before it loses some.
pub const FOLLOW_BUFFER: usize = 4096;

/// Limits for a service that prints before it was configured (the config's defaults).
const DEFAULT_MAX_SIZE: u64 = 10_000_000;
const DEFAULT_KEEP: u32 = 5;

/// One line as the socket carries it:
/// `{"service":"web","at":"2026-11-22T03:45:12.345678901Z","stream":"out","line":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub service: String,
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    #[serde(with = "stream_serde")]
    pub stream: Stream,
    pub line: String,
    /// runpm's own lifecycle line about this service (`worker restarted (env changed)`),
    /// sent to `logs -f` followers only: it is in no log file and no tail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runpm: bool,
}

/// What a follower receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    Line(Arc<LogLine>),
    /// The follower fell behind and at most `missed` lines were skipped here (counted over
    /// all services, followed or not).
    Gap {
        missed: u64,
    },
}

/// A live subscription to some services' lines (all of them when the list was empty).
pub struct Follower {
    rx: broadcast::Receiver<Arc<LogLine>>,
    services: Vec<String>,
}

impl Follower {
    /// The next line or gap; `None` once the hub is gone. Cancel-safe, so it can sit in a
    /// `select!` beside the socket and Ctrl-C.
    pub async fn recv(&mut self) -> Option<Followed> {
        loop {
            match self.rx.recv().await {
                Ok(line) if self.wants(&line) => return Some(Followed::Line(line)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(Followed::Gap { missed });
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn wants(&self, line: &LogLine) -> bool {
        self.services.is_empty() || self.services.contains(&line.service)
    }
}

struct ServiceLog {
    /// `None` for a name that cannot be a file name: its lines still reach the tail, the
    /// console and the followers.
    file: Option<LogFile>,
    tail: Tail,
}

pub struct LogHub {
    dir: Utf8PathBuf,
    services: RwLock<HashMap<String, Arc<Mutex<ServiceLog>>>>,
    console: RwLock<Option<Arc<dyn LineSink>>>,
    /// Made by the first follower and let go once none is left: its ring of
    /// [`FOLLOW_BUFFER`] slots is most of a quiet daemon's heap otherwise.
    followers: RwLock<Option<broadcast::Sender<Arc<LogLine>>>>,
    tail_lines: usize,
    tail_bytes: usize,
}

impl LogHub {
    /// Files go to `logs_dir` (created 0700 on the first line); tails hold the default
    /// [`TAIL_LINES`] lines or [`TAIL_BYTES`] bytes per service.
    pub fn new(logs_dir: &Utf8Path) -> LogHub {
        LogHub::with_tail_limits(logs_dir, TAIL_LINES, TAIL_BYTES)
    }

    pub fn with_tail_limits(logs_dir: &Utf8Path, tail_lines: usize, tail_bytes: usize) -> LogHub {
        LogHub {
            dir: logs_dir.to_owned(),
            services: RwLock::new(HashMap::new()),
            console: RwLock::new(None),
            followers: RwLock::new(None),
            tail_lines,
            tail_bytes,
        }
    }

    /// Every line is also printed by `console` (the prefixed output of `runpm up`), or no
    /// longer printed with `None` (once the daemon detaches from its terminal).
    pub fn set_console(&self, console: Option<Arc<dyn LineSink>>) {
        *self.console.write().unwrap_or_else(PoisonError::into_inner) = console;
    }

    /// Declares a service or changes its limits; the file is (re)opened at its next line.
    /// Its tail is kept across a change.
    pub fn configure(
        &self,
        name: &str,
        log_max_size: u64,
        log_keep: u32,
    ) -> Result<(), LogFileError> {
        check_name(name)?;
        let entry = self.entry(name);
        let mut log = lock(&entry);
        match &mut log.file {
            Some(file) => file.set_limits(log_max_size, log_keep),
            None => log.file = Some(LogFile::new(&self.dir, name, log_max_size, log_keep)?),
        }
        Ok(())
    }

    /// Forgets a removed service: closes its file and drops its tail. Files stay on disk.
    pub fn remove(&self, name: &str) {
        self.write_services().remove(name);
    }

    /// The text of the last `n` lines of `name`, oldest first (the crash report's
    /// `last_lines`).
    pub fn last_lines(&self, name: &str, n: usize) -> Vec<String> {
        match self.get(name) {
            Some(entry) => lock(&entry).tail.last(n).map(|l| l.line.clone()).collect(),
            None => Vec::new(),
        }
    }

    /// The last `n` lines of `services` together (of every service when empty), merged in
    /// time order; each service's own lines keep their order even if the clock stepped back.
    pub fn tail(&self, services: &[String], n: usize) -> Vec<LogLine> {
        let per_service = self
            .entries(services)
            .into_iter()
            .map(|(name, entry)| snapshot(&name, &lock(&entry), n))
            .collect();
        merge_last(per_service, n)
    }

    /// What `runpmctl logs -n N --since T` shows: each service's own last `per_service`
    /// lines printed at or after `since` (as `docker compose logs --tail` counts), merged in
    /// time order.
    pub fn history(
        &self,
        services: &[String],
        per_service: usize,
        since: Option<SystemTime>,
    ) -> Vec<LogLine> {
        let per_service_runs = self
            .entries(services)
            .into_iter()
            .map(|(name, entry)| snapshot_since(&name, &lock(&entry), per_service, since))
            .collect();
        merge_last(per_service_runs, usize::MAX)
    }

    /// [`LogHub::history`] and [`LogHub::subscribe`] at one instant (see [`LogHub::follow`]).
    pub fn follow_history(
        &self,
        services: &[String],
        per_service: usize,
        since: Option<SystemTime>,
    ) -> (Vec<LogLine>, Follower) {
        let entries = self.entries(services);
        let guards: Vec<_> = entries.iter().map(|(_, e)| lock(e)).collect();
        let follower = self.subscribe(services);
        let runs = entries
            .iter()
            .zip(&guards)
            .map(|((name, _), log)| snapshot_since(name, log, per_service, since))
            .collect();
        drop(guards);
        (merge_last(runs, usize::MAX), follower)
    }

    /// Drops the channel once its last follower has gone. Never waits: this runs on the
    /// output path, and a `follow` that holds the lock will find the channel still usable.
    fn let_go_of_followers(&self) {
        if let Ok(mut followers) = self.followers.try_write()
            && followers
                .as_ref()
                .is_some_and(|tx| tx.receiver_count() == 0)
        {
            *followers = None;
        }
    }

    /// Live lines of `services` (of every service when empty) from now on.
    pub fn subscribe(&self, services: &[String]) -> Follower {
        let mut followers = self
            .followers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let rx = match followers.as_ref() {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(FOLLOW_BUFFER);
                *followers = Some(tx);
                rx
            }
        };
        Follower {
            rx,
            services: services.to_vec(),
        }
    }

    /// [`LogHub::tail`] and [`LogHub::subscribe`] at one instant, for `logs -f -n N`: the
    /// follower's first line is the first one after the returned history.
    pub fn follow(&self, services: &[String], n: usize) -> (Vec<LogLine>, Follower) {
        let entries = self.entries(services);
        // Always taken in name order (`entries` sorts), and the hot path never holds two,
        // so this cannot deadlock with it or with another `follow`.
        let guards: Vec<_> = entries.iter().map(|(_, e)| lock(e)).collect();
        let follower = self.subscribe(services);
        let per_service = entries
            .iter()
            .zip(&guards)
            .map(|((name, _), log)| snapshot(name, log, n))
            .collect();
        drop(guards);
        (merge_last(per_service, n), follower)
    }

    /// Whether anyone follows (as far as can be told without waiting for a lock).
    pub fn has_followers(&self) -> bool {
        self.followers
            .try_read()
            .is_ok_and(|f| f.as_ref().is_some_and(|tx| tx.receiver_count() > 0))
    }

    /// Hands runpm's lifecycle line about `service` (the phrase of a reported event) to the
    /// followers, if any. Never waits for a lock: it is called from the daemon's loop,
    /// which must not wait for a follower being set up.
    pub fn lifecycle(&self, service: &str, text: &str) {
        let Ok(followers) = self.followers.try_read() else {
            return;
        };
        if let Some(tx) = followers.as_ref().filter(|tx| tx.receiver_count() > 0) {
            let _ = tx.send(Arc::new(LogLine {
                service: service.to_owned(),
                at: SystemTime::now(),
                stream: Stream::Stdout,
                line: text.to_owned(),
                runpm: true,
            }));
        }
    }

    /// Lines of `name` that could not be written to its file.
    pub fn lost_lines(&self, name: &str) -> u64 {
        self.get(name)
            .and_then(|e| lock(&e).file.as_ref().map(LogFile::lost_lines))
            .unwrap_or(0)
    }

    fn get(&self, name: &str) -> Option<Arc<Mutex<ServiceLog>>> {
        self.read_services().get(name).cloned()
    }

    /// The service's entry, created with the default limits if it printed before it was
    /// configured: a line is never dropped for want of bookkeeping.
    fn entry(&self, name: &str) -> Arc<Mutex<ServiceLog>> {
        if let Some(entry) = self.get(name) {
            return entry;
        }
        self.write_services()
            .entry(name.to_owned())
            .or_insert_with(|| {
                let file = LogFile::new(&self.dir, name, DEFAULT_MAX_SIZE, DEFAULT_KEEP)
                    .inspect_err(|e| {
                        tracing::warn!("{name:?}: output not written to a file: {e}");
                    })
                    .ok();
                Arc::new(Mutex::new(ServiceLog {
                    file,
                    tail: Tail::new(self.tail_lines, self.tail_bytes),
                }))
            })
            .clone()
    }

    /// The known services among `names` (all when empty), sorted by name.
    fn entries(&self, names: &[String]) -> Vec<(String, Arc<Mutex<ServiceLog>>)> {
        let services = self.read_services();
        let mut entries: Vec<_> = if names.is_empty() {
            services
                .iter()
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect()
        } else {
            names
                .iter()
                .filter_map(|n| services.get(n).map(|e| (n.clone(), e.clone())))
                .collect()
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        entries
    }

    fn read_services(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Mutex<ServiceLog>>>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent
        // (every update is a single insert or remove): logging carries on.
        self.services.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_services(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Mutex<ServiceLog>>>> {
        self.services
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl LineSink for LogHub {
    fn lines(&self, service: &str, stream: Stream, lines: &Lines) {
        if lines.is_empty() {
            return;
        }
        let entry = self.entry(service);
        {
            let mut log = lock(&entry);
            // Read under the lock, so one service's timestamps follow its file's order. One
            // reading for the batch: its lines were read from the pipe at the same moment.
            let at = SystemTime::now();
            if let Some(file) = &mut log.file {
                file.write_lines(at, stream, lines.iter());
            }
            // Older lines of a long batch would only be pushed out again.
            for line in lines.last(self.tail_lines) {
                log.tail.push(at, stream, line);
            }
            // No follower, no copy. Sent under the lock: see `follow`.
            let followers = self
                .followers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            match followers.as_ref() {
                Some(tx) if tx.receiver_count() > 0 => {
                    for line in lines.iter() {
                        let _ = tx.send(Arc::new(LogLine {
                            service: service.to_owned(),
                            at,
                            stream,
                            line: line.to_owned(),
                            runpm: false,
                        }));
                    }
                }
                Some(_) => {
                    drop(followers);
                    self.let_go_of_followers();
                }
                None => {}
            }
        }
        // Outside the lock: a terminal that stops reading must not also stall the file.
        let console = self
            .console
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(console) = console {
            console.lines(service, stream, lines);
        }
    }
}

fn lock(entry: &Mutex<ServiceLog>) -> MutexGuard<'_, ServiceLog> {
    // A panic while writing one line must not silence the service for good.
    entry.lock().unwrap_or_else(PoisonError::into_inner)
}

fn snapshot(name: &str, log: &ServiceLog, n: usize) -> Vec<LogLine> {
    log.tail
        .last(n)
        .map(|l| LogLine {
            service: name.to_owned(),
            at: l.at,
            stream: l.stream,
            line: l.line.clone(),
            runpm: false,
        })
        .collect()
}

/// The last `n` of the lines printed at or after `since`.
fn snapshot_since(
    name: &str,
    log: &ServiceLog,
    n: usize,
    since: Option<SystemTime>,
) -> Vec<LogLine> {
    let Some(since) = since else {
        return snapshot(name, log, n);
    };
    let mut lines: Vec<LogLine> = log
        .tail
        .last(n)
        .rev()
        .take_while(|l| l.at >= since)
        .map(|l| LogLine {
            service: name.to_owned(),
            at: l.at,
            stream: l.stream,
            line: l.line.clone(),
            runpm: false,
        })
        .collect();
    lines.reverse();
    lines
}

/// The last `n` lines of a merge of per-service runs: repeatedly take the earliest of the
/// runs' first lines (ties go to the earlier run), so each run keeps its own order whatever
/// the timestamps say. Runs hold at most `n` lines each, so merging them all is cheap.
fn merge_last(runs: Vec<Vec<LogLine>>, n: usize) -> Vec<LogLine> {
    let total = runs.iter().map(Vec::len).sum();
    let mut runs: Vec<_> = runs
        .into_iter()
        .map(|run| run.into_iter().peekable())
        .collect();
    let mut merged = Vec::with_capacity(total);
    loop {
        let earliest = runs
            .iter_mut()
            .enumerate()
            .filter_map(|(i, run)| run.peek().map(|l| (l.at, i)))
            .min();
        let Some((_, i)) = earliest else { break };
        merged.extend(runs[i].next());
    }
    merged.split_off(total.saturating_sub(n))
}

/// `Stream` as the file's marker, `"out"` or `"err"`.
mod stream_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::logs::capture::Stream;
    use crate::logs::file::stream_marker;

    pub fn serialize<S: Serializer>(stream: &Stream, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(stream_marker(*stream))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Stream, D::Error> {
        match String::deserialize(d)?.as_str() {
            "out" => Ok(Stream::Stdout),
            "err" => Ok(Stream::Stderr),
            other => Err(serde::de::Error::custom(format!(
                "unknown stream `{other}`, expected `out` or `err`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
