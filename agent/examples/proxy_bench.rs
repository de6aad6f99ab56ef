//! The access proxy's cost and its revocation latency, against a real
//! kube-apiserver, in one run:
//!
//! ```sh
//! bash scripts/build && target/debug/examples/proxy_bench [REQUESTS SECONDS TRIALS WATCHES]
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
//! 5. A watch delivering 1,000 events: with 1,000 ConfigMaps in a namespace,
//!    a watch without a resource version starts with one `ADDED` event per
//!    object; the time from the request to the 1,000th event, direct and
//!    through the proxy, alternating, WATCHES times each (default 10).
//! 6. kubectl as a member runs it: `kubectl get configmap` with the member's
//!    kubeconfig (exec plugin, through the proxy) and the same command with
//!    the cluster admin's kubeconfig (direct), each as the first call of a
//!    fresh shell (no discovery or token cache: the plugin mints) and again
//!    with both caches warm. The CLI is the release build when
//!    `target/release/lanyard` exists (`bash scripts/bench` builds it).
//!
//! Everything runs on this machine (kube-apiserver, etcd, control plane,
//! agent and clients share its cores), so the ratios are the figures to
//! compare. It prints a table; it asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::access::{AccessEnv, Layout};
use lanyard_kube::Identity;
use serde_json::Value;

const NS: &str = "bench";
/// The namespace whose 1,000 ConfigMaps the watch delivers.
const WATCH_NS: &str = "bench-watch";
const WATCH_EVENTS: usize = 1000;
/// kubectl runs per figure (the cold ones mint, and minting is rate limited).
const KUBECTL_RUNS: usize = 8;
/// Members who take turns in the revocation trials (30 mints a minute each).
const REVOKERS: usize = 4;
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

/// Open a watch of `WATCH_NS`'s ConfigMaps and read it until the
/// `WATCH_EVENTS`th event; the time from the request to that event.
fn watch_time(target: &Target, client: &reqwest::blocking::Client) -> Duration {
    let base = target.url.split("/api/").next().unwrap();
    let url = format!("{base}/api/v1/namespaces/{WATCH_NS}/configmaps?watch=1");
    let started = Instant::now();
    let mut req = client.get(&url);
    for (name, value) in &target.headers {
        req = req.header(name, value);
    }
    let resp = req.send().expect("a watch");
    assert_eq!(resp.status().as_u16(), 200, "watch of {url}");
    let mut lines = std::io::BufReader::new(resp).lines();
    for n in 0..WATCH_EVENTS {
        let line = lines.next().unwrap_or_else(|| panic!("the watch ended after {n} events")).expect("an event");
        assert!(line.starts_with("{\"type\":\"ADDED\""), "event {n}: {}", &line[..line.len().min(200)]);
    }
    started.elapsed()
}

/// `WATCH_EVENTS` ConfigMaps in `WATCH_NS`, created in one kubectl call.
fn fill_watch_namespace(env: &AccessEnv, dir: &Path) {
    env.namespace(WATCH_NS);
    let items: Vec<Value> = (0..WATCH_EVENTS)
        .map(|i| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:04}"), "namespace": WATCH_NS}, "data": {"k": "v"}})
        })
        .collect();
    let list = dir.join("configmaps.json");
    std::fs::write(&list, serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()).unwrap();
    env.kube.kubectl_ok(Identity::Admin, ["create", "-f", list.to_str().unwrap(), "-o", "name"]).unwrap();
}

