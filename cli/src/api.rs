//! The control plane's HTTP API, as the CLI uses it: a blocking client with
//! timeouts that sends the session as `Authorization: Bearer` and turns the
//! API's error JSON (`{"error": {"code", "message", "field"?}}`) into
//! [`CliError::Api`]. Transport errors name the URL, never the token.
//!
//! Every path is built by [`path`], which percent-encodes each segment, from
//! ids that were checked first: a cluster argument is a `c_…` id or a cluster
//! name ([`ClusterRef`]), a grant argument a `g_…` id, and the ids the server
//! answers with are checked the same way before they are used in a path. So
//! no argument and no answer can add a segment (`/`), climb out of its own
//! (`..`) or start a query (`?`).

use std::time::Duration;

use lanyard_core::ids::IdKind;
use lanyard_core::model::Namespace;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
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

/// What a path segment may carry unencoded: RFC 3986's unreserved characters
/// except `.` (so that no segment can be `.` or `..`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// The API path `/s1/s2/…`, each segment percent-encoded.
pub fn path(segments: &[&str]) -> String {
    segments.iter().map(|s| format!("/{}", utf8_percent_encode(s, SEGMENT))).collect()
}

/// The path of a cluster's sub-resource: `/api/v1/clusters/{id}/{rest…}`.
pub fn cluster_path(cluster_id: &str, rest: &[&str]) -> String {
    let mut segments = vec!["api", "v1", "clusters", cluster_id];
    segments.extend_from_slice(rest);
    path(&segments)
}

/// A cluster as a command line names it: its id or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRef {
    /// `c_` and 24 hex digits.
    Id(String),
    /// A DNS-1123 label, as cluster names are.
    Name(String),
}

impl ClusterRef {
    /// `arg` as a cluster id or name; anything else is a usage error (exit 2).
    pub fn parse(arg: &str) -> Result<ClusterRef> {
        if IdKind::Cluster.accepts(arg) {
            Ok(ClusterRef::Id(arg.to_owned()))
        } else if Namespace::parse(arg).is_ok() {
            Ok(ClusterRef::Name(arg.to_owned()))
        } else {
            Err(CliError::Usage(format!(
                "{arg:?} is neither a cluster id (c_ and 24 hex digits) nor a cluster name (lowercase letters, digits and -): \
                 `lanyard cluster list` shows the clusters' names and ids"
            )))
        }
    }
}

/// `id` if it is a grant id: from the command line a usage error (exit 2)
/// otherwise, from the server's answer a transport error (exit 1).
pub fn check_grant_id(id: &str, from_server: bool) -> Result<&str> {
    if IdKind::Grant.accepts(id) {
        Ok(id)
    } else if from_server {
        Err(CliError::Transport(format!(
            "the control plane answered an invalid grant id {id:?}: nothing was revoked; is it a Lanyard control plane?"
        )))
    } else {
        Err(CliError::Usage(format!(
            "{id:?} is not a grant id (g_ and 24 hex digits): `lanyard cluster access list CLUSTER` shows the grants' ids"
        )))
    }
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
        Ok(Api { base: control_plane.trim_end_matches('/').to_owned(), token: token.to_owned(), http })
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
        resp.text().map_err(|e| CliError::Transport(format!("reading the answer of {}: {e}", self.base)))
    }

    /// `POST path` with a JSON body → JSON.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let req = self.http.post(self.url(path)).header("content-type", "application/json").body(body.to_string());
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
        self.get_json(&path(&["api", "v1", "clusters"]))
    }

    pub fn clusters(&self) -> Result<Vec<Cluster>> {
        let body = self.clusters_json()?;
        parse_field(&body, "clusters")
    }

    /// The cluster named `name_or_id` (its name, or its `c_…` id; anything
    /// else is a usage error), with an id that is a cluster id.
    pub fn resolve_cluster(&self, name_or_id: &str) -> Result<Cluster> {
        let wanted = ClusterRef::parse(name_or_id)?;
        let clusters = self.clusters()?;
        let found = clusters.into_iter().find(|c| match &wanted {
            ClusterRef::Id(id) => c.id == *id,
            ClusterRef::Name(name) => c.name == *name,
        });
        if let Some(c) = &found
            && !IdKind::Cluster.accepts(&c.id)
        {
            return Err(CliError::Transport(format!(
                "the control plane answered an invalid id {:?} for cluster {:?}: is it a Lanyard control plane?",
                c.id, c.name
            )));
        }
        found.ok_or_else(|| CliError::Api {
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
        self.get_json(&cluster_path(cluster_id, &["access", "grants"]))
    }
}

/// `body[field]` as `T`.
pub fn parse_field<T: serde::de::DeserializeOwned>(body: &Value, field: &str) -> Result<T> {
    serde_json::from_value(body.get(field).cloned().unwrap_or(Value::Null))
        .map_err(|e| CliError::Transport(format!("the control plane answered an unexpected `{field}`: {e}")))
}

fn read_json(resp: Response, base: &str) -> Result<Value> {
    let text = resp.text().map_err(|e| CliError::Transport(format!("reading the answer of {base}: {e}")))?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        CliError::Transport(format!("{base} answered something that is not JSON ({e}): is it a Lanyard control plane?"))
    })
}

