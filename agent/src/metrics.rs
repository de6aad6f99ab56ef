//! The agent's metrics, in the Prometheus text format (served on
//! `/metrics`): proxied requests by status code, their latency to the
//! response head, upgraded sessions open, the age of the access state, and
//! the reconcile worker's results.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::clock::WallClock;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters shared by the proxy, the sync loop and the worker.
#[derive(Debug, Default)]
pub struct Metrics {
    by_code: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    upgrades_open: AtomicI64,
    /// Unix seconds of the last access-state sync; 0 before the first.
    synced_at: AtomicU64,
    reconciled: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// A request answered with `code`, its head after `latency`.
    pub fn request(&self, code: u16, latency: Duration) {
        *self.by_code.lock().unwrap_or_else(|e| e.into_inner()).entry(code).or_default() += 1;
        let seconds = latency.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// An upgraded session opened (`+1`) or closed (`-1`).
    pub fn upgrade(&self, delta: i64) {
        self.upgrades_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// The access state was synced at `now` (unix seconds).
    pub fn access_synced(&self, now: u64) {
        self.synced_at.store(now, Ordering::Relaxed);
    }

    /// The worker reported `n` grants with `result` (`applied` or `failed`).
    pub fn reconciled(&self, result: &'static str, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        *self.reconciled.lock().unwrap_or_else(|e| e.into_inner()).entry(result).or_default() += n;
    }

    /// The text exposition at `now` (unix seconds).
    pub fn render(&self, now: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP lanyard_proxy_requests_total Requests the access proxy answered, by HTTP status code.\n");
        out.push_str("# TYPE lanyard_proxy_requests_total counter\n");
        for (code, n) in self.by_code.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "lanyard_proxy_requests_total{{code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP lanyard_proxy_request_duration_seconds Time from a request to its response's head.\n");
        out.push_str("# TYPE lanyard_proxy_request_duration_seconds histogram\n");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let n = bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "lanyard_proxy_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}");
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "lanyard_proxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "lanyard_proxy_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "lanyard_proxy_request_duration_seconds_count {count}");
        out.push_str("# HELP lanyard_proxy_upgrades_open Upgraded sessions (exec, attach, port-forward) open now.\n");
        out.push_str("# TYPE lanyard_proxy_upgrades_open gauge\n");
        let _ = writeln!(out, "lanyard_proxy_upgrades_open {}", self.upgrades_open.load(Ordering::Relaxed));
        out.push_str(
            "# HELP lanyard_proxy_access_state_age_seconds Seconds since the access state was last synced (-1: never).\n",
        );
        out.push_str("# TYPE lanyard_proxy_access_state_age_seconds gauge\n");
        let synced_at = self.synced_at.load(Ordering::Relaxed);
        let age = if synced_at == 0 { -1 } else { i64::try_from(now.saturating_sub(synced_at)).unwrap_or(i64::MAX) };
        let _ = writeln!(out, "lanyard_proxy_access_state_age_seconds {age}");
        out.push_str("# HELP lanyard_reconcile_results_total Grants the reconcile worker reported, by result.\n");
        out.push_str("# TYPE lanyard_reconcile_results_total counter\n");
        let reconciled = self.reconciled.lock().unwrap_or_else(|e| e.into_inner());
        for result in ["applied", "failed"] {
            let n = reconciled.get(result).copied().unwrap_or_default();
            let _ = writeln!(out, "lanyard_reconcile_results_total{{result=\"{result}\"}} {n}");
        }
        out
    }
}

/// Serve `GET /metrics` (and `/healthz`) in plain HTTP/1.1 on `listener`
/// until `shutdown`: bind it to an address only the scraper reaches.
pub async fn serve(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    clock: std::sync::Arc<dyn WallClock>,
    mut shutdown: watch::Receiver<bool>,
) {
    info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics listening");
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (metrics, clock) = (metrics.clone(), clock.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (metrics, clock) = (metrics.clone(), clock.clone());
                async move {
                    let (status, body) = match (req.method(), req.uri().path()) {
                        (&http::Method::GET, "/metrics") => (StatusCode::OK, metrics.render(clock.unix_now())),
                        (&http::Method::GET, "/healthz") => (StatusCode::OK, "ok\n".to_owned()),
                        _ => (StatusCode::NOT_FOUND, "not found: the agent serves /metrics and /healthz\n".to_owned()),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            if let Err(e) = builder.serve_connection(TokioIo::new(tcp), service).await {
                debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_codes_buckets_sessions_age_and_results() {
        let m = Metrics::default();
        m.request(200, Duration::from_micros(800));
        m.request(200, Duration::from_millis(30));
        m.request(401, Duration::from_micros(100));
        m.upgrade(1);
        m.access_synced(1_000);
        m.reconciled("applied", 3);
        let text = m.render(1_004);
        for line in [
            "lanyard_proxy_requests_total{code=\"200\"} 2",
            "lanyard_proxy_requests_total{code=\"401\"} 1",
            "lanyard_proxy_request_duration_seconds_bucket{le=\"0.001\"} 2",
            "lanyard_proxy_request_duration_seconds_bucket{le=\"0.05\"} 3",
            "lanyard_proxy_request_duration_seconds_count 3",
            "lanyard_proxy_upgrades_open 1",
            "lanyard_proxy_access_state_age_seconds 4",
            "lanyard_reconcile_results_total{result=\"applied\"} 3",
            "lanyard_reconcile_results_total{result=\"failed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(Metrics::default().render(5).contains("lanyard_proxy_access_state_age_seconds -1\n"));
    }
}
