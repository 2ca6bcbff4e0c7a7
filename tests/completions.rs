//! `runpmctl completions SHELL` and the hidden `runpmctl __complete-services` the scripts
//! call for service names, against a real daemon.
//!
//! The bash and fish scripts are also driven the way the shells drive them (bash through
//! `COMP_WORDS`, fish through `complete -C`), so the service-name hook is tested end to
//! end. zsh and fish are optional here: their checks are skipped, saying so, when the shell
//! is not installed.

mod common;

use std::path::Path;

use common::*;

const SERVICES: &str = r#"
[services.db]
shell = 'exec sleep 1000000'

[services.web]
shell = 'exec sleep 1000000'
depends_on = ["db"]

[services.worker]
shell = 'exec sleep 1000000'
"#;

/// Runs `shell ARGS…` to completion; returns stdout, asserting success.
fn shell_ok(p: &Project, shell: &str, args: &[&str]) -> String {
    let mut cmd = p.program(shell, args);
    // The fish script calls `runpmctl` by name, as an installed one would be.
    let bin_dir = Path::new(RUNPMCTL).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin_dir.display()));
    let out = run_to_end(cmd);
    assert_eq!(
        out.code(),
        Some(0),
        "`{shell} {}` should succeed\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn script(p: &Project, shell: &str) -> std::path::PathBuf {
    let text = p.ctl_ok(&["completions", shell]);
    p.write(&format!("completion.{shell}"), &text)
}

