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

use super::boot::{BootDecision, RecoveryAction, decide, plan_recovery, record_cleanup};
use super::file::StateFile;
use super::proc::{boot_id, pid_ns, verify};
use super::store::{LoadOutcome, load, sweep_temp_files, write_atomic};

/// What the snapshot says about the services.
#[derive(Debug)]
pub struct Resume {
    pub decision: BootDecision,
    /// Services that were meant to run (and were not stopped by the operator).
    pub wanted_up: BTreeSet<String>,
    pub stopped_by_operator: BTreeSet<String>,
    pub restarts: BTreeMap<String, u32>,
    /// Every name the snapshot knows: a service that is new in the config follows its
    /// `autostart` instead.
    pub known: BTreeSet<String>,
    /// Processes of the previous daemon that are alive and proven ours.
    pub survivors: Vec<Survivor>,
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
pub fn startup(state_file: &Utf8Path, config: Result<Config, String>) -> Result<Startup, String> {
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
            chain(&e)
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
                    chain(error.reason())
                ),
                (None, Some(e)) => tracing::error!(
                    "the state file {state_file} cannot be used ({}), and moving it aside failed ({}); \
                     runpm starts from the config",
                    chain(error.reason()),
                    chain(&e)
                ),
                (None, None) => tracing::error!(
                    "the state file {state_file} cannot be used ({}); runpm starts from the config",
                    chain(error.reason())
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
    let resume = file.map(|file| resume(state_file, &file));
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
                        chain(&e)
                    );
                }
            }
            decision
        }
        _ => BootDecision::NewBoot { first_time: false },
    };
    let recovery = plan_recovery(file, decision, verify);
    let mut out = Resume {
        decision,
        wanted_up: BTreeSet::new(),
        stopped_by_operator: BTreeSet::new(),
        restarts: BTreeMap::new(),
        known: BTreeSet::new(),
        survivors: Vec::new(),
    };
    for (name, service) in recovery.per_service {
        out.known.insert(name.clone());
        out.restarts.insert(name.clone(), service.restarts);
        if service.stopped_by_operator {
            out.stopped_by_operator.insert(name.clone());
        }
        if service.wanted_up {
            out.wanted_up.insert(name.clone());
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

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
