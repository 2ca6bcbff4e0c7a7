//! Under systemd, runpm's stderr is the journal, and each service's lines go there under the
//! service's own name (`journalctl -t web`), at priority 6 from stdout and 3 from stderr,
//! with runpm's own events under `runpm`.
//!
//! Tested against a real `systemd-journald`, started inside a private mount namespace with
//! tmpfs on `/run/systemd`, `/run/log` and `/var/log/journal` (so the machine's own journal,
//! if any, is never touched). runpm runs as systemd would run it: `systemd-cat` connects its
//! stdout and stderr to a journal stream, and `JOURNAL_STREAM` names that stream's device and
//! inode. Needs root (CI is) and Debian's `systemd` package (journald, systemd-cat,
//! journalctl).

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Runs in the private mount namespace: starts journald, runs the scenarios, waits until
/// the journal holds what they sent, and dumps it as JSON lines into `$DIR/journal.json`.
const SCRIPT: &str = r#"
set -u
RUNPM="$1"; DIR="$2"; RUNPMCTL="$3"
mkdir -p /run/systemd /run/log
mount -t tmpfs tmpfs /run/systemd && mount -t tmpfs tmpfs /run/log || exit 90
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal || exit 90; fi
/lib/systemd/systemd-journald > /dev/null 2>&1 &
JOURNALD=$!
trap 'kill $JOURNALD; wait $JOURNALD' EXIT
# Wait (with a deadline) until journald listens.
i=0
until [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ]; do
    i=$((i + 1)); [ $i -lt 400 ] || { echo "journald did not start" >&2; exit 91; }
    sleep 0.025
done

# runpm as systemd runs it: stdout and stderr on a journal stream that JOURNAL_STREAM names.
systemd-cat -t under-systemd sh -c \
    'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" up -f "$1"' \
    "$RUNPM" "$DIR/journal/services.toml"
echo $? > "$DIR/journal-exit"

# A JOURNAL_STREAM that does not name runpm's stderr (inherited through a redirection):
# the services' lines stay on the console.
JOURNAL_STREAM=1:1 "$RUNPM" up -f "$DIR/console/services.toml" > "$DIR/console-out" 2> "$DIR/console-err"
echo $? > "$DIR/console-exit"

journal() { journalctl -D /run/log/journal --no-pager "$@" 2>/dev/null; }
# Waits (with a deadline) until `journal ARGS` prints a line with TEXT.
await() {
    text="$1"; shift; i=0
    until journal "$@" -o cat | grep -q "$text"; do
        i=$((i + 1)); [ $i -lt 400 ] || { echo "the journal never got $text" >&2; return 1; }
        sleep 0.025
    done
}

# Re-executed under systemd, runpm goes on sending each service's lines to the journal.
systemd-cat -t reexec-under-systemd sh -c \
    'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" up -f "$1"' \
    "$RUNPM" "$DIR/reexec/services.toml" &
UP=$!
await "before the re-exec" -t ticker
"$RUNPMCTL" -f "$DIR/reexec/services.toml" reexec > "$DIR/reexec-out" 2>&1
echo $? > "$DIR/reexec-exit"
touch "$DIR/reexec/go"
await "after the re-exec" -t ticker
"$RUNPMCTL" -f "$DIR/reexec/services.toml" shutdown --yes > /dev/null 2>&1
wait $UP

# journald handles the datagrams in its own time: wait until the last expected ones are in.
i=0
until [ "$(journal -t web -o cat | wc -l)" -ge 4 ] \
    && journal -t runpm -o cat | grep -q 'web: started'; do
    i=$((i + 1)); [ $i -lt 400 ] || { echo "the journal never got the lines" >&2; break; }
    sleep 0.025
done
journal -o json > "$DIR/journal.json"
"#;

const WEB: &str = r#"
[services.web]
shell = '''
echo "hello from web"
echo "oops from web" >&2
echo "JOURNAL_STREAM=${JOURNAL_STREAM:-unset}"
echo "last line from web"
'''
restart = "never"
"#;

