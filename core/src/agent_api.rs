//! The agent's own API, under `/agent/v1/clusters/{cluster_id}/`:
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `heartbeat` | `{"version"?}` → the revocation epoch and the offline threshold |
//! | POST | `jobs/lease` | the jobs after the acknowledged cursor (at most [`LEASE_MAX`]) |
//! | POST | `jobs/ack` | `{"through": n}`: jobs up to `n` are done |
//! | POST | `reports` | `{"results": [{"grant_id", "state": "applied"\|"failed", "error"?}]}` |
//! | GET | `state` | the revocation epoch and every live grant as a [`DesiredGrant`] |
//!
//! Authentication is the cluster's agent credential as a bearer token,
//! compared by hash in constant time with the cluster's valid credentials
//! (the registration's and those of rotations, see
//! [`Store::check_agent_credential`]): a credential of cluster A is worthless
//! on cluster B. A wrong, replaced or retired credential, an unknown and a
//! deleted cluster all get the same `401`, so ids cannot be probed.
//!
//! Reconcile is level-triggered, so a lease is simply a read of the
//! unacknowledged jobs: two agents leasing the same jobs both converge the
//! cluster to the same state.

use serde::Deserialize;

use crate::config::Config;
use crate::endpoint::{Endpoint, Env, check_method};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::model::Observed;
use crate::rbac::{self, DesiredGrant};
use crate::records::{ClusterRecord, Heartbeat};
use crate::store::Store;

/// Most jobs one lease returns.
pub const LEASE_MAX: i64 = 500;
/// Longest error text kept per failed grant.
pub const MAX_ERROR_CHARS: usize = 2048;

/// What is decided from the request head alone, before the body is read:
/// the method and the agent credential. An unauthenticated request is
/// answered without reading its body (it may be up to 1 MiB).
pub(crate) fn precheck(endpoint: Endpoint, head: &Request, store: &Store, now: u64) -> Result<ClusterRecord, ApiError> {
    check_method(endpoint, head)?;
    authenticate_agent(head, store, now)
}

pub(crate) fn serve(endpoint: Endpoint, req: &Request, env: &Env) -> Result<Response, ApiError> {
    let store = Store::new(env.kv, env.clock);
    let cluster = precheck(endpoint, req, &store, env.now)?;
    let config = Config::new(env.vars);
    match endpoint {
        Endpoint::AgentHeartbeat => heartbeat(req, env, &store, &config, &cluster),
        Endpoint::AgentJobs if req.path.ends_with("/ack") => ack(req, &store, &cluster),
        Endpoint::AgentJobs => lease(&store, &cluster),
        Endpoint::AgentReports => reports(req, env, &store, &cluster),
        Endpoint::AgentState => state(&store, &cluster),
        _ => Err(ApiError::NotFound("no endpoint at this path".into())),
    }
}

fn authenticate_agent(req: &Request, store: &Store, now: u64) -> Result<ClusterRecord, ApiError> {
    let refused = || {
        ApiError::Unauthenticated(
            "the agent credential is not valid for this cluster; if it was rotated, give the agent the newest \
             credential (or have an admin run `lanyard cluster credential rotate CLUSTER`)"
                .into(),
        )
    };
    let credential = req.bearer_token().flatten().filter(|c| c.len() <= 256).ok_or_else(refused)?;
    let cluster = store.cluster(req.param("cluster_id").unwrap_or(""))?.ok_or_else(refused)?;
    if store.check_agent_credential(&cluster, credential, now)? { Ok(cluster) } else { Err(refused()) }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    version: Option<String>,
}

fn heartbeat(
    req: &Request,
    env: &Env,
    store: &Store,
    config: &Config,
    c: &ClusterRecord,
) -> Result<Response, ApiError> {
    let body: HeartbeatBody = if matches!(&req.body, crate::http::Body::Complete(b) if b.is_empty()) {
        HeartbeatBody::default()
    } else {
        req.json()?
    };
    let version = body.version.map(|v| v.chars().take(64).collect());
    store.record_heartbeat(&c.id, &Heartbeat { at: env.now, version })?;
    Ok(Response::json(
        200,
        &serde_json::json!({
            "cluster_id": c.id,
            "revocation_epoch": store.epoch(&c.id)?,
            "offline_after_seconds": config.agent_offline_after()?,
        }),
    ))
}

fn lease(store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let acked = store.acked_jobs(&c.id)?;
    let jobs = store.jobs_after(&c.id, acked, LEASE_MAX)?;
    let through = jobs.last().map_or(acked, |(n, _)| *n);
    let jobs: Vec<_> = jobs.into_iter().map(|(seq, job)| serde_json::json!({ "seq": seq, "job": job })).collect();
    Ok(Response::json(200, &serde_json::json!({ "jobs": jobs, "acked": acked, "through": through })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    through: i64,
}

fn ack(req: &Request, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let body: AckBody = req.json()?;
    if body.through < 0 {
        return Err(ApiError::validation("through", "through must not be negative"));
    }
    let acked = store.ack_jobs(&c.id, body.through)?;
    Ok(Response::json(200, &serde_json::json!({ "acked": acked })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportsBody {
    results: Vec<ReportBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    grant_id: String,
    state: ReportState,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReportState {
    Applied,
    Failed,
}

fn reports(req: &Request, env: &Env, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let body: ReportsBody = req.json()?;
    let results: Vec<(String, Observed)> = body
        .results
        .into_iter()
        .map(|r| {
            let observed = match r.state {
                ReportState::Applied => Observed::Applied { at: env.now },
                ReportState::Failed => {
                    let error = r.error.unwrap_or_else(|| "the agent reported a failure without detail".into());
                    Observed::Failed { at: env.now, error: error.chars().take(MAX_ERROR_CHARS).collect() }
                }
            };
            (r.grant_id, observed)
        })
        .collect();
    let recorded = store.record_reports(&c.id, &results)?;
    Ok(Response::json(200, &serde_json::json!({ "recorded": recorded, "ignored": results.len() - recorded })))
}

/// The access state the agent enforces: live grants of members who are not
/// deactivated (a deactivation ends access here at once, even before its
/// grants are deleted).
fn state(store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let epoch = store.epoch(&c.id)?;
    let grants = store.grants_at(&c.id, epoch)?;
    let members: std::collections::BTreeSet<&str> = grants.iter().map(|g| g.grant.member_id.as_str()).collect();
    let members: Vec<&str> = members.into_iter().collect();
    let deactivated = store.deactivated_members(&c.org, &members)?;
    let grants: Vec<DesiredGrant> = grants
        .into_iter()
        .filter(|g| !deactivated.contains(&g.grant.member_id))
        .map(|g| DesiredGrant {
            user: rbac::kube_user(&g.grant.email),
            id: g.grant.id,
            role: g.grant.role,
            namespace: g.grant.namespace,
        })
        .collect();
    Ok(Response::json(200, &serde_json::json!({ "cluster_id": c.id, "revocation_epoch": epoch, "grants": grants })))
}
