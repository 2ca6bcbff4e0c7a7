//! `runpm up`'s foreground output: every service's lines, interleaved, each prefixed with
//! the service's name padded to the widest name, in a colour of its own on a terminal.

use std::collections::HashMap;
use std::io::Write;

use super::capture::{LineSink, Stream};

const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

pub struct Console {
    width: usize,
    colour: HashMap<String, &'static str>,
    use_colour: bool,
}

impl Console {
    /// `names` in a stable order, so each service keeps its colour from run to run.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, use_colour: bool) -> Console {
        let names: Vec<&str> = names.into_iter().collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let colour = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), COLOURS[i % COLOURS.len()]))
            .collect();
        Console {
            width,
            colour,
            use_colour,
        }
    }

    pub fn format(&self, service: &str, line: &str) -> String {
        let pad = self.width.saturating_sub(service.chars().count());
        match self.colour.get(service).filter(|_| self.use_colour) {
            Some(c) => format!("\x1b[{c}m{service}{:pad$} |\x1b[0m {line}\n", ""),
            None => format!("{service}{:pad$} | {line}\n", ""),
        }
    }
}

impl LineSink for Console {
    fn line(&self, service: &str, _stream: Stream, line: &str) {
        // One write per line keeps lines whole when several services print at once.
        let _ = std::io::stdout()
            .lock()
            .write_all(self.format(service, line).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_widest_name_and_colours_only_when_asked() {
        let plain = Console::new(["web", "worker"], false);
        assert_eq!(plain.format("web", "hello"), "web    | hello\n");
        assert_eq!(plain.format("worker", "hi"), "worker | hi\n");
        let coloured = Console::new(["web", "worker"], true);
        assert_eq!(coloured.format("web", "x"), "\x1b[36mweb    |\x1b[0m x\n");
    }
}
