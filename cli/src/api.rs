//! The control plane's HTTP API, as the CLI uses it: a blocking client with
//! timeouts that sends the session as `Authorization: Bearer` and turns the
//! API's error JSON (`{"error": {"code", "message", "field"?}}`) into
//! [`CliError::Api`]. Transport errors name the URL, never the token.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Session;
use crate::error::{ApiError, CliError, Result};

/// A cluster, as `GET /api/v1/clusters` lists it (unknown fields ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub agent: Agent,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Agent {
    #[serde(default)]
    pub online: bool,
}

/// A grant, with its reconcile status.
#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    pub id: String,
    pub email: String,
    pub role: String,
    pub scope: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// A client for one control plane and session.
pub struct Api {
    base: String,
    token: String,
    http: Client,
}

impl Api {
    pub fn new(session: &Session) -> Result<Api> {
        Api::with_token(&session.control_plane, &session.token)
    }

    pub fn with_token(control_plane: &str, token: &str) -> Result<Api> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("lanyard-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            base: control_plane.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, req: RequestBuilder) -> Result<Response> {
        let resp = req.bearer_auth(&self.token).send().map_err(|e| {
            // reqwest's message names the URL (never the Authorization header).
            CliError::Transport(format!(
                "cannot reach the control plane at {}: {e}; check the URL (`lanyard whoami`) and that it is running",
                self.base
            ))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(error_from(resp))
    }

    /// `GET path` → JSON.
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let resp = self.send(self.http.get(self.url(path)))?;
        read_json(resp, &self.base)
    }

    /// `GET path` → text.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let resp = self.send(self.http.get(self.url(path)))?;
        resp.text()
            .map_err(|e| CliError::Transport(format!("reading the answer of {}: {e}", self.base)))
    }

    /// `POST path` with a JSON body → JSON.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        let resp = self.send(req)?;
        read_json(resp, &self.base)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.send(self.http.delete(self.url(path)))?;
        Ok(())
    }

    /// The organisation's clusters, as listed by the server.
    pub fn clusters_json(&self) -> Result<Value> {
        self.get_json("/api/v1/clusters")
    }

    pub fn clusters(&self) -> Result<Vec<Cluster>> {
        let body = self.clusters_json()?;
        parse_field(&body, "clusters")
    }

    /// The cluster named `name_or_id` (its name, or its `c_…` id).
    pub fn resolve_cluster(&self, name_or_id: &str) -> Result<Cluster> {
        let clusters = self.clusters()?;
        clusters
            .into_iter()
            .find(|c| c.id == name_or_id || c.name == name_or_id)
            .ok_or_else(|| CliError::Api {
                api: ApiError {
                    status: 404,
                    code: "not_found".into(),
                    message: format!("no cluster named {name_or_id:?} in your organisation"),
                    field: None,
                    retry_after: None,
                },
                hint: Some("`lanyard cluster list` shows the clusters you can see".into()),
            })
    }

    /// The cluster's grants and `agent_online` (admins).
    pub fn grants_json(&self, cluster_id: &str) -> Result<Value> {
        self.get_json(&format!("/api/v1/clusters/{cluster_id}/access/grants"))
    }
}

/// `body[field]` as `T`.
pub fn parse_field<T: serde::de::DeserializeOwned>(body: &Value, field: &str) -> Result<T> {
    serde_json::from_value(body.get(field).cloned().unwrap_or(Value::Null)).map_err(|e| {
        CliError::Transport(format!(
            "the control plane answered an unexpected `{field}`: {e}"
        ))
    })
}

fn read_json(resp: Response, base: &str) -> Result<Value> {
    let text = resp
        .text()
        .map_err(|e| CliError::Transport(format!("reading the answer of {base}: {e}")))?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        CliError::Transport(format!(
            "{base} answered something that is not JSON ({e}): is it a Lanyard control plane?"
        ))
    })
}

/// The API error of a non-success response.
fn error_from(resp: Response) -> CliError {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body: Value = resp
        .text()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let err = &body["error"];
    let text = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_owned);
    let api = ApiError {
        status,
        code: text("code").unwrap_or_else(|| "http_error".into()),
        message: text("message")
            .unwrap_or_else(|| format!("the control plane answered HTTP {status}")),
        field: text("field"),
        retry_after,
    };
    let hint = match status {
        401 => Some(
            "your session was rejected (expired or not trusted): log in again with `lanyard login`"
                .to_owned(),
        ),
        429 => Some(match retry_after {
            Some(s) => format!("rate limited: retry in {s} s"),
            None => "rate limited: retry in a little while".to_owned(),
        }),
        s if s >= 500 => {
            Some("the control plane failed; retry, and if it persists tell its operator".to_owned())
        }
        _ => None,
    };
    CliError::Api { api, hint }
}
