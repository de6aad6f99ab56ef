//! The agent's client for the control plane's agent API
//! (`/agent/v1/clusters/{id}/…`), authenticated by the cluster's agent
//! credential. The credential is never logged. Each call makes one attempt;
//! a failure is a [`CallError`] that says whether it is worth retrying soon
//! (the callers back off, see `backoff.rs`).

use std::time::Duration;

use anyhow::Result;
use lanyard_core::ids::{ClusterId, GrantId};
use lanyard_core::wire::{
    AccessState, Ack, AckReply, Heartbeat, HeartbeatReply, Lease, Report, ReportState, Reports, ReportsReply,
};
use reqwest::StatusCode;

use crate::backoff::Failure;

/// Why a control-plane call failed. Each message starts with the call's name.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer at all (DNS, connection, TLS, timeout).
    #[error("{call}: cannot reach the control plane at {url}: {}; check the control plane's URL and the network", chain(.source))]
    Unreachable { call: &'static str, url: String, source: reqwest::Error },
    /// 401: the credential was revoked or replaced, or the cluster removed. Not worth retrying soon.
    #[error(
        "{call}: the control plane refused the agent credential (401: {body}); it was revoked or replaced, or the \
         cluster was removed. Put the cluster's current agent credential in the agent's Secret (or \
         LANYARD_AGENT_CREDENTIAL) and restart the agent"
    )]
    Refused { call: &'static str, body: String },
    /// Another error status (a 5xx is transient; a 4xx a bug worth seeing in the log).
    #[error("{call}: the control plane answered {status}: {body}")]
    Status { call: &'static str, status: StatusCode, body: String },
    /// A success whose body is not the message the call expects (protocol drift).
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
    /// The self-signed certificate the access proxy serves, published with every heartbeat.
    proxy_ca_pem: Option<String>,
}

impl ControlPlane {
    pub fn new(url: &str, cluster_id: &ClusterId, credential: String) -> Result<Self> {
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
            proxy_ca_pem: None,
        })
    }

    /// Publish `pem`, the access proxy's self-signed certificate, with every heartbeat.
    pub fn publish_proxy_ca(mut self, pem: Option<String>) -> Self {
        self.proxy_ca_pem = pem;
        self
    }

    /// One authenticated call whose answer is the JSON message `T`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        call: &'static str,
    ) -> Result<T, CallError> {
        let resp = self.send(req.bearer_auth(&self.credential), call).await?;
        resp.json().await.map_err(|source| CallError::Response { call, source })
    }

    /// Send `req`; any status but a success is an error.
    async fn send(&self, req: reqwest::RequestBuilder, call: &'static str) -> Result<reqwest::Response, CallError> {
        let resp = req.send().await.map_err(|e| CallError::Unreachable {
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
        Ok(resp)
    }

    /// Say the agent is alive.
    pub async fn heartbeat(&self) -> Result<HeartbeatReply, CallError> {
        let body =
            Heartbeat { version: Some(env!("CARGO_PKG_VERSION").to_owned()), proxy_ca_pem: self.proxy_ca_pem.clone() };
        self.call(self.http.post(format!("{}/heartbeat", self.base)).json(&body), "heartbeat").await
    }

    /// The unacknowledged jobs.
    pub async fn lease(&self) -> Result<Lease, CallError> {
        let req = self.http.post(format!("{}/jobs/lease", self.base)).header("content-type", "application/json");
        self.call(req.body("{}"), "lease jobs").await
    }

    /// Acknowledge the jobs up to `through`.
    pub async fn ack(&self, through: i64) -> Result<AckReply, CallError> {
        let req = self.http.post(format!("{}/jobs/ack", self.base)).json(&Ack { through });
        self.call(req, "acknowledge jobs").await
    }

    /// What the control plane wants on the cluster.
    pub async fn state(&self) -> Result<AccessState, CallError> {
        self.call(self.http.get(format!("{}/state", self.base)), "read access state").await
    }

    /// The control plane's published token keys (`/.well-known/jwks.json`),
    /// as raw bytes: the caller parses them only when they change.
    pub async fn jwks(&self) -> Result<bytes::Bytes, CallError> {
        const CALL: &str = "read the token keys";
        let resp = self.send(self.http.get(format!("{}/.well-known/jwks.json", self.url)), CALL).await?;
        resp.bytes().await.map_err(|source| CallError::Response { call: CALL, source })
    }

    /// Report grants' outcomes.
    pub async fn report(&self, results: &[(GrantId, Outcome)]) -> Result<(), CallError> {
        // Keep each request well under the agent API's 1 MiB body limit.
        for chunk in results.chunks(1000) {
            let results = chunk
                .iter()
                .map(|(id, outcome)| match outcome {
                    Outcome::Applied => Report { grant_id: id.clone(), state: ReportState::Applied, error: None },
                    Outcome::Failed(e) => {
                        Report { grant_id: id.clone(), state: ReportState::Failed, error: Some(e.clone()) }
                    }
                })
                .collect();
            let req = self.http.post(format!("{}/reports", self.base)).json(&Reports { results });
            let _: ReportsReply = self.call(req, "report results").await?;
        }
        Ok(())
    }
}
