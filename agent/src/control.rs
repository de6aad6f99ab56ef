//! The agent's client for the control plane's agent API
//! (`/agent/v1/clusters/{id}/…`), authenticated by the cluster's agent
//! credential. The credential is never logged. Each call makes one attempt;
//! a failure is a [`CallError`] that says whether it is worth retrying soon
//! (the callers back off, see `backoff.rs`).

use std::time::Duration;

use anyhow::Result;
use lanyard_core::rbac::DesiredGrant;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::backoff::Failure;

/// Why a control-plane call failed. Each message starts with the call's name.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{call}: cannot reach the control plane at {url}: {}; check the control plane's URL and the network", chain(.source))]
    Unreachable { call: &'static str, url: String, source: reqwest::Error },
    #[error(
        "{call}: the control plane refused the agent credential (401: {body}); it was revoked or replaced, or the \
         cluster was removed. Put the cluster's current agent credential in the agent's Secret (or \
         LANYARD_AGENT_CREDENTIAL) and restart the agent"
    )]
    Refused { call: &'static str, body: String },
    #[error("{call}: the control plane answered {status}: {body}")]
    Status { call: &'static str, status: StatusCode, body: String },
    #[error("{call}: unexpected response from the control plane: {}", chain(.source))]
    Response { call: &'static str, source: reqwest::Error },
}

impl CallError {
    /// For the backoff: only a refused credential is not worth retrying soon.
    pub fn failure(&self) -> Failure {
        match self {
            CallError::Refused { .. } => Failure::Refused,
            _ => Failure::Retryable,
        }
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message hides the cause, e.g. "connection refused").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most this much of an error body goes into a message.
const BODY_EXCERPT: usize = 300;

/// What the control plane wants on the cluster.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessState {
    pub revocation_epoch: i64,
    pub grants: Vec<DesiredGrant>,
}

/// Unacknowledged jobs: only a wake-up signal for a level-triggered agent.
#[derive(Debug, Clone, Deserialize)]
pub struct Lease {
    pub jobs: Vec<serde_json::Value>,
    pub through: i64,
}

/// A grant's outcome, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Failed(String),
}

#[derive(Clone)]
pub struct ControlPlane {
    http: reqwest::Client,
    url: String,
    base: String,
    credential: String,
}

impl ControlPlane {
    pub fn new(url: &str, cluster_id: &str, credential: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("lanyard-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ControlPlane {
            http,
            url: url.trim_end_matches('/').to_owned(),
            base: format!("{}/agent/v1/clusters/{cluster_id}", url.trim_end_matches('/')),
            credential,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        call: &'static str,
    ) -> Result<T, CallError> {
        let resp = req.bearer_auth(&self.credential).send().await.map_err(|e| CallError::Unreachable {
            call,
            url: self.url.clone(),
            source: e.without_url(),
        })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(BODY_EXCERPT).collect();
            return Err(if status == StatusCode::UNAUTHORIZED {
                CallError::Refused { call, body }
            } else {
                CallError::Status { call, status, body }
            });
        }
        resp.json().await.map_err(|source| CallError::Response { call, source })
    }

    pub async fn heartbeat(&self) -> Result<(), CallError> {
        let body = json!({ "version": env!("CARGO_PKG_VERSION") });
        let _: serde_json::Value =
            self.call(self.http.post(format!("{}/heartbeat", self.base)).json(&body), "heartbeat").await?;
        Ok(())
    }

    pub async fn lease(&self) -> Result<Lease, CallError> {
        self.call(self.http.post(format!("{}/jobs/lease", self.base)).json(&json!({})), "lease jobs").await
    }

    pub async fn ack(&self, through: i64) -> Result<(), CallError> {
        let req = self.http.post(format!("{}/jobs/ack", self.base)).json(&json!({ "through": through }));
        let _: serde_json::Value = self.call(req, "acknowledge jobs").await?;
        Ok(())
    }

    pub async fn state(&self) -> Result<AccessState, CallError> {
        self.call(self.http.get(format!("{}/state", self.base)), "read access state").await
    }

    pub async fn report(&self, results: &[(String, Outcome)]) -> Result<(), CallError> {
        // Keep each request well under the agent API's 1 MiB body limit.
        for chunk in results.chunks(1000) {
            let results: Vec<_> = chunk
                .iter()
                .map(|(id, outcome)| match outcome {
                    Outcome::Applied => json!({ "grant_id": id, "state": "applied" }),
                    Outcome::Failed(e) => json!({ "grant_id": id, "state": "failed", "error": e }),
                })
                .collect();
            let req = self.http.post(format!("{}/reports", self.base)).json(&json!({ "results": results }));
            let _: serde_json::Value = self.call(req, "report results").await?;
        }
        Ok(())
    }
}
