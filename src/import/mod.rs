//! `runpm import`: services described for docker compose, Procfile runners, process-compose,
//! pm2 or systemd, rewritten as runpm unit files.
//!
//! Each format has its own module that reads the file into the common [`model`] (runpm's own
//! vocabulary, plus a list of what did not carry over per service); [`writer`] renders that
//! as TOML, deterministically. The format is told by the file's name, else by its content.
//! YAML and JSON go through [`yaml`], which keeps every value's position, so a bad value is
//! reported as `file:line:column`. Only this command uses any of it: the daemon never
//! touches the YAML parser.

mod compose;
mod error;
pub mod model;
mod output;
mod pm2;
mod process_compose;
mod procfile;
mod systemd;
mod words;
mod writer;
mod yaml;

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};

pub use error::{ImportError, Position};
pub use model::Imported;
pub use output::{Target, deliver};
pub use writer::knows;

/// The formats `runpm import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Compose,
    Procfile,
    ProcessCompose,
    Pm2,
    Systemd,
}

/// One input file, read, with what its importer needs to resolve paths.
pub(crate) struct Source {
    /// The path as the user gave it, for messages and `# from` comments.
    pub file: String,
    /// Its directory, absolute: relative paths in the file are taken from here.
    pub dir: Utf8PathBuf,
    /// Where the output goes: paths under it are written relative to it.
    pub out_dir: Utf8PathBuf,
    pub text: String,
}

impl Source {
    /// A path from the input, absolute or relative to the output's directory, so that the
    /// imported config finds the same file wherever it is written.
    pub fn path(&self, path: &str) -> String {
        let joined = self.dir.join(path);
        let absolute = normalize(&joined);
        match absolute.strip_prefix(&self.out_dir) {
            Ok(rest) if rest.as_str().is_empty() => ".".into(),
            Ok(rest) => rest.to_string(),
            Err(_) => absolute.to_string(),
        }
    }

    /// Whether a path from the input exists on this machine.
    pub fn exists(&self, path: &str) -> bool {
        self.dir.join(path).exists()
    }

    /// The input's directory as a `cwd`, when the output is written elsewhere: the programs
    /// of Procfiles, pm2 and process-compose files run where the file is.
    pub fn home(&self) -> Option<String> {
        let path = self.path(".");
        (path != ".").then_some(path)
    }

    pub fn origin(&self, at: &str) -> String {
        format!("{}: {at}", self.file)
    }
}

fn normalize(path: &Utf8Path) -> Utf8PathBuf {
    let mut out = Utf8PathBuf::new();
    for component in path.components() {
        match component {
            Utf8Component::CurDir => {}
            Utf8Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_str()),
        }
    }
    out
}

/// Imports `paths` (in order) for a config written into `out_dir`.
pub fn import(paths: &[Utf8PathBuf], out_dir: &Utf8Path) -> Result<Imported, ImportError> {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| Utf8PathBuf::try_from(d).ok())
        .unwrap_or_else(|| Utf8PathBuf::from("/"));
    let out_dir = normalize(&cwd.join(out_dir));
    let mut imported = Imported::default();
    let mut units = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let (line, column, message) = crate::config::utf8_error_position(e.as_bytes(), at);
            ImportError::Syntax {
                file: path.to_string(),
                at: Position { line, column },
                message,
            }
        })?;
        let absolute = normalize(&cwd.join(path));
        let source = Source {
            file: path.to_string(),
            dir: absolute
                .parent()
                .map_or_else(|| cwd.clone(), Utf8Path::to_owned),
            out_dir: out_dir.clone(),
            text,
        };
        let before = imported.services.len();
        match detect(path, &source.text)? {
            Format::Compose => compose::import(&source, &mut imported)?,
            Format::Procfile => procfile::import(&source, &mut imported)?,
            Format::ProcessCompose => process_compose::import(&source, &mut imported)?,
            Format::Pm2 => pm2::import(&source, &mut imported)?,
            // Units are read together: their dependencies name each other.
            Format::Systemd => {
                units.push((path.clone(), source));
                continue;
            }
        }
        if imported.services.len() == before {
            return Err(ImportError::Empty {
                file: path.to_string(),
            });
        }
    }
    if !units.is_empty() {
        systemd::import(&units, &mut imported)?;
    }
    for (i, service) in imported.services.iter().enumerate() {
        if let Some(first) = imported.services[..i]
            .iter()
            .find(|s| s.name == service.name)
        {
            return Err(ImportError::Duplicate {
                name: service.name.clone(),
                first: first.origin.clone(),
                second: service.origin.clone(),
            });
        }
    }
    for service in &mut imported.services {
        writer::settle(service, &knows);
    }
    Ok(imported)
}

