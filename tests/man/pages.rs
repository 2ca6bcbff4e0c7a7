//! The three pages: runpm(1) and runpmctl(1) from the clap definitions plus what clap
//! cannot say, and runpm.toml(5) from `config::reference`.

use clap_mangen::roff::{Roff, bold, roman};
use runpm::config::reference::{self, Default, Field};
use runpm::supervisor::Status;

use super::roff::{Block, Page, blocks, command_page, inline};

const MANUAL: &str = "runpm manual";

/// File name (`man/…`) and contents of every page.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("runpm.1", runpm()),
        ("runpmctl.1", runpmctl()),
        ("runpm.toml.5", runpm_toml()),
    ]
}

fn runpm() -> String {
    let mut page = Page::default();
    command_page(&mut page, runpm::cli::runpm::command(), MANUAL);
    let mut roff = Roff::new();
    blocks(&mut roff, RUNPM_EXTRA);
    page.roff(&roff);
    page.finish()
}

fn runpmctl() -> String {
    let mut page = Page::default();
    command_page(&mut page, runpm::cli::runpmctl::command(), MANUAL);
    let mut roff = Roff::new();
    blocks(&mut roff, RUNPMCTL_EXTRA);
    page.roff(&roff);
    page.finish()
}

const RUNPM_EXTRA: &[Block<'static>] = &[
    Block::Section("SIGNALS"),
    Block::Item(
        "SIGTERM, SIGINT, SIGQUIT, SIGPWR",
        "Stop every service in reverse dependency order (`stop_signal` to each, SIGKILL after \
         `kill_timeout`, the whole stop bounded by `shutdown_timeout`), then exit. A second \
         one kills what is left at once. Signals that arrive within 200 ms of the first count \
         as that one: a single Ctrl-C under `timeout 600 runpm up` reaches runpm twice (from \
         the terminal and from `timeout`). SIGPWR is how `lxc-stop` asks a container's init to \
         shut down.",
    ),
    Block::Item("SIGHUP", "Reload the config, as `runpmctl reload` does."),
    Block::Item(
        "SIGUSR1",
        "Write every service's status (status word, pid, restarts) to runpm's log: its \
         stderr, or the daemon log of `up -d`.",
    ),
    Block::Item(
        "SIGUSR2",
        "Re-execute runpm in place, as `runpmctl reexec` does: the binary at the path runpm \
         was started from takes over with every service kept (same pids, output pipes, \
         sockets). When that binary cannot take over, runpm logs why and goes on. A panic \
         in the daemon does the same, at most 3 times a minute.",
    ),
    Block::Item(
        "SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGSTKFLT, SIGXCPU, SIGXFSZ, \
         SIGSYS, SIGRTMIN to SIGRTMAX",
        "Ignored, so that a stray signal never ends runpm and orphans its services. The \
         services themselves start with every signal at its default and none blocked.",
    ),
    Block::Paragraph(
        "runpm reaps every orphaned process: as PID 1 (in a container), and otherwise as a \
         subreaper (PR_SET_CHILD_SUBREAPER).",
    ),
    Block::Section("EXIT STATUS"),
    Block::Item(
        "0",
        "Success: every service stopped cleanly (it exited with a code in \
         `success_exit_codes`, or was ended by the stop signal runpm sent); `validate`: the \
         config is valid; `up -d`: the daemon is running and every service it started runs \
         or completed.",
    ),
    Block::Item(
        "1",
        "The operation failed: an invalid config (every error is printed as \
         FILE:LINE:COL), an unknown service name, a daemon already running for the state \
         directory, a daemon that died before it was ready; `up -d`: a service failed (crash \
         loop, spawn error, readiness timeout, a failed task), is restarting after a failed \
         run, or gave up waiting for a dependency that failed (the daemon keeps running; \
         the message names them).",
    ),
    Block::Item("2", "Usage error: an unknown option or command."),
    Block::Item(
        "N",
        "When runpm exits because its services ended (see `exit_when` in runpm.toml(5)): the \
         exit code of the service that failed, or 128 + the signal's number when a signal \
         killed it (137 after SIGKILL).",
    ),
    Block::Section("ENVIRONMENT"),
    Block::Item(
        "RUNPM_FILE",
        "The config, when `-f` is not given (a services.toml or a unit directory).",
    ),
    Block::Item(
        "RUNPM_STATE_DIR",
        "The state directory, when `--state-dir` is not given.",
    ),
    Block::Item(
        "STATE_DIRECTORY, LOGS_DIRECTORY",
        "Set by systemd for a unit with `StateDirectory=` and `LogsDirectory=`: the state \
         directory when neither `--state-dir`, RUNPM_STATE_DIR nor `state_dir` names one, and \
         where the service logs go.",
    ),
    Block::Item(
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "Set by systemd for `Type=notify`: runpm sends READY=1, RELOADING=1 and READY=1 \
         around a reload, STOPPING=1, a current STATUS= (\"5 running, 1 failed\"), and \
         WATCHDOG=1 at half WATCHDOG_USEC.",
    ),
    Block::Item(
        "RUNPM_LOG",
        "How much runpm says about itself: `error`, `warn`, `info` (the default), `debug` or \
         `trace`.",
    ),
    Block::Item("RUNPM_LOG_FORMAT", "The default of `--log-format`."),
    Block::Item(
        "RUNPM_CGROUPS",
        "`0` turns cgroups off, as `[runpm] cgroups = false` does: services stop by process \
         group and their limits are reported as not enforced.",
    ),
    Block::Item(
        "RUNPM_CGROUP_ROOT",
        "A directory to take as runpm's own cgroup instead of the one `/proc/self/cgroup` \
         names (a delegated directory elsewhere, or a test of the message when no cgroup is \
         writable).",
    ),
    Block::Item(
        "NO_COLOR",
        "When set and not empty, the log prefixes are never coloured (an empty NO_COLOR \
         counts as unset).",
    ),
    Block::Item(
        "CLICOLOR_FORCE",
        "When set and not `0`, the log prefixes are coloured even when stdout is not a \
         terminal.",
    ),
    Block::Item(
        "JOURNAL_STREAM",
        "Set by systemd when runpm's output goes to the journal. When its DEVICE:INODE is \
         runpm's stderr, each service's lines go to the journal instead of the console, one \
         entry per line with SYSLOG_IDENTIFIER=NAME and RUNPM_SERVICE=NAME, priority 6 from \
         stdout and 3 from stderr (`journalctl -t web`); runpm's own events go there under \
         `runpm`. runpm never waits for the journal: up to 1 MiB of entries wait for a slow \
         one, and lines beyond that are dropped and counted in a later `runpm` entry. Not \
         passed on to the services.",
    ),
    Block::Item(
        "XDG_RUNTIME_DIR",
        "Where the control socket goes when its usual path is longer than a Unix socket \
         path may be (108 bytes); else /tmp/runpm-UID/.",
    ),
    Block::Paragraph(
        "runpm removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from what its services \
         inherit, and sets NOTIFY_SOCKET (and WATCHDOG_USEC) for the services that use \
         `ready = { notify = true }`.",
    ),
    Block::Section("FILES"),
    Block::Item(
        "services.toml",
        "The config, found in the current directory or the nearest parent that has one; or \
         a directory of NAME.toml unit files. See runpm.toml(5).",
    ),
    Block::Item(
        ".runpm/",
        "The state directory, beside the config (mode 0700). runpm refuses it, and anything \
         in it, when it is a symlink, owned by another user or writable by others. It holds:",
    ),
    Block::Item(
        ".runpm/runpm.sock",
        "The control socket (mode 0600), used by runpmctl(1).",
    ),
    Block::Item(
        ".runpm/notify.sock",
        "The sd_notify datagram socket of the services that use `ready = { notify = true }`.",
    ),
    Block::Item(
        ".runpm/state.json",
        "The persisted state: what runs, with each service's last applied spec. After a \
         clean end (Ctrl-C, SIGTERM, `runpmctl shutdown`) the next start on the same boot \
         begins from the config, tasks included. After a crash of runpm it is the snapshot \
         the next start restores (a task that completed is not run again); after a reboot \
         the project starts afresh except what the operator had stopped.",
    ),
    Block::Item(
        ".runpm/lock",
        "The single-instance lock (flock), holding the daemon's pid (written by the daemon \
         itself). A lock whose pid has exited is waited for, up to 2 seconds.",
    ),
    Block::Item(
        ".runpm/token",
        "The daemon's secret (mode 0600), carried by every service as RUNPM_TOKEN: after a \
         crash, only processes that carry it are taken for runpm's own.",
    ),
    Block::Item(
        ".runpm/logs/NAME.log",
        "Each service's output, rotated per `log_max_size` and `log_keep`. Nothing a \
         service prints is dropped here: a service that prints faster than runpm can write \
         waits in its `write` (backpressure), and the other services, runpmctl(1) and \
         signals are served between two reads of its output. The console of a foreground \
         `up` leaves lines out instead when the terminal does not keep up, and says \
         `[runpm: N lines dropped]`.",
    ),
    Block::Item(
        ".runpm/runpm.log",
        "The log of a daemon started with `up -d`: runpm's own events (what it started, \
         stopped and restarted, and why; warnings and errors), one line each with a \
         timestamp. The services' output is not in it: it is in .runpm/logs/NAME.log, and \
         `runpmctl logs -f NAME` shows both together.",
    ),
    Block::Section("IMPORT"),
    Block::Paragraph(
        "`runpm import FILE...` writes a runpm config from files made for other tools; the \
         format is told by the file's name, else by its content. The README's \"Coming from \
         docker compose, process-compose, pm2 or systemd\" has the tables of what maps to \
         what.",
    ),
    Block::Item(
        "compose.yaml, docker-compose.yml",
        "docker compose: commands, environment, env_file, working_dir, depends_on with its \
         conditions, restart, healthcheck, stop_signal, stop_grace_period, user, profiles, \
         deploy replicas and resource limits. Compose does not restart by default, so \
         neither does the import. image, build, ports, volumes and networks are reported with \
         what to do instead.",
    ),
    Block::Item(
        "Procfile, Procfile.*",
        "One `shell` service per `name: command` line; PORT=5000, 5100, 5200... in file order, \
         as foreman gives it; a .env beside the Procfile becomes `env_file`.",
    ),
    Block::Item(
        "process-compose.yaml",
        "command, working_dir, environment, depends_on conditions, availability, readiness \
         and liveness probes, shutdown, ready_log_line, disabled, replicas.",
    ),
    Block::Item(
        "ecosystem.config.json, ecosystem.config.yaml",
        "pm2 apps (script, args, interpreter, cwd, env, restart settings, kill_timeout, \
         instances). A JavaScript ecosystem file is refused with the `node -e` line that \
         prints it as JSON.",
    ),
    Block::Item(
        "NAME.service",
        "systemd units, read together: ExecStart= with systemd's quoting and the specifiers \
         it can resolve, WorkingDirectory=, Environment=, EnvironmentFile=, User=, Group=, \
         Type=notify and oneshot, Restart= settings, kill settings, Limit*=, and After=/ \
         Requires= between the imported units as depends_on.",
    ),
    Block::Paragraph(
        "What does not carry over is printed on stderr and written above the service as `# \
         not carried over:` comments. The output is the same for the same input. Malformed \
         input fails with FILE:LINE:COL and exit status 1; so does an output file that \
         exists, unless --force is given.",
    ),
    Block::Section("EXAMPLES"),
    Block::Paragraph("Run the services of the current project in the foreground:"),
    Block::Verbatim("runpm up"),
    Block::Paragraph("Run them in the background, then steer them with runpmctl(1):"),
    Block::Verbatim("runpm up -d\nrunpmctl status\nrunpm down"),
    Block::Paragraph("Start only `web` and what it depends on:"),
    Block::Verbatim("runpm up -f deploy/services.toml web"),
    Block::Paragraph("Move a docker compose project over, and check the result:"),
    Block::Verbatim("runpm import compose.yaml -o services.toml\nrunpm validate"),
    Block::Paragraph("Check a config in CI:"),
    Block::Verbatim("runpm validate -f services.toml"),
    Block::Paragraph("As the entrypoint of a container image:"),
    Block::Verbatim("ENTRYPOINT [\"runpm\", \"up\", \"-f\", \"/etc/runpm/services.toml\"]"),
    Block::Section("SEE ALSO"),
    Block::Paragraph("runpmctl(1), runpm.toml(5), systemd.service(5), sd_notify(3)"),
];

