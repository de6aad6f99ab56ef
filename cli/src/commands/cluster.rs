//! `lanyard cluster list|delete`, `lanyard cluster credential rotate`,
//! `lanyard cluster access …`: the organisation's clusters, their agent
//! credentials, and who has access to them (all but `list` need an admin).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{Api, Grant, check_grant_id, cluster_path, parse_field};
use crate::cli::Access;
use crate::config;
use crate::error::{CliError, Result};
use crate::output::{Format, Table, note, print_json};

pub fn list(format: Format) -> Result<()> {
    let api = Api::new(&config::load_session()?)?;
    let body = api.clusters_json()?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let clusters: Vec<crate::api::Cluster> = parse_field(&body, "clusters")?;
    let mut t = Table::new(&["NAME", "ID", "KIND", "AGENT"]);
    for c in clusters {
        t.row(vec![c.name, c.id, c.kind, if c.agent.online { "online" } else { "offline" }.into()]);
    }
    t.print();
    Ok(())
}

/// `lanyard cluster delete CLUSTER [--yes]`.
pub fn delete(name_or_id: &str, yes: bool, format: Format) -> Result<()> {
    let api = Api::new(&config::load_session()?)?;
    let cluster = api.resolve_cluster(name_or_id)?;
    confirm(Irreversible::DeleteCluster, &cluster.name, yes)?;
    api.delete(&cluster_path(&cluster.id, &[])).map_err(admin_only)?;
    match format {
        Format::Json => print_json(&json!({"cluster": cluster.id, "deleted": true})),
        Format::Table => eprintln!(
            "Deleted cluster {} ({}): its grants, tokens and agent credential no longer work, and the name can be \
             registered again. Uninstall its agent; the bindings it applied stay on the cluster until you delete \
             them there (`kubectl delete rolebindings,clusterrolebindings -A -l {}={}`)",
            cluster.name,
            cluster.id,
            lanyard_core::rbac::CLUSTER_LABEL,
            cluster.id
        ),
    }
    Ok(())
}

/// `lanyard cluster credential rotate CLUSTER`: the new credential goes to
/// stdout alone (so it can be piped into a Secret), the advice to stderr.
pub fn rotate_credential(name_or_id: &str, previous_valid_for: u64, format: Format) -> Result<()> {
    let api = Api::new(&config::load_session()?)?;
    let cluster = api.resolve_cluster(name_or_id)?;
    let body = api
        .post_json(
            &cluster_path(&cluster.id, &["agent-credential"]),
            &json!({"previous_valid_for_seconds": previous_valid_for}),
        )
        .map_err(admin_only)
        .map_err(|e| e.hint_on(422, |_| "--previous-valid-for takes 0 to 86400 seconds".into()))?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let credential: String = parse_field(&body, "agent_credential")?;
    let until: String = parse_field(&body, "previous_valid_until")?;
    println!("{credential}");
    eprintln!(
        "The new agent credential of {} is on stdout, shown this once (Lanyard keeps only its hash). Put it in the \
         agent's Secret and restart the agent:\n  \
         kubectl -n lanyard-system create secret generic lanyard-agent --from-file=credential=FILE \
         --dry-run=client -o yaml | kubectl apply -f -\n  \
         kubectl -n lanyard-system rollout restart deployment/lanyard-agent\n\
         The old credential works until {until}, or until the agent first uses the new one.",
        cluster.name
    );
    Ok(())
}

/// Admin-only calls: a 403 says who can do it.
fn admin_only(e: CliError) -> CliError {
    e.hint_on(403, |_| "managing access needs an organisation admin: ask one to run this command".into())
}

fn grants_table(grants: &[Grant]) -> Table {
    let mut t = Table::new(&["ID", "EMAIL", "ROLE", "SCOPE", "NAMESPACE", "STATUS", "ERROR"]);
    for g in grants {
        t.row(vec![
            g.id.clone(),
            g.email.clone(),
            g.role.clone(),
            g.scope.clone(),
            g.namespace.clone().unwrap_or_default(),
            g.status.clone(),
            g.error.clone().unwrap_or_default(),
        ]);
    }
    t
}

