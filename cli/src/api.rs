//! The control plane's HTTP API, as the CLI uses it: a blocking client with
//! timeouts that sends the session as `Authorization: Bearer` and turns the
//! API's error JSON (`{"error": {"code", "message", "field"?}}`) into
//! [`CliError::Api`]. Transport errors name the URL, never the token.
//!
//! Every path is built by [`path`], which percent-encodes each segment, from
//! ids that were checked first: a cluster argument is a `c_…` id or a cluster
//! name ([`ClusterRef`]), a grant argument a `g_…` id, and the answers are
//! read into the wire types of `lanyard_core::wire`, whose ids are checked
//! when they are read. So no argument and no answer can add a segment (`/`),
//! climb out of its own (`..`) or start a query (`?`).

use std::time::Duration;

use lanyard_core::ids::{ClusterId, GrantId};
use lanyard_core::model::ClusterName;
use lanyard_core::wire::{self, ErrorBody, ErrorCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Session;
use crate::error::{ApiError, CliError, Result};

pub use lanyard_core::wire::{Cluster, Grant};

/// What a path segment may carry unencoded: RFC 3986's unreserved characters
/// except `.` (so that no segment can be `.` or `..`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// The API path `/s1/s2/…`, each segment percent-encoded.
pub fn path(segments: &[&str]) -> String {
    segments.iter().map(|s| format!("/{}", utf8_percent_encode(s, SEGMENT))).collect()
}

/// The path of a cluster's sub-resource: `/api/v1/clusters/{id}/{rest…}`.
pub fn cluster_path(cluster_id: &ClusterId, rest: &[&str]) -> String {
    let mut segments = vec!["api", "v1", "clusters", cluster_id.as_str()];
    segments.extend_from_slice(rest);
    path(&segments)
}

/// A cluster as a command line names it: its id or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRef {
    /// `c_` and 24 hex digits.
    Id(ClusterId),
    /// A DNS-1123 label, as cluster names are.
    Name(ClusterName),
}

impl ClusterRef {
    /// `arg` as a cluster id or name; anything else is a usage error (exit 2).
    pub fn parse(arg: &str) -> Result<ClusterRef> {
        if let Some(id) = ClusterId::parse(arg) {
            Ok(ClusterRef::Id(id))
        } else if let Ok(name) = ClusterName::parse(arg) {
            Ok(ClusterRef::Name(name))
        } else {
            Err(CliError::Usage(format!(
                "{arg:?} is neither a cluster id (c_ and 24 hex digits) nor a cluster name (lowercase letters, digits and -): \
                 `lanyard cluster list` shows the clusters' names and ids"
            )))
        }
    }
}

/// `id` as a grant id, or a usage error (exit 2).
pub fn parse_grant_id(id: &str) -> Result<GrantId> {
    GrantId::parse(id).ok_or_else(|| {
        CliError::Usage(format!(
            "{id:?} is not a grant id (g_ and 24 hex digits): `lanyard cluster access list CLUSTER` shows the grants' ids"
        ))
    })
}

/// A client for one control plane and session.
pub struct Api {
    base: String,
    token: Option<String>,
    http: Client,
}

impl Api {
    pub fn new(session: &Session) -> Result<Api> {
        Api::with_token(&session.control_plane, &session.token)
    }

    pub fn with_token(control_plane: &str, token: &str) -> Result<Api> {
        Api::build(control_plane, Some(token))
    }

    /// A client without a session, for the control plane's public endpoints.
    pub fn anonymous(control_plane: &str) -> Result<Api> {
        Api::build(control_plane, None)
    }

