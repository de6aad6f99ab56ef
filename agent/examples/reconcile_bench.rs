//! Reconcile latency and throughput against a real kube-apiserver:
//!
//! ```sh
//! bash scripts/build && target/debug/examples/reconcile_bench [GRANTS BULK]
//! ```
//!
//! 1. grant creation → `applied`, one grant at a time (default 50): median,
//!    p90 and worst;
//! 2. BULK grants (default 500) created at once → all applied;
//! 3. revoke-all of those BULK grants: the API call, and until the last
//!    managed binding is gone from the cluster.
//!
//! The agent runs with the end-to-end tests' settings (poll every 100 ms).
//! It prints a table; it asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Env;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let single: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let bulk: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let env = Env::start();
    let ns = env.kube.fresh_namespace("bench").unwrap();

    // 1. One at a time.
    let mut latencies = Vec::with_capacity(single);
    for i in 0..single {
        env.app.sign_in(&format!("one{i}@acme.example"), "acme");
        let started = Instant::now();
        let id = env.grant(&format!("one{i}@acme.example"), "view", Some(&ns));
        env.wait_status(&id, "applied");
        latencies.push(started.elapsed());
    }
    latencies.sort();

    // 2. Bulk.
    for i in 0..bulk {
        env.app.sign_in(&format!("bulk{i}@acme.example"), "acme");
    }
    let started = Instant::now();
    for i in 0..bulk {
        env.grant(&format!("bulk{i}@acme.example"), "view", Some(&ns));
    }
    let created = started.elapsed();
    env.wait_all_applied();
    let all_applied = started.elapsed();
    let total = single + bulk;
    env.wait_bindings("every binding to exist", |b| b.len() == total);

    // 3. Revoke-all.
    let started = Instant::now();
    let r =
        env.app.send("POST", &format!("/api/v1/clusters/{}/access/revoke-all", env.cluster_id), Some(&env.admin), None);
    r.expect(200);
    let call = started.elapsed();
    env.wait_bindings("every managed binding to go", |b| b.is_empty());
    let gone = started.elapsed();

    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| grant created → applied, {single} grants one at a time: median | {} |",
        ms(percentile(&latencies, 0.5))
    );
    println!("| … p90 | {} |", ms(percentile(&latencies, 0.9)));
    println!("| … worst | {} |", ms(*latencies.last().unwrap()));
    println!(
        "| {bulk} grants: create calls (sequential) | {} ({:.1} ms each) |",
        ms(created),
        created.as_secs_f64() * 1000.0 / bulk as f64
    );
    println!("| {bulk} grants: first create → all applied | {} |", ms(all_applied));
    println!("| revoke-all of {total} grants: API call | {} |", ms(call));
    println!("| revoke-all of {total} grants: call → last binding gone | {} |", ms(gone));
    println!("| revoked (API answer) | {} |", r.json["revoked"]);
}
