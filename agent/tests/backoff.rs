//! The agent does not flood a control plane (or a Kubernetes API) that is
//! down or failing: the real agent binary runs for a bounded window against
//! a closed port, a listener that drops every connection, servers answering
//! 503 or 401, and a control plane that fails one call of the reconcile
//! round (state read, report, acknowledgement) or whose cluster API fails;
//! then the attempts are counted. Every wait is a condition with a deadline;
//! the only fixed time is the measured window itself.
//!
//! With the default backoff (500 ms, doubling, jittered between half and all
//! of each step) one failing endpoint gets at most 4 attempts in 5 s: at 0,
//! ≥0.5 s, ≥1.5 s and ≥3.5 s. The tests allow [`HANDFUL`].

mod common;
mod fake;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fake::{Answer, FakeHttp, SlammingDoor};
use lanyard_core::ids::{ClusterId, GrantId};
use lanyard_core::wire;
use lanyard_test_support::{Probe, wait_for};
use serde_json::{Value, json};

/// The measured window.
const WINDOW: Duration = Duration::from_secs(5);
/// The most attempts one failing endpoint may get in [`WINDOW`].
const HANDFUL: usize = 5;
const CLUSTER: &str = "c_0123456789abcdef01234567";
const GRANT: &str = "g_0123456789abcdef01234567";
const CREDENTIAL: &str = "lya_the-agent-credential-must-never-be-logged";