#[test]
fn a_script_is_printed_for_each_shell_and_parses() {
    let p = Project::new(secs(60));
    for (shell, hook) in [
        ("bash", "complete -F _runpmctl_with_services"),
        ("zsh", ":_runpmctl_services' \\"),
        ("fish", "-a \"(__fish_runpmctl_services)\""),
    ] {
        let text = p.ctl_ok(&["completions", shell]);
        assert!(
            text.contains(hook),
            "the {shell} script lacks `{hook}`:\n{text}"
        );
        for command in ["status", "restart", "logs", "completions", "--state-dir"] {
            assert!(
                text.contains(command),
                "the {shell} script lacks `{command}`"
            );
        }
        // The hidden command is for the scripts, never offered to a user.
        let offered = text.lines().filter(|l| {
            l.contains("__complete-services")
                && (l.contains(" opts=") || l.contains("-a \"__complete") || l.starts_with("'__"))
        });
        assert_eq!(
            offered.count(),
            0,
            "the {shell} script offers `__complete-services`"
        );
        if need_tool(shell, shell) {
            let file = script(&p, shell);
            shell_ok(&p, shell, &["-n", file.to_str().unwrap()]);
        }
    }
    let wrong = p.ctl(&["completions", "tcsh"]);
    assert_eq!(wrong.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn complete_services_prints_nothing_without_a_daemon() {
    let p = Project::new(secs(60));
    // No config at all, then a config whose daemon is not running.
    for _ in 0..2 {
        let out = p.ctl(&["__complete-services"]);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, "");
        p.config(SERVICES);
    }
    let help = p.ctl_ok(&["--help"]);
    assert!(
        !help.contains("__complete-services"),
        "the command is hidden:\n{help}"
    );
}

#[test]
fn service_names_come_from_the_running_daemon() {
    let p = Project::new(secs(120));
    p.config(SERVICES);
    let _daemon = p.up_detached(&["--no-watch"]);
    assert_eq!(p.ctl_ok(&["__complete-services"]), "db\nweb\nworker\n");

    // From elsewhere, the options that find the daemon are honoured.
    let file = p.file("services.toml");
    let file = file.to_str().unwrap();
    let elsewhere = p.ctl_in(Path::new("/"), &["-f", file, "__complete-services"]);
    assert_eq!(
        elsewhere.stdout, "db\nweb\nworker\n",
        "{}",
        elsewhere.stderr
    );

    // bash, as it completes `runpmctl -f FILE stop w<TAB>` from another directory.
    let bash = script(&p, "bash");
    let drive = format!(
        "source {bash:?}; cd /; \
         COMP_WORDS=({ctl:?} -f {file:?} stop w); COMP_CWORD=4; \
         _runpmctl_with_services runpmctl w stop; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        ctl = RUNPMCTL,
    );
    assert_eq!(shell_ok(&p, "bash", &["-c", &drive]), "web\nworker\n");
    // Options are still completed by clap's part of the script.
    let drive = format!(
        "source {bash:?}; COMP_WORDS=(runpmctl stop --a); COMP_CWORD=2; \
         _runpmctl_with_services runpmctl --a stop; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
    );
    assert_eq!(shell_ok(&p, "bash", &["-c", &drive]), "--all\n");

    if need_tool("fish", "fish") {
        let fish = script(&p, "fish");
        let drive = format!("source {fish:?}; cd /; complete -C 'runpmctl -f {file} restart '",);
        let out = shell_ok(&p, "fish", &["--no-config", "-c", &drive]);
        let names: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
        assert_eq!(names, ["db", "web", "worker"], "fish completions:\n{out}");
    }
}

/// `runpm completions SHELL`: the same scripts for runpm itself, where `runpm up <TAB>`
/// completes the service names of the config (no daemon needed), found from `-f` anywhere on
/// the line or from the current directory.
#[test]
fn runpm_up_completes_the_configs_service_names() {
    let p = Project::new(secs(60));
    p.config(SERVICES);
    for (shell, hook) in [
        ("bash", "complete -F _runpm_with_services"),
        ("zsh", ":_runpm_services' \\"),
        ("fish", "-a \"(__fish_runpm_services)\""),
    ] {
        let text = p.run(&["completions", shell], COMMAND_LIMIT);
        assert_eq!(text.code(), Some(0), "{}", text.stderr);
        assert!(
            text.stdout.contains(hook),
            "the {shell} script lacks `{hook}`:\n{}",
            text.stdout
        );
        for command in ["up", "validate", "down", "completions", "detach"] {
            assert!(
                text.stdout.contains(command),
                "the {shell} script lacks `{command}`"
            );
        }
        if need_tool(shell, shell) {
            let file = p.write(&format!("runpm.{shell}"), &text.stdout);
            shell_ok(&p, shell, &["-n", file.to_str().unwrap()]);
        }
    }
    assert_eq!(
        p.run(&["__complete-services"], COMMAND_LIMIT).stdout,
        "db\nweb\nworker\n"
    );
    // Without a config: nothing, and no error in the prompt.
    let none = run_to_end({
        let mut cmd = p.command(["__complete-services"]);
        cmd.current_dir("/");
        cmd
    });
    assert_eq!(
        (none.code(), none.stdout.as_str(), none.stderr.as_str()),
        (Some(0), "", "")
    );

    // bash, as it completes `runpm up -f FILE w<TAB>` from another directory.
    let bash = p.write(
        "runpm.bash",
        &p.run(&["completions", "bash"], COMMAND_LIMIT).stdout,
    );
    let file = p.file("services.toml");
    let drive = format!(
        "source {bash:?}; cd /; \
         COMP_WORDS=({runpm:?} up -f {file:?} w); COMP_CWORD=4; \
         _runpm_with_services runpm w {file:?}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        runpm = RUNPM,
    );
    assert_eq!(shell_ok(&p, "bash", &["-c", &drive]), "web\nworker\n");
    // In the project's directory, no -f needed; names already given are still offered
    // (a service may be named twice harmlessly).
    let drive = format!(
        "source {bash:?}; COMP_WORDS=({runpm:?} up d); COMP_CWORD=2; \
         _runpm_with_services runpm d up; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        runpm = RUNPM,
    );
    assert_eq!(shell_ok(&p, "bash", &["-c", &drive]), "db\n");
}
