//! The loopback redirect of `lanyard login`: a listener on `127.0.0.1` (a
//! port the system picks) that waits, up to a deadline, for the browser to
//! come back to `/callback` with the provider's answer, answers it with a
//! small plain page, and hands the code (or the reason there is none) to the
//! login.
//!
//! Each connection is read on its own thread with a read timeout, so that a
//! browser's idle speculative connection cannot hold up the real one; other
//! paths (a favicon) get a 404 and waiting goes on. The first request to
//! `/callback` decides: a wrong `state`, an `error=` or a missing code end
//! the login with an error ([`crate::oidc::callback_code`]).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{CliError, Result};
use crate::oidc;

/// The longest request head read from the browser.
const MAX_HEAD: usize = 16 * 1024;

/// A bound loopback listener.
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

impl Loopback {
    /// Listen on `127.0.0.1:0`.
    pub fn bind() -> Result<Loopback> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(CliError::io("listening on 127.0.0.1 for the sign-in redirect"))?;
        let port = listener.local_addr().map_err(CliError::io("reading the redirect listener's port"))?.port();
        Ok(Loopback { listener, port })
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Wait up to `timeout` for the callback; its code, if its `state` is
    /// `state`. `on_timeout` is the message of the error on timeout.
    pub fn wait(self, state: &str, timeout: Duration, on_timeout: String) -> Result<String> {
        let (tx, rx) = mpsc::channel::<Result<String>>();
        let state = state.to_owned();
        // Detached: it ends with the process, once the login has its answer.
        std::thread::spawn(move || {
            for stream in self.listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tx, state) = (tx.clone(), state.clone());
                std::thread::spawn(move || {
                    if let Some(outcome) = serve(stream, &state) {
                        let _ = tx.send(outcome);
                    }
                });
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(_) => Err(CliError::SignIn(on_timeout)),
        }
    }
}

/// Answer one connection; the outcome if it was the callback.
fn serve(mut stream: TcpStream, state: &str) -> Option<Result<String>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let target = read_target(&mut stream)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != "/callback" {
        respond(&mut stream, "404 Not Found", "Nothing here. Lanyard is waiting for the sign-in.");
        return None;
    }
    let outcome = oidc::callback_code(query, state);
    match &outcome {
        Ok(_) => {
            respond(&mut stream, "200 OK", "Signed in to Lanyard. You can close this tab and return to the terminal.")
        }
        Err(e) => respond(&mut stream, "400 Bad Request", &format!("Lanyard sign-in failed: {e}")),
    }
    Some(outcome)
}

/// The request target of a `GET` request head, if it is one.
fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = std::str::from_utf8(&head).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.to_owned()),
        _ => None,
    }
}

fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!("{text}\n");
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead as _;

    fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").unwrap();
        let mut first = String::new();
        std::io::BufReader::new(s).read_line(&mut first).unwrap();
        first
    }

    #[test]
    fn the_callback_delivers_the_code_and_other_paths_wait_on() {
        let lb = Loopback::bind().unwrap();
        assert!(lb.redirect_uri().starts_with("http://127.0.0.1:") && lb.redirect_uri().ends_with("/callback"));
        let port = lb.port;
        // An idle connection (a browser's speculative one) does not hold up the others.
        let _idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let browser = std::thread::spawn(move || {
            let favicon = get(port, "/favicon.ico");
            let callback = get(port, "/callback?code=c0de&state=st");
            (favicon, callback)
        });
        let code = lb.wait("st", Duration::from_secs(20), "timed out".into()).unwrap();
        assert_eq!(code, "c0de");
        let (favicon, callback) = browser.join().unwrap();
        assert!(favicon.contains("404") && callback.contains("200"), "{favicon} {callback}");
    }

    #[test]
    fn a_wrong_state_fails_and_the_browser_is_told() {
        let lb = Loopback::bind().unwrap();
        let port = lb.port;
        let browser = std::thread::spawn(move || get(port, "/callback?code=c0de&state=forged"));
        let err = lb.wait("st", Duration::from_secs(20), "timed out".into()).unwrap_err();
        assert!(err.to_string().contains("state"), "{err}");
        assert!(browser.join().unwrap().contains("400"));
    }

    #[test]
    fn nothing_arriving_times_out_with_the_message() {
        let lb = Loopback::bind().unwrap();
        let err = lb.wait("st", Duration::from_millis(100), "no sign-in arrived".into()).unwrap_err();
        assert_eq!(err.to_string(), "no sign-in arrived");
        assert_eq!(err.exit_code(), crate::error::exit::UNAUTHENTICATED);
    }
}
