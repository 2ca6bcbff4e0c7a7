//! `runpmctl top` in a real terminal: tmux runs a shell at 80×24, the test types the
//! command and keys into it (`send-keys`) and reads the screen back (`capture-pane`), against
//! a real daemon with real services.
//!
//! Every wait is for something on the screen or in the daemon's status, with a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long the screen may take to show what the test waits for. Generous: the status is
/// read once a second, and CI machines are slow.
const SCREEN: Duration = Duration::from_secs(10);

/// The shell's prompt in the pane, to know when the shell is back.
const PROMPT: &str = "top-test$";

/// A tmux server of the test's own (its socket in the project), with one 80×24 window
/// running `sh`.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(p: &Project) -> Tmux {
        let tmux = Tmux {
            socket: p.file("tmux.sock"),
        };
        let shell = format!("env PS1='{PROMPT} ' sh");
        let dir = p.path().to_str().expect("a UTF-8 temporary directory");
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "80",
            "-y",
            "24",
            "-c",
            dir,
            &shell,
        ]);
        tmux.wait_screen("the shell's prompt", |s| s.contains(PROMPT));
        tmux
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .stdin(Stdio::null())
            .env_remove("RUNPM_FILE")
            .env_remove("RUNPM_STATE_DIR")
            .env_remove("RUNPM_SOCKET")
            .env_remove("TMUX");
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter into the pane.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "top", "-l", text]);
        self.keys(&["Enter"]);
    }

    /// Sends keys by tmux's names (`Enter`, `Escape`, `PageUp`, `q`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The screen as text, one line per row.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// The screen with its colours, as escape sequences.
    fn screen_with_colours(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", "top"])
    }

    /// Whether the pane shows the alternate screen (a full-screen program's).
    fn alternate_on(&self) -> bool {
        self.run(&["display", "-p", "-t", "top", "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn shell_pid(&self) -> i32 {
        self.run(&["display", "-p", "-t", "top", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("tmux gives the pane's pid")
    }

    /// Waits until the screen satisfies `cond`; returns it.
    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut screen = String::new();
        let ok = wait_for(SCREEN, || {
            screen = self.screen();
            cond(&screen)
        });
        assert!(
            ok,
            "the screen did not show {what} within {SCREEN:?}:\n{screen}"
        );
        screen
    }

    /// Starts `runpmctl top` for the project, with `env` before it (`NO_COLOR=1`).
    fn top(&self, p: &Project, env: &str) {
        let config = p.file("services.toml");
        self.type_line(&format!(
            "{env} {RUNPMCTL} -f {} top",
            config.to_str().expect("a UTF-8 path")
        ));
    }

    /// The exit status of the last command in the shell, once the shell is back.
    fn last_status(&self) -> String {
        self.type_line("echo \"exit=$?\"");
        let screen = self.wait_screen("the exit status", |s| {
            s.contains("exit=") && s.lines().any(|l| l.starts_with("exit="))
        });
        screen
            .lines()
            .find_map(|l| l.strip_prefix("exit="))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// Waits until `top` has given the terminal back: the main screen is shown again, with
    /// no table on it.
    fn wait_restored(&self) -> String {
        let ok = wait_for(SCREEN, || !self.alternate_on());
        assert!(ok, "the alternate screen is still on:\n{}", self.screen());
        self.wait_screen("the shell without the table", |s| {
            !s.contains("RESTARTS") && s.contains(PROMPT)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command(&["kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The line of the table that starts with `name`.
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
}

fn row_has(screen: &str, name: &str, words: &[&str]) -> bool {
    row(screen, name).is_some_and(|l| words.iter().all(|w| l.contains(w)))
}

fn setup(config: &str) -> Option<(Project, Daemon, Tmux)> {
    if !need_tool("tmux", "tmux") {
        return None;
    }
    let p = Project::new(secs(90));
    p.config(config);
    let daemon = p.up_detached(&["--no-watch"]);
    let tmux = Tmux::start(&p);
    Some((p, daemon, tmux))
}

fn pid_of(p: &Project, name: &str) -> i32 {
    p.running_pid(name, secs(10))
}

#[test]
fn the_table_shows_every_service_follows_resizes_and_q_gives_the_terminal_back() {
    let port = free_port();
    let Some((p, _daemon, tmux)) = setup(&format!(
        r#"
[services.alpha]
cmd = ["sleep", "1000"]

[services.beta]
cmd = ["sleep", "1000"]

# Never ready (nothing listens on the port): `waiter` waits for it. Started once `top`
# runs, since `up -d` would wait for them.
[services.gate]
cmd = ["sleep", "1000"]
ready = {{ tcp = "127.0.0.1:{port}" }}
ready_timeout = "10m"
autostart = false

[services.waiter]
cmd = ["sleep", "1000"]
depends_on = ["gate"]
autostart = false
"#
    )) else {
        return;
    };
    let alpha = pid_of(&p, "alpha");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("alpha", |s| row_has(s, "alpha", &["running"]));
    // Waits for gate, which never gets ready.
    let _start = p.ctl_spawn(&["start", "waiter"]);
    let screen = tmux.wait_screen("every service", |s| {
        row_has(s, "alpha", &["running", &alpha.to_string()])
            && row_has(s, "beta", &["running"])
            && row_has(s, "gate", &["starting"])
            && row_has(s, "waiter", &["starting", "waiting for gate"])
    });
    assert!(tmux.alternate_on(), "top runs on the alternate screen");
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(lines.len(), 24, "{screen}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{screen}");
    assert!(
        lines[0].contains("services.toml") && lines[0].contains("4 services"),
        "the header names the config and counts the services: {}",
        lines[0]
    );
    assert!(lines[0].contains("2 running") && lines[0].contains("2 starting"));
    for header in [
        "NAME",
        "STATUS",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "CPU%",
        "MEM",
        "INFO",
    ] {
        assert!(lines[1].contains(header), "{header} in {}", lines[1]);
    }
    assert!(lines[23].contains("q quit"), "the footer shows the keys");
    // Once a second sample is in, a running service has a CPU figure and its memory.
    tmux.wait_screen("CPU and memory figures", |s| {
        row(s, "alpha").is_some_and(|l| l.contains("0.0") && (l.contains('K') || l.contains('M')))
    });

    // A bigger window: the table follows it, the footer moves to the last line.
    tmux.run(&["resize-window", "-t", "top", "-x", "100", "-y", "30"]);
    let resized = tmux.wait_screen("the footer on line 30", |s| {
        s.lines().nth(29).is_some_and(|l| l.contains("q quit"))
    });
    assert!(
        resized
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("NAME"))
    );

    tmux.keys(&["q"]);
    let screen = tmux.wait_restored();
    assert!(!screen.contains("waiting for gate"), "{screen}");
    assert_eq!(tmux.last_status(), "0");
}

#[test]
fn restart_asks_first_stop_start_filter_and_reload_work() {
    let Some((p, _daemon, tmux)) = setup(
        r#"
[services.alpha]
cmd = ["sleep", "1000"]

[services.beta]
cmd = ["sleep", "1000"]
"#,
    ) else {
        return;
    };
    let beta = pid_of(&p, "beta");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("beta's pid", |s| row_has(s, "beta", &[&beta.to_string()]));
    // alpha is selected first; j moves to beta.
    tmux.keys(&["j", "r"]);
    tmux.wait_screen("the question", |s| s.contains("restart beta? [y/n]"));
    assert_eq!(p.pids()["beta"], Some(beta), "nothing happens before y");
    tmux.keys(&["y"]);
    let new = p.wait_new_pid_of("beta", beta);
    tmux.wait_screen("beta's new pid", |s| {
        row_has(s, "beta", &["running", &new.to_string()])
    });
    tmux.wait_screen("the result in the status line", |s| {
        s.contains(&format!("beta: running (pid {new})"))
    });

    // x asks too; n cancels.
    tmux.keys(&["x"]);
    tmux.wait_screen("the question", |s| s.contains("stop beta? [y/n]"));
    tmux.keys(&["n"]);
    tmux.wait_screen("cancelled", |s| s.contains("cancelled"));
    assert_eq!(p.pids()["beta"], Some(new));
    tmux.keys(&["x"]);
    tmux.wait_screen("the question", |s| s.contains("stop beta? [y/n]"));
    tmux.keys(&["y"]);
    tmux.wait_screen("beta stopped", |s| row_has(s, "beta", &["stopped"]));
    assert_eq!(p.statuses()["beta"], "stopped");
    tmux.keys(&["s"]);
    tmux.wait_screen("beta running again", |s| row_has(s, "beta", &["running"]));
    assert_eq!(p.statuses()["beta"], "running");

    // The filter leaves only the matching rows; esc brings them back.
    tmux.keys(&["/", "a", "l", "Enter"]);
    tmux.wait_screen("only alpha", |s| {
        row(s, "alpha").is_some() && row(s, "beta").is_none()
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("both again", |s| {
        row(s, "alpha").is_some() && row(s, "beta").is_some()
    });

    // R reloads and shows the plan; the new service gets its row.
    p.config(
        r#"
[services.alpha]
cmd = ["sleep", "1000"]

[services.beta]
cmd = ["sleep", "1000"]

[services.gamma]
cmd = ["sleep", "1000"]
"#,
    );
    tmux.keys(&["R"]);
    tmux.wait_screen("the plan and gamma", |s| {
        // The reply's plan, or the daemon's `reloaded` event when it comes after the reply.
        (s.contains("reloaded: + gamma started; = 2 unchanged")
            || s.contains("reloaded: +gamma, 2 unchanged"))
            && row_has(s, "gamma", &["running"])
    });
    tmux.keys(&["q"]);
    tmux.wait_restored();
}

#[test]
fn a_crash_shows_up_as_backoff_with_its_exit() {
    let Some((p, _daemon, tmux)) = setup(
        r#"
[services.crashy]
cmd = ["sleep", "1000"]
restart = "always"
restart_delay = "20s"
"#,
    ) else {
        return;
    };
    let pid = pid_of(&p, "crashy");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("crashy running", |s| {
        row_has(s, "crashy", &["running", &pid.to_string()])
    });
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the service");
    // The event marks the row at once; INFO counts down to the next start (restart_delay
    // 20s) from the status read that follows it.
    tmux.wait_screen("crashy in backoff after SIGKILL, counting down", |s| {
        row_has(s, "crashy", &["backoff", "SIGKILL", "next start in"])
    });
    tmux.keys(&["q"]);
    tmux.wait_restored();
}

#[test]
fn the_log_pane_follows_new_lines_and_scrolls_back() {
    let Some((p, _daemon, tmux)) = setup(
        r#"
[services.talker]
shell = "tail -n +1 -F said.txt"
"#,
    ) else {
        return;
    };
    let said = p.file("said.txt");
    append(&said, "first words\n");
    pid_of(&p, "talker");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("talker", |s| row_has(s, "talker", &["running"]));
    tmux.keys(&["Enter"]);
    tmux.wait_screen("the log pane", |s| {
        s.starts_with("log of talker") && s.contains("first words")
    });
    append(&said, "second words\n");
    tmux.wait_screen("the new line", |s| s.contains("second words"));
    // Enough lines for scroll-back: PgUp shows earlier ones, G the end again.
    let many: String = (1..=60).map(|i| format!("numbered line {i}\n")).collect();
    append(&said, &many);
    tmux.wait_screen("the last line", |s| s.contains("numbered line 60"));
    tmux.keys(&["PageUp"]);
    let back = tmux.wait_screen("earlier lines", |s| {
        !s.contains("numbered line 60") && s.contains("numbered line 30")
    });
    assert!(
        back.lines().next().is_some_and(|l| l.contains("lines")),
        "{back}"
    );
    append(&said, "while scrolled back\n");
    tmux.keys(&["G"]);
    tmux.wait_screen("the end again", |s| {
        s.contains("while scrolled back") && s.contains("following")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the table again", |s| row_has(s, "talker", &["running"]));
    tmux.keys(&["q"]);
    tmux.wait_restored();
}

#[test]
fn colours_follow_no_color() {
    let Some((p, _daemon, tmux)) = setup(
        r#"
[services.alpha]
cmd = ["sleep", "1000"]
"#,
    ) else {
        return;
    };
    pid_of(&p, "alpha");
    // Without NO_COLOR a running state is green (SGR 32, which tmux reports as 38;5;2), as
    // in `runpmctl status`.
    tmux.top(&p, "env -u NO_COLOR CLICOLOR_FORCE=1");
    tmux.wait_screen("alpha", |s| row_has(s, "alpha", &["running"]));
    let coloured = tmux.screen_with_colours();
    assert!(
        coloured.contains("\u{1b}[32m") || coloured.contains("\u{1b}[38;5;2m"),
        "{coloured:?}"
    );
    tmux.keys(&["q"]);
    tmux.wait_restored();
    tmux.type_line("clear");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("alpha", |s| row_has(s, "alpha", &["running"]));
    let plain = tmux.screen_with_colours();
    for colour in 30..=37 {
        assert!(
            !plain.contains(&format!("\u{1b}[{colour}m"))
                && !plain.contains(&format!("\u{1b}[38;5;{}m", colour - 30)),
            "NO_COLOR: no colour {colour}: {plain:?}"
        );
    }
    // Ctrl-C quits like q (in raw mode it is a key, not a signal).
    tmux.keys(&["C-c"]);
    tmux.wait_restored();
    assert_eq!(tmux.last_status(), "0");
}

#[test]
fn sigterm_gives_the_terminal_back_and_ends_by_the_signal() {
    let Some((p, _daemon, tmux)) = setup(
        r#"
[services.alpha]
cmd = ["sleep", "1000"]
"#,
    ) else {
        return;
    };
    pid_of(&p, "alpha");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("alpha", |s| row_has(s, "alpha", &["running"]));
    let shell = tmux.shell_pid();
    let top = wait_for_some(SCREEN, || children(shell).into_iter().next())
        .expect("runpmctl top is the shell's child");
    kill(Pid::from_raw(top), Signal::SIGTERM).expect("signal runpmctl top");
    tmux.wait_restored();
    assert_eq!(
        tmux.last_status(),
        "143",
        "128 + SIGTERM, as the shell sees it"
    );
}

#[test]
fn the_daemon_going_away_gives_the_terminal_back_and_exits_1() {
    let Some((p, _daemon, tmux)) = setup(
        r#"
[services.alpha]
cmd = ["sleep", "1000"]
"#,
    ) else {
        return;
    };
    pid_of(&p, "alpha");
    tmux.top(&p, "NO_COLOR=1");
    tmux.wait_screen("alpha", |s| row_has(s, "alpha", &["running"]));
    p.ctl_ok(&["shutdown", "--yes"]);
    let screen = tmux.wait_restored();
    assert!(screen.contains("the daemon went away"), "{screen}");
    assert_eq!(tmux.last_status(), "1");
}

#[test]
fn without_a_daemon_exit_3_and_without_a_terminal_exit_2() {
    let p = Project::new(secs(60));
    p.config("[services.alpha]\ncmd = [\"sleep\", \"1000\"]\n");
    let out = p.ctl(&["top"]);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert!(out.stderr.contains("no runpm daemon"), "{}", out.describe());

    let _daemon = p.up_detached(&["--no-watch"]);
    let out = p.ctl(&["top"]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(
        out.stderr.contains("needs a terminal"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.is_empty(), "nothing drawn: {}", out.describe());
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

trait NewPid {
    fn wait_new_pid_of(&self, name: &str, old: i32) -> i32;
}

impl NewPid for Project {
    /// Waits until `name` runs with a pid other than `old`.
    fn wait_new_pid_of(&self, name: &str, old: i32) -> i32 {
        wait_for_some(SCREEN, || {
            let s = self.services().remove(name)?;
            let pid = s["pid"].as_i64()? as i32;
            (s["status"] == "running" && pid != old).then_some(pid)
        })
        .unwrap_or_else(|| panic!("{name} did not get a new pid (old {old})"))
    }
}