const RUNPMCTL_EXTRA: &[Block<'static>] = &[
    Block::Section("EVENTS AND METRICS"),
    Block::Paragraph(
        "`runpmctl events` prints what happens to the services as it happens, pushed by the \
         daemon (no polling), until the daemon stops (then it exits 0; 1 when the stream \
         ends without `daemon_stopping`, as when the daemon is killed). With names, only \
         their events and the daemon's own. `--since` first replays what the daemon still \
         holds (its last 1000 events). The human form is one line per event: its time, its \
         name and a phrase (`worker exited with code 1 after 812ms`). With `--json`, each \
         event is one JSON object on its own line, flushed at once, with `ts` (RFC 3339, \
         UTC, milliseconds), `service` (null for the daemon's own events), `event`, and \
         the event's fields. Events and fields not listed here may be added: ignore the \
         ones you do not know.",
    ),
    Block::Item("spawned", "The process started: `pid`."),
    Block::Item(
        "ready",
        "It is ready (at once without a readiness check): `pid`.",
    ),
    Block::Item(
        "exited",
        "The main process ended on its own: `pid`, `code` (or null), `signal` (a name such \
         as `SIGKILL`, or null), `uptime_ms`, `reason` (`exited` or `signal`).",
    ),
    Block::Item(
        "restarting",
        "The restart policy starts it again: `in_ms`, `restarts` (counting this one).",
    ),
    Block::Item(
        "failed",
        "It stays down until re-armed (crash loop, spawn error, readiness timeout): `reason`.",
    ),
    Block::Item(
        "stopping",
        "runpm sent its stop signal (or SIGKILL): `pid`, `signal`.",
    ),
    Block::Item("stopped", "Nothing of it runs after a stop."),
    Block::Item("health_failed", "A health check failed: `message`."),
    Block::Item("health_recovered", "A health check passed after failing."),
    Block::Item(
        "planned",
        "A plan (reload, resurrect, start, stop, restart) decided this for the service: \
         `action` (`started`, `stopped`, `removed`, `updated`, `restarted`), `reason` (such \
         as `env changed` or `restart requested`, or null).",
    ),
    Block::Item(
        "reloaded",
        "A reload applied its plan (service null): `added`, `removed`, `changed` (names), \
         `unchanged` (a count).",
    ),
    Block::Item(
        "config_invalid",
        "A reload (by request, SIGHUP or the watcher) found the config invalid and changed \
         nothing (service null): `message`.",
    ),
    Block::Item(
        "daemon_stopping",
        "The daemon exits (service null): the last event of every stream.",
    ),
    Block::Paragraph(
        "`runpmctl metrics` prints the Prometheus text exposition format (0.0.4): per \
         service `runpm_service_up`, `runpm_service_restarts_total`, \
         `runpm_service_last_exit_code` (128+N for signal N), `runpm_service_memory_bytes` \
         and `runpm_service_cpu_seconds_total` (from the daemon's accounting when it has \
         it, else from /proc for the service's process group), labelled `service`; and \
         `runpm_services` per `state`. For node_exporter's textfile collector, write it \
         atomically:",
    ),
    Block::Verbatim(
        "runpmctl events --json | jq -r 'select(.event == \"failed\") | .service'\n\
         runpmctl events --since 10m worker\n\
         runpmctl metrics > /var/lib/node_exporter/runpm.prom.$$ && \\\n\
         \x20 mv /var/lib/node_exporter/runpm.prom.$$ /var/lib/node_exporter/runpm.prom",
    ),
    Block::Section("LIVE VIEW"),
    Block::Paragraph(
        "`runpmctl top` fills the terminal with one row per service: NAME, STATUS (coloured \
         as in `status`), PID, UPTIME, RESTARTS, LAST EXIT, CPU% (of one core, between two \
         samples), MEM (resident), and INFO (what a starting service waits for, why it \
         failed, a failing health check). The header names the config and counts the \
         services by state; the footer lists the keys. Rows change as the daemon's `events` \
         stream reports what happens; the status is read again once a second while `top` \
         runs, for uptime, CPU and memory (from the service's cgroup when the daemon \
         accounts for it, else from /proc of its main process), and only then: a daemon \
         that nobody watches is not woken. With a daemon that has no `events` stream the \
         status alone drives the rows, once a second, and the header says `(polling)`.",
    ),
    Block::Item("up/down/k/j", "Select a service."),
    Block::Item(
        "enter/l",
        "Follow the selected service's log (its last 1000 lines, then what it prints). In \
         the log: up, down, PgUp, PgDn, g and G scroll (G: back to following the end); esc \
         or h goes back to the table.",
    ),
    Block::Item("s", "Start the selected service."),
    Block::Item("x/r", "Stop or restart it, after asking y/n."),
    Block::Item("R", "Reload the config; the status line shows the plan."),
    Block::Item(
        "/",
        "Filter the rows by a part of the name (enter keeps it, esc clears it).",
    ),
    Block::Item("?", "Show the keys."),
    Block::Item("q/Ctrl-C", "Quit."),
    Block::Paragraph(
        "Commands run in the background: the screen stays live, and their result or error \
         shows in the status line. The mouse is not captured (text can be selected and \
         copied as usual) unless `--mouse` is given. The terminal is restored however `top` \
         ends: q or Ctrl-C (exit 0); SIGTERM, SIGINT or SIGHUP (it then ends by \
         that signal, as the shell expects: 143 after SIGTERM); a panic; or the daemon \
         going away (the message is printed on the restored terminal, exit 1). It needs a \
         terminal on stdin and stdout: anything else is refused with exit 2 (scripts read \
         `status --json`). With no daemon it exits 3, like every command.",
    ),
    Block::Section("EXIT STATUS"),
    Block::Item("0", "The command did what was asked."),
    Block::Item(
        "1",
        "The operation failed, and the message says why: an unknown service name, an \
         invalid config on reload (nothing was changed), a start that failed, a service \
         that waits for a dependency that failed, ended badly, was stopped or is in a long \
         backoff (said at once, with what to do), a refused connection, the daemon going \
         away while `top` runs.",
    ),
    Block::Item(
        "2",
        "Usage error: an unknown option or command, a missing name, `stop --all` or \
         `shutdown` without `--yes`, `top` without a terminal.",
    ),
    Block::Item(
        "3",
        "No runpm daemon is running for this project (`logs` reads the log files instead, \
         and succeeds).",
    ),
    Block::Paragraph(
        "`status --check` exits 0 when every named service (default: every service that \
         should run) is running or completed successfully, 1 otherwise, printing the others.",
    ),
    Block::Paragraph(
        "Where runpm runs each service in a cgroup of its own, `status` adds MEM and CPU \
         columns (memory now, CPU time) and `status NAME` the cgroup, peak memory, tasks and \
         OOM kills; `status --json` has them per service (`memory_bytes`, \
         `memory_peak_bytes`, `cpu_usec`, `tasks`, `oom_kills`, `limits_enforced`, \
         `limits_reason`) and says `cgroups: {enabled, path | reason}` for the daemon. \
         Without cgroups the table ends with `cgroups: not in use (REASON)`, and usage is \
         summed from /proc over the service's process group.",
    ),
    Block::Section("ENVIRONMENT"),
    Block::Item(
        "RUNPM_SOCKET",
        "The control socket, when `--socket` is not given.",
    ),
    Block::Item(
        "RUNPM_FILE",
        "The project's config, when `-f` is not given; the daemon is found through it.",
    ),
    Block::Item(
        "RUNPM_STATE_DIR",
        "The state directory, when `--state-dir` is not given.",
    ),
    Block::Item(
        "NO_COLOR",
        "When set and not empty, `status` and `top` are not coloured (an empty NO_COLOR \
         counts as unset).",
    ),
    Block::Item(
        "CLICOLOR_FORCE",
        "When set and not `0`, `status` is coloured even when stdout is not a terminal.",
    ),
    Block::Section("FILES"),
    Block::Item(
        ".runpm/runpm.sock",
        "The control socket of the project's daemon, in the state directory beside the \
         config found as runpm(1) finds it (or under $XDG_RUNTIME_DIR when that path is too \
         long).",
    ),
    Block::Item(
        ".runpm/state.json",
        "The snapshot written by `save` and read by `resurrect`.",
    ),
    Block::Item(
        ".runpm/logs/NAME.log",
        "What `logs` reads when no daemon runs (NAME.log.1 and older too, as far back as \
         `-n` or `--since` reach).",
    ),
    Block::Section("COMPLETION"),
    Block::Paragraph(
        "`runpmctl completions SHELL` prints a completion script for bash, zsh or fish. \
         Service names are completed from the running daemon. Install the script where \
         the shell looks for completions, for example:",
    ),
    Block::Verbatim(
        "runpmctl completions bash > ~/.local/share/bash-completion/completions/runpmctl\n\
         runpmctl completions zsh > ~/.zfunc/_runpmctl   # with fpath+=(~/.zfunc)\n\
         runpmctl completions fish > ~/.config/fish/completions/runpmctl.fish",
    ),
    Block::Section("EXAMPLES"),
    Block::Verbatim(
        "runpmctl status\n\
         runpmctl status --json | jq -r '.services[] | select(.status == \"failed\") | .name'\n\
         runpmctl restart worker\n\
         runpmctl status --check || echo unhealthy\n\
         runpmctl kill -s HUP nginx\n\
         runpmctl logs -f web\n\
         runpmctl logs --since 10m -n 50 worker\n\
         runpmctl top\n\
         runpmctl reload --dry-run\n\
         runpmctl -f /srv/app/services.toml stop --all --yes",
    ),
    Block::Section("SEE ALSO"),
    Block::Paragraph("runpm(1), runpm.toml(5)"),
];

