//! `lanyard cluster token` start to exit, as kubectl's exec plugin runs it:
//! a new process per call, from a new parent each time (the CLI treats a
//! second call from one parent as kubectl retrying after a 401, and mints).
//!
//! ```sh
//! bash scripts/bench     # with the release build of the CLI, into BENCHMARKS.md
//! target/debug/examples/cli_bench [LANYARD-BINARY] [RUNS]
//! ```
//!
//! Measured against the project's host: the first call (a mint) and RUNS
//! (default 200) calls on a warm token cache, beside `sh -c true`, the cost
//! of the parent shell alone, measured in the same run. It prints a table and
//! asserts nothing but that each call succeeded.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lanyard_api_tests::{ClusterFixture, Fixture};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .unwrap_or_else(|| lanyard_test_support::repo_root().join("target/debug/lanyard").display().to_string());
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let bob = app.sign_in("bob@acme.example", "acme");
    app.grant_access(&admin, &cluster, "bob@acme.example", "view", Some("team-a"));
    let home = tempfile::tempdir().unwrap();
    let shell = |script: &str, extra: &[&str]| {
        let started = Instant::now();
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(extra)
            .env("HOME", home.path())
            .env("LANYARD_CONFIG", home.path().join("config.json"))
            .env("KUBECONFIG", home.path().join("kubeconfig"))
            .env("LANYARD", &bin)
            .env_remove("LANYARD_CONTROL_PLANE")
            .env_remove("LANYARD_STATE")
            .stdin(Stdio::null())
            .output()
            .expect("run sh");
        let took = started.elapsed();
        assert!(out.status.success(), "{script} {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        took
    };
    shell(r#""$LANYARD" login --control-plane "$1" --token "$2" >/dev/null"#, &[&app.url, &bob]);
    let token = [r#""$LANYARD" cluster token --control-plane "$1" --cluster "$2" >/dev/null"#, &app.url, &cluster];
    let first = shell(token[0], &token[1..]);
    let mut warm: Vec<Duration> = (0..runs).map(|_| shell(token[0], &token[1..])).collect();
    let mut sh: Vec<Duration> = (0..runs).map(|_| shell("true", &[])).collect();
    warm.sort();
    sh.sort();
    println!("| measurement ({bin}) | median | p99 |");
    println!("|---|---|---|");
    println!(
        "| `sh -c true` (the parent shell alone) | {:.2} ms | {:.2} ms |",
        percentile(&sh, 0.5),
        percentile(&sh, 0.99)
    );
    println!(
        "| `lanyard cluster token`, warm cache, {runs} runs (including the shell) | {:.2} ms | {:.2} ms |",
        percentile(&warm, 0.5),
        percentile(&warm, 0.99)
    );
    println!("| … less the shell's median | {:.2} ms | |", percentile(&warm, 0.5) - percentile(&sh, 0.5));
    println!("| `lanyard cluster token`, first call (a mint) | {:.2} ms | |", first.as_secs_f64() * 1000.0);
}
