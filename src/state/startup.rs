//! Start-up from the persisted state: what a new daemon learns from the last one.
//!
//! In order: temp files of a write that was cut off are swept; the state file is loaded (a
//! bad one is moved aside, reported, and runpm goes on from the config); if the config cannot
//! be loaded but the file holds specs, those run instead (last-known-good), loudly; the boot
//! gate decides whether recorded pids can mean anything, and after a reboot the cleanup is
//! recorded once; finally each record becomes a recovery action (start, leave stopped, or a
//! surviving process proven ours).

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;

use camino::{Utf8Path, Utf8PathBuf};

use crate::config::{Config, ServiceSpec, Settings};
use crate::errors::error_chain;

use super::boot::{
    BootDecision, RecoveryAction, Session, decide, plan_recovery, record_cleanup, session,
};
use super::file::StateFile;
use super::proc::{boot_id, pid_ns, tagged_processes, verify};
use super::store::{LoadOutcome, load, sweep_temp_files, write_atomic};
use super::token::Token;

/// What the snapshot says about the services.
#[derive(Debug)]
pub struct Resume {
    pub decision: BootDecision,
    /// Services that were meant to run (and were not stopped by the operator).
    pub wanted_up: BTreeSet<String>,
    pub stopped_by_operator: BTreeSet<String>,
    pub restarts: BTreeMap<String, u32>,
    /// The names whose `autostart` the snapshot overrides (started only if in `wanted_up`);
    /// the others follow their `autostart`.
    pub known: BTreeSet<String>,
    /// Tasks that had completed, with the spec they completed with: left completed (not
    /// run again) while the config still says the same.
    pub completed: BTreeMap<String, ServiceSpec>,
    /// Processes of the previous daemon that are alive and proven ours.
    pub survivors: Vec<Survivor>,
    /// `runpmctl scale` overrides still in force (none after a clean shutdown: like the
    /// operator's stops, they belong to the session).
    pub scaled: BTreeMap<String, crate::config::Scaled>,
    /// When each scheduled service last started a run, whatever ended the session.
    pub last_runs: BTreeMap<String, std::time::SystemTime>,
}

/// A process of the previous daemon that is still alive, proven by its start time through
/// a pidfd taken before the check.
#[derive(Debug)]
pub struct Survivor {
    pub name: String,
    pub pid: i32,
    pub start_time: u64,
    pub pidfd: OwnedFd,
    pub spec: ServiceSpec,
    pub wanted_up: bool,
}

#[derive(Debug)]
pub struct Startup {
    /// The config to run: the one on disk, or the last-known-good specs.
    pub config: Config,
    /// Set when running from the snapshot: why the config on disk could not be used.
    pub last_known_good: Option<String>,
    pub resume: Option<Resume>,
}