    fn build(control_plane: &str, token: Option<&str>) -> Result<Api> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("lanyard-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api { base: control_plane.trim_end_matches('/').to_owned(), token: token.map(str::to_owned), http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, req: RequestBuilder) -> Result<Response> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let resp = req.send().map_err(|e| {
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

    /// `POST path` with a JSON body (a wire request) → JSON.
    pub fn post_json<B: Serialize>(&self, path: &str, body: &B) -> Result<Value> {
        let body = serde_json::to_string(body)
            .map_err(|e| CliError::Failed(format!("cannot encode the request for {path}: {e}")))?;
        let req = self.http.post(self.url(path)).header("content-type", "application/json").body(body);
        let resp = self.send(req)?;
        read_json(resp, &self.base)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.send(self.http.delete(self.url(path)))?;
        Ok(())
    }

    /// The organisation's clusters, as listed by the server.
    /// Who the session is, as the control plane decides it (checking the session).
    pub fn me(&self) -> Result<wire::Me> {
        parse::<wire::Me>(&self.get_json(&path(&["api", "v1", "me"]))?, "caller")
    }

    pub fn clusters_json(&self) -> Result<Value> {
        self.get_json(&path(&["api", "v1", "clusters"]))
    }

    /// The organisation's clusters.
    pub fn clusters(&self) -> Result<Vec<Cluster>> {
        Ok(parse::<wire::ClusterList>(&self.clusters_json()?, "cluster list")?.clusters)
    }

    /// The cluster named `name_or_id` (its name, or its `c_…` id; anything
    /// else is a usage error).
    pub fn resolve_cluster(&self, name_or_id: &str) -> Result<Cluster> {
        let wanted = ClusterRef::parse(name_or_id)?;
        let clusters = self.clusters()?;
        let found = clusters.into_iter().find(|c| match &wanted {
            ClusterRef::Id(id) => c.id == *id,
            ClusterRef::Name(name) => c.name == *name,
        });
        found.ok_or_else(|| CliError::Api {
            api: ApiError {
                status: 404,
                code: ErrorCode::NotFound,
                message: format!("no cluster named {name_or_id:?} in your organisation"),
                field: None,
                retry_after: None,
            },
            hint: Some("`lanyard cluster list` shows the clusters you can see".into()),
        })
    }

    /// Which identity provider members sign in with (`GET /api/v1/login`,
    /// public): for the deployment, or for the organisation `org`.
    pub fn login_discovery(&self, org: Option<&str>) -> Result<LoginDiscovery> {
        let mut url = reqwest::Url::parse(&self.url(&path(&["api", "v1", "login"])))
            .map_err(|e| CliError::Usage(format!("the control plane URL {} is not usable ({e})", self.base)))?;
        if let Some(org) = org {
            url.query_pairs_mut().append_pair("org", org);
        }
        let resp = self.send(self.http.get(url))?;
        parse(&read_json(resp, &self.base)?, "sign-in discovery")
    }

    /// The cluster's grants and `agent_online` (admins).
    pub fn grants_json(&self, cluster_id: &ClusterId) -> Result<Value> {
        self.get_json(&cluster_path(cluster_id, &["access", "grants"]))
    }
}

/// What `GET /api/v1/login` answers: the issuer and client to sign in with.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LoginDiscovery {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An answer as the wire type `T` (`what` names it in the error).
pub fn parse<T: DeserializeOwned>(body: &Value, what: &str) -> Result<T> {
    T::deserialize(body).map_err(|e| {
        CliError::Transport(format!(
            "the control plane answered an unexpected {what} ({e}): is it a Lanyard control plane of this version?"
        ))
    })
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
    let body: Option<ErrorBody> = resp.text().ok().and_then(|t| serde_json::from_str(&t).ok());
    let api = match body {
        Some(ErrorBody { error }) => {
            ApiError { status, code: error.code, message: error.message, field: error.field, retry_after }
        }
        None => ApiError {
            status,
            code: ErrorCode::Unknown,
            message: format!("the control plane answered HTTP {status}"),
            field: None,
            retry_after,
        },
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
        let id = ClusterId::parse("c_0123456789abcdef01234567").unwrap();
        assert_eq!(
            cluster_path(&id, &["access", "grants", "g_1"]),
            "/api/v1/clusters/c_0123456789abcdef01234567/access/grants/g_1"
        );
        assert_eq!(path(&["c_X/../../x?y#z", "k8s-token"]), "/c_X%2F%2E%2E%2F%2E%2E%2Fx%3Fy%23z/k8s-token");
        assert_eq!(path(&[".."]), "/%2E%2E");
        assert_eq!(path(&["a%2F b"]), "/a%252F%20b");
    }

    #[test]
    fn cluster_arguments_are_ids_or_names() {
        let id = "c_0123456789abcdef01234567";
        assert_eq!(ClusterRef::parse(id).unwrap(), ClusterRef::Id(ClusterId::parse(id).unwrap()));
        assert_eq!(ClusterRef::parse("prod-1").unwrap(), ClusterRef::Name(ClusterName::parse("prod-1").unwrap()));
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
        assert!(parse_grant_id("g_0123456789abcdef01234567").is_ok());
        assert!(matches!(parse_grant_id("g_1/../x"), Err(CliError::Usage(_))));
    }
}