const TICKER: &str = r#"
[services.ticker]
shell = '''
echo "before the re-exec"
while [ ! -e go ]; do sleep 0.05; done
echo "after the re-exec"
exec sleep 1000
'''
"#;

const OTHER: &str = r#"
[services.other]
shell = 'echo "hello from other"'
restart = "never"
"#;

#[test]
fn each_service_has_its_own_identifier_and_priorities_in_a_real_journal() {
    // Tools only looked up, never run: journald started outside the private namespace
    // would be the machine's journal.
    if !need_root("it mounts tmpfs in a private mount namespace for its journald")
        || !need_tools(
            &[
                "/lib/systemd/systemd-journald",
                "systemd-cat",
                "journalctl",
                "unshare",
            ],
            "systemd util-linux",
        )
    {
        return;
    }
    let project = Project::new(secs(60));
    project.write("journal/services.toml", WEB);
    project.write("console/services.toml", OTHER);
    project.write("reexec/services.toml", TICKER);
    let script = project.write("journal.sh", SCRIPT);
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh"])
        .arg(&script)
        .arg(RUNPM)
        .arg(project.path())
        .arg(RUNPMCTL);
    let mut run = Runpm::start(cmd);
    let status = run.wait_exit(secs(45));
    assert!(status.success(), "{}", run.describe());
    assert_eq!(
        project.read("journal-exit").trim(),
        "0",
        "{}",
        run.describe()
    );
    assert_eq!(
        project.read("console-exit").trim(),
        "0",
        "{}",
        run.describe()
    );

    let entries: Vec<Value> = project
        .read("journal.json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let field = |e: &Value, key: &str| e[key].as_str().unwrap_or_default().to_owned();
    let of = |identifier: &str| -> Vec<(String, String, String)> {
        entries
            .iter()
            .filter(|e| field(e, "SYSLOG_IDENTIFIER") == identifier)
            .map(|e| {
                (
                    field(e, "MESSAGE"),
                    field(e, "PRIORITY"),
                    field(e, "RUNPM_SERVICE"),
                )
            })
            .collect()
    };
    let dump = || {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{} [{}] {}",
                    field(e, "SYSLOG_IDENTIFIER"),
                    field(e, "PRIORITY"),
                    field(e, "MESSAGE")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    let mut web = of("web");
    web.sort();
    let expected = [
        ("JOURNAL_STREAM=unset", "6"),
        ("hello from web", "6"),
        ("last line from web", "6"),
        ("oops from web", "3"),
    ]
    .map(|(m, p)| (m.to_owned(), p.to_owned(), "web".to_owned()));
    assert_eq!(web, expected, "the journal:\n{}", dump());

    // runpm's own info events, under its own name, at priority 6.
    let runpm = of("runpm");
    assert!(
        runpm
            .iter()
            .any(|(m, p, _)| m.starts_with("web: started") && p == "6"),
        "the journal:\n{}",
        dump()
    );
    // Nothing of the services went through runpm's stdout as prefixed console lines.
    assert!(
        of("under-systemd")
            .iter()
            .all(|(m, _, _)| !m.contains("from web")),
        "the journal:\n{}",
        dump()
    );

    // Where JOURNAL_STREAM does not name stderr, nothing goes to the journal.
    assert!(
        entries
            .iter()
            .all(|e| field(e, "SYSLOG_IDENTIFIER") != "other"
                && !field(e, "MESSAGE").contains("from other")),
        "the journal:\n{}",
        dump()
    );
    // After `runpmctl reexec`, the new image still sends ticker's lines to the journal.
    assert_eq!(
        project.read("reexec-exit").trim(),
        "0",
        "{}",
        project.read("reexec-out")
    );
    let ticker: Vec<String> = of("ticker").into_iter().map(|(m, _, _)| m).collect();
    assert_eq!(
        ticker,
        ["before the re-exec", "after the re-exec"],
        "the journal:\n{}",
        dump()
    );

    let console = project.read("console-out");
    assert!(
        console.contains("hello from other"),
        "console:\n{console}\nstderr:\n{}",
        project.read("console-err")
    );
}
