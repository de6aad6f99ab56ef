//! The control plane's per-request cost in the project's host: the real Wasm
//! components (a fresh instance per request, as Spin does) on the embedded
//! SQLite key-value store, driven over loopback HTTP by keep-alive clients.
//!
//! ```sh
//! bash scripts/bench           # this and the other benchmarks, into BENCHMARKS.md
//! target/debug/examples/api_bench [--quick]
//! ```
//!
//! For each endpoint: median and p99 latency and requests per second, with
//! one client and with eight concurrent clients. Grant lists are measured
//! with 10, 1,000 and 10,000 grants in the store, and the list's cost per
//! grant is derived from them. Also the floors a request cannot go below
//! (the host answering itself; the not-found component, which does nothing
//! but be instantiated) and each component's size. The host runs in this
//! process and shares the machine's cores with the clients, as it shares
//! them with every other process in production.
//!
//! It prints Markdown tables; it asserts nothing but that every request got
//! the status it should (a benchmark of errors measures nothing).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanyard_api_tests::{ClusterFixture, Fixture};
use serde_json::json;

/// One measured endpoint: its latencies and the wall time they took.
struct Sample {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Sample {
    fn at(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// A request the bench sends: method, path, bearer, JSON body, wanted status.
struct Call {
    method: &'static str,
    path: String,
    bearer: String,
    body: Option<String>,
    want: u16,
}

/// Send `total` requests from `clients` threads, each with its own
/// keep-alive connection; `make(i)` builds the i-th request.
fn run(url: &str, clients: usize, total: usize, make: &(dyn Fn(usize) -> Call + Sync)) -> Sample {
    let next = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let next = next.clone();
                s.spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(120))
                        .pool_max_idle_per_host(1)
                        .build()
                        .unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let i = {
                            let mut n = next.lock().unwrap();
                            if *n == total {
                                break;
                            }
                            *n += 1;
                            *n - 1
                        };
                        let call = make(i);
                        let method = reqwest::Method::from_bytes(call.method.as_bytes()).unwrap();
                        let mut req = client.request(method, format!("{url}{}", call.path)).bearer_auth(&call.bearer);
                        if let Some(body) = call.body {
                            req = req.header("content-type", "application/json").body(body);
                        }
                        let t = Instant::now();
                        let resp = req.send().expect("the host answers");
                        let status = resp.status().as_u16();
                        let body = resp.bytes().unwrap_or_default();
                        mine.push(t.elapsed());
                        assert_eq!(
                            status,
                            call.want,
                            "{} {}: {}",
                            call.method,
                            call.path,
                            String::from_utf8_lossy(&body)
                        );
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed();
    latencies.sort();
    Sample { latencies, wall }
}

/// One table row: the endpoint at 1 and at 8 clients.
struct Row {
    name: String,
    one: Sample,
    eight: Sample,
}

fn print_rows(rows: &[Row]) {
    println!(
        "| request | n (1 / 8 clients) | median, 1 client | p99, 1 client | req/s, 1 client | median, 8 clients | p99, 8 clients | req/s, 8 clients |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} / {} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.0} |",
            r.name,
            r.one.latencies.len(),
            r.eight.latencies.len(),
            r.one.at(0.5),
            r.one.at(0.99),
            r.one.rps(),
            r.eight.at(0.5),
            r.eight.at(0.99),
            r.eight.rps()
        );
    }
}

fn get(path: String, bearer: &str, want: u16) -> Call {
    Call { method: "GET", path, bearer: bearer.to_owned(), body: None, want }
}

/// Create `n` namespace grants for `email` on `cluster`, eight at a time.
fn seed_grants(url: &str, admin: &str, cluster: &str, email: &str, n: usize) {
    let path = format!("/api/v1/clusters/{cluster}/access/grants");
    run(url, 8, n, &|i| Call {
        method: "POST",
        path: path.clone(),
        bearer: admin.to_owned(),
        body: Some(
            json!({"email": email, "role": "view", "scope": "namespace", "namespace": format!("ns-{i}")}).to_string(),
        ),
        want: 201,
    });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Requests per small endpoint at 1 and at 8 clients.
    let (n1, n8): (usize, usize) = if quick { (200, 400) } else { (1000, 2000) };
    let ClusterFixture { app, admin, cluster, credential } = Fixture::start().with_cluster("prod");
    let url = app.url.clone();
    let member = app.sign_in("dev@acme.example", "acme");
    let grants = format!("/api/v1/clusters/{cluster}/access/grants");
    app.post(&grants, &admin, json!({"email": "dev@acme.example", "role": "view", "scope": "cluster"})).expect(201);
    // Mints are limited to 30 a minute per member: spread them over enough
    // members that none mints more than 25 in the whole run.
    let mints = n1 + n8 + 100;
    let minters: Vec<String> = (0..mints.div_ceil(25))
        .map(|m| {
            let email = format!("minter{m}@acme.example");
            let token = app.sign_in(&email, "acme");
            app.post(&grants, &admin, json!({"email": email, "role": "view", "scope": "cluster"})).expect(201);
            token
        })
        .collect();
    // Warm the instance pool, the store and the verified-session cache.
    for _ in 0..50 {
        app.get("/api/v1/clusters", &admin).expect(200);
        app.get(&format!("/api/v1/clusters/{cluster}/access/capabilities"), &member).expect(200);
    }

    let floors = vec![
        Row {
            name: "host health (`/.well-known/spin/health`, no component)".into(),
            one: run(&url, 1, n1, &|_| get("/.well-known/spin/health".into(), "", 200)),
            eight: run(&url, 8, n8, &|_| get("/.well-known/spin/health".into(), "", 200)),
        },
        Row {
            name: "not-found component (instantiation, nothing else)".into(),
            one: run(&url, 1, n1, &|_| get("/nope".into(), "", 404)),
            eight: run(&url, 8, n8, &|_| get("/nope".into(), "", 404)),
        },
    ];

    let caps = format!("/api/v1/clusters/{cluster}/access/capabilities");
    let kubeconfig = format!("/api/v1/clusters/{cluster}/kubeconfig");
    let mint = format!("/api/v1/clusters/{cluster}/k8s-token");
    let state = format!("/agent/v1/clusters/{cluster}/state");
    let minted = std::sync::atomic::AtomicUsize::new(0);
    let mint_call = |_| {
        let k = minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Call { method: "POST", path: mint.clone(), bearer: minters[k / 25].clone(), body: None, want: 200 }
    };
    let create_call = |offset: usize| {
        let grants = grants.clone();
        let admin = admin.clone();
        move |i: usize| Call {
            method: "POST",
            path: grants.clone(),
            bearer: admin.clone(),
            body: Some(
                json!({"email": "dev@acme.example", "role": "edit", "scope": "namespace",
                       "namespace": format!("bench-{}", offset + i)})
                .to_string(),
            ),
            want: 201,
        }
    };
    let mut rows = vec![
        Row {
            name: "GET capabilities (member)".into(),
            one: run(&url, 1, n1, &|_| get(caps.clone(), &member, 200)),
            eight: run(&url, 8, n8, &|_| get(caps.clone(), &member, 200)),
        },
        Row {
            name: "POST k8s-token (mint)".into(),
            one: run(&url, 1, n1, &mint_call),
            eight: run(&url, 8, n8, &mint_call),
        },
        Row {
            name: "GET kubeconfig (member)".into(),
            one: run(&url, 1, n1, &|_| get(kubeconfig.clone(), &member, 200)),
            eight: run(&url, 8, n8, &|_| get(kubeconfig.clone(), &member, 200)),
        },
        Row {
            name: "GET agent state (agent poll)".into(),
            one: run(&url, 1, n1, &|_| get(state.clone(), &credential, 200)),
            eight: run(&url, 8, n8, &|_| get(state.clone(), &credential, 200)),
        },
        Row {
            name: "POST grant (create)".into(),
            one: run(&url, 1, n1, &create_call(0)),
            eight: run(&url, 8, n8, &create_call(n1)),
        },
    ];
    // Delete what the create rows made, by id.
    let ids: Vec<String> = app.get(&grants, &admin).expect(200).json["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["role"] == "edit")
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), n1 + n8, "every created grant lists");
    let delete_call = |offset: usize| {
        let ids = &ids;
        let grants = &grants;
        let admin = &admin;
        move |i: usize| Call {
            method: "DELETE",
            path: format!("{grants}/{}", ids[offset + i]),
            bearer: admin.clone(),
            body: None,
            want: 204,
        }
    };
    rows.push(Row {
        name: "DELETE grant".into(),
        one: run(&url, 1, n1, &delete_call(0)),
        eight: run(&url, 8, n8, &delete_call(n1)),
    });

