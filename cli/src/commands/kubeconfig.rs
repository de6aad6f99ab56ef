//! `lanyard cluster kubeconfig add|remove|list`: the caller's Lanyard
//! contexts in their kubeconfig file (see [`crate::kubeconfig`]).

use lanyard_core::wire::ErrorCode;
use serde_json::json;

use crate::api::{Api, cluster_path};
use crate::cli::Kubeconfig;
use crate::config::SessionInfo;
use crate::error::{ApiError, Result};
use crate::kubeconfig;
use crate::output::{Format, Table, note, print_json};

pub fn run(cmd: Kubeconfig, format: Format) -> Result<()> {
    let path = kubeconfig::path()?;
    match cmd {
        Kubeconfig::Add { cluster, set_current } => {
            let session = crate::session::current()?;
            let api = Api::new(&session)?;
            let cluster = api.resolve_cluster(&cluster)?;
            let me = SessionInfo::from_token(&session.token).email.unwrap_or_else(|| "<your email>".into());
            let yaml = api
                .get_text(&cluster_path(&cluster.id, &["kubeconfig"]))
                .map_err(|e| e.hint_on(403, |a| no_access_hint(a, cluster.name.as_str(), &me)))?;
            let expected = kubeconfig::Expected {
                control_plane: &session.control_plane,
                cluster_id: &cluster.id,
                cluster_name: &cluster.name,
            };
            let context = kubeconfig::merge_file(&path, &yaml, &expected, set_current)?;
            match format {
                Format::Json => print_json(&json!({"context": context, "kubeconfig": path, "current": set_current})),
                Format::Table => {
                    note(&format!("Added context {context} to {}", path.display()));
                    if set_current {
                        note(&format!("Switched to context {context}"));
                    } else {
                        note(&format!(
                            "Use it with `kubectl --context {context} …` or `kubectl config use-context {context}`"
                        ));
                    }
                }
            }
            if !on_path("lanyard") {
                note(
                    "warning: kubectl runs `lanyard` from PATH to get tokens, and it is not on PATH: install it or add its directory to PATH",
                );
            }
        }
        Kubeconfig::Remove { cluster } => {
            let removed = kubeconfig::remove_from_file(&path, &cluster)?;
            match format {
                Format::Json => print_json(&json!({"removed": removed, "kubeconfig": path})),
                Format::Table => {
                    for r in &removed {
                        note(&format!(
                            "Removed context {} from {}{}",
                            r.context,
                            path.display(),
                            if r.current { " (it was current; current-context is now unset)" } else { "" }
                        ));
                    }
                }
            }
        }
        Kubeconfig::List => {
            let doc = kubeconfig::load(&path)?;
            let contexts = kubeconfig::lanyard_contexts(&doc);
            match format {
                Format::Json => print_json(&json!({"kubeconfig": path, "contexts": contexts})),
                Format::Table => {
                    let mut t =
                        Table::new(&["CURRENT", "CONTEXT", "CLUSTER ID", "NAMESPACE", "SERVER", "CONTROL PLANE"]);
                    for c in contexts {
                        t.row(vec![
                            if c.current { "*".into() } else { String::new() },
                            c.context,
                            c.cluster_id.unwrap_or_default(),
                            c.namespace.unwrap_or_default(),
                            c.server.unwrap_or_default(),
                            c.control_plane.unwrap_or_default(),
                        ]);
                    }
                    t.print();
                }
            }
        }
    }
    Ok(())
}

/// What to do when the caller holds no grant on `cluster`.
/// The next step after a `403` on a token or kubeconfig, by its code: the
/// server's message says why (no grant, deactivated, another sign-in), so
/// the hint says who can change it.
pub fn no_access_hint(error: &ApiError, cluster: &str, me: &str) -> String {
    match error.code {
        ErrorCode::Forbidden => format!(
            "only an organisation admin can change this; for access they run: \
             lanyard cluster access grant {cluster} --email {me} --role view --namespace <namespace>"
        ),
        _ => "ask an organisation admin".into(),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
