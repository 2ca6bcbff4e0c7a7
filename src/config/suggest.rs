//! "Did you mean" hints: the nearest known word by edit distance, if it is near enough that
//! the word was plausibly a typo of it rather than something else entirely.

/// The candidate nearest to `word`, if any is within a third of its length (at least one
/// edit). Case is ignored, so `CMD` suggests `cmd`.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)`, or nothing: ready to append to a message.
pub(super) fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// What a key from another tool's service definitions is called here: users of docker
/// compose, process-compose, supervisord and pm2 bring their words along, and a typo
/// distance cannot bridge `environment` to `env`.
pub(super) fn foreign_key(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key.to_ascii_lowercase().as_str() {
        "command" | "exec" | "script" | "args" | "entrypoint" => (
            "cmd",
            "use `cmd = [\"prog\", \"arg\"]` (a list, no shell) or `shell = \"...\"` (run by sh -c)",
        ),
        "environment" | "environ" => ("env", "use `env = { KEY = \"value\" }`"),
        "working_dir" | "workdir" | "working_directory" | "directory" | "chdir" => {
            ("cwd", "use `cwd` (relative to the config file's directory)")
        }
        "env_files" => ("env_file", "use `env_file` (one file)"),
        "autorestart" | "restart_policy" | "availability" => (
            "restart",
            "use `restart = \"always\" | \"on-failure\" | \"never\"`",
        ),
        "stopsignal" => ("stop_signal", "use `stop_signal`"),
        "healthcheck" | "liveness_probe" => ("health", "use `health = { exec = [...] }`"),
        "readiness_probe" => (
            "ready",
            "use `ready = { tcp = ... }` (or exec, http, log, notify)",
        ),
        "depends" | "requires" | "after" => ("depends_on", "use `depends_on = [\"name\"]`"),
        _ => return None,
    })
}

/// Advice for a value of the wrong type where users of other tools expect another shape.
pub(super) fn value_hint(path: &[String], message: &str) -> Option<&'static str> {
    match path {
        [key] if key == "cmd" && message.starts_with("invalid type: string") => Some(
            "`cmd` is a list of arguments, run without a shell: `cmd = [\"python3\", \"app.py\"]`; \
             to run a command line with sh -c, write `shell = \"...\"` instead",
        ),
        _ => None,
    }
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions, which are
/// the most common typo (`cmd` → `cdm`).
fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        let fields = [
            "cmd",
            "shell",
            "cwd",
            "env",
            "env_file",
            "depends_on",
            "restart",
        ];
        assert_eq!(did_you_mean("cmnd", fields), Some("cmd"));
        assert_eq!(did_you_mean("cdm", fields), Some("cmd"));
        assert_eq!(did_you_mean("CMD", fields), Some("cmd"));
        assert_eq!(did_you_mean("envfile", fields), Some("env_file"));
        assert_eq!(did_you_mean("dependson", fields), Some("depends_on"));
        assert_eq!(
            did_you_mean("on-failur", ["always", "on-failure", "never"]),
            Some("on-failure")
        );
    }

    #[test]
    fn keys_from_other_tools_are_translated() {
        assert_eq!(foreign_key("command").map(|f| f.0), Some("cmd"));
        assert_eq!(foreign_key("environment").map(|f| f.0), Some("env"));
        assert_eq!(foreign_key("working_dir").map(|f| f.0), Some("cwd"));
        assert_eq!(foreign_key("nonsense"), None);
        let cmd = ["cmd".to_string()];
        assert!(
            value_hint(&cmd, "invalid type: string \"x\"").is_some_and(|h| h.contains("shell"))
        );
        assert_eq!(value_hint(&cmd, "invalid type: integer `1`"), None);
    }

    #[test]
    fn far_words_are_not() {
        let fields = ["cmd", "shell", "cwd"];
        assert_eq!(did_you_mean("command", fields), None);
        assert_eq!(did_you_mean("xyz", fields), None);
        assert_eq!(hint("xyz", fields), "");
    }
}
