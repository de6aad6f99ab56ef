//! Stand-ins for a control plane (or a Kubernetes API server) that is down or
//! failing, for the tests that count how hard the agent retries. Each one
//! records, with the time it arrived, every connection or request it gets;
//! the tests run the real agent binary against them for a bounded window and
//! then count.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub body: Vec<u8>,
}

/// An answer: status, JSON body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer { status, body: body.into() }
    }
    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer::new(status, body.to_string())
    }
}

type Rule = dyn Fn(&Request) -> Answer + Send + Sync;

/// A tiny HTTP/1.1 server on loopback that answers every request by `rule`
/// (one request per connection) and records them all.
pub struct FakeHttp {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeHttp {
    pub fn start(rule: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> FakeHttp {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the fake server");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(rule);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, rule) = (seen.clone(), rule.clone());
                std::thread::spawn(move || serve(stream, &seen, &*rule));
            }
        });
        FakeHttp { url, requests }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// When the first request arrived, if one has.
    pub fn first(&self) -> Option<Instant> {
        self.requests.lock().unwrap().first().map(|r| r.at)
    }

    /// How many requests to a path ending in `suffix` (and with `method`, if given) arrived before `until`.
    pub fn count(&self, method: Option<&str>, suffix: &str, until: Instant) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.at <= until && r.path.ends_with(suffix) && method.is_none_or(|m| r.method == m))
            .count()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, rule: &Rule) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Request { at, method, path, body };
    let answer = rule(&request);
    seen.lock().unwrap().push(request);
    let response = format!(
        "HTTP/1.1 {} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        answer.body
    );
    let mut stream = &stream;
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// A listener that accepts each connection and closes it at once, counting
/// them: a control plane behind a load balancer with no healthy backend.
pub struct SlammingDoor {
    pub url: String,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl SlammingDoor {
    pub fn start() -> SlammingDoor {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the listener");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                seen.lock().unwrap().push(Instant::now());
                drop(stream);
            }
        });
        SlammingDoor { url, accepted }
    }

    pub fn first(&self) -> Option<Instant> {
        self.accepted.lock().unwrap().first().copied()
    }

    pub fn count(&self, until: Instant) -> usize {
        self.accepted.lock().unwrap().iter().filter(|at| **at <= until).count()
    }
}

/// A loopback URL on which nothing listens (connections are refused).
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A kubeconfig (no credentials) for a fake API server at `url`.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n"
    )
}