fn runpm_toml() -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "RUNPM.TOML",
            "5",
            "",
            &format!("runpm {}", env!("CARGO_PKG_VERSION")),
            MANUAL,
        ],
    );
    blocks(&mut roff, TOML_INTRO);
    roff.control("SH", ["SERVICE KEYS"]);
    fields(&mut roff, "", reference::SERVICE);
    roff.control("SS", ["ready"]);
    roff.control("PP", []).text(inline(
        "`ready = { ... }` takes exactly one of these keys; the time it may take is \
         `ready_timeout`.",
    ));
    fields(&mut roff, "ready.", reference::READY);
    roff.control("SS", ["health"]);
    roff.control("PP", []).text(inline(
        "`health = { ... }` takes one of `exec` and `tcp`, and optionally the timing.",
    ));
    fields(&mut roff, "health.", reference::HEALTH);
    roff.control("SH", ["SUPERVISOR SETTINGS"]);
    roff.control("PP", []).text(inline(
        "The optional `[runpm]` table of a services.toml (or the file `runpm.toml` of a unit \
         directory, with these keys at its top level):",
    ));
    fields(&mut roff, "", reference::SETTINGS);
    roff.control("SH", ["STATUSES"]);
    roff.control("PP", []).text(inline(
        "What `runpmctl status` shows for each service (the `status` field of `--json`):",
    ));
    for status in statuses() {
        roff.control("TP", []);
        roff.text([bold(status.as_str())]);
        roff.text(inline(describe(status)));
    }
    blocks(&mut roff, TOML_OUTRO);
    let mut page = Page::default();
    page.roff(&roff);
    page.finish()
}

