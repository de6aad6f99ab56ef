//! The agent's own API, under `/agent/v1/clusters/{cluster_id}/`:
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `heartbeat` | [`wire::Heartbeat`] → [`wire::HeartbeatReply`] |
//! | POST | `jobs/lease` | the jobs after the acknowledged cursor (at most [`LEASE_MAX`]): [`wire::Lease`] |
//! | POST | `jobs/ack` | [`wire::Ack`]: jobs up to `through` are done |
//! | POST | `reports` | [`wire::Reports`]: each grant applied or failed |
//! | GET | `state` | [`wire::AccessState`]: the revocation epoch and every live grant |
//!
//! Authentication is the cluster's agent credential as a bearer token,
//! compared by hash in constant time with the cluster's valid credentials
//! (the registration's and those of rotations, see
//! [`Store::check_agent_credential`]): a credential of cluster A is worthless
//! on cluster B. A wrong, replaced or retired credential, an unknown and a
//! deleted cluster all get the same `401`, so ids cannot be probed. It is
//! decided from the request head ([`super::admit`]), before the body is read.
//!
//! Reconcile is level-triggered, so a lease is simply a read of the
//! unacknowledged jobs: two agents leasing the same jobs both converge the
//! cluster to the same state.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::endpoint::{Endpoint, Env, check_method};
use crate::error::ApiError;
use crate::http::{Bearer, Request, Response};
use crate::ids::{ClusterId, GrantId, MemberId};
use crate::model::Observed;
use crate::rbac::{self, DesiredGrant};
use crate::records::{ClusterRecord, Heartbeat};
use crate::store::Store;
use crate::wire::{self, ReportState};

/// Most jobs one lease returns.
pub const LEASE_MAX: i64 = 500;
/// Longest error text kept per failed grant.
pub const MAX_ERROR_CHARS: usize = 2048;
/// The largest proxy certificate a heartbeat may publish.
pub const MAX_PROXY_CA_BYTES: usize = 16 * 1024;
/// Longest agent credential considered at all.
const MAX_CREDENTIAL_BYTES: usize = 256;

/// The method and the agent credential, from the request head: the cluster
/// whose credential the request carries, or the one `401` for every failure.
pub(super) fn authenticate(endpoint: Endpoint, head: &Request, env: &Env) -> Result<ClusterRecord, ApiError> {
    check_method(endpoint, head)?;
    let refused = || {
        ApiError::Unauthenticated(
            "the agent credential is not valid for this cluster; if it was rotated, give the agent the newest \
             credential (or have an admin run `lanyard cluster credential rotate CLUSTER`)"
                .into(),
        )
    };
    let credential = match head.bearer() {
        Bearer::Token(c) if c.len() <= MAX_CREDENTIAL_BYTES => c,
        Bearer::Token(_) | Bearer::Malformed | Bearer::Absent => return Err(refused()),
    };
    let store = Store::new(env.kv, env.clock);
    let id = head.param("cluster_id").and_then(ClusterId::parse).ok_or_else(refused)?;
    let cluster = store.cluster(&id)?.ok_or_else(refused)?;
    if store.check_agent_credential(&cluster, credential, env.now)? { Ok(cluster) } else { Err(refused()) }
}

/// `jobs`: lease (`…/lease`) or acknowledge (`…/ack`).
pub(super) fn jobs(req: &Request, _: &Env, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    if req.path.ends_with("/ack") { ack(req, store, c) } else { lease(store, c) }
}

pub(super) fn heartbeat(req: &Request, env: &Env, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let body: wire::Heartbeat = req.json_or_default()?;
    let version = body.version.map(|v| v.chars().take(64).collect());
    if let Some(pem) = &body.proxy_ca_pem
        && (pem.len() > MAX_PROXY_CA_BYTES || !crate::records::is_pem_certificates(pem))
    {
        return Err(ApiError::validation(
            "proxy_ca_pem",
            format!("proxy_ca_pem must be PEM-encoded certificates of at most {} KiB", MAX_PROXY_CA_BYTES / 1024),
        ));
    }
    store.record_heartbeat(&c.id, &Heartbeat { at: env.now, version, proxy_ca_pem: body.proxy_ca_pem })?;
    let reply = wire::HeartbeatReply {
        cluster_id: c.id.clone(),
        revocation_epoch: store.epoch(&c.id)?,
        offline_after_seconds: Config::new(env.vars).agent_offline_after()?,
    };
    Ok(Response::json(200, &reply))
}

fn lease(store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let acked = store.acked_jobs(&c.id)?;
    let jobs = store.jobs_after(&c.id, acked, LEASE_MAX)?;
    let through = jobs.last().map_or(acked, |(n, _)| *n);
    let jobs = jobs.into_iter().map(|(seq, job)| wire::LeasedJob { seq, job }).collect();
    Ok(Response::json(200, &wire::Lease { jobs, acked, through }))
}

fn ack(req: &Request, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let body: wire::Ack = req.json()?;
    if body.through < 0 {
        return Err(ApiError::validation("through", "through must not be negative"));
    }
    let acked = store.ack_jobs(&c.id, body.through)?;
    Ok(Response::json(200, &wire::AckReply { acked }))
}

pub(super) fn reports(req: &Request, env: &Env, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let body: wire::Reports = req.json()?;
    let results: Vec<(GrantId, Observed)> = body
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
    Ok(Response::json(200, &wire::ReportsReply { recorded, ignored: results.len() - recorded }))
}

/// The access state the agent enforces: live grants of members who are not
/// deactivated (a deactivation ends access here at once, even before its
/// grants are deleted).
pub(super) fn state(_: &Request, _: &Env, store: &Store, c: &ClusterRecord) -> Result<Response, ApiError> {
    let epoch = store.epoch(&c.id)?;
    let grants = store.grants_at(&c.id, epoch)?;
    let members: BTreeSet<&MemberId> = grants.iter().map(|g| &g.grant.terms.member_id).collect();
    let members: Vec<&MemberId> = members.into_iter().collect();
    let deactivated = store.deactivated_members(&c.org, &members)?;
    let grants: Vec<DesiredGrant> = grants
        .into_iter()
        .filter(|g| !deactivated.contains(&g.grant.terms.member_id))
        .map(|g| DesiredGrant {
            user: rbac::kube_user(&g.grant.terms.email),
            namespace: g.grant.terms.scope.namespace().cloned(),
            id: g.grant.id,
            role: g.grant.terms.role,
        })
        .collect();
    Ok(Response::json(200, &wire::AccessState { cluster_id: c.id.clone(), revocation_epoch: epoch, grants }))
}
