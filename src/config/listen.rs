//! `listen`: the sockets runpm owns for a service (socket activation, issue 14).
//!
//! An address is written `tcp:HOST:PORT`, `udp:HOST:PORT` (an IPv6 host in brackets,
//! `tcp:[::1]:8000`) or `unix:PATH`, alone or in a table that adds a name for
//! `LISTEN_FDNAMES`, a listen backlog and a socket file mode. Parsing here is pure; binding
//! happens in `activation`, when the service first starts.

use std::fmt;
use std::net::SocketAddr;

use camino::{Utf8Path, Utf8PathBuf};
use serde::de::Error as _;
use serde::{Deserialize, Serialize};

/// systemd's default `Backlog=` (`SOMAXCONN`): the kernel caps it at `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: u32 = 4096;
/// systemd's default `SocketMode=`.
pub const DEFAULT_MODE: u32 = 0o666;

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    /// Absolute once validated (a relative path is taken from the config's directory).
    Unix(Utf8PathBuf),
}

impl ListenAddress {
    /// Parses `tcp:…`, `udp:…` or `unix:…`; the message reads after "invalid address".
    pub fn parse(text: &str) -> Result<ListenAddress, String> {
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            format!("invalid listen address `{text}`: expected `tcp:HOST:PORT`, `udp:HOST:PORT` or `unix:PATH`")
        })?;
        let inet = |rest: &str| {
            rest.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "invalid listen address `{text}`: expected a numeric IP and port, such as \
                     `{kind}:127.0.0.1:8000` or `{kind}:[::1]:8000`"
                )
            })
        };
        match kind {
            "tcp" => inet(rest).map(ListenAddress::Tcp),
            "udp" => inet(rest).map(ListenAddress::Udp),
            "unix" if rest.is_empty() => Err(format!("invalid listen address `{text}`: no path")),
            "unix" if rest.contains('\0') => {
                Err(format!("invalid listen address `{text}`: NUL in the path"))
            }
            "unix" => Ok(ListenAddress::Unix(Utf8PathBuf::from(rest))),
            other => Err(format!(
                "invalid listen address `{text}`: unknown kind `{other}`, expected `tcp`, `udp` or `unix`"
            )),
        }
    }

    /// A unix path made absolute against `base`.
    pub fn resolved(self, base: &Utf8Path) -> ListenAddress {
        match self {
            ListenAddress::Unix(path) if path.is_relative() => ListenAddress::Unix(base.join(path)),
            other => other,
        }
    }

    /// A stream socket (`ListenStream=` in systemd), as opposed to a datagram one.
    pub fn is_stream(&self) -> bool {
        !matches!(self, ListenAddress::Udp(_))
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(a) => write!(f, "tcp:{a}"),
            ListenAddress::Udp(a) => write!(f, "udp:{a}"),
            ListenAddress::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

impl Serialize for ListenAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ListenAddress::parse(&text).map_err(D::Error::custom)
    }
}

/// One socket of a service, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Listen {
    pub address: ListenAddress,
    /// Its entry in `LISTEN_FDNAMES` (default: the service's name, as systemd's
    /// `FileDescriptorName=` defaults to the socket unit's name).
    pub name: String,
    pub backlog: u32,
    /// The socket file's mode (unix sockets only).
    pub mode: u32,
    /// The address as written when it has `{replica}` in it (unix paths made absolute):
    /// each replica's own address is this with its index substituted (`address` holds the
    /// first replica's until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// `listen = [...]` as written: a string or a table, checked in its own deserializer so an
/// error points at the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawListen {
    pub address: ListenAddress,
    pub template: Option<String>,
    pub name: Option<String>,
    pub backlog: Option<u32>,
    pub mode: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListenTable {
    address: String,
    name: Option<String>,
    backlog: Option<u32>,
    mode: Option<String>,
}