/// Reads the state file next to a config that loaded (`Ok`) or not (`Err` with every
/// diagnostic). Fails only when the config is invalid and no snapshot can stand in.
pub fn startup(
    state_file: &Utf8Path,
    token: &Token,
    config: Result<Config, String>,
) -> Result<Startup, String> {
    match sweep_temp_files(state_file) {
        Ok(swept) if !swept.is_empty() => {
            tracing::info!(
                "removed {} temp file(s) of an interrupted state write",
                swept.len()
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "cannot clean up temp files beside {state_file}: {}",
            error_chain(&e)
        ),
    }
    let file = match load(state_file) {
        LoadOutcome::Missing => None,
        LoadOutcome::Loaded(file) => Some(file),
        LoadOutcome::Bad {
            error,
            moved_to,
            move_error,
        } => {
            match (moved_to, move_error) {
                (Some(to), _) => tracing::error!(
                    "the state file {state_file} cannot be used ({}); it was moved aside to {to} and \
                     runpm starts from the config",
                    error_chain(error.reason())
                ),
                (None, Some(e)) => tracing::error!(
                    "the state file {state_file} cannot be used ({}), and moving it aside failed ({}); \
                     runpm starts from the config",
                    error_chain(error.reason()),
                    error_chain(&e)
                ),
                (None, None) => tracing::error!(
                    "the state file {state_file} cannot be used ({}); runpm starts from the config",
                    error_chain(error.reason())
                ),
            }
            None
        }
    };
    let (config, last_known_good) = match (config, &file) {
        (Ok(config), _) => (config, None),
        (Err(errors), Some(file)) if !file.services.is_empty() => {
            tracing::error!(
                "THE CONFIG IS INVALID; running the last-known-good services recorded in {state_file} \
                 until a valid config is reloaded:\n{errors}"
            );
            (snapshot_config(file), Some(errors))
        }
        (Err(errors), _) => return Err(errors),
    };
    let mut resume = file.map(|file| resume(state_file, &file));
    let instance = state_file
        .parent()
        .map_or_else(String::new, |dir| dir.to_string());
    untracked(&instance, token, &config, &mut resume);
    Ok(Startup {
        config,
        last_known_good,
        resume,
    })
}

/// A config made of the specs the snapshot recorded, with default daemon settings.
fn snapshot_config(file: &StateFile) -> Config {
    let source = Utf8PathBuf::from(&file.config);
    let base_dir = source
        .parent()
        .map_or_else(|| Utf8PathBuf::from("/"), Utf8Path::to_owned);
    let services = file
        .services
        .iter()
        .map(|r| (r.name.clone(), r.spec.clone()))
        .collect();
    Config {
        source,
        base_dir,
        settings: Settings::default(),
        services,
        replicated: Default::default(),
        selection: Default::default(),
    }
}

fn resume(state_file: &Utf8Path, file: &StateFile) -> Resume {
    // Without /proc nothing can be proven about any pid: treat it as another boot, under
    // which no recorded pid is ever signalled.
    let decision = match (boot_id(), pid_ns()) {
        (Ok(boot), Ok(ns)) => {
            let decision = decide(file, &boot, &ns);
            if decision == (BootDecision::NewBoot { first_time: true }) {
                let recorded = file.services.iter().filter(|r| r.pid.is_some()).count();
                tracing::info!(
                    "the machine rebooted (or this is a new pid namespace) since {state_file} was \
                     written: its {recorded} recorded process(es) are gone; none will be signalled"
                );
                // Recorded once per boot: a crash before the next write does not repeat it.
                if let Err(e) = write_atomic(state_file, &record_cleanup(file, &boot)) {
                    tracing::warn!(
                        "cannot record the reboot cleanup in {state_file}: {}",
                        error_chain(&e)
                    );
                }
            }
            decision
        }
        _ => BootDecision::NewBoot { first_time: false },
    };
    let recovery = plan_recovery(file, decision, verify);
    let session = session(file, decision);
    match session {
        Session::Ended => tracing::info!(
            "the last session ended cleanly: starting from the config ({state_file} is history)"
        ),
        Session::Rebooted => tracing::info!(
            "the last session ended with a reboot: starting from the config, except what the \
             operator had stopped"
        ),
        Session::Crashed => tracing::info!(
            "the last runpm of this boot did not end cleanly: restoring what {state_file} says ran"
        ),
    }
    let mut out = Resume {
        decision,
        wanted_up: BTreeSet::new(),
        stopped_by_operator: BTreeSet::new(),
        restarts: BTreeMap::new(),
        known: BTreeSet::new(),
        completed: BTreeMap::new(),
        survivors: Vec::new(),
        scaled: match session {
            Session::Ended => BTreeMap::new(),
            Session::Rebooted | Session::Crashed => file.scaled.clone(),
        },
        last_runs: file
            .services
            .iter()
            .filter_map(|r| {
                let at = humantime::parse_rfc3339_weak(r.last_run.as_deref()?).ok()?;
                Some((r.name.clone(), at))
            })
            .collect(),
    };
    let completed: BTreeSet<&str> = file
        .services
        .iter()
        .filter(|r| r.completed)
        .map(|r| r.name.as_str())
        .collect();
    for (name, service) in recovery.per_service {
        match session {
            Session::Ended => {}
            Session::Rebooted => {
                if service.stopped_by_operator {
                    out.known.insert(name.clone());
                    out.stopped_by_operator.insert(name.clone());
                }
                if service.wanted_up {
                    out.wanted_up.insert(name.clone());
                }
            }
            Session::Crashed => {
                out.known.insert(name.clone());
                out.restarts.insert(name.clone(), service.restarts);
                if service.stopped_by_operator {
                    out.stopped_by_operator.insert(name.clone());
                }
                if service.wanted_up {
                    out.wanted_up.insert(name.clone());
                }
                if completed.contains(name.as_str()) {
                    out.completed.insert(name.clone(), service.spec.clone());
                }
            }
        }
        if service.recorded_pid.is_some() && decision == BootDecision::SameBoot {
            tracing::info!(
                "{name}: recorded pid {}: {}",
                service.recorded_pid.unwrap_or(0),
                service.pid_check
            );
        }
        if let RecoveryAction::Adopt {
            pidfd,
            pid,
            start_time,
        } = service.action
        {
            out.survivors.push(Survivor {
                name,
                pid,
                start_time,
                pidfd,
                spec: service.spec,
                wanted_up: service.wanted_up,
            });
        }
    }
    out
}

/// Processes an earlier daemon of this state directory started but did not record (it died
/// between a spawn and the state write): found by their tag and the directory's secret
/// token (a tag alone proves nothing: anyone can set it), proven alive through a pidfd,
/// and handed over as survivors so that they are stopped before a fresh copy starts. Never
/// two copies: a second process claiming a service that already has a survivor, and a
/// leftover whose service leader is gone, are killed at once.
fn untracked(instance: &str, token: &Token, config: &Config, resume: &mut Option<Resume>) {
    let tagged = tagged_processes(instance, token);
    if tagged.is_empty() {
        return;
    }
    let resume = resume.get_or_insert_with(|| Resume {
        decision: BootDecision::SameBoot,
        wanted_up: BTreeSet::new(),
        stopped_by_operator: BTreeSet::new(),
        restarts: BTreeMap::new(),
        known: BTreeSet::new(),
        completed: BTreeMap::new(),
        survivors: Vec::new(),
        scaled: BTreeMap::new(),
        last_runs: BTreeMap::new(),
    });
    let leaders: BTreeSet<i32> = tagged
        .iter()
        .filter(|t| t.sid == t.pid)
        .map(|t| t.pid)
        .collect();
    for t in tagged {
        let known = resume.survivors.iter().any(|s| s.pid == t.pid);
        let claimed = resume.survivors.iter().any(|s| s.name == t.service);
        let leader = t.sid == t.pid;
        let spec = config.services.get(&t.service);
        if known || (!leader && leaders.contains(&t.sid)) {
            // Recorded already, or part of a group that goes with its leader.
            continue;
        }
        if leader
            && !claimed
            && let Some(spec) = spec
        {
            tracing::warn!(
                "{}: pid {} was started by an earlier runpm that did not record it; it will be \
                 stopped before a fresh one starts",
                t.service,
                t.pid
            );
            resume.survivors.push(Survivor {
                name: t.service,
                pid: t.pid,
                start_time: t.start_time,
                pidfd: t.pidfd,
                spec: spec.clone(),
                wanted_up: false,
            });
            continue;
        }
        tracing::warn!(
            "{}: pid {} was started by an earlier runpm and is not needed (a duplicate, a leftover, \
             or no longer in the config): killing it",
            t.service,
            t.pid
        );
        let _ = rustix::process::pidfd_send_signal(&t.pidfd, rustix::process::Signal::KILL);
    }
}
