//! The URL of an HTTP check, taken apart: `http://host[:port][/path]`.
//!
//! Checks speak plain HTTP/1.1 to a service on the same host or network; runpm carries no
//! TLS stack (it would more than double the daemon's memory), so `https` is refused at load
//! time with what to do instead.

/// Where an HTTP check connects and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// As written in the URL (an IPv6 address keeps its brackets): the `Host` header.
    pub host: String,
    pub port: u16,
    /// From the first `/` on, query included; `/` when the URL has none.
    pub path: String,
}

impl HttpUrl {
    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `Host` header's value: the port only when it is not the default.
    pub fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            self.address()
        }
    }
}

/// Parses `url`, explaining what is wrong with it.
///
/// ```
/// use runpm::config::parse_http_url;
/// let url = parse_http_url("http://127.0.0.1:8000/healthz?full=1").unwrap();
/// assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("127.0.0.1", 8000, "/healthz?full=1"));
/// assert!(parse_http_url("https://example.com/").unwrap_err().contains("TLS"));
/// ```
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(format!(
            "`{url}`: https is not supported (runpm has no TLS client): check a plain http \
             endpoint on loopback, or use `exec = [\"curl\", \"-fsS\", \"{url}\"]`"
        ));
    }
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err(format!("`{url}`: credentials in the URL are not supported"));
    }
    // `[::1]:8000`: the port is after the closing bracket.
    let port_at = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].find(':').map(|i| bracket + i),
        None => authority.rfind(':'),
    };
    let (host, port) = match port_at {
        Some(colon) => {
            let port = authority[colon + 1..]
                .parse::<u16>()
                .map_err(|_| format!("`{url}`: invalid port `{}`", &authority[colon + 1..]))?;
            (&authority[..colon], port)
        }
        None => (authority, 80),
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) || path.contains(' ') {
        return Err(format!("`{url}` has no valid host or contains spaces"));
    }
    Ok(HttpUrl {
        host: host.to_owned(),
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let url = parse_http_url("http://localhost/").unwrap();
        assert_eq!(url.address(), "localhost:80");
        assert_eq!(url.host_header(), "localhost");
        let url = parse_http_url("HTTP://[::1]:9000").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("[::1]", 9000, "/")
        );
        assert_eq!(url.host_header(), "[::1]:9000");
        assert_eq!(parse_http_url("http://h:1?x=1").unwrap().path, "/?x=1");
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(
            parse_http_url("ftp://h/")
                .unwrap_err()
                .contains("not an http://")
        );
        assert!(
            parse_http_url("http://h:http/")
                .unwrap_err()
                .contains("invalid port")
        );
        assert!(
            parse_http_url("http:///x")
                .unwrap_err()
                .contains("no valid host")
        );
        assert!(
            parse_http_url("http://u:p@h/")
                .unwrap_err()
                .contains("credentials")
        );
        let tls = parse_http_url("https://127.0.0.1/").unwrap_err();
        assert!(
            tls.contains("https is not supported") && tls.contains("curl"),
            "{tls}"
        );
    }
}