pub fn access(cmd: Access, format: Format) -> Result<()> {
    let api = Api::new(&config::load_session()?)?;
    match cmd {
        Access::List { cluster } => {
            let cluster = api.resolve_cluster(&cluster)?;
            let body = api.grants_json(&cluster.id).map_err(admin_only)?;
            match format {
                Format::Json => print_json(&body),
                Format::Table => {
                    let grants: Vec<Grant> = parse_field(&body, "grants")?;
                    if grants.is_empty() {
                        note(&format!(
                            "No grants on {}; add one with `lanyard cluster access grant {} --email E --role view --namespace N`",
                            cluster.name, cluster.name
                        ));
                    } else {
                        grants_table(&grants).print();
                    }
                }
            }
        }
        Access::Grant { cluster, email, role, namespace, cluster_scope: _ } => {
            let cluster = api.resolve_cluster(&cluster)?;
            let mut body = json!({"email": email, "role": role.as_str(), "scope": "cluster"});
            if let Some(ns) = &namespace {
                body["scope"] = "namespace".into();
                body["namespace"] = ns.as_str().into();
            }
            let created = api
                .post_json(&cluster_path(&cluster.id, &["access", "grants"]), &body)
                .map_err(admin_only)
                .map_err(|e| {
                    let name = cluster.name.clone();
                    e.hint_on(409, move |a| match a.code.as_str() {
                        "duplicate_grant" => format!("`lanyard cluster access list {name}` shows the grant that exists"),
                        _ => format!("cluster {name} does not support access grants"),
                    })
                    .hint_on(422, |a| match a.code.as_str() {
                        "member_not_eligible" => "the member must sign in once (e.g. `lanyard login`) and be active before they can be granted access".into(),
                        _ => "fix the argument named by `field` and retry".into(),
                    })
                })?;
            match format {
                Format::Json => print_json(&created),
                Format::Table => {
                    let grant: Grant = serde_json::from_value(created).map_err(|e| {
                        CliError::Transport(format!("the control plane answered an unexpected grant: {e}"))
                    })?;
                    grants_table(std::slice::from_ref(&grant)).print();
                    note(&format!(
                        "Granted; `lanyard cluster access status {} --wait` waits until the agent applies it",
                        cluster.name
                    ));
                }
            }
        }
        Access::Revoke { cluster, grant_id, email } => {
            if let Some(id) = &grant_id {
                check_grant_id(id, false)?;
            }
            let cluster = api.resolve_cluster(&cluster)?;
            let ids: Vec<String> = match (grant_id, email) {
                (Some(id), _) => vec![id],
                (None, Some(email)) => {
                    let body = api.grants_json(&cluster.id).map_err(admin_only)?;
                    let grants: Vec<Grant> = parse_field(&body, "grants")?;
                    let wanted = email.trim().to_lowercase();
                    let ids: Vec<String> = grants.into_iter().filter(|g| g.email == wanted).map(|g| g.id).collect();
                    if ids.is_empty() {
                        return Err(CliError::NotFound(format!(
                            "{wanted} holds no grant on {}: `lanyard cluster access list {}` shows the grants",
                            cluster.name, cluster.name
                        )));
                    }
                    for id in &ids {
                        check_grant_id(id, true)?;
                    }
                    ids
                }
                (None, None) => return Err(CliError::Usage("name a grant id or --email".into())),
            };
            for id in &ids {
                api.delete(&cluster_path(&cluster.id, &["access", "grants", id])).map_err(admin_only).map_err(|e| {
                    e.hint_on(404, |_| format!("`lanyard cluster access list {}` shows the live grants", cluster.name))
                })?;
            }
            match format {
                Format::Json => print_json(&json!({"cluster": cluster.id, "revoked": ids})),
                Format::Table => {
                    note(&format!("Revoked {} grant(s) on {}: {}", ids.len(), cluster.name, ids.join(", ")))
                }
            }
        }
        Access::RevokeAll { cluster, yes } => {
            let cluster = api.resolve_cluster(&cluster)?;
            confirm(Irreversible::RevokeAll, &cluster.name, yes)?;
            let body = api
                .post_json(&cluster_path(&cluster.id, &["access", "revoke-all"]), &Value::Object(Default::default()))
                .map_err(admin_only)?;
            match format {
                Format::Json => print_json(&body),
                Format::Table => note(&format!(
                    "Revoked every grant ({}) and every token on {}; revocation epoch is now {}",
                    body["revoked"], cluster.name, body["revocation_epoch"]
                )),
            }
        }
        Access::Status { cluster, wait, timeout } => {
            let cluster = api.resolve_cluster(&cluster)?;
            status(&api, &cluster, wait, Duration::from_secs(timeout), format)?;
        }
    }
    Ok(())
}

