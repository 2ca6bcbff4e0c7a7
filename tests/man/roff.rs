//! Writing roff: clap's parts through clap_mangen, ours through its `roff` crate, which
//! escapes what it is given.

use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

/// What `Roff::to_writer` puts before every piece it writes; kept once, at the top.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// A man page being assembled.
#[derive(Default)]
pub struct Page {
    out: String,
}

impl Page {
    /// Appends what `render` writes (a clap_mangen section, or a `Roff`).
    pub fn render(&mut self, render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) {
        let mut buf = Vec::new();
        render(&mut buf).expect("rendering into memory cannot fail");
        let text = String::from_utf8(buf).expect("roff is UTF-8");
        self.out.push_str(&text.replace(PREAMBLE, ""));
    }

    pub fn roff(&mut self, roff: &Roff) {
        self.render(|w| roff.to_writer(w));
    }

    /// The page, with every character beyond ASCII as groff's `\[uXXXX]`: groff reads its
    /// input as Latin-1 unless told otherwise, and warns about UTF-8 bytes.
    pub fn finish(self) -> String {
        let mut page = String::from(PREAMBLE);
        for c in self.out.chars() {
            if c.is_ascii() {
                page.push(c);
            } else {
                page.push_str(&format!("\\[u{:04X}]", u32::from(c)));
            }
        }
        page
    }
}

/// A sentence with `code` spans in bold, the rest in roman.
pub fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

/// Sections written by hand, in a small vocabulary.
pub enum Block<'a> {
    Section(&'a str),
    Paragraph(&'a str),
    /// A tagged paragraph: the tag in bold (with `italic` text after a space, if any), then
    /// the body.
    Item(&'a str, &'a str),
    /// Lines shown as they are (an example).
    Verbatim(&'a str),
}

pub fn blocks(roff: &mut Roff, blocks: &[Block<'_>]) {
    for block in blocks {
        match block {
            Block::Section(title) => {
                roff.control("SH", [*title]);
            }
            Block::Paragraph(text) => {
                roff.control("PP", []).text(inline(text));
            }
            Block::Item(tag, body) => {
                roff.control("TP", []);
                roff.text(tag_inline(tag));
                roff.text(inline(body));
            }
            Block::Verbatim(text) => {
                roff.control("PP", [])
                    .control("RS", ["4"])
                    .control("nf", []);
                for line in text.lines() {
                    roff.text([roman(line)]);
                }
                roff.control("fi", []).control("RE", []);
            }
        }
    }
}

fn tag_inline(tag: &str) -> Vec<Inline> {
    match tag.split_once(' ') {
        Some((word, rest)) => vec![bold(word), roman(" "), italic(rest)],
        None => vec![bold(tag)],
    }
}

/// The usual parts of a command's page from clap: title, NAME, SYNOPSIS, DESCRIPTION,
/// OPTIONS (the top-level ones), then COMMANDS: each visible subcommand with its usage,
/// what it does, and its own arguments (the global options are described once, above).
pub fn command_page(page: &mut Page, cmd: clap::Command, manual: &str) {
    let mut cmd = cmd;
    cmd.build();
    let man = Man::new(cmd.clone()).manual(manual);
    page.render(|w| man.render_title(w));
    page.render(|w| man.render_name_section(w));
    page.render(|w| man.render_synopsis_section(w));
    page.render(|w| man.render_description_section(w));
    page.render(|w| man.render_options_section(w));

    // Described once for the whole command, not again under each subcommand.
    let mut shared: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect();
    shared.push(clap::Id::from("help"));
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    page.roff(&roff);
    subcommands(page, &cmd, "", &shared);
}

/// A subsection per subcommand (`export`, then `export systemd`, …), with its usage, what it
/// does and its own options: every command a user can type is in the page.
fn subcommands(page: &mut Page, cmd: &clap::Command, prefix: &str, shared: &[clap::Id]) {
    for sub in visible_subcommands(cmd) {
        let mut sub = sub.clone();
        for id in shared {
            if sub.get_arguments().any(|a| a.get_id() == id) {
                sub = sub.mut_arg(id, |a| a.hide(true));
            }
        }
        let title = format!("{prefix}{}", sub.get_name());
        let usage = sub
            .render_usage()
            .to_string()
            .trim_start_matches("Usage: ")
            .to_owned();
        let mut roff = Roff::new();
        roff.control("SS", [title.as_str()]);
        roff.control("PP", []).text([bold(usage)]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            roff.control("PP", []).text(inline(&about.to_string()));
        }
        page.roff(&roff);
        let man = Man::new(sub.clone());
        let mut options = Vec::new();
        man.render_options_section(&mut options)
            .expect("rendering into memory cannot fail");
        let options = String::from_utf8(options).expect("roff is UTF-8");
        // The subcommand's arguments belong to its own subsection, not a new section.
        let options = options.replace(".SH OPTIONS\n", "");
        page.render(|w| std::io::Write::write_all(w, options.as_bytes()));
        subcommands(page, &sub, &format!("{title} "), shared);
    }
}

/// The subcommands a user sees in `--help` (not the hidden ones, not `help`).
pub fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
}
