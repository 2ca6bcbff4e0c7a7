//! What the core reports: each lifecycle event, its fields, and the order of a turn's
//! reports, asserted on the effects (no log line is read).

use super::*;
use crate::config::Ready;
use crate::report::{Kind, Report};

/// The turn's reports as `service event` words, in order.
fn told(fx: &[Effect]) -> Vec<String> {
    reports(fx)
        .iter()
        .map(|r| {
            let who = r.service.as_deref().unwrap_or("-");
            format!("{who} {}", r.kind.name())
        })
        .collect()
}

fn reports(fx: &[Effect]) -> Vec<&Report> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Report(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn kind_of<'a>(fx: &'a [Effect], service: &str, event: &str) -> &'a Kind {
    reports(fx)
        .into_iter()
        .find(|r| r.service.as_deref() == Some(service) && r.kind.name() == event)
        .map(|r| &r.kind)
        .unwrap_or_else(|| panic!("no {event} of {service} in {:?}", told(fx)))
}

#[test]
fn a_start_reports_spawned_then_ready_and_reports_lead_the_turn() {
    let mut h = Harness::new(vec![spec("web")]);
    let fx = h.start_all();
    assert!(
        told(&fx).is_empty(),
        "nothing happened yet: {:?}",
        told(&fx)
    );
    let fx = h.settle(fx);
    assert_eq!(told(&fx), ["web spawned", "web ready"]);
    let pid = h.pid("web");
    assert_eq!(kind_of(&fx, "web", "spawned"), &Kind::Spawned { pid });
    assert_eq!(
        reports(&fx)[0].ts,
        SystemTime::UNIX_EPOCH,
        "stamped with the turn's wall clock"
    );
    // The crash's report comes before the signal that cleans up its group.
    let fx = h.exit("web", ExitStatus::Code(1));
    assert!(matches!(fx[0], Effect::Report(_)), "{fx:?}");
}

#[test]
fn a_crash_reports_exited_and_restarting_then_the_new_spawn() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("a");
    h.advance(Duration::from_millis(812));
    let fx = h.exit("a", ExitStatus::Code(1));
    assert_eq!(told(&fx), ["a exited", "a restarting"]);
    assert_eq!(
        kind_of(&fx, "a", "exited"),
        &Kind::Exited {
            pid,
            code: Some(1),
            signal: None,
            uptime_ms: 812,
            reason: "exited".into(),
        }
    );
    let Kind::Restarting { in_ms, restarts } = kind_of(&fx, "a", "restarting") else {
        unreachable!()
    };
    assert!((100..=110).contains(in_ms), "{in_ms}");
    assert_eq!(*restarts, 1);
    let fx = h.tick();
    let fx = h.settle(fx);
    assert_eq!(told(&fx), ["a spawned", "a ready"]);
}

#[test]
fn a_signal_death_names_the_signal() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.exit("a", ExitStatus::Signal(9));
    let Kind::Exited {
        code,
        signal,
        reason,
        ..
    } = kind_of(&fx, "a", "exited")
    else {
        unreachable!()
    };
    assert_eq!(
        (code, signal.as_deref(), reason.as_str()),
        (&None, Some("SIGKILL"), "signal")
    );
}

