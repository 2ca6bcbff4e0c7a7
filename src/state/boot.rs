//! Boot gating and recovery: what to do, at start-up, with each service a state file names.
//!
//! First [`decide`] compares the file's boot id and pid namespace with the current ones.
//! Different means the machine rebooted or the container came back in a new pid namespace:
//! every recorded pid is dead by definition, and a live process with that number is
//! somebody else's. Then [`plan_recovery`] turns each record into an action. Both are pure;
//! the only window onto the system is the `verify` function passed in (the real one is
//! `proc::verify`; tests pass a fake), and it is only ever asked on the same boot.
//!
//! "Wanted up" means the status was `running`, `starting`, `backoff` or `stopping` and the
//! operator had not stopped the service (a `stopping` that the operator did not ask for is a
//! restart in progress).
//!
//! | boot | recorded pid        | verify               | wanted up | action                     |
//! |------|---------------------|----------------------|-----------|----------------------------|
//! | new  | any                 | never called         | yes       | `Start` (resurrect)        |
//! | new  | any                 | never called         | no        | `LeaveStopped`             |
//! | same | pid + start time    | `Ours(pidfd)`        | any       | `Adopt` (see below)        |
//! | same | pid + start time    | `Gone`               | yes / no  | `Start` / `LeaveStopped`   |
//! | same | pid + start time    | `Stranger`, `Unverifiable` | yes / no | `Start` / `LeaveStopped` |
//! | same | pid, no start time  | never called         | yes / no  | `Start` / `LeaveStopped`   |
//! | same | none                | never called         | yes / no  | `Start` / `LeaveStopped`   |
//!
//! A survivor that is ours is always adopted, even when it is not wanted up (a stop the
//! dead daemon had begun): leaving it unmanaged would let a later start run a second copy.
//! The supervisor then finishes the stop through the pidfd when `wanted_up` is false. A
//! survivor is never replaced by a second copy while it runs, and nothing that is not proven
//! ours (stranger, unverifiable, pid without start time, any pid from another boot) is ever
//! signalled: those services are simply started afresh. Two records claiming the same live
//! process cannot both own it; only the first (by name) adopts it.
//!
//! The reboot cleanup ("every recorded process is stopped") is recorded with
//! [`record_cleanup`] so it is reported once per boot: `decide` says `first_time: false` on
//! later start-ups of the same boot, while the file still holds the old boot's snapshot to
//! resurrect from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::fd::OwnedFd;

use super::file::{ServiceRecord, StateFile};
use super::identity::{Identity, Verified};
use crate::config::ServiceSpec;

/// Statuses (as `runpmctl status` shows them) of a service that was meant to be up.
pub const UP_STATUSES: [&str; 4] = ["running", "starting", "backoff", "stopping"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDecision {
    /// Same boot id and pid namespace: the daemon itself died; recorded pids may be alive.
    SameBoot,
    /// Another boot or namespace: no recorded pid means anything. `first_time` is false
    /// when the cleanup for this boot was already recorded.
    NewBoot { first_time: bool },
}

pub fn decide(file: &StateFile, current_boot: &str, current_ns: &str) -> BootDecision {
    if file.boot_id == current_boot && file.pid_ns == current_ns {
        BootDecision::SameBoot
    } else {
        BootDecision::NewBoot {
            first_time: file.cleaned_boot.as_deref() != Some(current_boot),
        }
    }
}

/// What a new daemon makes of the last session, which decides what it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// The last daemon of this boot ended its session itself (Ctrl-C, `shutdown`): start
    /// from the config, one-shot tasks included, as on a first start. The records are
    /// history.
    Ended,
    /// The machine rebooted (or the container came back in a new pid namespace), whether
    /// the daemon was stopped cleanly on the way down or not: the project boots afresh from
    /// the config (tasks run again), except that what the operator stopped stays stopped
    /// and what they started comes back.
    Rebooted,
    /// The daemon died on this boot: restore the snapshot. What ran runs again, what the
    /// operator stopped stays stopped, and a task that completed is not run again.
    Crashed,
}

pub fn session(file: &StateFile, decision: BootDecision) -> Session {
    match (decision, file.clean_shutdown) {
        (BootDecision::NewBoot { .. }, _) => Session::Rebooted,
        (BootDecision::SameBoot, true) => Session::Ended,
        (BootDecision::SameBoot, false) => Session::Crashed,
    }
}

/// Whether the record describes a service that should be running.
pub fn wanted_up(record: &ServiceRecord) -> bool {
    !record.stopped_by_operator && UP_STATUSES.contains(&record.status.as_str())
}