/// Every key of a table as a tagged paragraph: name and type, what it does, its default
/// and an example.
fn fields(roff: &mut Roff, prefix: &str, table: &[Field]) {
    for field in table {
        roff.control("TP", []);
        roff.text(
            [
                vec![bold(format!("{prefix}{}", field.name)), roman(" (")],
                inline(field.ty),
                vec![roman(")")],
            ]
            .concat(),
        );
        roff.text(inline(field.doc));
        roff.control("br", []);
        match field.default {
            Default::Required => roff.text([roman("Default: none (required).")]),
            Default::Unset => roff.text([roman("Default: not set.")]),
            Default::Value(value) => roff.text([roman("Default: "), bold(value)]),
            Default::Described(text) => {
                roff.text([vec![roman("Default: ")], inline(text)].concat())
            }
        };
        roff.control("br", []);
        roff.text([
            roman("Example: "),
            bold(format!("{} = {}", field.name, field.example)),
        ]);
    }
}

/// Every status, in the order of its life. The match is exhaustive, so a new status cannot
/// be left out of the page: it fails to compile until it has a place here.
fn statuses() -> Vec<Status> {
    fn after(status: Option<Status>) -> Option<Status> {
        match status {
            None => Some(Status::Starting),
            Some(Status::Starting) => Some(Status::Running),
            Some(Status::Running) => Some(Status::Stopping),
            Some(Status::Stopping) => Some(Status::Stopped),
            Some(Status::Stopped) => Some(Status::Exited),
            Some(Status::Exited) => Some(Status::Backoff),
            Some(Status::Backoff) => Some(Status::Failed),
            Some(Status::Failed) => Some(Status::Waiting),
            Some(Status::Waiting) => None,
        }
    }
    std::iter::successors(after(None), |s| after(Some(*s))).collect()
}

