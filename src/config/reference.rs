//! The reference of the unit file format: every key, its type, its default and an example.
//!
//! This table is the source of `runpm.toml(5)` (rendered by `tests/man.rs`), and the tests
//! below hold it to the schema: every key of the raw structs is listed (and nothing else),
//! every example is accepted by the loader, and every default written as a value really is
//! the default (a config that spells it out resolves to the same spec as one that leaves it
//! out). So the page cannot drift from the code without a test failing.
//!
//! Descriptions are plain sentences; `backticks` mark literal text (keys, values, commands).

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    /// The value's type, in words (`duration`, `list of strings`…).
    pub ty: &'static str,
    pub default: Default,
    /// A value as written in TOML.
    pub example: &'static str,
    pub doc: &'static str,
}

/// What a key is when it is not given.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// The key must be given (or, for `cmd`/`shell`, one of a pair).
    Required,
    /// Nothing: the feature is off.
    Unset,
    /// This TOML value; checked by the tests to mean the same as leaving the key out.
    Value(&'static str),
    /// A default that depends on other things, in words.
    Described(&'static str),
}

/// The keys of a service (`[services.NAME]`, or a `NAME.toml` unit file).
pub const SERVICE: &[Field] = &[
    Field {
        name: "cmd",
        ty: "list of strings",
        default: Default::Required,
        example: r#"["python3", "-m", "http.server", "8000"]"#,
        doc: "The program and its arguments, executed directly (no shell). Exactly one of \
              `cmd` and `shell` is required.",
    },
    Field {
        name: "shell",
        ty: "string",
        default: Default::Required,
        example: r#""exec python3 -m http.server $PORT""#,
        doc: "A script run with `/bin/sh -c`, instead of `cmd`. Start it with `exec` so that \
              the service's main process is the program itself rather than the shell.",
    },
    Field {
        name: "cwd",
        ty: "path",
        default: Default::Described("the directory of the config file (or unit directory)"),
        example: r#""site""#,
        doc: "The working directory; a relative path is taken from the config's directory.",
    },
    Field {
        name: "env",
        ty: "table of strings",
        default: Default::Value("{}"),
        example: r#"{ PORT = "8000", RUST_LOG = "info" }"#,
        doc: "Variables added to the service's environment.",
    },
    Field {
        name: "env_file",
        ty: "path",
        default: Default::Unset,
        example: r#"".env""#,
        doc: "A file of `KEY=VALUE` lines (blank lines and `#` comments allowed), overlaid \
              after `env`. A relative path is taken from the config's directory; a missing \
              file is an error.",
    },
    Field {
        name: "clear_env",
        ty: "boolean",
        default: Default::Value("false"),
        example: "true",
        doc: "Start from an empty environment (plus `PATH`) instead of runpm's own.",
    },
    Field {
        name: "depends_on",
        ty: "list of service names, or a table of service name = condition",
        default: Default::Value("[]"),
        example: r#"{ db = "ready", migrate = "completed" }"#,
        doc: "Start after these services, and stop before them (through the whole graph: \
              `app` is stopped before `db` even when a finished task stands between them). \
              The list form waits until each is ready. The table form names a condition per \
              dependency: `started` (spawned, ready or not), `ready` (its readiness check \
              passed, or it is a task that completed), `completed` (it exited with a code in \
              `success_exit_codes`). A dependency that cannot get there by itself (failed, \
              exited unsuccessfully, stopped) keeps the dependent waiting: `runpmctl status` \
              shows what it waits for, and `runpmctl start` of the dependent says why at \
              once. A dependency restarted by a reload restarts its dependents.",
    },
    Field {
        name: "restart",
        ty: "`always`, `on-failure` or `never`",
        default: Default::Value(r#""on-failure""#),
        example: r#""always""#,
        doc: "When an ended service is started again: after any exit, after an exit whose \
              code is not in `success_exit_codes` (or a death by signal), or never.",
    },
    Field {
        name: "restart_delay",
        ty: "duration",
        default: Default::Value(r#""100ms""#),
        example: r#""500ms""#,
        doc: "The delay before the first restart; it doubles with each consecutive failed \
              run, up to `restart_delay_max`.",
    },
    Field {
        name: "restart_delay_max",
        ty: "duration",
        default: Default::Value(r#""30s""#),
        example: r#""1m""#,
        doc: "The longest delay between restarts.",
    },
    Field {
        name: "min_uptime",
        ty: "duration",
        default: Default::Value(r#""1s""#),
        example: r#""5s""#,
        doc: "A run shorter than this counts as a failed start (for the backoff and \
              `max_restarts`); a longer one resets the delay.",
    },
    Field {
        name: "max_restarts",
        ty: "integer",
        default: Default::Value("10"),
        example: "3",
        doc: "How many failed runs within `restart_window` make the service `failed` (a \
              crash loop) instead of restarting it again.",
    },
    Field {
        name: "restart_window",
        ty: "duration",
        default: Default::Value(r#""60s""#),
        example: r#""5m""#,
        doc: "The window in which failed runs are counted against `max_restarts`.",
    },
    Field {
        name: "success_exit_codes",
        ty: "list of integers (0 to 255)",
        default: Default::Value("[0]"),
        example: "[0, 143]",
        doc: "Exit codes that count as success: `on-failure` does not restart after them, \
              and a container's runpm exits 0 for them.",
    },
    Field {
        name: "stop_signal",
        ty: "signal name",
        default: Default::Value(r#""SIGTERM""#),
        example: r#""SIGINT""#,
        doc: "The signal that asks the service to stop, with or without the `SIG` prefix.",
    },
    Field {
        name: "kill_timeout",
        ty: "duration",
        default: Default::Value(r#""10s""#),
        example: r#""30s""#,
        doc: "How long a stopping service has after `stop_signal` before it is sent \
              SIGKILL.",
    },
    Field {
        name: "kill_mode",
        ty: "`cgroup`, `group` or `process`",
        default: Default::Value(r#""cgroup""#),
        example: r#""process""#,
        doc: "Whom the stop signals reach. `cgroup`: every process in the service's cgroup, \
              then `cgroup.kill` after `kill_timeout`; the stop is done when the cgroup is \
              empty, so a descendant that called `setsid` cannot escape. Where runpm has no \
              cgroup, `cgroup` acts as `group` (and `status` says why). `group`: the \
              service's process group (its children too, but not a descendant that left \
              the group with `setsid`). `process`: only its main process.",
    },
    Field {
        name: "autostart",
        ty: "boolean",
        default: Default::Value("true"),
        example: "false",
        doc: "Whether `runpm up` starts the service; `false` defines it, to be started by \
              `runpmctl start`.",
    },
    Field {
        name: "user",
        ty: "user name",
        default: Default::Described("runpm's own user"),
        example: r#""nobody""#,
        doc: "Run the service as this user (with that user's primary group, unless `group` \
              says otherwise). Needs runpm to run as root.",
    },
    Field {
        name: "group",
        ty: "group name",
        default: Default::Described("the user's primary group, else runpm's own group"),
        example: r#""nogroup""#,
        doc: "Run the service with this group. Needs runpm to run as root.",
    },
    Field {
        name: "ready",
        ty: "table with one of `notify`, `tcp`, `exec`, `log`, `http` (below)",
        default: Default::Described("ready as soon as it is started"),
        example: r#"{ tcp = "127.0.0.1:8000" }"#,
        doc: "How runpm learns that the service is ready: until then it is `starting`, and \
              its dependents wait.",
    },
    Field {
        name: "ready_timeout",
        ty: "duration",
        default: Default::Value(r#""30s""#),
        example: r#""2m""#,
        doc: "A service not ready within this time after its start is stopped and counted \
              as a failed run.",
    },
    Field {
        name: "health",
        ty: "table with `exec`, `tcp` or `http`, and `interval`, `timeout`, `retries` (below)",
        default: Default::Unset,
        example: r#"{ exec = ["curl", "-fs", "localhost:8000"], interval = "10s" }"#,
        doc: "A liveness check run while the service runs; after `retries` failed checks in \
              a row the service is restarted (as a failed run).",
    },
    Field {
        name: "watchdog",
        ty: "duration",
        default: Default::Unset,
        example: r#""30s""#,
        doc: "With `ready = { notify = true }`: the service must send `WATCHDOG=1` at least \
              this often (it is told through `WATCHDOG_USEC`), else it is restarted.",
    },
    Field {
        name: "failed_cooldown",
        ty: "duration",
        default: Default::Value(r#""5m""#),
        example: r#""0s""#,
        doc: "A `failed` service is started again after this time; `\"0s\"` leaves it \
              failed until an operator or a config change re-arms it.",
    },
    Field {
        name: "log_max_size",
        ty: "size (`10MB`, `512KiB`, or bytes)",
        default: Default::Value(r#""10MB""#),
        example: r#""1MiB""#,
        doc: "The size of the service's log file (`logs/NAME.log` in the state directory) at \
              which it is rotated.",
    },
    Field {
        name: "log_keep",
        ty: "integer",
        default: Default::Value("5"),
        example: "2",
        doc: "How many rotated log files are kept (`NAME.log.1` is the newest), at most 1000.",
    },
    Field {
        name: "profiles",
        ty: "list of strings",
        default: Default::Described("none: the service always runs"),
        example: r#"["debug", "tools"]"#,
        doc: "The service runs only when `runpm up --profile P` (repeatable, or \
              `RUNPM_PROFILES=a,b`) selects one of these profiles, or when `runpm up` names \
              it; otherwise it is left out of the running config (not in `status`), as docker \
              compose does. The daemon remembers the selection for reloads. A service without \
              `profiles` cannot depend on one that has them (`validate` says so).",
    },
    Field {
        name: "replicas",
        ty: "integer (0 to 1000)",
        default: Default::Described("one service, not replicated"),
        example: "3",
        doc: "Run this many copies, named `NAME.0` to `NAME.N-1`, each an ordinary service in \
              `status` (with `replica_of` in `--json`). Each gets `RUNPM_REPLICA` (its index) \
              and `{replica}` replaced by the index in `cmd`, `shell`, `env` values, `listen`, `ready` \
              and `health` (e.g. `PORT = \"80{replica}\"`). `depends_on = [\"NAME\"]` waits \
              for every replica, `\"NAME.1\"` for one. `runpmctl scale NAME N` changes the \
              count at run time (only the difference starts or stops) until the config's \
              `replicas` changes.",
    },
    Field {
        name: "schedule",
        ty: "cron expression (5 fields, or 6 with seconds first)",
        default: Default::Described("none: the service runs once, as started"),
        example: r#""*/5 * * * *""#,
        doc: "Run the service at these times (minute hour day-of-month month day-of-week; \
              `*/5`, `1-5`, `MON-FRI`, `L` and `#` as in cron). Between runs its status is \
              `waiting` and `status` shows the next run; `runpmctl start` runs it now. A run \
              that fails is retried per `restart` (`on-failure` by default; `always` is \
              refused), and the next run comes at its time anyway. Dependents wait for its \
              first run to end well. Not with `interval`.",
    },
    Field {
        name: "interval",
        ty: "duration",
        default: Default::Unset,
        example: r#""10m""#,
        doc: "Run the service every this long, counted from the start of the previous run, \
              instead of a `schedule`.",
    },
    Field {
        name: "timezone",
        ty: "IANA time zone name",
        default: Default::Described("the machine's local time zone"),
        example: r#""Europe/Berlin""#,
        doc: "With `schedule`: the time zone its times are in, read from the system's time \
              zone database (`/usr/share/zoneinfo`). An unknown name is a config error.",
    },
    Field {
        name: "overlap",
        ty: "`skip`, `queue` or `kill`",
        default: Default::Described("`skip`"),
        example: r#""queue""#,
        doc: "With `schedule` or `interval`: what a run that comes due does while the \
              previous one still runs: left out (`skip`), started when the previous one ends \
              (`queue`, at most one waits), or started after the previous one is stopped \
              (`kill`).",
    },
    Field {
        name: "run_on_start",
        ty: "boolean",
        default: Default::Described("`false`"),
        example: "true",
        doc: "With `schedule` or `interval`: also run once as soon as the service starts \
              (`runpm up`, a reload that adds it).",
    },
    Field {
        name: "catch_up",
        ty: "boolean",
        default: Default::Described("`false`"),
        example: "true",
        doc: "With `schedule` or `interval`: when runpm starts (after a restart of runpm or a \
              reboot) and a run came due while it was down (the last run's time is kept in \
              `state.json`), run it once now.",
    },
    Field {
        name: "listen",
        ty: "list of addresses or tables",
        default: Default::Value("[]"),
        example: r#"["tcp:127.0.0.1:8000", { address = "unix:run/app.sock", name = "http", backlog = 128, mode = "0660" }]"#,
        doc: "Sockets runpm binds and owns for this service (socket activation): `tcp:HOST:PORT`, \
              `udp:HOST:PORT` (IPv6 as `tcp:[::1]:8000`, bound IPv6-only) or `unix:PATH` (relative \
              to the config's directory; a stale socket file nobody listens on is replaced). The \
              table form adds `name` (its entry in `LISTEN_FDNAMES`, default the service's name), \
              `backlog` (default 4096, capped by the kernel) and `mode` (the socket file's octal \
              mode, default \"0666\"). They are bound at the service's first start and passed to \
              every run as descriptors 3, 4 and on with `LISTEN_FDS`, `LISTEN_PID` and \
              `LISTEN_FDNAMES`, as systemd does (sd_listen_fds(3)). They stay open in runpm across \
              restarts, crashes and reloads, so clients wait in the backlog instead of being \
              refused; a reload that changes `listen` binds only the new addresses. They are \
              closed when the service leaves the config. A bind failure is the service's error \
              and names the address and the process holding it. Without `ready`, a service with \
              `listen` is ready when spawned.",
    },
    Field {
        name: "fd_store_max",
        ty: "integer",
        default: Default::Value("0"),
        example: "8",
        doc: "How many descriptors the service may park in runpm with sd_notify `FDSTORE=1` \
              (named by `FDNAME=`, default \"stored\"; `FDSTOREREMOVE=1` with `FDNAME=` removes \
              them), at most 4096. They come back to the next run after the `listen` sockets, in \
              `LISTEN_FDS`/`LISTEN_FDNAMES`. As with systemd's default \
              `FileDescriptorStorePreserve=no`, the store survives restarts and crashes only: it \
              is emptied when the service is stopped for good (by the operator, or an exit that \
              is not restarted) or removed. 0: `FDSTORE=1` is refused with a warning in runpm's \
              log.",
    },
    Field {
        name: "memory_max",
        ty: "size",
        default: Default::Unset,
        example: r#""512MB""#,
        doc: "The most memory the service's cgroup may use (`memory.max`); above it the \
              kernel reclaims, then OOM-kills. Sizes: `K`/`KB`, `M`/`MB`, `G`/`GB` are \
              decimal (powers of 1000), `KiB`, `MiB`, `GiB` binary (powers of 1024). Needs \
              the memory controller delegated to runpm; else reported as not enforced \
              (`runpm validate`, the start-up log, `status`).",
    },
    Field {
        name: "memory_high",
        ty: "size",
        default: Default::Unset,
        example: r#""400MB""#,
        doc: "Where the kernel starts throttling and reclaiming the service's memory \
              (`memory.high`); at most `memory_max`. Needs the memory controller.",
    },
    Field {
        name: "cpu_max",
        ty: "share of one CPU (`\"50%\"`) or number of CPUs (`\"1.5\"`)",
        default: Default::Unset,
        example: r#""50%""#,
        doc: "The CPU time the service may use per 100 ms (`cpu.max`): `\"50%\"` is half of \
              one CPU, `\"1.5\"` or `\"150%\"` one and a half. Needs the cpu controller.",
    },
    Field {
        name: "cpu_weight",
        ty: "integer 1 to 10000",
        default: Default::Unset,
        example: "200",
        doc: "The service's share of CPU time against its siblings when CPUs are busy \
              (`cpu.weight`; the kernel's default is 100). Needs the cpu controller.",
    },
    Field {
        name: "pids_max",
        ty: "integer (at least 1)",
        default: Default::Unset,
        example: "256",
        doc: "The most processes and threads the service may have at once (`pids.max`): a \
              fork bomb stops there. Needs the pids controller.",
    },
    Field {
        name: "io_weight",
        ty: "integer 1 to 10000",
        default: Default::Unset,
        example: "50",
        doc: "The service's share of disk I/O against its siblings (`io.weight`; default \
              100). Needs the io controller.",
    },
    Field {
        name: "memory_restart",
        ty: "size",
        default: Default::Unset,
        example: r#""500MB""#,
        doc: "Restart the service when its cgroup's memory goes above this (pm2's \
              `max_memory_restart`). runpm sets `memory.high` to it (unless `memory_high` \
              is set) and is woken by the kernel's `memory.events`, never by polling. \
              Below `memory_max`. Needs the memory controller.",
    },
    Field {
        name: "rlimits",
        ty: "table of limit name to value",
        default: Default::Unset,
        example: r#"{ nofile = 65536, core = "unlimited", nproc = 4096, memlock = "64MB" }"#,
        doc: "Resource limits set in the service's process before it starts (`setrlimit`), \
              shown in `/proc/PID/limits`. Names are the `RLIMIT_*` names in lower case \
              (`as`, `core`, `cpu`, `data`, `fsize`, `locks`, `memlock`, `msgqueue`, `nice`, \
              `nofile`, `nproc`, `rss`, `rtprio`, `rttime`, `sigpending`, `stack`); a value \
              is a number, a size for the byte-valued ones, `\"unlimited\"`, or \
              `{ soft = N, hard = N }`. Raising a hard limit needs root.",
    },
];

/// The keys of `ready = { … }`; exactly one is given.
pub const READY: &[Field] = &[
    Field {
        name: "notify",
        ty: "boolean",
        default: Default::Unset,
        example: "true",
        doc: "Ready when the service sends `READY=1` over sd_notify, to the socket named by \
              `NOTIFY_SOCKET` in its environment (as systemd's `Type=notify`).",
    },
    Field {
        name: "tcp",
        ty: "`host:port`",
        default: Default::Unset,
        example: r#""127.0.0.1:8000""#,
        doc: "Ready when a TCP connection to this address succeeds and the listening socket \
              belongs to one of the service's processes (its process group, or a descendant \
              of its main process). A port held by another process does not count: the \
              service stays `starting`, and status names the holder (pid and command). When \
              runpm sees no listening socket for the address at all (a NAT rule, another \
              network namespace), the connection alone counts.",
    },
    Field {
        name: "exec",
        ty: "list of strings",
        default: Default::Unset,
        example: r#"["pg_isready", "-q"]"#,
        doc: "Ready when this command, run repeatedly, exits 0.",
    },
    Field {
        name: "log",
        ty: "regular expression",
        default: Default::Unset,
        example: r#""listening on""#,
        doc: "Ready when a line of the service's output (stdout or stderr) matches. The usual \
              syntax (`.`, `[0-9]+`, `\\d`, `\\s`, `(a|b)`, `^`, `$`); classes such as `\\d` \
              and `\\w` match ASCII only, and Unicode classes (`\\p{Greek}`) are not supported. \
              An invalid pattern is a config error.",
    },
    Field {
        name: "http",
        ty: "URL (`http://host[:port][/path]`)",
        default: Default::Unset,
        example: r#""http://127.0.0.1:8000/healthz""#,
        doc: "Ready when a GET of this URL (plain HTTP/1.1, `Connection: close`) answers with \
              an accepted status. `https` is refused: runpm has no TLS client; check a plain \
              loopback endpoint, or use `exec` with `curl`.",
    },
    Field {
        name: "status",
        ty: "list of integers",
        default: Default::Described("any 2xx or 3xx"),
        example: "[200, 204]",
        doc: "With `http`: the statuses that count as ready.",
    },
    Field {
        name: "timeout",
        ty: "duration",
        default: Default::Described("5s, or less when `ready_timeout` runs out first"),
        example: r#""2s""#,
        doc: "With `http`: how long one GET may take before it counts as failed.",
    },
];

/// The keys of `health = { … }`: one of `exec` and `tcp`, and the timing.
pub const HEALTH: &[Field] = &[
    Field {
        name: "exec",
        ty: "list of strings",
        default: Default::Unset,
        example: r#"["curl", "-fs", "localhost:8000/health"]"#,
        doc: "The check passes when this command exits 0 within `timeout`.",
    },
    Field {
        name: "tcp",
        ty: "`host:port`",
        default: Default::Unset,
        example: r#""127.0.0.1:8000""#,
        doc: "The check passes when a TCP connection succeeds within `timeout` and the \
              listening socket belongs to the service (as for `ready.tcp`).",
    },
    Field {
        name: "interval",
        ty: "duration",
        default: Default::Value(r#""10s""#),
        example: r#""30s""#,
        doc: "The time between checks.",
    },
    Field {
        name: "timeout",
        ty: "duration",
        default: Default::Value(r#""2s""#),
        example: r#""5s""#,
        doc: "How long one check may take.",
    },
    Field {
        name: "retries",
        ty: "integer (at least 1)",
        default: Default::Value("3"),
        example: "5",
        doc: "How many failed checks in a row restart the service.",
    },
    Field {
        name: "http",
        ty: "URL (`http://host[:port][/path]`)",
        default: Default::Unset,
        example: r#""http://127.0.0.1:8000/healthz""#,
        doc: "The check passes when a GET of this URL answers within `timeout` with an \
              accepted status (as for `ready.http`).",
    },
    Field {
        name: "status",
        ty: "list of integers",
        default: Default::Described("any 2xx or 3xx"),
        example: "[200]",
        doc: "With `http`: the statuses that count as healthy.",
    },
];

/// The keys of the `[runpm]` table (or of `runpm.toml` in a unit directory).
pub const SETTINGS: &[Field] = &[
    Field {
        name: "shutdown_timeout",
        ty: "duration",
        default: Default::Value(r#""30s""#),
        example: r#""10s""#,
        doc: "The budget for stopping the whole tree (Ctrl-C, SIGTERM, `runpmctl shutdown`); \
              what still runs after it is killed. Keep it below a container engine's grace \
              period (10 seconds for `docker stop`).",
    },
    Field {
        name: "exit_when",
        ty: "`all-exited`, `any-failed`, or a list of service names",
        default: Default::Described(
            "`all-exited` for a foreground `runpm up`; a daemon (`-d`) keeps running",
        ),
        example: r#""any-failed""#,
        doc: "When runpm itself exits: once every service has ended and none will restart; \
              as soon as one service fails (after stopping the others); or as soon as one \
              of the named services has ended for good.",
    },
    Field {
        name: "watch",
        ty: "boolean",
        default: Default::Value("true"),
        example: "false",
        doc: "Reload when the config changes on disk (as `runpmctl reload` does): the config \
              file or unit files, or any service's `env_file`; other files beside them do not \
              count. With `false` (or `runpm up --no-watch`) no watcher runs at all.",
    },
    Field {
        name: "state_dir",
        ty: "path",
        default: Default::Described("`.runpm` beside the config"),
        example: r#""/var/lib/myapp/runpm""#,
        doc: "The state directory (socket, state file, logs); relative to the config's \
              directory. `--state-dir` and `RUNPM_STATE_DIR` take precedence.",
    },
    Field {
        name: "cgroups",
        ty: "boolean",
        default: Default::Value("true"),
        example: "false",
        doc: "Whether runpm puts each service in a cgroup of its own where a cgroup v2 \
              subtree is delegated to it (`RUNPM_CGROUPS=0` also turns it off). Read at \
              start-up.",
    },
];

#[cfg(test)]
mod tests {
    use super::super::raw::{RawHealth, RawReady, RawService, RawSettings, fields_of};
    use super::*;
    use crate::config::{Config, load};

    fn names(table: &[Field]) -> Vec<&'static str> {
        table.iter().map(|f| f.name).collect()
    }

    #[test]
    fn every_key_of_the_schema_is_documented_in_its_order() {
        let cases: [(&str, &[Field], &[&str]); 4] = [
            ("SERVICE", SERVICE, fields_of::<RawService>()),
            ("READY", READY, fields_of::<RawReady>()),
            ("HEALTH", HEALTH, fields_of::<RawHealth>()),
            ("SETTINGS", SETTINGS, fields_of::<RawSettings>()),
        ];
        for (table, documented, schema) in cases {
            assert_eq!(
                names(documented),
                schema,
                "config::reference::{table} must list the schema's keys, in its order"
            );
        }
    }

    /// A project directory with the files the examples name (`.env`, `site`).
    struct Project(tempfile::TempDir);

    impl Project {
        fn new() -> Project {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(".env"), "A=b\n").unwrap();
            std::fs::create_dir(dir.path().join("site")).unwrap();
            Project(dir)
        }

        /// Loads `text` as its `services.toml`, with the services `db` and `cache` that
        /// examples depend on.
        fn load(&self, text: &str) -> Result<Config, String> {
            let root = camino::Utf8Path::from_path(self.0.path()).unwrap();
            let text = format!(
                "{text}\n[services.db]\ncmd = [\"true\"]\n\n[services.cache]\ncmd = [\"true\"]\n\n\
                 [services.migrate]\ncmd = [\"true\"]\nrestart = \"never\"\n"
            );
            let file = root.join("services.toml");
            std::fs::write(&file, &text).unwrap();
            load(&file).map_err(|e| format!("{e}\n--- services.toml:\n{text}"))
        }
    }

    /// A service with `key = value` and whatever else makes it valid.
    fn service_with(key: &str, value: &str) -> String {
        let base = match key {
            "cmd" | "shell" => "",
            "watchdog" => "cmd = [\"true\"]\nready = { notify = true }\n",
            "overlap" | "run_on_start" | "catch_up" => "cmd = [\"true\"]\ninterval = \"1h\"\n",
            "timezone" => "cmd = [\"true\"]\nschedule = \"0 9 * * *\"\n",
            _ => "cmd = [\"true\"]\n",
        };
        format!("[services.x]\n{base}{key} = {value}\n")
    }

    fn health_with(key: &str, value: &str) -> String {
        let probe = match key {
            "exec" | "tcp" | "http" => String::new(),
            "status" => "http = \"http://127.0.0.1/\", ".to_owned(),
            _ => "exec = [\"true\"], ".to_owned(),
        };
        format!("[services.x]\ncmd = [\"true\"]\nhealth = {{ {probe}{key} = {value} }}\n")
    }

    fn settings_with(key: &str, value: &str) -> String {
        format!("[runpm]\n{key} = {value}\n\n[services.x]\ncmd = [\"true\"]\n")
    }

    #[test]
    fn every_example_is_accepted() {
        let project = Project::new();
        for f in SERVICE {
            project
                .load(&service_with(f.name, f.example))
                .unwrap_or_else(|e| panic!("example of `{}`: {e}", f.name));
        }
        for f in READY {
            // `status` and `timeout` go with `http`.
            let with = match f.name {
                "status" | "timeout" => "http = \"http://127.0.0.1/\", ",
                _ => "",
            };
            project
                .load(&service_with(
                    "ready",
                    &format!("{{ {with}{} = {} }}", f.name, f.example),
                ))
                .unwrap_or_else(|e| panic!("example of `ready.{}`: {e}", f.name));
        }
        for f in HEALTH {
            project
                .load(&health_with(f.name, f.example))
                .unwrap_or_else(|e| panic!("example of `health.{}`: {e}", f.name));
        }
        for f in SETTINGS {
            project
                .load(&settings_with(f.name, f.example))
                .unwrap_or_else(|e| panic!("example of `[runpm] {}`: {e}", f.name));
        }
    }

    #[test]
    fn every_documented_default_is_the_default() {
        let project = Project::new();
        let bare = project.load("[services.x]\ncmd = [\"true\"]\n").unwrap();
        let with_health = project.load(&health_with("exec", "[\"true\"]")).unwrap();
        let defaults = |table: &'static [Field]| {
            table.iter().filter_map(|f| match f.default {
                Default::Value(value) => Some((f.name, value)),
                _ => None,
            })
        };
        for (name, value) in defaults(SERVICE) {
            let written = project.load(&service_with(name, value)).unwrap();
            assert_eq!(
                written.services, bare.services,
                "`{name} = {value}` is documented as the default but changes the spec"
            );
        }
        let ready_defaults: Vec<_> = defaults(READY).collect();
        assert!(
            ready_defaults.is_empty(),
            "`ready` keys have no default values (exactly one is given): {ready_defaults:?}"
        );
        for (name, value) in defaults(HEALTH) {
            let written = project.load(&health_with(name, value)).unwrap();
            assert_eq!(
                written.services, with_health.services,
                "`health.{name} = {value}` is documented as the default but changes the spec"
            );
        }
        for (name, value) in defaults(SETTINGS) {
            let written = project.load(&settings_with(name, value)).unwrap();
            assert_eq!(
                written.settings, bare.settings,
                "`[runpm] {name} = {value}` is documented as the default but changes it"
            );
        }
    }
}
