//! `lanyard cluster token`: the kubectl exec plugin. Prints the
//! `ExecCredential` the control plane mints (`POST
//! /api/v1/clusters/{id}/k8s-token`), reusing a cached one until shortly
//! before it expires, once per kubectl process ([`crate::token_cache`]).
//! Only the credential goes to stdout; everything else goes to stderr, which
//! kubectl shows.
//!
//! The session is renewed silently when it has expired ([`crate::session`]);
//! a cached credential minted with the saved session is handed out first,
//! without renewing (the provider is not asked while the cluster token lasts).
//! When the session cannot be renewed, the error is one line telling to run
//! `lanyard login`: kubectl shows it as it is.
//!
//! `--cluster` is a cluster id (what the kubeconfigs Lanyard writes carry) or
//! a cluster name, resolved to its id through the cluster list; anything else
//! is refused before any request is made ([`ClusterRef`]).

use lanyard_core::wire::ExecCredential;
use serde_json::json;

use crate::api::{Api, ClusterRef, cluster_path};
use crate::config::{self, SessionInfo};
use crate::error::{CliError, Result};
use crate::fsutil::unix_now;
use crate::{session, token_cache};

pub fn run(control_plane: &str, cluster: &str) -> Result<()> {
    let wanted = ClusterRef::parse(cluster)?;
    let control_plane = config::normalize_url(control_plane)?;
    let saved = config::load_session()?;
    if control_plane != saved.control_plane {
        return Err(CliError::OtherControlPlane(format!(
            "this kubeconfig mints tokens at {control_plane}, but you are logged in to {}: run `lanyard login --control-plane {control_plane}`",
            saved.control_plane
        )));
    }
    let dir = token_cache::dir()?;
    // The kubectl that runs us (see token_cache: a second request from it means its token was refused).
    let requester = std::os::unix::process::parent_id();
    if let ClusterRef::Id(id) = &wanted
        && let Some(credential) =
            token_cache::reuse(&token_cache::file(&dir, &control_plane, id), &saved.token, unix_now(), requester)
    {
        println!("{credential}");
        return Ok(());
    }
    let session = session::current()?;
    let api = Api::new(&session)?;
    let (cluster_id, cluster) = match wanted {
        ClusterRef::Id(id) => (id, cluster.to_owned()),
        ClusterRef::Name(name) => (api.resolve_cluster(name.as_str())?.id, name.to_string()),
    };
    let cache = token_cache::file(&dir, &control_plane, &cluster_id);
    if let Some(credential) = token_cache::reuse(&cache, &session.token, unix_now(), requester) {
        println!("{credential}");
        return Ok(());
    }
    let me = SessionInfo::from_token(&session.token).email.unwrap_or_else(|| "<your email>".into());
    let credential = api
        .post_json(&cluster_path(&cluster_id, &["k8s-token"]), &json!({}))
        .map_err(|e| e.hint_on(403, |a| crate::commands::kubeconfig::no_access_hint(a, &cluster, &me)))?;
    // Checked against the wire type, then printed as it came (kubectl reads it).
    crate::api::parse::<ExecCredential>(&credential, "ExecCredential")?;
    // A cache that cannot be written costs a mint per command, nothing more.
    if let Err(e) = token_cache::write(&cache, &session.token, &credential, requester) {
        crate::output::note(&format!("lanyard: warning: cannot cache the token: {e}"));
    }
    println!("{credential}");
    Ok(())
}