/// The commands that cannot be undone, and so ask first.
enum Irreversible {
    /// `lanyard cluster delete`.
    DeleteCluster,
    /// `lanyard cluster access revoke-all`.
    RevokeAll,
}

/// Unless `yes` (`--yes`), ask on the terminal to type the cluster's name
/// before `action` on the cluster `name`; refuse (exit 2) without a terminal,
/// and on any other answer, saying that nothing was done.
fn confirm(action: Irreversible, name: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    // The command, what it does, and what did not happen when refused.
    let (command, what, undone) = match action {
        Irreversible::DeleteCluster => (
            "cluster delete",
            format!("deletes cluster {name} with its grants, tokens and agent credential"),
            "deleted",
        ),
        Irreversible::RevokeAll => {
            ("revoke-all", format!("revokes every grant and every token on cluster {name}"), "revoked")
        }
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!("{command} {what}: pass --yes to confirm (no terminal to ask on)")));
    }
    eprint!("This {}. Type the cluster name to confirm: ", crate::output::escape(&what));
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(CliError::io("reading the confirmation"))?;
    if line.trim() != name {
        return Err(CliError::Usage(format!("confirmation refused: nothing was {undone}")));
    }
    Ok(())
}

fn status(api: &Api, cluster: &crate::api::Cluster, wait: bool, timeout: Duration, format: Format) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let (body, grants) = loop {
        let body = api.grants_json(&cluster.id).map_err(admin_only)?;
        let grants: Vec<Grant> = parse_field(&body, "grants")?;
        let pending = grants.iter().any(|g| g.status == "pending");
        let now = Instant::now();
        if !wait || !pending || now >= deadline {
            break (body, grants);
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(500)));
    };
    let count = |s: &str| grants.iter().filter(|g| g.status == s).count();
    let (pending, failed, offline) = (count("pending"), count("failed"), count("cluster_offline"));
    match format {
        Format::Json => {
            let mut out = body.clone();
            out["settled"] = (pending == 0).into();
            print_json(&out);
        }
        Format::Table => {
            grants_table(&grants).print();
            note(&format!(
                "{} grant(s): {} applied, {pending} pending, {failed} failed, {offline} cluster_offline; agent {}",
                grants.len(),
                count("applied"),
                if body["agent_online"] == true { "online" } else { "offline" }
            ));
        }
    }
    if !wait {
        return Ok(());
    }
    if pending > 0 {
        return Err(CliError::Failed(format!(
            "timed out after {} s with {pending} grant(s) still pending: is the agent of {} running? (`lanyard cluster list`)",
            timeout.as_secs(),
            cluster.name
        )));
    }
    if failed + offline > 0 {
        return Err(CliError::Failed(format!(
            "{failed} grant(s) failed (see ERROR) and {offline} are cluster_offline (the agent of {} is silent)",
            cluster.name
        )));
    }
    Ok(())
}