/// Time `command` to exit; it must succeed.
fn timed(mut command: Command) -> Duration {
    let started = Instant::now();
    let out = command.output().expect("run kubectl");
    let took = started.elapsed();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    took
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
    let watches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

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
    // Members taking turns: each trial mints, and minting is rate limited per member.
    let revokers: Vec<(String, String)> = (0..REVOKERS)
        .map(|i| {
            let email = format!("revoke-{i}@acme.example");
            let session = env.app.sign_in(&email, "acme");
            (email, session)
        })
        .collect();
    let mut revocations = Vec::with_capacity(trials);
    for trial in 0..trials {
        let (email, session) = &revokers[trial % REVOKERS];
        let id = env.grant(email, "view", Some(NS));
        let token = mint(&env, session);
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

    // A watch delivering 1,000 events, alternating direct and proxied.
    let scratch = tempfile::tempdir().unwrap();
    fill_watch_namespace(&env, scratch.path());
    let watcher = env.grant(email, "view", Some(WATCH_NS));
    env.wait_status(&watcher, "applied");
    let watch_token = mint(&env, &session);
    let proxied_watch =
        Target { headers: vec![("authorization".into(), format!("Bearer {watch_token}"))], ..proxied.clone() };
    let (d_client, p_client) = (direct.client(), proxied_watch.client());
    watch_time(&direct, &d_client);
    watch_time(&proxied_watch, &p_client);
    let (mut d_watch, mut p_watch) = (Vec::with_capacity(watches), Vec::with_capacity(watches));
    for _ in 0..watches {
        d_watch.push(watch_time(&direct, &d_client));
        p_watch.push(watch_time(&proxied_watch, &p_client));
    }
    d_watch.sort();
    p_watch.sort();

    // kubectl, as a member's shell runs it.
    let kubectl_user = "kubectl@acme.example";
    let member = env.member(kubectl_user);
    let viewer = env.grant(kubectl_user, "view", Some(NS));
    env.wait_status(&viewer, "applied");
    member.add_kubeconfig();
    let release_cli = lanyard_test_support::repo_root().join("target/release");
    let cli = if release_cli.join("lanyard").exists() { "release" } else { "debug" };
    let get = ["get", "configmap", "probe", "-n", NS, "-o", "name"];
    let cache = member.kubeconfig().parent().unwrap().join("cache");
    let as_member = || {
        let mut command = member.kubectl_command(&get);
        if cli == "release" {
            let path = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{path}", release_cli.display()));
        }
        command
    };
    let admin_cache = scratch.path().join("admin-cache");
    let as_admin = || {
        let mut command = Command::new(lanyard_kube::kubectl_program());
        command.arg("--kubeconfig").arg(env.kube.admin_kubeconfig()).arg("--cache-dir").arg(&admin_cache).args(get);
        command
    };
    let (mut m_cold, mut m_warm, mut a_cold, mut a_warm) = (vec![], vec![], vec![], vec![]);
    for _ in 0..KUBECTL_RUNS {
        let _ = std::fs::remove_dir_all(&cache);
        m_cold.push(timed(as_member()));
        m_warm.push(timed(as_member()));
        let _ = std::fs::remove_dir_all(&admin_cache);
        a_cold.push(timed(as_admin()));
        a_warm.push(timed(as_admin()));
    }
    // The warm figures over more runs (nothing mints).
    for _ in 0..KUBECTL_RUNS * 2 {
        m_warm.push(timed(as_member()));
        a_warm.push(timed(as_admin()));
    }
    for v in [&mut m_cold, &mut m_warm, &mut a_cold, &mut a_warm] {
        v.sort();
    }

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
    let (dw, pw) = (percentile(&d_watch, 0.5), percentile(&p_watch, 0.5));
    let per_s = |d: Duration| WATCH_EVENTS as f64 / d.as_secs_f64();
    println!(
        "| watch delivering {WATCH_EVENTS} events, median of {watches} | {} ({:.0} events/s) | {} ({:.0} events/s) | {} ({:.0}% of direct) |",
        ms(dw),
        per_s(dw),
        ms(pw),
        per_s(pw),
        diff(dw, pw),
        100.0 * per_s(pw) / per_s(dw)
    );
    println!(
        "| watch delivering {WATCH_EVENTS} events, worst | {} | {} | {} |",
        ms(*d_watch.last().unwrap()),
        ms(*p_watch.last().unwrap()),
        diff(*d_watch.last().unwrap(), *p_watch.last().unwrap())
    );
    println!();
    println!(
        "kubectl `get configmap probe` start to exit ({KUBECTL_RUNS} cold runs, {} warm; {cli} CLI):",
        KUBECTL_RUNS * 3
    );
    println!();
    println!("| kubectl call | admin, direct (static token) | member, through the proxy (exec plugin) | difference |");
    println!("|---|---|---|---|");
    let (ac, mc) = (percentile(&a_cold, 0.5), percentile(&m_cold, 0.5));
    let (aw, mw) = (percentile(&a_warm, 0.5), percentile(&m_warm, 0.5));
    println!(
        "| first call in a fresh shell (no discovery or token cache), median | {} | {} | {} |",
        ms(ac),
        ms(mc),
        diff(ac, mc)
    );
    println!("| warm caches, median | {} | {} | {} |", ms(aw), ms(mw), diff(aw, mw));
    println!(
        "| warm caches, p99 | {} | {} | {} |",
        ms(percentile(&a_warm, 0.99)),
        ms(percentile(&m_warm, 0.99)),
        diff(percentile(&a_warm, 0.99), percentile(&m_warm, 0.99))
    );
}
