//! What the benches share: compiling their C helpers, the workloads' clock, a clean command
//! for runpm's binaries, and the median.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Compiles `source` into `dir/name`, static when the C library allows it (then `true`).
pub fn compile(dir: &Path, name: &str, source: &str) -> (PathBuf, bool) {
    let src = dir.join(format!("{name}.c"));
    let out = dir.join(name);
    std::fs::write(&src, source).expect("write a helper's source");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    // Static first: the workload should cost the same exec whoever starts it, without the
    // dynamic loader's work dominating it. Glibc's static libc.a is not everywhere, though.
    for (flags, is_static) in [(&["-O2", "-static"][..], true), (&["-O2"][..], false)] {
        let status = Command::new(&cc)
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| {
                panic!("run `{cc}` to build {name}.c (is a C compiler installed?): {e}")
            });
        if status.success() {
            return (out, is_static);
        }
    }
    panic!("`{cc} -O2 -o {} {}` failed", out.display(), src.display());
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the workloads stamp with.
pub fn now_ns() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// `program` in `dir`, stdin from /dev/null, none of runpm's variables of whoever runs the
/// bench leaking in.
pub fn runpm_command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).stdin(Stdio::null());
    for var in [
        "RUNPM_SOCKET",
        "RUNPM_STATE_DIR",
        "RUNPM_FILE",
        "RUNPM_LOG",
        "RUNPM_LOG_FORMAT",
        "NOTIFY_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}