#[derive(Debug)]
pub enum RecoveryAction {
    /// Take over the surviving process: watch and signal it through `pidfd`.
    Adopt {
        pidfd: OwnedFd,
        pid: i32,
        start_time: u64,
    },
    /// Start the service (again).
    Start,
    /// Keep it down; `by_operator` says whether the operator had stopped it.
    LeaveStopped { by_operator: bool },
}

/// What became of the recorded pid, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidCheck {
    NotRecorded,
    /// From another boot or namespace: not checked, not trusted.
    OtherBoot,
    /// A pid without a start time cannot be proven ours.
    NoStartTime,
    Ours,
    Gone,
    Stranger,
    Unverifiable(String),
    /// An earlier record already adopted this process.
    AlreadyClaimed,
}

impl fmt::Display for PidCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidCheck::NotRecorded => f.write_str("no pid was recorded"),
            PidCheck::OtherBoot => {
                f.write_str("the recorded pid is from another boot; it was not signalled")
            }
            PidCheck::NoStartTime => f.write_str(
                "the recorded pid has no start time, so it cannot be proven ours; it was not signalled",
            ),
            PidCheck::Ours => f.write_str("the recorded process is still running"),
            PidCheck::Gone => f.write_str("the recorded process has exited"),
            PidCheck::Stranger => f.write_str(
                "the recorded pid now belongs to another process (start time differs); it was not signalled",
            ),
            PidCheck::Unverifiable(why) => {
                write!(f, "the recorded pid could not be checked ({why}); it was not signalled")
            }
            PidCheck::AlreadyClaimed => f.write_str(
                "the recorded process was already adopted by another service; it was not signalled",
            ),
        }
    }
}

#[derive(Debug)]
pub struct RecoveredService {
    pub spec: ServiceSpec,
    pub action: RecoveryAction,
    pub restarts: u32,
    pub stopped_by_operator: bool,
    /// See [`wanted_up`]. For `Adopt`, false means: finish stopping it.
    pub wanted_up: bool,
    /// The status the file recorded.
    pub previous_status: String,
    pub recorded_pid: Option<i32>,
    pub pid_check: PidCheck,
}

#[derive(Debug)]
pub struct Recovery {
    pub decision: BootDecision,
    pub per_service: BTreeMap<String, RecoveredService>,
}

pub fn plan_recovery(
    file: &StateFile,
    decision: BootDecision,
    verify: impl Fn(Identity) -> Verified,
) -> Recovery {
    let mut claimed = BTreeSet::new();
    let mut per_service = BTreeMap::new();
    // In name order, so which of two conflicting records adopts is deterministic.
    let mut records: Vec<&ServiceRecord> = file.services.iter().collect();
    records.sort_by(|a, b| a.name.cmp(&b.name));
    for record in records {
        let wanted = wanted_up(record);
        let by_status = if wanted {
            RecoveryAction::Start
        } else {
            RecoveryAction::LeaveStopped {
                by_operator: record.stopped_by_operator,
            }
        };
        let (action, pid_check) = match (decision, record.pid, record.pid_start_time) {
            (_, None, _) => (by_status, PidCheck::NotRecorded),
            (BootDecision::NewBoot { .. }, Some(_), _) => (by_status, PidCheck::OtherBoot),
            (BootDecision::SameBoot, Some(_), None) => (by_status, PidCheck::NoStartTime),
            (BootDecision::SameBoot, Some(pid), Some(start_time)) => {
                if claimed.contains(&pid) {
                    (by_status, PidCheck::AlreadyClaimed)
                } else {
                    match verify(Identity { pid, start_time }) {
                        Verified::Ours(pidfd) => {
                            claimed.insert(pid);
                            let adopt = RecoveryAction::Adopt {
                                pidfd,
                                pid,
                                start_time,
                            };
                            (adopt, PidCheck::Ours)
                        }
                        Verified::Gone => (by_status, PidCheck::Gone),
                        Verified::Stranger => (by_status, PidCheck::Stranger),
                        Verified::Unverifiable(why) => (by_status, PidCheck::Unverifiable(why)),
                    }
                }
            }
        };
        per_service.insert(
            record.name.clone(),
            RecoveredService {
                spec: record.spec.clone(),
                action,
                restarts: record.restarts,
                stopped_by_operator: record.stopped_by_operator,
                wanted_up: wanted,
                previous_status: record.status.clone(),
                recorded_pid: record.pid,
                pid_check,
            },
        );
    }
    Recovery {
        decision,
        per_service,
    }
}

