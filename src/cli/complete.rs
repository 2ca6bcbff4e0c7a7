//! Completion scripts for `runpmctl completions SHELL` and `runpm completions SHELL`.
//!
//! clap_complete writes the static part (commands, options, their values) from the clap
//! definitions. Service names are known only to the running daemon (runpmctl) or to the
//! config (runpm), so each script is extended with a small function that asks for them
//! through the hidden command `__complete-services` of the same binary, passing on the
//! options that locate the project (see [`Names`]), for the commands that take names.
//! Extending the generated scripts, rather than using clap_complete's dynamic completion
//! (still behind an unstable feature), keeps them plain files that a distribution can
//! install, and keeps completion working, minus the names, when none can be found.

/// The hidden command, in both binaries, that prints the project's service names.
pub const COMPLETE_SERVICES: &str = "__complete-services";

/// The shells runpmctl writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Where a binary's command line takes service names, and how the project is found.
pub struct Names {
    /// The subcommands whose positional arguments are service names.
    pub commands: &'static [&'static str],
    /// The options whose value locates the project, passed on to `__complete-services`.
    pub locate: &'static [&'static str],
    /// Other options that take a value (skipped, and never completed with names).
    pub skip: &'static [&'static str],
    /// Whether the locating options are read after the subcommand too (`runpm up -f FILE`)
    /// and so are options of `__complete-services` itself; for runpmctl they come before
    /// the subcommand (after it, `logs -f` means follow), as global options.
    pub after_command: bool,
}

/// runpmctl: names from the running daemon.
pub const RUNPMCTL: Names = Names {
    commands: &[
        "status", "ps", "start", "stop", "restart", "kill", "logs", "events", "scale",
    ],
    locate: &["-f", "--file", "--socket", "--state-dir"],
    skip: &["--timeout", "-n", "--lines", "-s", "--signal", "--since"],
    after_command: false,
};

/// runpm: names from the config (`runpm up web`).
pub const RUNPM: Names = Names {
    commands: &["up"],
    locate: &["-f", "--file"],
    skip: &["--state-dir", "--log-format", "--profile"],
    after_command: true,
};

/// The completion script for `cmd` (runpmctl's command line), with service names.
pub fn script(shell: Shell, cmd: &mut clap::Command) -> String {
    script_with(shell, cmd, &RUNPMCTL)
}

/// The completion script for `cmd`, completing service names as `names` says.
pub fn script_with(shell: Shell, cmd: &mut clap::Command, names: &Names) -> String {
    let name = cmd.get_name().to_owned();
    let generated = generated(shell, cmd);
    match shell {
        Shell::Bash => bash(&name, &generated, names),
        Shell::Zsh => zsh(&name, &generated, names),
        Shell::Fish => fish(&name, &generated, names),
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
fn bash(name: &str, generated: &str, names: &Names) -> String {
    // The hidden command is listed among the commands; a user should never be offered it.
    let script = generated.replace(&format!(" {COMPLETE_SERVICES} "), " ");
    let script = script.replace(
        &format!("complete -F _{name} "),
        &format!("complete -F _{name}_with_services "),
    );
    let commands = names.commands.join("|");
    let locate = names.locate.join("|");
    let skip = names.skip.join("|");
    let valued = [names.locate, names.skip].concat().join("|");
    // runpmctl reads the locating options before the command only; runpm after it too.
    let after = if names.after_command {
        ""
    } else {
        "\n        if [[ -n \"$sub\" ]]; then\n            continue\n        fi"
    };
    let call = if names.after_command {
        format!("\"${{COMP_WORDS[0]}}\" {COMPLETE_SERVICES} \"${{args[@]}}\"")
    } else {
        format!("\"${{COMP_WORDS[0]}}\" \"${{args[@]}}\" {COMPLETE_SERVICES}")
    };
    let hook = format!(
        r#"
# Service names, for the commands that take them. Returns 1 (and leaves COMPREPLY alone)
# when the word is no service name or none can be found.
_{name}_services() {{
    local i word sub="" cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local -a args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"{after}
        case "$word" in
            {locate})
                args+=("$word" "${{COMP_WORDS[i+1]}}")
                ((i++))
                ;;
            {skip})
                ((i++))
                ;;
            -*)
                ;;
            *)
                [[ -z "$sub" ]] && sub="$word"
                ;;
        esac
    done
    case "$sub" in
        {commands}) ;;
        *) return 1 ;;
    esac
    case "$prev" in
        {valued}) return 1 ;;
    esac
    if [[ "$cur" == -* ]]; then
        return 1
    fi
    local names
    names="$({call} 2>/dev/null)" || return 1
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
fn zsh(name: &str, generated: &str, names: &Names) -> String {
    let script: String = generated
        .lines()
        .filter(|line| !line.starts_with(&format!("'{COMPLETE_SERVICES}:")))
        .map(|line| {
            let positional =
                line.starts_with("'*::names -- ") || line.starts_with("'*::services -- ");
            if positional {
                line.replace(":_default' \\", &format!(":_{name}_services' \\"))
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    let locate = names.locate.join("|");
    let skip = names.skip.join("|");
    // runpmctl: the options before the command; runpm: anywhere on the line.
    let other = if names.after_command { "" } else { "break" };
    let call = if names.after_command {
        format!("${{(Q)cmdline[1]}} {COMPLETE_SERVICES} $args")
    } else {
        format!("${{(Q)cmdline[1]}} $args {COMPLETE_SERVICES}")
    };
    let hook = format!(
        r#"
# Service names. The options that locate the project are taken from the whole command
# line: `words` only holds the command's own.
(( $+functions[_{name}_services] )) ||
_{name}_services() {{
    local -a cmdline args services
    local i
    cmdline=(${{(z)BUFFER}})
    for (( i = 2; i <= $#cmdline; i++ )); do
        case $cmdline[i] in
            ({locate})
                args+=($cmdline[i] ${{(Q)cmdline[i+1]}})
                (( i++ ))
                ;;
            ({skip})
                (( i++ ))
                ;;
            (-*)
                ;;
            (*)
                {other}
                ;;
        esac
    done
    services=(${{(f)"$({call} 2>/dev/null)"}})
    _wanted services expl service compadd -a services
}}
"#
    );
    insert_before_last(&script, "\nif [ \"$funcstack[1]\"", &hook)
}

/// One more rule: the commands that take NAME complete service names, and no files.
fn fish(name: &str, generated: &str, names: &Names) -> String {
    let mut script: String = generated
        .lines()
        .filter(|line| !line.contains(&format!("-a \"{COMPLETE_SERVICES}\"")))
        .map(|line| line.to_owned() + "\n")
        .collect();
    let commands = names.commands.join(" ");
    let locate = names.locate.join(" ");
    let skip = names.skip.join(" ");
    let other = if names.after_command { "" } else { "break" };
    let call = if names.after_command {
        format!("$cmd[1] {COMPLETE_SERVICES} $args")
    } else {
        format!("$cmd[1] $args {COMPLETE_SERVICES}")
    };
    script.push_str(&format!(
        r#"
# Service names, for the commands that take them. The options that locate the project are
# passed on.
function __fish_{name}_services
    set -l cmd (commandline -opc)
    set -l args
    set -l i 2
    while test $i -le (count $cmd)
        switch $cmd[$i]
            case {locate}
                set -a args $cmd[$i]
                set i (math $i + 1)
                if test $i -le (count $cmd)
                    set -a args $cmd[$i]
                end
            case {skip}
                set i (math $i + 1)
            case '-*'
            case '*'
                {other}
        end
        set i (math $i + 1)
    end
    {call} 2>/dev/null
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
