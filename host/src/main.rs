//! The `lanyard-host` binary: serves a Spin manifest until SIGINT or SIGTERM.
//!
//! ```text
//! lanyard-host --manifest spin.toml --listen 127.0.0.1:3000 --state DIR [--cache DIR]
//!              [--request-timeout SECONDS]
//! ```
//!
//! Variables come from the environment (`SPIN_VARIABLE_<NAME>`), as with
//! `spin up`. Client-sent `spin-*` headers reach the components before the
//! host's own, as with Spin (the library's default; the stricter
//! `ClientSpinHeaders::Strip` is for library users). Logs go to stderr
//! (filter with `RUST_LOG`, default `info`); the line
//! `lanyard-host listening on http://ADDR` goes to stdout once serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lanyard_host::{HostConfig, Server};

const USAGE: &str = "usage: lanyard-host --manifest spin.toml --listen 127.0.0.1:3000 --state DIR [--cache DIR] [--request-timeout SECONDS]
  --manifest         the Spin manifest (spin.toml)
  --listen           address to listen on (port 0 picks a free port)
  --state            directory for the key-value store (kv.sqlite)
  --cache            directory for precompiled components (default: <state>/cache)
  --request-timeout  seconds a request may run (default: 30)
Variables: SPIN_VARIABLE_<NAME> in the environment.";

fn parse_args(args: impl Iterator<Item = String>) -> Result<HostConfig, String> {
    let mut manifest = None;
    let mut listen = None;
    let mut state = None;
    let mut cache = None;
    let mut timeout = None;
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--manifest" => manifest = Some(PathBuf::from(value)),
            "--listen" => listen = Some(value.parse::<SocketAddr>().map_err(|e| format!("--listen {value:?}: {e}"))?),
            "--state" => state = Some(PathBuf::from(value)),
            "--cache" => cache = Some(PathBuf::from(value)),
            "--request-timeout" => {
                let secs: u64 = value.parse().map_err(|e| format!("--request-timeout {value:?}: {e}"))?;
                timeout = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let manifest = manifest.ok_or("--manifest is required")?;
    let listen = listen.ok_or("--listen is required")?;
    let state: PathBuf = state.ok_or("--state is required")?;
    let cache = cache.unwrap_or_else(|| state.join("cache"));
    let mut config = HostConfig::new(manifest, state, cache);
    config.listen = listen;
    if let Some(timeout) = timeout {
        config.request_timeout = timeout;
    }
    Ok(config)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("lanyard-host: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lanyard-host: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = Server::bind(config).await?;
        println!("lanyard-host listening on http://{}", server.local_addr());
        server.serve(shutdown_signal()).await
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lanyard-host: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, fall back to Ctrl-C only.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace().map(str::to_string).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn parses_flags() {
        let c = parse_args(args("--manifest m.toml --listen 127.0.0.1:3000 --state s --request-timeout=5")).unwrap();
        assert_eq!(c.manifest, PathBuf::from("m.toml"));
        assert_eq!(c.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.cache_dir, PathBuf::from("s/cache"));
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        let c = parse_args(args("--manifest m --listen 0.0.0.0:0 --state s --cache c")).unwrap();
        assert_eq!(c.cache_dir, PathBuf::from("c"));
    }

    /// The fault switch is for tests only: the binary has no way to turn it on.
    #[test]
    fn no_flag_turns_the_fault_switch_on() {
        let c = parse_args(args("--manifest m --listen 127.0.0.1:0 --state s")).unwrap();
        assert!(c.faults.is_none());
        assert!(parse_args(args("--manifest m --listen 127.0.0.1:0 --state s --faults 1")).is_err());
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(parse_args(args("--listen 127.0.0.1:1 --state s")).is_err());
        assert!(parse_args(args("--manifest m --listen nope --state s")).is_err());
        assert!(parse_args(args("--manifest m --listen 127.0.0.1:1 --state s --bogus x")).is_err());
        assert!(parse_args(args("--manifest")).is_err());
    }
}
