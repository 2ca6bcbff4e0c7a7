//! `runpmctl metrics` (issue 16, part 3): the Prometheus text exposition format of a real
//! daemon's services, checked by a small parser of the format (HELP and TYPE before the
//! samples of each family, label values quoted and escaped, numbers) and by its values.

mod common;

use std::collections::BTreeMap;

use common::*;

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch what a scraper would refuse: every
/// sample belongs to a family declared by `# HELP` and `# TYPE` before it, a family's
/// samples are together, names and label values are well formed.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "twice: {line}"
            );
            assert_eq!(
                helped.last().map(String::as_str),
                Some(name),
                "HELP before TYPE: {line}"
            );
            current = Some(name.to_owned());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let sample = parse_sample(line);
        assert_eq!(
            current.as_deref(),
            Some(sample.name.as_str()),
            "a sample outside its family's block: {line}"
        );
        if typed[&sample.name] == "counter" {
            assert!(
                sample.name.ends_with("_total") && sample.value >= 0.0,
                "{line}"
            );
        }
        samples.push(sample);
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find('{') {
        Some(at) => (&line[..at], &line[at..]),
        None => line.split_once(' ').expect("name value"),
    };
    assert!(valid_name(name), "{line}");
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        let mut key = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i);
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(c @ ('\\' | '"')) => value.push(c),
                                other => panic!("bad escape {other:?}: {line}"),
                            },
                            Some('"') => break,
                            Some(c) => value.push(c),
                            None => panic!("unterminated label value: {line}"),
                        }
                    }
                    assert!(valid_name(&key), "label name {key:?}: {line}");
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("no closing brace: {line}"));
        rest = &inner[end + 1..];
    }
    let value = rest.trim_start_matches(' ');
    assert_eq!(
        rest.len() - value.len(),
        1,
        "one space before the value: {line}"
    );
    let value: f64 = value
        .parse()
        .unwrap_or_else(|e| panic!("value {value:?}: {e}: {line}"));
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn value(samples: &[Sample], name: &str, label: (&str, &str)) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
        .map(|s| s.value)
}

#[test]
fn the_checker_refuses_what_a_scraper_would() {
    let bad = [
        "runpm_x 1\n",
        "# HELP a b\n# TYPE a gauge\na{service=\"x} 1\n",
        "# HELP a b\n# TYPE a gauge\na{service=\"x\"}  1\n",
        "# HELP a b\n# TYPE a gauge\na{service=\"x\\q\"} 1\n",
    ];
    for text in bad {
        assert!(std::panic::catch_unwind(|| parse(text)).is_err(), "{text}");
    }
    let good = "# HELP a b\n# TYPE a gauge\na{service=\"x\\\"y\"} 1.5\n";
    assert_eq!(parse(good)[0].labels["service"], "x\"y");
}

#[test]
fn metrics_are_valid_exposition_text_with_each_services_figures() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.web]
shell = "sleep 1000 & exec sleep 1000"

[services.busy]
shell = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done > burnt; exec sleep 1000"

[services.task]
shell = "exit 3"
restart = "never"
"#,
    );
    let none = p.ctl(&["metrics"]);
    assert_eq!(none.code(), Some(3), "{}", none.describe());
    let _daemon = p.up_detached_failing(&["--no-watch"]);
    let web = p.running_pid("web", secs(10));
    p.wait_lines("burnt", 1, secs(30));
    assert!(wait_for(secs(10), || p.statuses()["task"] == "exited"));

    let text = p.ctl_ok(&["metrics"]);
    let samples = parse(&text);
    let service = |name| ("service", name);
    assert_eq!(
        value(&samples, "runpm_service_up", service("web")),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "runpm_service_up", service("task")),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "runpm_service_last_exit_code", service("task")),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "runpm_service_last_exit_code", service("web")),
        None,
        "web never ended: {text}"
    );
    assert_eq!(
        value(&samples, "runpm_service_restarts_total", service("web")),
        Some(0.0)
    );
    // web's group is two sleeps: more than its main process alone.
    let statm = std::fs::read_to_string(format!("/proc/{web}/statm")).unwrap();
    let main_pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let memory = value(&samples, "runpm_service_memory_bytes", service("web")).unwrap();
    assert!(
        memory > main_pages * 4096.0 * 1.5,
        "{memory} for {main_pages} pages: {text}"
    );
    // No process: no figure from /proc, or the empty cgroup's 0.
    assert!(
        matches!(
            value(&samples, "runpm_service_memory_bytes", service("task")),
            None | Some(0.0)
        ),
        "no process, no memory: {text}"
    );
    let cpu = value(&samples, "runpm_service_cpu_seconds_total", service("busy")).unwrap();
    assert!(cpu > 0.0, "busy burnt CPU: {text}");
    for (state, n) in [
        ("running", 2.0),
        ("exited", 1.0),
        ("failed", 0.0),
        ("backoff", 0.0),
    ] {
        assert_eq!(
            value(&samples, "runpm_services", ("state", state)),
            Some(n),
            "{state}: {text}"
        );
    }
}

#[test]
fn the_textfile_collector_recipe_leaves_a_complete_file() {
    let p = Project::new(secs(60));
    p.config("[services.web]\nshell = \"exec sleep 1000\"\n");
    let _daemon = p.up_detached(&["--no-watch"]);
    p.running_pid("web", secs(10));
    let dir = p.file("textfile");
    std::fs::create_dir(&dir).unwrap();
    // The README's recipe, as cron would run it.
    let recipe = format!(
        "{RUNPMCTL} metrics > {d}/runpm.prom.$$ && mv {d}/runpm.prom.$$ {d}/runpm.prom",
        d = dir.display()
    );
    let out = run_to_end(p.program("sh", ["-c", recipe.as_str()]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let text = std::fs::read_to_string(dir.join("runpm.prom")).unwrap();
    let samples = parse(&text);
    assert_eq!(
        value(&samples, "runpm_service_up", ("service", "web")),
        Some(1.0)
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temp file left"
    );
}