fn describe(status: Status) -> &'static str {
    match status {
        Status::Starting => {
            "Started (or waiting for its dependencies), not yet ready: see `ready`."
        }
        Status::Running => "Running, and ready.",
        Status::Stopping => "Sent its stop signal; waiting for it to end (at most `kill_timeout`).",
        Status::Stopped => {
            "Stopped by the operator (`runpmctl stop`; it stays down across reloads until \
             started again), or never started (`autostart = false`)."
        }
        Status::Exited => "Ended, and its `restart` policy says it stays down.",
        Status::Backoff => {
            "Ended, and waiting `restart_delay` (doubled per consecutive failure) before it \
             is started again."
        }
        Status::Failed => {
            "Given up on: a crash loop (`max_restarts` failed runs within `restart_window`), \
             a spawn error, or no readiness within `ready_timeout`. Re-armed by `runpmctl \
             start` or `restart`, a change of its definition, or after `failed_cooldown`."
        }
        Status::Waiting => {
            "A scheduled service (`schedule` or `interval`) between its runs; `status` shows \
             when the next one comes (`next_run` in `--json`). `runpmctl start` runs it now."
        }
    }
}

const TOML_INTRO: &[Block<'static>] = &[
    Block::Section("NAME"),
    Block::Paragraph("runpm.toml - the services of runpm(1): services.toml and unit files"),
    Block::Section("SYNOPSIS"),
    Block::Paragraph("services.toml"),
    Block::Paragraph("DIR/NAME.toml, DIR/runpm.toml"),
    Block::Section("DESCRIPTION"),
    Block::Paragraph(
        "runpm(1) reads its services from one TOML file, `services.toml`, with an optional \
         `[runpm]` table of supervisor settings and a `[services.NAME]` table per service; \
         or from a directory of unit files, where each `NAME.toml` holds one service's keys \
         at its top level (the name is the file stem) and an optional `runpm.toml` holds \
         the settings. Both forms accept the same keys.",
    ),
    Block::Paragraph(
        "Service names are made of letters, digits, `_`, `.` and `-`, start with a letter or \
         digit, and are at most 128 bytes long. Unknown keys are errors, with a \"did you \
         mean\" hint; every error names its file, line and column, and all of them are \
         reported at once (`runpm validate`).",
    ),
    Block::Paragraph(
        "Durations are strings such as `\"250ms\"`, `\"30s\"` or `\"1m 30s\"`, at most \
         `\"1year\"` (365.25 days) for every duration key. Sizes are \
         strings such as `\"10MB\"` (powers of 1000) or `\"512KiB\"` (powers of 1024), or a \
         number of bytes. Relative paths are taken from the directory of the config file (or \
         of the unit directory). Every key except `cmd` or `shell` has a default.",
    ),
    Block::Paragraph(
        "Editing the file changes what runs only through a reload (`runpmctl reload`, \
         SIGHUP, or the watcher when `watch` is on): services whose resolved definition \
         changed are restarted, the others keep running. Comments, order and writing out a \
         default change nothing.",
    ),
];

