//! `runpmctl metrics`: the daemon's status as Prometheus text (see [`runpm::metrics`]).

use serde::Deserialize;

use runpm::cli::runpmctl::Cli;
use runpm::ipc::{Request, StatusResult};
use runpm::metrics::{Sample, group_usage, render};

use super::{Failure, connect, decode, print};

/// The accounting a daemon with cgroups reports per service, read beside the status.
#[derive(Deserialize)]
struct Accounted {
    services: Vec<AccountedService>,
}

#[derive(Deserialize)]
struct AccountedService {
    name: String,
    #[serde(default)]
    memory_bytes: Option<u64>,
    #[serde(default)]
    cpu_usec: Option<u64>,
}

pub(super) fn metrics(cli: &Cli) -> Result<(), Failure> {
    let mut client = connect(cli)?;
    let reply = client.call(&Request::Status { services: vec![] }, cli.timeout)?;
    let result = reply.into_result().map_err(Failure::Daemon)?;
    let status: StatusResult = decode(result.clone(), "status")?;
    let accounted: Accounted = decode(result, "status")?;
    let samples: Vec<Sample> = status
        .services
        .iter()
        .map(|s| {
            let own = accounted.services.iter().find(|a| a.name == s.name);
            let from_proc = s.pid.and_then(group_usage);
            Sample {
                name: s.name.clone(),
                status: s.status.clone(),
                restarts: s.restarts,
                last_exit_code: s.exits.last().and_then(|e| {
                    e.code
                        .or_else(|| e.signal.as_deref().and_then(signal_number).map(|n| 128 + n))
                }),
                memory_bytes: own
                    .and_then(|a| a.memory_bytes)
                    .or(from_proc.map(|u| u.memory_bytes)),
                cpu_seconds: own
                    .and_then(|a| a.cpu_usec)
                    .map(|us| us as f64 / 1e6)
                    .or(from_proc.map(|u| u.cpu_seconds)),
            }
        })
        .collect();
    print(&render(&samples))
}

/// `SIGKILL` → 9.
fn signal_number(name: &str) -> Option<i32> {
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}