#[test]
fn a_crash_loop_reports_failed_with_the_reason() {
    let mut s = spec("a");
    s.max_restarts = 1;
    s.restart_delay = Duration::ZERO;
    let mut h = Harness::new(vec![s, spec("other")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.exit("a", ExitStatus::Code(4));
    h.settle(fx);
    let fx = h.exit("a", ExitStatus::Code(4));
    assert_eq!(told(&fx), ["a exited", "a failed"]);
    let Kind::Failed { reason } = kind_of(&fx, "a", "failed") else {
        unreachable!()
    };
    assert!(reason.starts_with("crash loop"), "{reason}");
}

#[test]
fn a_spawn_failure_reports_failed() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    assert_eq!(spawned(&fx), ["a"]);
    let ev = Event::SpawnFailed {
        service: "a".into(),
        error: not_found("nope"),
    };
    let fx = h.sup.handle(ev, h.now());
    assert_eq!(told(&fx), ["a failed"]);
}

#[test]
fn an_operator_stop_reports_the_plan_stopping_and_stopped() {
    let mut h = Harness::new(vec![spec("web"), spec("other")]);
    let fx = h.start_all();
    h.settle(fx);
    let pid = h.pid("web");
    let fx = h.request(
        1,
        Request::Stop {
            services: vec!["web".into()],
            all: false,
        },
    );
    assert_eq!(told(&fx), ["web planned", "web stopping"]);
    assert_eq!(
        kind_of(&fx, "web", "stopping"),
        &Kind::Stopping {
            pid,
            signal: "SIGTERM".into()
        }
    );
    let fx = h.obey(fx);
    assert_eq!(told(&fx), ["web planned", "web stopping", "web stopped"]);
}

#[test]
fn an_operator_restart_says_it_was_requested() {
    let mut h = Harness::new(vec![spec("web")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.request(
        1,
        Request::Restart {
            services: vec!["web".into()],
            all: false,
        },
    );
    assert_eq!(
        kind_of(&fx, "web", "planned"),
        &Kind::Planned {
            action: "restarted".into(),
            reason: Some("restart requested".into())
        }
    );
    let fx = h.obey(fx);
    assert_eq!(
        told(&fx),
        [
            "web planned",
            "web stopping",
            "web stopped",
            "web spawned",
            "web ready"
        ]
    );
}

#[test]
fn a_reload_reports_each_change_then_the_whole_plan() {
    let mut h = Harness::new(vec![spec("a"), spec("b"), spec("c")]);
    let fx = h.start_all();
    h.settle(fx);
    let mut b = spec("b");
    b.env.insert("X".into(), "1".into());
    let fx = h.reload(1, vec![spec("a"), b, spec("new")], false);
    let names = told(&fx);
    let reloaded = names.iter().position(|n| n == "- reloaded").unwrap();
    assert!(
        names[..reloaded].contains(&"b planned".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        kind_of(&fx, "b", "planned"),
        &Kind::Planned {
            action: "restarted".into(),
            reason: Some("env changed".into())
        }
    );
    let reloaded = reports(&fx)[reloaded];
    assert_eq!(
        reloaded.kind,
        Kind::Reloaded {
            added: vec!["new".into()],
            removed: vec!["c".into()],
            changed: vec!["b".into()],
            unchanged: 1,
        }
    );
    let fx = h.obey(fx);
    let names = told(&fx);
    assert!(names.contains(&"new spawned".to_owned()), "{names:?}");
    assert!(names.contains(&"c stopped".to_owned()), "{names:?}");
}

#[test]
fn an_invalid_config_reports_config_invalid_unless_it_was_a_dry_run() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let load = |dry_run| Event::ConfigLoaded {
        token: None,
        dry_run,
        result: Err(invalid("services.toml", 3, 1)),
    };
    let fx = h.sup.handle(load(true), h.now());
    assert!(told(&fx).is_empty(), "{:?}", told(&fx));
    let fx = h.sup.handle(load(false), h.now());
    assert_eq!(told(&fx), ["- config_invalid"]);
    let Effect::Report(report) = &fx[0] else {
        unreachable!()
    };
    let Kind::ConfigInvalid { message } = &report.kind else {
        unreachable!()
    };
    assert!(message.contains("services.toml:3:1"), "{message}");
}

#[test]
fn a_readiness_check_reports_ready_when_it_passes() {
    let mut s = spec("db");
    s.ready = Some(Ready::Tcp("127.0.0.1:5432".into()));
    let mut h = Harness::new(vec![s]);
    let fx = h.start_all();
    let fx = h.settle(fx);
    assert_eq!(told(&fx), ["db spawned"]);
    let fx = h.tick();
    assert_eq!(probes(&fx), [("db", Purpose::Ready)]);
    let fx = h.probe_done("db", Purpose::Ready, true);
    let pid = h.pid("db");
    assert_eq!(told(&fx), ["db ready"]);
    assert_eq!(kind_of(&fx, "db", "ready"), &Kind::Ready { pid });
}

#[test]
fn health_checks_report_each_failure_and_the_recovery() {
    let mut h = Harness::new(vec![tcp_health("web", 3)]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.tick();
    assert_eq!(probes(&fx), [("web", Purpose::Health)]);
    let fx = h.probe_done("web", Purpose::Health, false);
    assert_eq!(told(&fx), ["web health_failed"]);
    let Kind::HealthFailed { message } = kind_of(&fx, "web", "health_failed") else {
        unreachable!()
    };
    assert!(message.starts_with("probe exited"), "{message}");
    h.tick();
    let fx = h.probe_done("web", Purpose::Health, true);
    assert_eq!(told(&fx), ["web health_recovered"]);
    h.tick();
    let fx = h.probe_done("web", Purpose::Health, true);
    assert!(told(&fx).is_empty(), "passing again is no news");
}

#[test]
fn a_shutdown_ends_with_daemon_stopping_as_the_last_report() {
    let mut h = Harness::new(vec![spec("a"), dep("b", &["a"])]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.request(9, Request::Shutdown);
    assert_eq!(told(&fx), ["b stopping"]);
    let fx = h.obey(fx);
    assert_eq!(exit_code(&fx), Some(0));
    let names = told(&fx);
    assert_eq!(
        names,
        [
            "b stopping",
            "b stopped",
            "a stopping",
            "a stopped",
            "- daemon_stopping"
        ]
    );
}

#[test]
fn an_idle_turn_reports_nothing() {
    let mut h = Harness::new(vec![spec("a")]);
    let fx = h.start_all();
    h.settle(fx);
    let fx = h.request(
        1,
        Request::Status {
            services: Vec::new(),
        },
    );
    assert!(told(&fx).is_empty());
}
