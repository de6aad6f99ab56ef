//! The way to the kube-apiserver: an HTTP/1.1 client (upgrades need it, and
//! a pool of keep-alive connections serves ordinary requests as well) over
//! rustls with the cluster's CA, and the proxy's own ServiceAccount
//! credential, which is added to every request here and nowhere else.
//!
//! The credential is a bearer token (a static one, or a token file such as
//! the projected ServiceAccount token, read again every minute because the
//! kubelet rotates it) or a client certificate (in the TLS configuration).
//! Other kubeconfig authentication (exec plugins, auth providers, basic
//! auth) is refused at start: the proxy's credential must not depend on a
//! program that could prompt.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http::HeaderValue;
use http::uri::{PathAndQuery, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt as _;
use secrecy::ExposeSecret as _;
use tokio::time::Instant;

/// How often a token file is read again.
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

/// The kube-apiserver, as the proxy reaches it.
pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    /// The server's scheme and authority, and a path prefix (often empty).
    base: Uri,
    credential: Credential,
}

enum Credential {
    /// A client certificate, in the TLS configuration: nothing to add.
    Certificate,
    Token(HeaderValue),
    TokenFile {
        path: PathBuf,
        cached: RwLock<(HeaderValue, Instant)>,
    },
}

impl Upstream {
    /// The upstream of a kubeconfig or in-cluster configuration.
    pub fn new(config: &kube::Config) -> Result<Upstream> {
        let auth = &config.auth_info;
        if auth.exec.is_some() || auth.auth_provider.is_some() || auth.username.is_some() {
            bail!(
                "the proxy's Kubernetes credential must be a bearer token, a token file or a client certificate \
                 (its kubeconfig uses an exec plugin, auth provider or basic auth)"
            );
        }
        let credential = if let Some(token) = &auth.token {
            Credential::Token(bearer(token.expose_secret())?)
        } else if let Some(path) = &auth.token_file {
            let path = PathBuf::from(path);
            let value = read_token_file(&path)?;
            Credential::TokenFile { path, cached: RwLock::new((value, Instant::now())) }
        } else if auth.client_certificate.is_some() || auth.client_certificate_data.is_some() {
            Credential::Certificate
        } else {
            bail!("the proxy's Kubernetes configuration has no credential (token, token file or client certificate)");
        };
        let connector = config.rustls_https_connector().context("the TLS configuration for the kube-apiserver")?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Upstream { client, base: config.cluster_url.clone(), credential })
    }

    /// Where a request for `path_and_query` goes.
    pub fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri> {
        let prefix = self.base.path().trim_end_matches('/');
        let rest = path_and_query.map_or("/", PathAndQuery::as_str);
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(format!("{prefix}{rest}").parse().context("the request's path")?);
        Ok(Uri::from_parts(parts)?)
    }

    /// The `Authorization` value to add, if the credential is a token.
    pub fn authorization(&self) -> Option<HeaderValue> {
        match &self.credential {
            Credential::Certificate => None,
            Credential::Token(value) => Some(value.clone()),
            Credential::TokenFile { path, cached } => {
                let (value, at) = cached.read().unwrap_or_else(|e| e.into_inner()).clone();
                if at.elapsed() < TOKEN_FILE_REFRESH {
                    return Some(value);
                }
                // A file that cannot be read now keeps the last token (it was valid a minute ago).
                let fresh = read_token_file(path).unwrap_or(value);
                *cached.write().unwrap_or_else(|e| e.into_inner()) = (fresh.clone(), Instant::now());
                Some(fresh)
            }
        }
    }

    /// Send `req`.
    pub async fn send(
        &self,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }
}

fn read_token_file(path: &std::path::Path) -> Result<HeaderValue> {
    let token = std::fs::read_to_string(path).with_context(|| format!("reading the token file {}", path.display()))?;
    bearer(token.trim())
}

fn bearer(token: &str) -> Result<HeaderValue> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).context("the proxy's token is not a valid header value")?;
    value.set_sensitive(true);
    Ok(value)
}
