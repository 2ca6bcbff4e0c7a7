//! Which fields of a spec differ, named as the user wrote them in the unit file.
//!
//! Both specs are resolved, so a difference here is a difference in meaning. The names are
//! the TOML keys, since that is what a user edited and what `reload` reports. `env` covers
//! the contents of `env_file` too (the file is already overlaid into the resolved
//! environment); `env_file` itself changes when the path or the set of keys does.

use crate::config::{Command, ServiceSpec};

/// The TOML field names whose resolved values differ between `old` and `new`, in the order
/// the unit file documents them.
pub fn changed_fields(old: &ServiceSpec, new: &ServiceSpec) -> Vec<String> {
    // Destructuring both specs fully makes a new field a compile error here rather than a
    // change that reload silently reports as nothing.
    let ServiceSpec {
        name: _,
        command,
        cwd,
        env,
        env_file,
        clear_env,
        depends_on,
        conditions,
        restart,
        restart_delay,
        restart_delay_max,
        min_uptime,
        max_restarts,
        restart_window,
        success_exit_codes,
        stop_signal,
        kill_timeout,
        kill_mode,
        autostart,
        user,
        group,
        ready,
        ready_timeout,
        health,
        watchdog,
        failed_cooldown,
        log_max_size,
        log_keep,
        profiles,
        replica_of,
        schedule,
        listen,
        fd_store_max,
        limits,
        rlimits,
    } = old;

    let mut out: Vec<&str> = Vec::new();
    match (command, &new.command) {
        (a, b) if a == b => {}
        (Command::Argv(_), Command::Argv(_)) => out.push("cmd"),
        (Command::Shell(_), Command::Shell(_)) => out.push("shell"),
        // Switching between the two forms removes one key and adds the other.
        _ => out.extend(["cmd", "shell"]),
    }
    let mut differs = |name: &'static str, same: bool| {
        if !same {
            out.push(name);
        }
    };
    differs("cwd", *cwd == new.cwd);
    differs("env", *env == new.env);
    differs("env_file", *env_file == new.env_file);
    differs("clear_env", *clear_env == new.clear_env);
    differs(
        "depends_on",
        *depends_on == new.depends_on && *conditions == new.conditions,
    );
    differs("restart", *restart == new.restart);
    differs("restart_delay", *restart_delay == new.restart_delay);
    differs(
        "restart_delay_max",
        *restart_delay_max == new.restart_delay_max,
    );
    differs("min_uptime", *min_uptime == new.min_uptime);
    differs("max_restarts", *max_restarts == new.max_restarts);
    differs("restart_window", *restart_window == new.restart_window);
    differs(
        "success_exit_codes",
        *success_exit_codes == new.success_exit_codes,
    );
    differs("stop_signal", *stop_signal == new.stop_signal);
    differs("kill_timeout", *kill_timeout == new.kill_timeout);
    differs("kill_mode", *kill_mode == new.kill_mode);
    differs("autostart", *autostart == new.autostart);
    differs("user", *user == new.user);
    differs("group", *group == new.group);
    differs("ready", *ready == new.ready);
    differs("ready_timeout", *ready_timeout == new.ready_timeout);
    differs("health", *health == new.health);
    differs("watchdog", *watchdog == new.watchdog);
    differs("failed_cooldown", *failed_cooldown == new.failed_cooldown);
    differs("log_max_size", *log_max_size == new.log_max_size);
    differs("log_keep", *log_keep == new.log_keep);
    differs("profiles", *profiles == new.profiles);
    differs("replicas", *replica_of == new.replica_of);
    differs("schedule", *schedule == new.schedule);
    differs("listen", *listen == new.listen);
    differs("fd_store_max", *fd_store_max == new.fd_store_max);
    differs("rlimits", *rlimits == new.rlimits);
    out.extend(limits.changed_keys(&new.limits));
    out.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::spec;

    #[test]
    fn equal_specs_have_no_changed_fields() {
        assert!(changed_fields(&spec("web"), &spec("web")).is_empty());
    }

    #[test]
    fn names_the_toml_keys_that_differ() {
        let old = spec("web");
        let mut new = spec("web");
        new.command = Command::Argv(vec!["false".into()]);
        new.env.insert("PORT".into(), "80".into());
        new.kill_timeout = Duration::from_secs(1);
        assert_eq!(changed_fields(&old, &new), ["cmd", "env", "kill_timeout"]);
    }

    #[test]
    fn shell_scripts_are_reported_as_shell() {
        let mut old = spec("web");
        old.command = Command::Shell("echo a".into());
        let mut new = spec("web");
        new.command = Command::Shell("echo b".into());
        assert_eq!(changed_fields(&old, &new), ["shell"]);
    }

    #[test]
    fn switching_between_cmd_and_shell_names_both() {
        let old = spec("web");
        let mut new = spec("web");
        new.command = Command::Shell("true".into());
        assert_eq!(changed_fields(&old, &new), ["cmd", "shell"]);
    }
}