/// The API error of a non-success response.
fn error_from(resp: Response) -> CliError {
    let status = resp.status().as_u16();
    let retry_after =
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let body: Value = resp.text().ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    let err = &body["error"];
    let text = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_owned);
    let api = ApiError {
        status,
        code: text("code").unwrap_or_else(|| "http_error".into()),
        message: text("message").unwrap_or_else(|| format!("the control plane answered HTTP {status}")),
        field: text("field"),
        retry_after,
    };
    let hint = match status {
        401 => Some("your session was rejected (expired or not trusted): log in again with `lanyard login`".to_owned()),
        429 => Some(match retry_after {
            Some(s) => format!("rate limited: retry in {s} s"),
            None => "rate limited: retry in a little while".to_owned(),
        }),
        s if s >= 500 => Some("the control plane failed; retry, and if it persists tell its operator".to_owned()),
        _ => None,
    };
    CliError::Api { api, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_segment() {
        assert_eq!(path(&["api", "v1", "clusters"]), "/api/v1/clusters");
        assert_eq!(
            cluster_path("c_0123456789abcdef01234567", &["access", "grants", "g_1"]),
            "/api/v1/clusters/c_0123456789abcdef01234567/access/grants/g_1"
        );
        assert_eq!(
            cluster_path("c_X/../../x?y#z", &["k8s-token"]),
            "/api/v1/clusters/c_X%2F%2E%2E%2F%2E%2E%2Fx%3Fy%23z/k8s-token"
        );
        assert_eq!(path(&[".."]), "/%2E%2E");
        assert_eq!(path(&["a%2F b"]), "/a%252F%20b");
    }

    #[test]
    fn cluster_arguments_are_ids_or_names() {
        let id = "c_0123456789abcdef01234567";
        assert_eq!(ClusterRef::parse(id).unwrap(), ClusterRef::Id(id.into()));
        assert_eq!(ClusterRef::parse("prod-1").unwrap(), ClusterRef::Name("prod-1".into()));
        for bad in [
            "",
            "c_X/../../../../api/v1/clusters/c_X/access/revoke-all?",
            "prod/x",
            "..",
            "prod?x",
            "Prod",
            "prod\u{1b}",
            "c_0123456789abcdef01234567/",
        ] {
            let err = ClusterRef::parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{bad:?}");
        }
        assert!(check_grant_id("g_0123456789abcdef01234567", false).is_ok());
        assert!(matches!(check_grant_id("g_1/../x", false), Err(CliError::Usage(_))));
        assert!(matches!(check_grant_id("g_1/../x", true), Err(CliError::Transport(_))));
    }
}