    // Lists: one cluster per size, so each list reads exactly its grants.
    let mut list_medians = Vec::new();
    for (size, (l1, l8)) in [(10usize, (n1, n8)), (1000, (n1 / 5, n8 / 5)), (10_000, (n1 / 50, n8 / 50))] {
        let c = app.cluster(&admin, &format!("list-{size}"), "standard");
        seed_grants(&url, &admin, &c, "dev@acme.example", size);
        let path = format!("/api/v1/clusters/{c}/access/grants");
        let check = app.get(&path, &admin).expect(200).json["grants"].as_array().unwrap().len();
        assert_eq!(check, size, "the list holds the seeded grants");
        let row = Row {
            name: format!("GET grants (list of {size})"),
            one: run(&url, 1, l1.max(10), &|_| get(path.clone(), &admin, 200)),
            eight: run(&url, 8, l8.max(16), &|_| get(path.clone(), &admin, 200)),
        };
        list_medians.push((size, row.one.at(0.5)));
        rows.push(row);
    }

    println!("### Floors\n");
    print_rows(&floors);
    println!("\n### Endpoints\n");
    print_rows(&rows);
    println!("\n### Grant list cost per grant (1 client, medians)\n");
    println!("| from | to | added per grant |");
    println!("|---|---|---|");
    for w in list_medians.windows(2) {
        let ((a, ma), (b, mb)) = (w[0], w[1]);
        println!("| {a} grants, {ma:.2} ms | {b} grants, {mb:.2} ms | {:.1} µs |", (mb - ma) * 1000.0 / (b - a) as f64);
    }
    println!("\n### Component sizes\n");
    println!("| component | bytes |");
    println!("|---|---|");
    let dir = lanyard_test_support::repo_root().join("target/wasm32-wasip2/release");
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .expect("the built components")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with("fn_") && name.ends_with(".wasm")).then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    sizes.sort();
    for (name, bytes) in sizes {
        println!("| {name} | {bytes} |");
    }
}
