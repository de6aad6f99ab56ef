//! Request latency of the control plane through the project's host (real Wasm
//! components, SQLite key-value store), one client, sequential requests:
//!
//! ```sh
//! bash scripts/build && target/debug/examples/api_bench [N]
//! ```
//!
//! Prints a table; asserts nothing.

use std::time::{Duration, Instant};

use lanyard_api_tests::{ClusterFixture, Fixture};
use serde_json::json;

fn row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!("| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms |", samples.len(), at(0.5), at(0.9), at(1.0));
}

/// Send without the harness's OpenAPI validation (which is test overhead, not
/// server time) and check the status.
fn raw(req: reqwest::blocking::RequestBuilder, want: u16) {
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let _ = resp.bytes();
    assert_eq!(status, want);
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let member = app.sign_in("dev@acme.example", "acme");
    let grants = format!("/api/v1/clusters/{cluster}/access/grants");
    // Warm the instance pool and the store.
    for _ in 0..10 {
        app.get("/api/v1/clusters", &admin).expect(200);
    }

    let create = time(n, |i| {
        let body =
            json!({"email": "dev@acme.example", "role": "view", "scope": "namespace", "namespace": format!("ns-{i}")});
        raw(
            app.request("POST", &grants)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body.to_string()),
            201,
        );
    });
    let list = time(n, |_| raw(app.request("GET", &grants).bearer_auth(&admin), 200));
    let caps = time(n, |_| {
        raw(app.request("GET", &format!("/api/v1/clusters/{cluster}/access/capabilities")).bearer_auth(&member), 200)
    });
    // Stay under the per-member rate limit: one member per 25 mints.
    let minters: Vec<String> = (0..n.div_ceil(25))
        .map(|m| {
            let email = format!("minter{m}@acme.example");
            let token = app.sign_in(&email, "acme");
            app.post(&grants, &admin, json!({"email": email, "role": "view", "scope": "cluster"})).expect(201);
            token
        })
        .collect();
    let mint = time(n, |i| {
        raw(app.request("POST", &format!("/api/v1/clusters/{cluster}/k8s-token")).bearer_auth(&minters[i / 25]), 200)
    });

    println!();
    println!("| request | n | median | p90 | max |");
    println!("|---|---|---|---|---|");
    row("POST grant (create)", create);
    row(&format!("GET grants (list of {n})"), list);
    row("GET capabilities (member)", caps);
    row("POST k8s-token (mint)", mint);
}
