//! The OpenAPI document as a fuzzer's input: schemathesis generates requests
//! from `openapi.yaml` (valid ones and ones the schema refuses) and sends them
//! to a running control plane, as an admin, a member and a cluster's agent in
//! turn. It fails when the server answers 5xx, answers a status or a body the
//! document does not give, refuses a request the document allows, or accepts
//! one it refuses. The generation is seeded, and bounded so the three runs
//! take well under a minute.
//!
//! schemathesis is a Python program, installed by `bash scripts/schemathesis-deps`
//! (which `scripts/test` runs); this test finds it through `LANYARD_SCHEMATHESIS`
//! and fails, never skips, without it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use lanyard_api_tests::{App, repo_root};
use serde_json::json;

/// The seed of every run: the same requests each time.
const SEED: u64 = 20261202;
/// Test cases per operation and phase.
const MAX_EXAMPLES: u32 = 8;

fn schemathesis() -> String {
    match std::env::var("LANYARD_SCHEMATHESIS") {
        Ok(st) if !st.is_empty() => {
            assert!(
                Path::new(&st).is_file(),
                "LANYARD_SCHEMATHESIS={st} is not a file: run `bash scripts/schemathesis-deps`"
            );
            st
        }
        _ => panic!(
            "LANYARD_SCHEMATHESIS is not set: run `bash scripts/schemathesis-deps` and set LANYARD_SCHEMATHESIS to \
             the path it prints last (`bash scripts/test` does both)"
        ),
    }
}

/// What one run found.
struct Run {
    who: &'static str,
    cases: u64,
    seconds: f64,
    failed: bool,
    output: String,
}

/// The seeded organisation: a standard cluster the runs work on, a second one
/// for the operations that end a cluster or its credential (so the first
/// stays usable), an invited member for the member patch (so nobody the runs
/// authenticate as is deactivated), and the three credentials.
struct Seed {
    app: App,
    admin: String,
    member: String,
    agent: String,
    cluster: String,
    doomed: String,
    invitee: String,
}

fn seed() -> Seed {
    let app = App::start();
    let admin = app.admin("acme");
    let member = app.sign_in("dev@acme.example", "acme");
    let (cluster, agent) = app.register(&admin, "prod", "standard");
    let doomed = app.cluster(&admin, "doomed", "standard");
    app.grant_access(&admin, &cluster, "dev@acme.example", "edit", Some("team-a"));
    app.post("/api/v1/members", &admin, json!({"email": "invitee@acme.example"})).expect(201);
    let invitee = app.member_id(&admin, "invitee@acme.example");
    Seed { app, admin, member, agent, cluster, doomed, invitee }
}

/// The run's configuration (schemathesis.toml).
fn config(seed: &Seed, token: &str) -> String {
    let Seed { cluster, doomed, invitee, .. } = seed;
    format!(
        r#"
seed = {SEED}
workers = 1
hooks = "{hooks}"
headers = {{ Authorization = "Bearer {token}" }}
request-timeout = 10
max-redirects = 0

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"
# A NUL in a JSON string is refused by serde like any control character would
# not be; header values cannot carry one at all.
allow-x00 = false

[phases.stateful]
max-steps = 12
# Only the document's own links (cluster → grant → list → delete), not the
# hundreds schemathesis would infer from names.
inference.algorithms = []

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
negative_data_rejection.enabled = true
positive_data_acceptance.enabled = true
# The 8192-byte body limit (413) is a rule of the serialised body, which no
# JSON Schema keyword states.
positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429"]
use_after_free.enabled = true
schema_valid_requests_pass_validation.enabled = true

# The path parameters name the seeded resources, so requests reach the
# endpoints' logic instead of their 404s (the coverage phase still sends
# ids of no resource).
[parameters]
"path.cluster_id" = "{cluster}"
"path.member_id" = "{invitee}"

# Deleting a cluster or rotating its agent credential would end the seeded one.
[[operations]]
include-operation-id = ["deleteCluster", "rotateAgentCredential"]
parameters = {{ "path.cluster_id" = "{doomed}" }}

# `422 member_not_eligible` answers a valid grant for an email that is not an
# active member: no schema can say which emails are; the hooks' check still
# fails any `422 validation_failed`.
[[operations]]
include-operation-id = ["createGrant", "createGrantPortal"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "413", "422", "429"]

# The sign-in callback is the identity provider's redirect back: its `state`
# is valid only if this browser began a sign-in that minted it, which no
# generator can produce, so any other answers the documented 400 page.
[[operations]]
include-operation-id = ["authCallback"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "413", "429"]
"#,
        hooks = repo_root().join("tests/api/schemathesis/hooks.py").display(),
    )
}

fn run(st: &str, seed: &Seed, who: &'static str, token: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("schemathesis.toml");
    std::fs::write(&config_path, config(seed, token)).unwrap();
    let started = Instant::now();
    let out = Command::new(st)
        .arg("--config-file")
        .arg(&config_path)
        .arg("run")
        .arg(repo_root().join("openapi.yaml"))
        .args(["--url", &seed.app.url])
        .args(["--no-color", "--output-truncate", "false"])
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let seconds = started.elapsed().as_secs_f64();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Run { who, cases: cases(&output), seconds, failed: !out.status.success(), output }
}

/// The number of test cases a run generated, from its summary
/// (`Test cases:` then `  N generated, …`).
fn cases(output: &str) -> u64 {
    let mut lines = output.lines().skip_while(|l| l.trim() != "Test cases:").skip(1);
    let line = lines.next().unwrap_or_default();
    line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn the_server_keeps_the_documents_promises_under_generated_requests() {
    let st = schemathesis();
    let seed = seed();
    let runs: Vec<Run> =
        [("admin", seed.admin.clone()), ("member", seed.member.clone()), ("agent", seed.agent.clone())]
            .into_iter()
            .map(|(who, token)| run(&st, &seed, who, &token))
            .collect();
    for r in &runs {
        eprintln!(
            "schemathesis as {}: {} cases in {:.1} s{}",
            r.who,
            r.cases,
            r.seconds,
            if r.failed { ", FAILED" } else { "" }
        );
    }
    let failed: Vec<&Run> = runs.iter().filter(|r| r.failed).collect();
    for r in &failed {
        eprintln!("===== schemathesis as {} =====\n{}", r.who, r.output);
    }
    assert!(
        failed.is_empty(),
        "schemathesis found failures as {:?} (reports above)",
        failed.iter().map(|r| r.who).collect::<Vec<_>>()
    );
    for r in &runs {
        assert!(r.cases > 0, "schemathesis as {} ran no test case:\n{}", r.who, r.output);
    }
}
