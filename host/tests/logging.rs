//! The host logs one structured line per request and never a header value,
//! a query string or a body (they carry tokens). Its own test binary, as it
//! installs the process-wide log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_logs_carry_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt().with_env_filter("debug").with_ansi(false).with_writer(move || writer.clone()).init();

    let app = TestApp::new("log");
    let host = app.spawn();
    let addr = host.addr();
    let reply = send(
        addr,
        "POST",
        "/echo/logged?token=QUERY-SECRET",
        &[("authorization", "Bearer HEADER-SECRET"), ("cookie", "lanyard_session=COOKIE-SECRET")],
        b"BODY-SECRET",
    )
    .await;
    assert_eq!(reply.status, 200);
    let trap = get(addr, "/trap?token=TRAP-QUERY-SECRET").await;
    assert_eq!(trap.status, 500);
    host.shutdown().expect("clean shutdown");

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let request_lines: Vec<&str> =
        logs.lines().filter(|l| l.contains("path=/echo/logged") || l.contains("path=/trap")).collect();
    assert_eq!(request_lines.len(), 2, "one line per request:\n{logs}");
    let echo_line = request_lines[0];
    for field in ["method=POST", "component=\"main\"", "status=200", "duration_ms="] {
        assert!(
            echo_line.contains(field) || echo_line.contains(&field.replace('"', "")),
            "{field} missing from {echo_line}"
        );
    }
    assert!(request_lines[1].contains("status=500"), "{}", request_lines[1]);
    for secret in ["QUERY-SECRET", "HEADER-SECRET", "COOKIE-SECRET", "BODY-SECRET", "TRAP-QUERY-SECRET", TOKEN] {
        assert!(!logs.contains(secret), "the logs contain {secret}:\n{logs}");
    }
}
