//! Renders imported services as runpm unit files: one `services.toml`, or one `NAME.toml` per
//! service for a unit directory.
//!
//! The output is a pure function of the model: keys in one fixed order (the order of the
//! config reference), services in the order the inputs listed them, no dates or absolute
//! paths that were not in the input. Importing the same files twice gives the same bytes.
//! Each service starts with a comment naming where it came from, then one comment per thing
//! that did not carry over.

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{Command, Health, Imported, Limit, Probe, Service};
use crate::config::{Condition, RestartPolicy, reference};

/// Whether this build's config knows `key` (`replicas`, or `ready.http` for a key of a
/// sub-table): the importers' mappings to keys being added depend on it.
pub fn knows(key: &str) -> bool {
    let has = |fields: &[reference::Field], name: &str| fields.iter().any(|f| f.name == name);
    match key.split_once('.') {
        None => has(reference::SERVICE, key),
        Some(("ready", sub)) => has(reference::READY, sub),
        Some(("health", sub)) => has(reference::HEALTH, sub),
        Some(_) => false,
    }
}

/// Moves what this runpm cannot express yet into `lost`, given what it `knows`: the keys
/// being added (`replicas`, limits…) are written only once the config reference lists them,
/// so the output always passes `runpm validate`. An HTTP check falls back to a TCP check of
/// the same address, which at least waits for the port.
pub fn settle(service: &mut Service, knows: &dyn Fn(&str) -> bool) {
    let mut lost = Vec::new();
    let drop_unknown = |key: &str, rendered: Option<String>, lost: &mut Vec<String>| {
        let Some(rendered) = rendered else {
            return false;
        };
        if knows(key) {
            return false;
        }
        lost.push(format!(
            "`{key} = {rendered}`: this runpm does not know `{key}` yet (a newer one does)"
        ));
        true
    };
    if drop_unknown(
        "replicas",
        service.replicas.map(|n| n.to_string()),
        &mut lost,
    ) {
        service.replicas = None;
    }
    let profiles = (!service.profiles.is_empty()).then(|| list(&service.profiles));
    if drop_unknown("profiles", profiles, &mut lost) {
        service.profiles.clear();
    }
    for (key, field) in [
        ("memory_max", &mut service.memory_max),
        ("memory_high", &mut service.memory_high),
        ("memory_restart", &mut service.memory_restart),
    ] {
        if drop_unknown(key, field.map(|b| string(&size(b))), &mut lost) {
            *field = None;
        }
    }
    if drop_unknown(
        "cpu_max",
        service.cpu_max.map(|p| string(&format!("{p}%"))),
        &mut lost,
    ) {
        service.cpu_max = None;
    }
    if drop_unknown(
        "cpu_weight",
        service.cpu_weight.map(|w| w.to_string()),
        &mut lost,
    ) {
        service.cpu_weight = None;
    }
    if drop_unknown(
        "pids_max",
        service.pids_max.map(|n| n.to_string()),
        &mut lost,
    ) {
        service.pids_max = None;
    }
    let rlimits = (!service.rlimits.is_empty()).then(|| rlimits(service));
    if drop_unknown("rlimits", rlimits, &mut lost) {
        service.rlimits.clear();
    }
    if let Some(Probe::Http(url)) = &service.ready
        && !knows("ready.http")
    {
        lost.push(format!(
            "`ready = {{ http = {} }}`: this runpm does not know `ready.http` yet; checked as \
             TCP on the same address",
            string(url)
        ));
        service.ready = Some(Probe::Tcp(host_port(url)));
    }
    if let Some(Health {
        probe: Probe::Http(url),
        ..
    }) = &service.health
        && !knows("health.http")
    {
        lost.push(format!(
            "`health = {{ http = {} }}`: this runpm does not know `health.http` yet; checked \
             as TCP on the same address",
            string(url)
        ));
        let tcp = Probe::Tcp(host_port(url));
        if let Some(health) = service.health.as_mut() {
            health.probe = tcp;
        }
    }
    service.lost.extend(lost);
}