/// The file with the reboot cleanup recorded for `current_boot`: the dead pids are dropped
/// (nobody may mistake them later) while boot id, statuses and specs stay as they were, so
/// a daemon that dies before writing its own state still resurrects the same snapshot, and
/// the next start-up on this boot reports `first_time: false`.
pub fn record_cleanup(file: &StateFile, current_boot: &str) -> StateFile {
    let mut out = file.clone();
    out.cleaned_boot = Some(current_boot.to_owned());
    for record in &mut out.services {
        record.pid = None;
        record.pid_start_time = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::state::testing::{doc, record};

    const BOOT: &str = "boot-now";
    const NS: &str = "4026531836";

    fn file(records: Vec<ServiceRecord>) -> StateFile {
        let mut f = doc(records);
        f.boot_id = BOOT.into();
        f.pid_ns = NS.into();
        f
    }

    /// A fake `verify` that answers from a table and records every question.
    struct FakeVerify {
        answers: BTreeMap<i32, &'static str>,
        asked: RefCell<Vec<Identity>>,
    }

    impl FakeVerify {
        fn new(answers: &[(i32, &'static str)]) -> FakeVerify {
            FakeVerify {
                answers: answers.iter().copied().collect(),
                asked: RefCell::new(vec![]),
            }
        }

        fn verify(&self, id: Identity) -> Verified {
            self.asked.borrow_mut().push(id);
            match self.answers.get(&id.pid).copied() {
                Some("ours") => Verified::Ours(dummy_fd()),
                Some("stranger") => Verified::Stranger,
                Some("unverifiable") => Verified::Unverifiable("EMFILE".into()),
                _ => Verified::Gone,
            }
        }
    }

    /// Any fd stands in for a pidfd: the plan only carries it.
    fn dummy_fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    fn never(_: Identity) -> Verified {
        panic!("verify must not be called");
    }

    fn action_name(r: &RecoveredService) -> String {
        match &r.action {
            RecoveryAction::Adopt {
                pid, start_time, ..
            } => format!("adopt {pid}@{start_time}"),
            RecoveryAction::Start => "start".into(),
            RecoveryAction::LeaveStopped { by_operator: true } => "stopped by operator".into(),
            RecoveryAction::LeaveStopped { by_operator: false } => "stopped".into(),
        }
    }

    #[test]
    fn decide_same_boot() {
        let f = file(vec![]);
        assert_eq!(decide(&f, BOOT, NS), BootDecision::SameBoot);
    }

    #[test]
    fn decide_new_boot_or_namespace() {
        let f = file(vec![]);
        assert_eq!(
            decide(&f, "other-boot", NS),
            BootDecision::NewBoot { first_time: true }
        );
        assert_eq!(
            decide(&f, BOOT, "4026532000"),
            BootDecision::NewBoot { first_time: true }
        );
    }

    #[test]
    fn decide_cleanup_is_recorded_once_per_boot() {
        let f = record_cleanup(&file(vec![]), "other-boot");
        assert_eq!(
            decide(&f, "other-boot", NS),
            BootDecision::NewBoot { first_time: false }
        );
        // A cleanup recorded for some earlier boot does not count for this one.
        assert_eq!(
            decide(&f, "third-boot", NS),
            BootDecision::NewBoot { first_time: true }
        );
    }

    #[test]
    fn new_boot_trusts_no_pid_and_resurrects_what_was_up() {
        let mut records = vec![];
        for status in UP_STATUSES {
            records.push(record(&format!("up-{status}"), status, Some((100, 1))));
        }
        for status in ["stopped", "exited", "failed", "some-future-status"] {
            records.push(record(&format!("down-{status}"), status, None));
        }
        let mut by_operator = record("operator", "stopped", None);
        by_operator.stopped_by_operator = true;
        records.push(by_operator);
        // The operator's stop wins over a status that looked up.
        let mut stopping = record("operator-stopping", "stopping", Some((101, 1)));
        stopping.stopped_by_operator = true;
        records.push(stopping);

        for first_time in [true, false] {
            let plan = plan_recovery(
                &file(records.clone()),
                BootDecision::NewBoot { first_time },
                never,
            );
            for (name, r) in &plan.per_service {
                let expected = if name.starts_with("up-") {
                    "start"
                } else if name.starts_with("operator") {
                    "stopped by operator"
                } else {
                    "stopped"
                };
                assert_eq!(action_name(r), expected, "{name}");
            }
            assert_eq!(
                plan.per_service["up-running"].pid_check,
                PidCheck::OtherBoot
            );
            assert_eq!(plan.per_service.len(), records.len());
        }
    }

    #[test]
    fn same_boot_adopts_what_is_ours_even_when_not_wanted() {
        let mut stopping = record("b-stopping", "stopping", Some((20, 7)));
        stopping.stopped_by_operator = true;
        stopping.restarts = 4;
        let f = file(vec![record("a-web", "running", Some((10, 5))), stopping]);
        let fake = FakeVerify::new(&[(10, "ours"), (20, "ours")]);
        let plan = plan_recovery(&f, BootDecision::SameBoot, |id| fake.verify(id));
        let web = &plan.per_service["a-web"];
        assert_eq!(action_name(web), "adopt 10@5");
        assert!(web.wanted_up);
        assert_eq!(web.pid_check, PidCheck::Ours);
        let b = &plan.per_service["b-stopping"];
        assert_eq!(action_name(b), "adopt 20@7");
        assert!(!b.wanted_up, "the supervisor finishes the operator's stop");
        assert_eq!(b.restarts, 4);
        assert_eq!(
            *fake.asked.borrow(),
            vec![
                Identity {
                    pid: 10,
                    start_time: 5
                },
                Identity {
                    pid: 20,
                    start_time: 7
                }
            ]
        );
    }

    #[test]
    fn same_boot_gone_stranger_or_unverifiable_restarts_if_wanted() {
        for answer in ["gone", "stranger", "unverifiable"] {
            let mut down = record("down", "stopped", Some((11, 1)));
            down.stopped_by_operator = true;
            let f = file(vec![record("up", "running", Some((10, 1))), down]);
            let fake = FakeVerify::new(&[(10, answer), (11, answer)]);
            let plan = plan_recovery(&f, BootDecision::SameBoot, |id| fake.verify(id));
            assert_eq!(action_name(&plan.per_service["up"]), "start", "{answer}");
            assert_eq!(
                action_name(&plan.per_service["down"]),
                "stopped by operator",
                "{answer}"
            );
            let expected = match answer {
                "gone" => PidCheck::Gone,
                "stranger" => PidCheck::Stranger,
                _ => PidCheck::Unverifiable("EMFILE".into()),
            };
            assert_eq!(plan.per_service["up"].pid_check, expected);
        }
    }

    #[test]
    fn same_boot_without_pid_or_start_time_goes_by_status() {
        let mut no_start = record("no-start-time", "running", Some((10, 1)));
        no_start.pid_start_time = None;
        let f = file(vec![
            record("backoff", "backoff", None),
            record("exited", "exited", None),
            no_start,
        ]);
        let plan = plan_recovery(&f, BootDecision::SameBoot, never);
        assert_eq!(action_name(&plan.per_service["backoff"]), "start");
        assert_eq!(action_name(&plan.per_service["exited"]), "stopped");
        assert_eq!(plan.per_service["exited"].pid_check, PidCheck::NotRecorded);
        let n = &plan.per_service["no-start-time"];
        assert_eq!(action_name(n), "start");
        assert_eq!(n.pid_check, PidCheck::NoStartTime);
    }

    #[test]
    fn one_process_is_adopted_once() {
        let f = file(vec![
            record("a", "running", Some((10, 1))),
            record("b", "running", Some((10, 1))),
        ]);
        let fake = FakeVerify::new(&[(10, "ours")]);
        let plan = plan_recovery(&f, BootDecision::SameBoot, |id| fake.verify(id));
        assert_eq!(action_name(&plan.per_service["a"]), "adopt 10@1");
        assert_eq!(action_name(&plan.per_service["b"]), "start");
        assert_eq!(plan.per_service["b"].pid_check, PidCheck::AlreadyClaimed);
        assert_eq!(fake.asked.borrow().len(), 1);
    }

    #[test]
    fn record_cleanup_keeps_the_snapshot_and_drops_pids() {
        let mut f = file(vec![record("web", "running", Some((10, 1)))]);
        f.boot_id = "old-boot".into();
        let cleaned = record_cleanup(&f, BOOT);
        assert_eq!(cleaned.cleaned_boot.as_deref(), Some(BOOT));
        assert_eq!(cleaned.boot_id, "old-boot");
        assert_eq!(cleaned.services[0].pid, None);
        assert_eq!(cleaned.services[0].pid_start_time, None);
        assert_eq!(cleaned.services[0].status, "running");
        let decision = decide(&cleaned, BOOT, NS);
        assert_eq!(decision, BootDecision::NewBoot { first_time: false });
        let plan = plan_recovery(&cleaned, decision, never);
        assert_eq!(action_name(&plan.per_service["web"]), "start");
    }

    #[test]
    fn pid_checks_read_plainly() {
        assert_eq!(
            PidCheck::Stranger.to_string(),
            "the recorded pid now belongs to another process (start time differs); it was not signalled"
        );
    }
}
