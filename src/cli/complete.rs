//! Completion scripts for `runpmctl completions SHELL`.
//!
//! clap_complete writes the static part (commands, options, their values) from the clap
//! definitions. Service names are only known to the running daemon, so each script is
//! extended with a small function that asks for them through the hidden command
//! `runpmctl __complete-services` (passing on the `-f`, `--socket` and `--state-dir` given on
//! the command line, so it reaches the same daemon), for the commands that take NAME.
//! Extending the generated scripts, rather than using clap_complete's dynamic completion
//! (still behind an unstable feature), keeps them plain files that a distribution can
//! install, and keeps completion working, minus the names, when no daemon runs.

use super::runpmctl::COMPLETE_SERVICES;

/// The shells runpmctl writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The subcommands whose NAME arguments are service names.
pub const TAKES_SERVICES: &[&str] = &["status", "ps", "start", "stop", "restart", "kill", "logs"];

/// The completion script for `cmd` (runpmctl's command line), with service names.
pub fn script(shell: Shell, cmd: &mut clap::Command) -> String {
    let name = cmd.get_name().to_owned();
    let generated = generated(shell, cmd);
    match shell {
        Shell::Bash => bash(&name, &generated),
        Shell::Zsh => zsh(&name, &generated),
        Shell::Fish => fish(&name, &generated),
    }
}

/// clap_complete's script for `cmd`, as it comes.
fn generated(shell: Shell, cmd: &mut clap::Command) -> String {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(generator, cmd, name, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The generated `_NAME` function stays as it is; a wrapper registered in its place answers
/// NAME arguments with service names and hands everything else to it.
fn bash(name: &str, generated: &str) -> String {
    // The hidden command is listed among the commands; a user should never be offered it.
    let script = generated.replace(&format!(" {COMPLETE_SERVICES} "), " ");
    let script = script.replace(
        &format!("complete -F _{name} "),
        &format!("complete -F _{name}_with_services "),
    );
    let commands = TAKES_SERVICES.join("|");
    let hook = format!(
        r#"
# Service names from the running daemon, for the commands that take NAME. Returns 1 (and
# leaves COMPREPLY alone) when the word is no service name or no daemon answers.
_{name}_services() {{
    local i word sub="" cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local -a args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ -n "$sub" ]]; then
            continue
        fi
        case "$word" in
            -f|--file|--socket|--state-dir)
                args+=("$word" "${{COMP_WORDS[i+1]}}")
                ((i++))
                ;;
            --timeout)
                ((i++))
                ;;
            -*)
                ;;
            *)
                sub="$word"
                ;;
        esac
    done
    case "$sub" in
        {commands}) ;;
        *) return 1 ;;
    esac
    case "$prev" in
        --socket|--state-dir|--timeout|-n|--lines) return 1 ;;
    esac
    if [[ "$cur" == -* ]]; then
        return 1
    fi
    local names
    names="$("${{COMP_WORDS[0]}}" "${{args[@]}}" {COMPLETE_SERVICES} 2>/dev/null)" || return 1
    if [[ -z "$names" ]]; then
        return 1
    fi
    COMPREPLY=($(compgen -W "$names" -- "$cur"))
    return 0
}}

_{name}_with_services() {{
    _{name}_services || _{name} "$@"
}}
"#
    );
    insert_before_last(&script, "\nif [[ \"${BASH_VERSINFO[0]}\"", &hook)
}

/// NAME arguments complete with `_NAME_services` instead of `_default`.
fn zsh(name: &str, generated: &str) -> String {
    let script: String = generated
        .lines()
        .filter(|line| !line.starts_with(&format!("'{COMPLETE_SERVICES}:")))
        .map(|line| {
            if line.starts_with("'*::names -- ") {
                line.replace(":_default' \\", &format!(":_{name}_services' \\"))
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    let hook = format!(
        r#"
# Service names from the running daemon. The options before the command that locate the
# daemon are taken from the whole command line: `words` only holds the command's own.
(( $+functions[_{name}_services] )) ||
_{name}_services() {{
    local -a cmdline args services
    local i
    cmdline=(${{(z)BUFFER}})
    for (( i = 2; i <= $#cmdline; i++ )); do
        case $cmdline[i] in
            (-f|--file|--socket|--state-dir)
                args+=($cmdline[i] ${{(Q)cmdline[i+1]}})
                (( i++ ))
                ;;
            (--timeout)
                (( i++ ))
                ;;
            (-*)
                ;;
            (*)
                break
                ;;
        esac
    done
    services=(${{(f)"$(${{(Q)cmdline[1]}} $args {COMPLETE_SERVICES} 2>/dev/null)"}})
    _wanted services expl service compadd -a services
}}
"#
    );
    insert_before_last(&script, "\nif [ \"$funcstack[1]\"", &hook)
}

/// One more rule: the commands that take NAME complete service names, and no files.
fn fish(name: &str, generated: &str) -> String {
    let mut script: String = generated
        .lines()
        .filter(|line| !line.contains(&format!("-a \"{COMPLETE_SERVICES}\"")))
        .map(|line| line.to_owned() + "\n")
        .collect();
    let commands = TAKES_SERVICES.join(" ");
    script.push_str(&format!(
        r#"
# Service names from the running daemon, for the commands that take NAME. The options
# before the command that locate the daemon are passed on.
function __fish_{name}_services
    set -l cmd (commandline -opc)
    set -l args
    set -l i 2
    while test $i -le (count $cmd)
        switch $cmd[$i]
            case -f --file --socket --state-dir
                set -a args $cmd[$i]
                set i (math $i + 1)
                if test $i -le (count $cmd)
                    set -a args $cmd[$i]
                end
            case --timeout
                set i (math $i + 1)
            case '-*'
            case '*'
                break
        end
        set i (math $i + 1)
    end
    $cmd[1] $args {COMPLETE_SERVICES} 2>/dev/null
end

complete -c {name} -n "__fish_{name}_using_subcommand {commands}" -f -a "(__fish_{name}_services)" -d 'service'
"#
    ));
    script
}

/// `text` with `insert` before the last occurrence of `anchor`, or at the end when there is
/// none (the script then still works: shells do not mind the order of definitions).
fn insert_before_last(text: &str, anchor: &str, insert: &str) -> String {
    match text.rfind(anchor) {
        Some(at) => format!("{}{insert}{}", &text[..at], &text[at..]),
        None => format!("{text}{insert}"),
    }
}
