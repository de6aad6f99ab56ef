//! The access proxy's cost and its revocation latency, against a real
//! kube-apiserver, in one run:
//!
//! ```sh
//! bash scripts/build && target/debug/examples/proxy_bench [REQUESTS SECONDS TRIALS]
//! ```
//!
//! 1. `GET` of one ConfigMap, one keep-alive client, REQUESTS times
//!    (default 2000): **direct** to the kube-apiserver with exactly the
//!    request the proxy sends (the proxy's ServiceAccount token and
//!    `Impersonate-User`), and **through the proxy** with the member's
//!    Lanyard token: median and p99 latency, and the difference.
//! 2. The same `GET` from 16 concurrent keep-alive clients, in three
//!    windows of SECONDS (default 5) each way, alternating: requests per
//!    second, and the ratio.
//! 3. Revoke-all → the first refused request of a client that keeps
//!    requesting, over TRIALS trials (default 25): median and worst.
//! 4. The agent's resident memory, idle and right after the load.
//!
//! Everything runs on this machine (kube-apiserver, etcd, control plane,
//! agent and clients share its cores), so the ratios are the figures to
//! compare. It prints a table; it asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::access::{AccessEnv, Layout};
use lanyard_kube::Identity;
use serde_json::Value;

const NS: &str = "bench";
const CLIENTS: usize = 16;
/// Throughput windows per side, alternating direct and proxied.
const WINDOWS: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// `b - a`, signed (noise can make the proxied figure the lower one).
fn diff(a: Duration, b: Duration) -> String {
    format!("{:+.3} ms", (b.as_secs_f64() - a.as_secs_f64()) * 1000.0)
}

/// One way to send the benchmark's request.
#[derive(Clone)]
struct Target {
    url: String,
    headers: Vec<(String, String)>,
    ca_pem: String,
}

impl Target {
    fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn get(&self, client: &reqwest::blocking::Client) -> u16 {
        let mut req = client.get(&self.url);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let resp = req.send().expect("an answer");
        let status = resp.status().as_u16();
        let _ = resp.bytes();
        status
    }
}

fn latencies(target: &Target, n: usize) -> Vec<Duration> {
    let client = target.client();
    for _ in 0..50 {
        assert_eq!(target.get(&client), 200, "warm-up of {}", target.url);
    }
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(target.get(&client), 200);
            started.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn throughput(target: &Target, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (target, done, barrier, stop) = (target.clone(), done.clone(), barrier.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = target.client();
                assert_eq!(target.get(&client), 200);
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(target.get(&client), 200);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds)); // the measurement window, not a synchronisation
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    count as f64 / elapsed.as_secs_f64()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A fresh cluster token for the member whose session is `session`.
fn mint(env: &AccessEnv, session: &str) -> String {
    let resp = env.app.post(&format!("/api/v1/clusters/{}/k8s-token", env.cluster_id), session, Value::Null);
    resp.expect(200);
    resp.json["status"]["token"].as_str().unwrap().to_owned()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let trials: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(25);

    let env = AccessEnv::start(Layout::OneProcess);
    env.namespace(NS);
    env.kube.kubectl_ok(Identity::Admin, ["create", "configmap", "probe", "-n", NS, "--from-literal=k=v"]).unwrap();
    let email = "bench@acme.example";
    let session = env.app.sign_in(email, "acme");
    let grant = env.grant(email, "view", Some(NS));
    env.wait_status(&grant, "applied");
    let path = format!("/api/v1/namespaces/{NS}/configmaps/probe");
    let member_token = mint(&env, &session);
    let direct = Target {
        url: format!("{}{path}", env.kube.server_url()),
        headers: vec![
            ("authorization".into(), format!("Bearer {}", env.proxy_sa_token())),
            ("impersonate-user".into(), format!("lanyard:{email}")),
        ],
        ca_pem: env.kube.ca_cert_pem().to_owned(),
    };
    let proxied = Target {
        url: format!("{}{path}", env.proxy_url),
        headers: vec![("authorization".into(), format!("Bearer {member_token}"))],
        ca_pem: env.ca_pem.clone().expect("the proxy's certificate"),
    };
    let idle_rss = rss_kib(env.proxy_pid());

    let d = latencies(&direct, requests);
    let p = latencies(&proxied, requests);
    // Alternating windows, so that drift in what else the machine does falls on both sides alike.
    let (mut d_rps, mut p_rps) = (0.0, 0.0);
    for _ in 0..WINDOWS {
        d_rps += throughput(&direct, seconds) / WINDOWS as f64;
        p_rps += throughput(&proxied, seconds) / WINDOWS as f64;
    }
    let loaded_rss = rss_kib(env.proxy_pid());

    // Revoke-all → first refusal. Each trial grants anew (revoke-all removed the last grant).
    let revoke_all = || {
        env.app
            .post(&format!("/api/v1/clusters/{}/access/revoke-all", env.cluster_id), &env.admin, Value::Null)
            .expect(200);
    };
    revoke_all();
    let mut revocations = Vec::with_capacity(trials);
    for trial in 0..trials {
        let id = env.grant(email, "view", Some(NS));
        let token = mint(&env, &session);
        let probe = Target { headers: vec![("authorization".into(), format!("Bearer {token}"))], ..proxied.clone() };
        let client = probe.client();
        // Admitted first (200 once the binding exists, 403 before: either way not 401).
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe.get(&client) == 401 {
            assert!(Instant::now() < deadline, "trial {trial}: the new grant never reached the proxy");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let refused_at = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                loop {
                    if probe.get(&client) == 401 {
                        return Some(Instant::now());
                    }
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                }
            })
        };
        let started = Instant::now();
        revoke_all();
        let watchdog = std::thread::spawn({
            let stop = stop.clone();
            move || {
                std::thread::sleep(Duration::from_secs(30)); // a bound on a broken trial, not a synchronisation
                stop.store(true, Ordering::Relaxed);
            }
        });
        let at = refused_at.join().unwrap().expect("revoke-all never reached the proxy");
        drop(watchdog);
        revocations.push(at.duration_since(started));
        let _ = id;
    }
    revocations.sort();

    let (dm, pm) = (percentile(&d, 0.5), percentile(&p, 0.5));
    let (d99, p99) = (percentile(&d, 0.99), percentile(&p, 0.99));
    println!(
        "\nAccess proxy benchmark ({requests} sequential GETs, {CLIENTS} clients for {WINDOWS}×{seconds} s a side, {trials} revocations)\n"
    );
    println!("| measure | direct to kube-apiserver | through the proxy | difference / ratio |");
    println!("|---|---|---|---|");
    println!("| GET ConfigMap, median | {} | {} | {} |", ms(dm), ms(pm), diff(dm, pm));
    println!("| GET ConfigMap, p99 | {} | {} | {} |", ms(d99), ms(p99), diff(d99, p99));
    println!(
        "| throughput, {CLIENTS} clients | {d_rps:.0} req/s | {p_rps:.0} req/s | {:.0}% of direct |",
        100.0 * p_rps / d_rps
    );
    println!(
        "| revoke-all → first 401 | | median {}, worst {} | |",
        ms(percentile(&revocations, 0.5)),
        ms(*revocations.last().unwrap())
    );
    println!("| agent resident memory | | idle {} KiB, after load {} KiB | |", idle_rss, loaded_rss);
}
