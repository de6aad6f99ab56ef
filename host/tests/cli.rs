//! The `lanyard-host` binary: flags, variables from the environment, serving,
//! and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::*;

#[tokio::test]
async fn the_binary_serves_with_env_variables_and_stops_on_sigterm() {
    let app = TestApp::new("cli");
    let manifest = write_manifest(app.dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lanyard-host"))
        .args(["--manifest".as_ref(), manifest.as_os_str()])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--state".as_ref(), app.state.path().as_os_str()])
        .args(["--cache".as_ref(), shared_cache_dir().as_os_str()])
        .env("SPIN_VARIABLE_SECRET_TOKEN", "from-the-environment")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lanyard-host");

    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read stdout");
    let Some(addr) =
        line.trim().strip_prefix("lanyard-host listening on http://").and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        let _ = child.kill();
        let mut stderr = String::new();
        let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
        panic!("unexpected first line {line:?}; stderr:\n{stderr}");
    };

    assert_eq!(ok(&get(addr, "/var/token").await), "from-the-environment");
    assert_eq!(ok(&get(addr, "/var/greeting").await), "hello");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    let exit = child.wait().expect("wait for lanyard-host");
    assert!(exit.success(), "exit status {exit}");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    assert!(stderr.contains("path=/var/token"), "{stderr}");
    assert!(!stderr.contains("from-the-environment"), "{stderr}");
    std::net::TcpListener::bind(addr).expect("the port is free after exit");
}

#[test]
fn the_binary_rejects_a_missing_required_variable() {
    let app = TestApp::new("cli-missing");
    let manifest = write_manifest(app.dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_lanyard-host"))
        .args(["--manifest".as_ref(), manifest.as_os_str()])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--state".as_ref(), app.state.path().as_os_str()])
        .args(["--cache".as_ref(), shared_cache_dir().as_os_str()])
        .env_remove("SPIN_VARIABLE_SECRET_TOKEN")
        .output()
        .expect("run lanyard-host");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("secret_token"), "{stderr}");
}

#[test]
fn the_binary_explains_bad_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_lanyard-host"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run lanyard-host");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--manifest is required"), "{stderr}");
    assert!(stderr.contains("usage:"), "{stderr}");
}