/// `host:port` of an `http://host:port/path` URL (port 80 or 443 by scheme when absent).
fn host_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{authority}:{port}")
    }
}

/// The whole import as one `services.toml`.
pub fn services_toml(imported: &Imported, sources: &[String]) -> String {
    let mut out = format!(
        "# Imported by `runpm import` from {}.\n# Lines starting with `# not carried over:` \
         say what runpm does differently or not at all.\n",
        sources.join(", ")
    );
    for service in &imported.services {
        out.push('\n');
        header(&mut out, service);
        let _ = writeln!(out, "[services.{}]", key(&service.name));
        body(&mut out, service);
    }
    out
}

/// One unit file (`NAME.toml` in a unit directory): the same keys at the top level.
pub fn unit_file(service: &Service) -> String {
    let mut out = String::new();
    header(&mut out, service);
    body(&mut out, service);
    out
}

fn header(out: &mut String, service: &Service) {
    let _ = writeln!(out, "# from {}", one_line(&service.origin));
    for lost in &service.lost {
        let _ = writeln!(out, "# not carried over: {}", one_line(lost));
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn body(out: &mut String, s: &Service) {
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(out, "{k} = {v}");
    };
    match &s.command {
        Some(Command::Argv(argv)) => kv("cmd", list(argv)),
        Some(Command::Shell(script)) => kv("shell", string(script)),
        None => {}
    }
    // `.` is the config's own directory: runpm's default.
    if let Some(cwd) = s.cwd.as_ref().filter(|cwd| *cwd != ".") {
        kv("cwd", string(cwd));
    }
    if !s.env.is_empty() {
        let pairs: Vec<String> = s
            .env
            .iter()
            .map(|(k, v)| format!("{} = {}", key(k), string(v)))
            .collect();
        kv("env", format!("{{ {} }}", pairs.join(", ")));
    }
    if let Some(file) = &s.env_file {
        kv("env_file", string(file));
    }
    if !s.depends_on.is_empty() {
        if s.depends_on.values().all(|c| *c == Condition::Ready) {
            let names: Vec<String> = s.depends_on.keys().cloned().collect();
            kv("depends_on", list(&names));
        } else {
            let pairs: Vec<String> = s
                .depends_on
                .iter()
                .map(|(k, c)| format!("{} = {}", key(k), string(c.as_str())))
                .collect();
            kv("depends_on", format!("{{ {} }}", pairs.join(", ")));
        }
    }
    if let Some(restart) = s.restart {
        let word = match restart {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        };
        kv("restart", string(word));
    }
    let duration_keys = [
        ("restart_delay", s.restart_delay),
        ("restart_delay_max", s.restart_delay_max),
        ("min_uptime", s.min_uptime),
    ];
    for (k, d) in duration_keys {
        if let Some(d) = d {
            kv(k, duration(d));
        }
    }
    if let Some(n) = s.max_restarts {
        kv("max_restarts", n.to_string());
    }
    if let Some(d) = s.restart_window {
        kv("restart_window", duration(d));
    }
    if let Some(codes) = &s.success_exit_codes {
        let codes: Vec<String> = codes.iter().map(i32::to_string).collect();
        kv("success_exit_codes", format!("[{}]", codes.join(", ")));
    }
    if let Some(signal) = &s.stop_signal {
        kv("stop_signal", string(signal));
    }
    if let Some(d) = s.kill_timeout {
        kv("kill_timeout", duration(d));
    }
    if let Some(mode) = s.kill_mode {
        kv("kill_mode", string(mode));
    }
    if let Some(autostart) = s.autostart {
        kv("autostart", autostart.to_string());
    }
    if let Some(user) = &s.user {
        kv("user", string(user));
    }
    if let Some(group) = &s.group {
        kv("group", string(group));
    }
    if let Some(ready) = &s.ready {
        kv("ready", format!("{{ {} }}", probe(ready)));
    }
    if let Some(d) = s.ready_timeout {
        kv("ready_timeout", duration(d));
    }
    if let Some(h) = &s.health {
        let mut parts = vec![probe(&h.probe)];
        if let Some(d) = h.interval {
            parts.push(format!("interval = {}", duration(d)));
        }
        if let Some(d) = h.timeout {
            parts.push(format!("timeout = {}", duration(d)));
        }
        if let Some(n) = h.retries {
            parts.push(format!("retries = {n}"));
        }
        kv("health", format!("{{ {} }}", parts.join(", ")));
    }
    if let Some(d) = s.watchdog {
        kv("watchdog", duration(d));
    }
    if let Some(n) = s.replicas {
        kv("replicas", n.to_string());
    }
    if !s.profiles.is_empty() {
        kv("profiles", list(&s.profiles));
    }
    for (k, v) in [
        ("memory_max", s.memory_max),
        ("memory_high", s.memory_high),
        ("memory_restart", s.memory_restart),
    ] {
        if let Some(bytes) = v {
            kv(k, string(&size(bytes)));
        }
    }
    if let Some(p) = s.cpu_max {
        kv("cpu_max", string(&format!("{p}%")));
    }
    if let Some(w) = s.cpu_weight {
        kv("cpu_weight", w.to_string());
    }
    if let Some(n) = s.pids_max {
        kv("pids_max", n.to_string());
    }
    if !s.rlimits.is_empty() {
        kv("rlimits", rlimits(s));
    }
}

fn rlimits(s: &Service) -> String {
    let pairs: Vec<String> = s
        .rlimits
        .iter()
        .map(|(k, v)| match v {
            Limit::Value(n) => format!("{} = {n}", key(k)),
            Limit::Unlimited => format!("{} = \"unlimited\"", key(k)),
        })
        .collect();
    format!("{{ {} }}", pairs.join(", "))
}

fn probe(p: &Probe) -> String {
    match p {
        Probe::Notify => "notify = true".into(),
        Probe::Tcp(address) => format!("tcp = {}", string(address)),
        Probe::Exec(argv) => format!("exec = {}", list(argv)),
        Probe::Log(regex) => format!("log = {}", string(regex)),
        Probe::Http(url) => format!("http = {}", string(url)),
    }
}

/// A duration as runpm reads it (humantime): `90s` is written `1m 30s`.
pub fn duration(d: Duration) -> String {
    string(&humantime::format_duration(d).to_string())
}

/// Bytes in the largest binary unit that divides them (`512MiB`), as docker and systemd
/// count (their `512M` is 512 MiB).
pub fn size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes > 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// A TOML basic string.
pub fn string(value: &str) -> String {
    crate::quote::double_quoted(value, |c| crate::quote::unicode_escape(c, true, |_| false))
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| string(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A key, bare when TOML allows it.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        string(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_keys_are_quoted_for_toml() {
        assert_eq!(string("a \"b\"\n\\"), r#""a \"b\"\n\\""#);
        assert_eq!(key("web"), "web");
        assert_eq!(key("a.b"), "\"a.b\"");
        assert_eq!(size(512 << 20), "512MiB");
        assert_eq!(size(1500), "1500B");
        assert_eq!(duration(Duration::from_secs(90)), "\"1m 30s\"");
    }

    #[test]
    fn unknown_new_keys_become_comments_and_http_falls_back_to_tcp() {
        let mut s = Service::new("web", "x".into());
        s.replicas = Some(3);
        s.ready = Some(Probe::Http("http://127.0.0.1:8000/healthz".into()));
        settle(&mut s, &|_| false);
        assert_eq!(s.replicas, None);
        assert_eq!(s.ready, Some(Probe::Tcp("127.0.0.1:8000".into())));
        assert!(s.lost[0].starts_with("`replicas = 3`"), "{:?}", s.lost);
        let mut s2 = Service::new("web", "x".into());
        s2.replicas = Some(3);
        settle(&mut s2, &|_| true);
        assert_eq!(s2.replicas, Some(3));
        assert!(s2.lost.is_empty());
    }
}
