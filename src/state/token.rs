//! The daemon's secret: proof that a tagged process was started by a runpm of this state
//! directory, not by someone who wrote `RUNPM_INSTANCE=…` into their own environment.
//!
//! The tag (`RUNPM_INSTANCE`, `RUNPM_SERVICE`) lets a new daemon find processes that a
//! crashed one started but did not record. Anyone can set those variables, so on its own the
//! tag would let a stranger have a root daemon signal any process. Every process runpm
//! starts therefore also carries `RUNPM_TOKEN`: 32 random bytes (hex) kept in
//! `<state dir>/token`, mode 0600, in the 0700 state directory. Only runpm's user (and
//! root) can read that file, and a process's environment (`/proc/PID/environ`) can only be
//! read by its own user and root, so a stranger learns the token only from a service
//! running under its own uid, and can then only have its own processes signalled.
//!
//! The token lives in a file of its own rather than in `state.json`: it is written once,
//! before the first service starts, and never rewritten, so a daemon that crashed before
//! its first state write, or whose state file was corrupt and moved aside, is still
//! recognised by its successor.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};

/// The environment variable that carries the token.
pub const TOKEN_VAR: &str = "RUNPM_TOKEN";

const TOKEN_BYTES: usize = 32;

/// A token as loaded; its value is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the daemon secret `{path}`")]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the daemon secret `{path}`")]
    Create {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Untrusted(#[from] crate::owner::Untrusted),
    #[error(
        "the daemon secret `{path}` {problem}; remove it (runpm makes a new one, and then no \
         longer recognises processes that an earlier runpm started)"
    )]
    Unusable { path: Utf8PathBuf, problem: String },
}

impl Token {
    /// The token of the state directory whose token file is `path`: read, or made on the
    /// first start. Called under the instance lock, so no other runpm writes it meanwhile.
    pub fn load_or_create(path: &Utf8Path) -> Result<Token, TokenError> {
        match read(path) {
            Ok(token) => Ok(token),
            Err(TokenError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                create(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Made from a string (for tests that forge or reuse one).
    pub fn from_hex(hex: &str) -> Option<Token> {
        let valid = hex.len() == TOKEN_BYTES * 2 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| Token(hex.to_ascii_lowercase()))
    }

    /// The value a process carries in `RUNPM_TOKEN`.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// Whether `value` is this token. Every byte is compared, whatever the first
    /// difference, so the time taken says nothing about how much of a guess was right.
    pub fn verifies(&self, value: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        if value.len() != ours.len() {
            return false;
        }
        ours.iter()
            .zip(value)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn read(path: &Utf8Path) -> Result<Token, TokenError> {
    let read_error = |source| TokenError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    crate::owner::check(&meta, path, crate::owner::Trust::Daemon)?;
    let unusable = |problem: &str| TokenError::Unusable {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    if !meta.is_file() {
        return Err(unusable("is not a regular file"));
    }
    // Readable by others, it is no secret any more.
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(unusable("is readable by other users"));
    }
    let mut text = String::new();
    (&mut file)
        .take(1024)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    Token::from_hex(text.trim()).ok_or_else(|| unusable("is damaged"))
}

/// Writes a fresh token to a temporary file, syncs it and renames it into place, so a
/// crash leaves either no token or a whole one.
fn create(path: &Utf8Path) -> Result<Token, TokenError> {
    let create_error = |source| TokenError::Create {
        path: path.to_owned(),
        source,
    };
    let mut bytes = [0u8; TOKEN_BYTES];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(create_error)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let temp = Utf8PathBuf::from(format!("{path}.tmp.{}", std::process::id()));
    // A leftover of a crashed start with the same pid (PID 1 in a container) goes first.
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(create_error(e)),
    }
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(format!("{hex}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(create_error(e));
    }
    Ok(Token(hex))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::testing::tempdir;

    #[test]
    fn made_once_then_read_back() {
        let (_guard, root) = tempdir();
        let path = root.join("token");
        let first = Token::load_or_create(&path).unwrap();
        assert_eq!(first.value().len(), 64);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(Token::load_or_create(&path).unwrap(), first);
        // Another state directory gets another token.
        let other = Token::load_or_create(&root.join("other")).unwrap();
        assert_ne!(other, first);
        assert_eq!(format!("{first:?}"), "Token(…)");
    }

    #[test]
    fn verification_wants_the_whole_token() {
        let token = Token::from_hex(&"ab".repeat(32)).unwrap();
        assert!(token.verifies("ab".repeat(32).as_bytes()));
        assert!(!token.verifies("ab".repeat(31).as_bytes()));
        assert!(!token.verifies(format!("{}ac", "ab".repeat(31)).as_bytes()));
        assert!(!token.verifies(b""));
        assert_eq!(Token::from_hex("xyz"), None);
    }

    #[test]
    fn a_token_others_can_read_a_symlink_or_garbage_is_refused() {
        let (_guard, root) = tempdir();
        let path = root.join("token");
        let token = Token::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Token::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("readable by other users"), "{err}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(root.join("elsewhere"), token.value()).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), &path).unwrap();
        assert!(Token::load_or_create(&path).is_err());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Token::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