impl<'de> Deserialize<'de> for RawListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawListen;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an address such as \"tcp:127.0.0.1:8000\", or a table \
                     { address = \"…\", name = \"…\", backlog = N, mode = \"0660\" }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawListen, E> {
                let (address, template) = templated(v).map_err(E::custom)?;
                Ok(RawListen {
                    address,
                    template,
                    name: None,
                    backlog: None,
                    mode: None,
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawListen, A::Error> {
                let table =
                    RawListenTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let (address, template) = templated(&table.address).map_err(A::Error::custom)?;
                let mode = match &table.mode {
                    None => None,
                    Some(text) => Some(parse_mode(text).map_err(A::Error::custom)?),
                };
                if let Some(name) = &table.name {
                    check_fd_name(name).map_err(A::Error::custom)?;
                }
                if table.backlog == Some(0) {
                    return Err(A::Error::custom("`backlog` must be at least 1"));
                }
                Ok(RawListen {
                    address,
                    template,
                    name: table.name,
                    backlog: table.backlog,
                    mode,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// An address that may name `{replica}` (`tcp:127.0.0.1:80{replica}`): checked as the first
/// replica's, and kept as written for the expansion of `replicas`.
fn templated(text: &str) -> Result<(ListenAddress, Option<String>), String> {
    if text.contains(REPLICA) {
        let first = ListenAddress::parse(&text.replace(REPLICA, "0"))?;
        Ok((first, Some(text.to_owned())))
    } else {
        Ok((ListenAddress::parse(text)?, None))
    }
}

const REPLICA: &str = "{replica}";

impl Listen {
    /// This socket for one replica: `template` with `{replica}` replaced by `f`.
    pub fn for_replica(&mut self, f: &dyn Fn(&str) -> String) {
        if let Some(template) = &self.template
            && let Ok(address) = ListenAddress::parse(&f(template))
        {
            self.address = address;
        }
    }
}

/// An octal file mode such as `"0660"`.
fn parse_mode(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "invalid `mode` `{text}`: expected an octal file mode such as \"0660\""
        )),
    }
}

/// A name for `LISTEN_FDNAMES` (systemd's rules: printable ASCII, no `:`, at most 255).
pub fn check_fd_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid socket name `{name}`: use 1 to 255 printable ASCII characters without `:` or spaces"
        ))
    }
}

impl RawListen {
    pub(super) fn resolve(&self, service: &str, base: &Utf8Path) -> Listen {
        Listen {
            address: self.address.clone().resolved(base),
            template: self
                .template
                .as_ref()
                .map(|t| match t.strip_prefix("unix:") {
                    Some(path) if Utf8Path::new(path).is_relative() => {
                        format!("unix:{}", base.join(path))
                    }
                    _ => t.clone(),
                }),
            name: self.name.clone().unwrap_or_else(|| service.to_owned()),
            backlog: self.backlog.unwrap_or(DEFAULT_BACKLOG),
            mode: self.mode.unwrap_or(DEFAULT_MODE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de(toml_value: &str) -> Result<RawListen, String> {
        let de = toml::de::ValueDeserializer::parse(toml_value).map_err(|e| e.to_string())?;
        RawListen::deserialize(de).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn parses_every_kind_of_address() {
        assert_eq!(
            ListenAddress::parse("tcp:127.0.0.1:8000").unwrap(),
            ListenAddress::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(
            ListenAddress::parse("tcp:[::1]:8000").unwrap().to_string(),
            "tcp:[::1]:8000"
        );
        assert!(
            !ListenAddress::parse("udp:127.0.0.1:53")
                .unwrap()
                .is_stream()
        );
        assert_eq!(
            ListenAddress::parse("unix:run/app.sock")
                .unwrap()
                .resolved(Utf8Path::new("/srv")),
            ListenAddress::Unix("/srv/run/app.sock".into())
        );
        assert_eq!(
            ListenAddress::parse("unix:/abs.sock")
                .unwrap()
                .resolved(Utf8Path::new("/srv")),
            ListenAddress::Unix("/abs.sock".into())
        );
    }

    #[test]
    fn bad_addresses_say_what_is_expected() {
        assert!(
            ListenAddress::parse("127.0.0.1:80")
                .unwrap_err()
                .contains("unknown kind `127.0.0.1`")
        );
        assert!(
            ListenAddress::parse("tcp:localhost:80")
                .unwrap_err()
                .contains("numeric IP and port")
        );
        assert!(
            ListenAddress::parse("sctp")
                .unwrap_err()
                .contains("expected `tcp:HOST:PORT`")
        );
        assert!(
            ListenAddress::parse("unix:")
                .unwrap_err()
                .contains("no path")
        );
    }

    #[test]
    fn string_and_table_forms() {
        let plain = de(r#""tcp:127.0.0.1:8000""#).unwrap();
        assert_eq!(plain.name, None);
        let listen = plain.resolve("web", Utf8Path::new("/"));
        assert_eq!(
            (listen.name.as_str(), listen.backlog, listen.mode),
            ("web", 4096, 0o666)
        );

        let table =
            de(r#"{ address = "unix:a.sock", name = "http", backlog = 16, mode = "0660" }"#)
                .unwrap()
                .resolve("web", Utf8Path::new("/srv"));
        assert_eq!(table.address, ListenAddress::Unix("/srv/a.sock".into()));
        assert_eq!(
            (table.name.as_str(), table.backlog, table.mode),
            ("http", 16, 0o660)
        );

        assert!(
            de(r#"{ address = "tcp:1.2.3.4:5", mode = "rw" }"#)
                .unwrap_err()
                .contains("octal")
        );
        assert!(
            de(r#"{ address = "tcp:1.2.3.4:5", name = "a:b" }"#)
                .unwrap_err()
                .contains("without `:`")
        );
        assert!(
            de(r#"{ address = "tcp:1.2.3.4:5", port = 1 }"#)
                .unwrap_err()
                .contains("unknown field `port`")
        );
        assert!(de("5").unwrap_err().contains("an address such as"));
    }
}