/// The format of a file: by its name, else by its content.
pub fn detect(path: &Utf8Path, text: &str) -> Result<Format, ImportError> {
    let name = path.file_name().unwrap_or(path.as_str());
    let ext = path.extension().unwrap_or("");
    let yaml_ext = matches!(ext, "yaml" | "yml");
    if matches!(ext, "js" | "cjs" | "mjs") {
        return Err(pm2::javascript(path));
    }
    if name.starts_with("process-compose") && yaml_ext {
        return Ok(Format::ProcessCompose);
    }
    if name.contains("compose") && yaml_ext {
        return Ok(Format::Compose);
    }
    if name == "Procfile" || name.starts_with("Procfile.") {
        return Ok(Format::Procfile);
    }
    if ext == "service" {
        return Ok(Format::Systemd);
    }
    if (name.starts_with("ecosystem") || name.starts_with("pm2")) && (yaml_ext || ext == "json") {
        return Ok(Format::Pm2);
    }
    // By content.
    if text
        .lines()
        .any(|l| matches!(l.trim(), "[Service]" | "[Unit]"))
    {
        return Ok(Format::Systemd);
    }
    if let Ok(doc) = yaml::parse(path.as_str(), text) {
        if doc.get("processes").is_some() {
            return Ok(Format::ProcessCompose);
        }
        if doc.get("services").is_some() {
            return Ok(Format::Compose);
        }
        if doc.get("apps").is_some() || matches!(doc.value, yaml::Value::Seq(_)) {
            return Ok(Format::Pm2);
        }
    }
    if procfile::looks_like(text) {
        return Ok(Format::Procfile);
    }
    Err(ImportError::UnknownFormat {
        file: path.to_string(),
    })
}

/// A service name runpm accepts, from any name: other characters become `-`.
pub(crate) fn service_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 's');
    }
    out.truncate(128);
    out
}

/// Whether a user or group exists here: runpm checks it when loading the config, so an
/// unknown one is reported as not carried over rather than written.
pub(crate) fn account_exists(group: bool, name: &str) -> bool {
    if group {
        matches!(nix::unistd::Group::from_name(name), Ok(Some(_)))
    } else {
        matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_name_then_content() {
        let d = |p: &str, t: &str| detect(Utf8Path::new(p), t).ok();
        assert_eq!(d("compose.yaml", ""), Some(Format::Compose));
        assert_eq!(d("docker-compose.yml", ""), Some(Format::Compose));
        assert_eq!(d("process-compose.yaml", ""), Some(Format::ProcessCompose));
        assert_eq!(d("Procfile.dev", ""), Some(Format::Procfile));
        assert_eq!(d("web.service", ""), Some(Format::Systemd));
        assert_eq!(d("ecosystem.config.json", ""), Some(Format::Pm2));
        assert_eq!(
            d("x.yaml", "processes:\n  a:\n    command: x\n"),
            Some(Format::ProcessCompose)
        );
        assert_eq!(d("x.yaml", "services:\n  a: {}\n"), Some(Format::Compose));
        assert_eq!(d("x.json", "{\"apps\": []}"), Some(Format::Pm2));
        assert_eq!(
            d("x", "[Service]\nExecStart=/bin/true\n"),
            Some(Format::Systemd)
        );
        assert_eq!(
            d("x", "web: python3 app.py\n# c\nworker: ./w\n"),
            Some(Format::Procfile)
        );
        assert!(matches!(
            detect(Utf8Path::new("ecosystem.config.js"), ""),
            Err(ImportError::JavaScript { .. })
        ));
        assert!(matches!(
            detect(Utf8Path::new("notes.txt"), "hello there\n"),
            Err(ImportError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn paths_are_relative_to_the_output_when_under_it() {
        let source = Source {
            file: "a/compose.yaml".into(),
            dir: "/p/a".into(),
            out_dir: "/p".into(),
            text: String::new(),
        };
        assert_eq!(source.path("site"), "a/site");
        assert_eq!(source.path("."), "a");
        assert_eq!(source.path("../.."), "/");
        assert_eq!(source.path("/srv/x"), "/srv/x");
        assert_eq!(service_name("my app"), "my-app");
    }
}