/// The real agent binary, with the default backoff (500 ms … 60 s), the
/// end-to-end tests' fast polling (100 ms), and a heartbeat every second.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(control_plane: &str, kube: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, fake::kubeconfig(kube)).unwrap();
        let log = dir.path().join("agent.log");
        let mut agent = common::agent_command(control_plane, CLUSTER, &kubeconfig, CREDENTIAL);
        agent
            .args(["--heartbeat-seconds", "1", "--poll-millis", "100", "--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("LANYARD_BACKOFF_MIN_MILLIS")
            .env_remove("LANYARD_BACKOFF_MAX_SECONDS");
        Agent { child: Some(common::spawn_logged(agent, &log)), log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines at WARN or ERROR whose `error` starts with `call`.
    fn failures(&self, call: &str) -> usize {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
            .filter(|l| l["fields"]["error"].as_str().is_some_and(|e| e.starts_with(call)))
            .count()
    }

    /// Wait for `started` to report the first attempt, let the window pass
    /// from then, stop the agent (SIGTERM; it must exit cleanly) and return
    /// the window's end.
    fn run_window(&mut self, started: impl Fn(&Agent) -> Option<Instant>) -> Instant {
        let first = wait_for("the agent's first attempt", Duration::from_secs(60), || {
            Ok(match started(self) {
                Some(at) => Probe::Ready(at),
                None => Probe::NotYet(self.log()),
            })
        })
        .unwrap();
        let end = first + WINDOW;
        // The measured window, not a synchronisation: the agent runs for it, then we count.
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        self.stop();
        end
    }

    fn stop(&mut self) {
        let mut child = self.child.take().expect("the agent is running");
        // kill(1): no unsafe code in the tests.
        let sent = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let status = wait_for("the agent to exit on SIGTERM", Duration::from_secs(20), || {
            Ok(match child.try_wait()? {
                Some(status) => Probe::Ready(status),
                None => Probe::NotYet("still running".into()),
            })
        })
        .unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("{e:#}\nlog:\n{}", self.log())
        });
        assert!(status.success(), "the agent did not exit cleanly on SIGTERM: {status}\nlog:\n{}", self.log());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn at_most_a_handful(what: &str, count: usize, agent: &Agent) {
    assert!(count >= 1, "{what}: the agent never tried\nlog:\n{}", agent.log());
    assert!(
        count <= HANDFUL,
        "{what}: {count} attempts in {WINDOW:?}, want at most {HANDFUL}\nlog tail:\n{}",
        tail(&agent.log())
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A Kubernetes API that is never expected to be called, answering 503.
fn unused_kube() -> FakeHttp {
    FakeHttp::start(|_| Answer::new(503, "{}"))
}

/// An answer in the agent API's own wire type.
fn wire(value: &impl serde::Serialize) -> Answer {
    Answer::json(200, &serde_json::to_value(value).unwrap())
}

fn cluster_id() -> ClusterId {
    ClusterId::parse(CLUSTER).unwrap()
}

fn lease_with_a_job() -> Answer {
    let job = wire::Job::GrantCreated { grant_id: GrantId::parse(GRANT).unwrap(), epoch: 0, at: 0 };
    wire(&wire::Lease { jobs: vec![wire::LeasedJob { seq: 1, job }], acked: 0, through: 1 })
}

/// A control plane that is up except for `failing`, which answers 503; the
/// lease always has a job (never acknowledged), so each poll wants a round.
fn control_plane_failing(failing: &'static str, grants: Value) -> FakeHttp {
    FakeHttp::start(move |r| {
        if r.path.ends_with(failing) {
            return Answer::new(503, r#"{"error":{"code":"unavailable","message":"try later"}}"#);
        }
        match r.path.rsplit('/').next().unwrap_or_default() {
            "lease" => lease_with_a_job(),
            "state" => {
                let grants = serde_json::from_value(grants.clone()).unwrap();
                wire(&wire::AccessState { cluster_id: cluster_id(), revocation_epoch: 0, grants })
            }
            "heartbeat" => {
                wire(&wire::HeartbeatReply { cluster_id: cluster_id(), revocation_epoch: 0, offline_after_seconds: 30 })
            }
            "ack" => wire(&wire::AckReply { acked: 1 }),
            "reports" => wire(&wire::ReportsReply { recorded: 1, ignored: 0 }),
            _ => Answer::new(404, r#"{"error":{"code":"not_found","message":"no endpoint at this path"}}"#),
        }
    })
}

/// A Kubernetes API holding no bindings, that accepts every apply (echoing it).
fn empty_kube() -> FakeHttp {
    FakeHttp::start(|r| match r.method.as_str() {
        "GET" => {
            let kind =
                if r.path.ends_with("/clusterrolebindings") { "ClusterRoleBindingList" } else { "RoleBindingList" };
            Answer::json(
                200,
                &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": []}),
            )
        }
        "PATCH" => Answer::new(200, String::from_utf8_lossy(&r.body).into_owned()),
        _ => Answer::json(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}),
        ),
    })
}

#[test]
fn an_unreachable_control_plane_gets_a_handful_of_attempts_not_thousands() {
    // Nothing listens: every attempt is refused at once; counted through the agent's own failure lines.
    let kube = unused_kube();
    let mut agent = Agent::start(&fake::closed_port_url(), &kube.url);
    agent.run_window(|a| (a.failures("lease jobs") > 0).then(Instant::now));
    at_most_a_handful("lease jobs", agent.failures("lease jobs"), &agent);
    at_most_a_handful("heartbeat", agent.failures("heartbeat"), &agent);
    assert_eq!(kube.requests().len(), 0);
}

#[test]
fn a_control_plane_that_drops_every_connection_gets_a_handful_of_connections() {
    let door = SlammingDoor::start();
    let kube = unused_kube();
    let mut agent = Agent::start(&door.url, &kube.url);
    let end = agent.run_window(|_| door.first());
    // Lease and heartbeat together.
    let count = door.count(end);
    assert!(
        count <= 2 * HANDFUL,
        "{count} connections in {WINDOW:?}, want at most {}\nlog tail:\n{}",
        2 * HANDFUL,
        tail(&agent.log())
    );
    at_most_a_handful("lease jobs", agent.failures("lease jobs"), &agent);
}

#[test]
fn a_control_plane_answering_503_gets_a_handful_of_requests_per_endpoint() {
    let control = FakeHttp::start(|_| Answer::new(503, r#"{"error":{"code":"unavailable","message":"overloaded"}}"#));
    let kube = unused_kube();
    let mut agent = Agent::start(&control.url, &kube.url);
    let end = agent.run_window(|_| control.first());
    at_most_a_handful("lease", control.count(Some("POST"), "/jobs/lease", end), &agent);
    at_most_a_handful("heartbeat", control.count(Some("POST"), "/heartbeat", end), &agent);
    // A failed lease starts no round.
    assert_eq!(control.count(None, "/state", end), 0);
    assert_eq!(kube.requests().len(), 0);
}

#[test]
fn pending_jobs_do_not_turn_a_failing_state_read_into_a_flood() {
    let control = control_plane_failing("/state", json!([]));
    let kube = unused_kube();
    let mut agent = Agent::start(&control.url, &kube.url);
    let end = agent.run_window(|_| control.first());
    at_most_a_handful("state", control.count(Some("GET"), "/state", end), &agent);
    // Leasing itself succeeds, so polling goes on at its normal pace.
    let leases = control.count(Some("POST"), "/jobs/lease", end);
    assert!(leases > 2 * HANDFUL, "the agent kept polling: {leases} leases");
    assert_eq!(kube.requests().len(), 0);
}

#[test]
fn kubernetes_api_errors_back_off() {
    let control = control_plane_failing("/never", json!([]));
    let kube = FakeHttp::start(|_| {
        Answer::json(
            503,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503, "reason": "ServiceUnavailable"}),
        )
    });
    let mut agent = Agent::start(&control.url, &kube.url);
    let end = agent.run_window(|_| kube.first());
    at_most_a_handful("Kubernetes API", kube.count(None, "", end), &agent);
    at_most_a_handful("state", control.count(Some("GET"), "/state", end), &agent);
    assert_eq!(control.count(None, "/jobs/ack", end), 0, "a failed round acknowledges nothing");
}

#[test]
fn a_failing_report_backs_off() {
    let grant = json!([{"id": GRANT, "user": "lanyard:dev@acme.example", "role": "view"}]);
    let control = control_plane_failing("/reports", grant);
    let kube = empty_kube();
    let mut agent = Agent::start(&control.url, &kube.url);
    let end = agent.run_window(|_| control.count(None, "/reports", Instant::now()).gt(&0).then(Instant::now));
    at_most_a_handful("reports", control.count(Some("POST"), "/reports", end), &agent);
    at_most_a_handful("apply", kube.count(Some("PATCH"), "", end), &agent);
}

#[test]
fn a_failing_acknowledgement_backs_off() {
    let control = control_plane_failing("/jobs/ack", json!([]));
    let kube = empty_kube();
    let mut agent = Agent::start(&control.url, &kube.url);
    let end = agent.run_window(|_| control.count(None, "/jobs/ack", Instant::now()).gt(&0).then(Instant::now));
    at_most_a_handful("acknowledge", control.count(Some("POST"), "/jobs/ack", end), &agent);
}

#[test]
fn a_revoked_credential_is_reported_plainly_and_retried_at_the_maximum() {
    let control = FakeHttp::start(|_| {
        Answer::json(401, &json!({"error": {"code": "unauthorized", "message": "invalid agent credential"}}))
    });
    let kube = unused_kube();
    let mut agent = Agent::start(&control.url, &kube.url);
    let end = agent.run_window(|_| control.first());
    // At the maximum backoff (60 s by default) there is no second attempt within the window.
    for path in ["/jobs/lease", "/heartbeat"] {
        let count = control.count(Some("POST"), path, end);
        assert_eq!(count, 1, "{path}: {count} attempts in {WINDOW:?} after a 401\nlog tail:\n{}", tail(&agent.log()));
    }
    let log = agent.log();
    assert!(log.contains("refused the agent credential"), "the log must say the credential was refused:\n{log}");
    assert!(log.contains("\"level\":\"ERROR\""), "a refused credential is an error:\n{log}");
    assert!(!log.contains(CREDENTIAL), "the credential leaked into the log");
}