const TOML_OUTRO: &[Block<'static>] = &[
    Block::Section("EXIT STATUS"),
    Block::Paragraph(
        "runpm(1) exits 0 when every service stopped cleanly, 1 when an operation failed \
         (an invalid config), 2 on a usage error, and otherwise, when it exits because its \
         services ended (`exit_when`), with the code of the service that failed, or 128 + \
         the signal's number when a signal killed it. runpmctl(1) exits 3 when no daemon \
         runs for the project.",
    ),
    Block::Section("FILES"),
    Block::Paragraph(
        "The state directory is `.runpm/` beside the config, unless `state_dir`, \
         `--state-dir` or RUNPM_STATE_DIR says otherwise (mode 0700):",
    ),
    Block::Item(".runpm/runpm.sock", "The control socket (mode 0600)."),
    Block::Item(
        ".runpm/notify.sock",
        "The socket services with `ready = { notify = true }` send sd_notify messages to \
         (NOTIFY_SOCKET). Services with `user` or `group`, which cannot enter this directory, \
         are given an abstract socket instead when runpm runs as root.",
    ),
    Block::Item(
        ".runpm/state.json",
        "The persisted state and resurrect snapshot (mode 0600): what runs, with each \
         service's last applied definition, so a valid configuration keeps running after a \
         reboot even when the file has since been broken.",
    ),
    Block::Item(
        ".runpm/lock",
        "The single-instance lock, holding the daemon's pid.",
    ),
    Block::Item(
        ".runpm/logs/NAME.log",
        "A service's output; rotated to NAME.log.1, NAME.log.2 and so on, per `log_max_size` and `log_keep`.",
    ),
    Block::Item(
        ".runpm/runpm.log",
        "The log of a daemon started with `runpm up -d`.",
    ),
    Block::Section("EXAMPLE"),
    Block::Verbatim(
        "[runpm]\n\
         shutdown_timeout = \"20s\"\n\
         \n\
         [services.db]\n\
         cmd = [\"redis-server\", \"--port\", \"6390\", \"--supervised\", \"systemd\"]\n\
         ready = { notify = true }\n\
         \n\
         [services.web]\n\
         cmd = [\"python3\", \"-m\", \"http.server\", \"8000\"]\n\
         cwd = \"site\"\n\
         env = { PORT = \"8000\" }\n\
         depends_on = [\"db\"]\n\
         ready = { tcp = \"127.0.0.1:8000\" }\n\
         health = { exec = [\"curl\", \"-fs\", \"localhost:8000\"], interval = \"10s\" }\n\
         \n\
         [services.worker]\n\
         shell = \"exec ./worker.sh\"\n\
         depends_on = [\"db\", \"web\"]\n\
         restart = \"always\"\n\
         stop_signal = \"SIGINT\"",
    ),
    Block::Section("SEE ALSO"),
    Block::Paragraph("runpm(1), runpmctl(1), systemd.service(5), sd_notify(3)"),
];
