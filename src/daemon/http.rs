//! The HTTP check: one GET over a fresh connection, judged by the status line alone.
//!
//! A few dozen lines on tokio's `TcpStream` rather than an HTTP client crate: a check needs
//! no body, no redirects, no keep-alive and no TLS (refused at load time), and a client
//! crate (hyper, reqwest, ureq) would add hundreds of kilobytes to a daemon whose whole
//! resident size is a few megabytes. `Connection: close` tells the server not to hold the
//! connection open. The deadline is not here: the core keeps it and has the attempt aborted
//! (`Effect::KillProbe`), as for the TCP probe.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{HttpCheck, parse_http_url};
use crate::supervisor::ProbeFailure;

/// How much of the answer is read to find the status line: any sane one is far shorter.
const STATUS_LINE_MAX: usize = 1024;

/// GETs `check.url`; `Ok` when the status is one the check accepts.
pub(super) async fn check(check: &HttpCheck) -> Result<(), ProbeFailure> {
    let failed = |error: String| ProbeFailure::Http {
        url: check.url.clone(),
        error,
    };
    let url = parse_http_url(&check.url).map_err(failed)?;
    let mut stream = tokio::net::TcpStream::connect(url.address())
        .await
        .map_err(|e| ProbeFailure::Connect {
            addr: url.address(),
            error: e.to_string(),
        })?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: runpm\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed(format!("sending the request: {e}")))?;
    let mut answer = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < STATUS_LINE_MAX {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| failed(format!("reading the answer: {e}")))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let status = status_of(&answer).ok_or_else(|| {
        failed(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        ))
    })?;
    if check.accepts(status) {
        Ok(())
    } else {
        Err(ProbeFailure::HttpStatus {
            url: check.url.clone(),
            status,
        })
    }
}

/// The status code of an answer that starts with `HTTP/1.x NNN`.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    (code.len() == 3).then_some(())?;
    code.parse().ok().filter(|c| (100..600).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_is_all_that_counts() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\nServer: x\r\n"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2000 x\r\n"), None);
        assert_eq!(status_of(b""), None);
    }

    #[test]
    fn default_success_is_2xx_or_3xx() {
        let any = HttpCheck {
            url: "http://h/".into(),
            status: vec![],
            timeout: None,
        };
        assert!(any.accepts(200) && any.accepts(302) && !any.accepts(404) && !any.accepts(503));
        let listed = HttpCheck {
            status: vec![204, 418],
            ..any
        };
        assert!(listed.accepts(418) && !listed.accepts(200));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_real_server_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for answer in ["HTTP/1.1 503 Busy\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"] {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 1024];
                let n = conn.read(&mut request).await.unwrap();
                let request = String::from_utf8_lossy(&request[..n]).to_string();
                assert!(
                    request.starts_with("GET /healthz HTTP/1.1\r\n"),
                    "{request}"
                );
                assert!(request.contains(&format!("Host: 127.0.0.1:{port}\r\n")));
                assert!(request.contains("Connection: close\r\n"));
                conn.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let probe = HttpCheck {
            url: format!("http://127.0.0.1:{port}/healthz"),
            status: vec![],
            timeout: None,
        };
        let first = check(&probe).await.unwrap_err();
        assert_eq!(
            first.to_string(),
            format!("GET http://127.0.0.1:{port}/healthz answered 503")
        );
        check(&probe).await.unwrap();
        server.await.unwrap();
    }
}
