//! The agent's client for the control plane's agent API
//! (`/agent/v1/clusters/{id}/…`), authenticated by the cluster's agent
//! credential. The credential is never logged.

use std::time::Duration;

use anyhow::{Context, Result};
use lanyard_core::rbac::DesiredGrant;
use serde::Deserialize;
use serde_json::json;

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
            base: format!("{}/agent/v1/clusters/{cluster_id}", url.trim_end_matches('/')),
            credential,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder, what: &str) -> Result<T> {
        let resp = req.bearer_auth(&self.credential).send().await.with_context(|| format!("{what}: control plane unreachable"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("{what}: control plane answered {status}: {}", body.chars().take(300).collect::<String>());
        }
        resp.json().await.with_context(|| format!("{what}: unexpected response"))
    }

    pub async fn heartbeat(&self) -> Result<()> {
        let body = json!({ "version": env!("CARGO_PKG_VERSION") });
        let _: serde_json::Value = self.call(self.http.post(format!("{}/heartbeat", self.base)).json(&body), "heartbeat").await?;
        Ok(())
    }

    pub async fn lease(&self) -> Result<Lease> {
        self.call(self.http.post(format!("{}/jobs/lease", self.base)).json(&json!({})), "lease jobs").await
    }

    pub async fn ack(&self, through: i64) -> Result<()> {
        let req = self.http.post(format!("{}/jobs/ack", self.base)).json(&json!({ "through": through }));
        let _: serde_json::Value = self.call(req, "acknowledge jobs").await?;
        Ok(())
    }

    pub async fn state(&self) -> Result<AccessState> {
        self.call(self.http.get(format!("{}/state", self.base)), "read access state").await
    }

    pub async fn report(&self, results: &[(String, Outcome)]) -> Result<()> {
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
