//! `lanyard cluster list|delete`, `lanyard cluster credential rotate`,
//! `lanyard cluster access …`: the organisation's clusters, their agent
//! credentials, and who has access to them (all but `list` need an admin).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use lanyard_core::ids::GrantId;
use lanyard_core::model::{Email, GrantStatus, ScopeKind};
use lanyard_core::wire::{self, CreateGrant, ErrorCode, RotateCredential};
use serde_json::json;

use crate::api::{Api, Grant, cluster_path, parse, parse_grant_id};
use crate::cli::Access;
use crate::error::{CliError, Result};
use crate::output::{Format, Table, note, print_json};

pub fn list(format: Format) -> Result<()> {
    let api = Api::new(&crate::session::current()?)?;
    let body = api.clusters_json()?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let clusters = parse::<wire::ClusterList>(&body, "cluster list")?.clusters;
    let mut t = Table::new(&["NAME", "ID", "KIND", "AGENT"]);
    for c in clusters {
        let agent = if c.agent.online { "online" } else { "offline" };
        t.row(vec![c.name.to_string(), c.id.to_string(), c.kind.as_str().into(), agent.into()]);
    }
    t.print();
    Ok(())
}

/// `lanyard cluster delete CLUSTER [--yes]`.
pub fn delete(name_or_id: &str, yes: bool, format: Format) -> Result<()> {
    let api = Api::new(&crate::session::current()?)?;
    let cluster = api.resolve_cluster(name_or_id)?;
    confirm(Irreversible::DeleteCluster, cluster.name.as_str(), yes)?;
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
    let api = Api::new(&crate::session::current()?)?;
    let cluster = api.resolve_cluster(name_or_id)?;
    let body = api
        .post_json(
            &cluster_path(&cluster.id, &["agent-credential"]),
            &RotateCredential {
                previous_valid_for_seconds: Some(i64::try_from(previous_valid_for).unwrap_or(i64::MAX)),
            },
        )
        .map_err(admin_only)
        .map_err(|e| e.hint_on(422, |_| "--previous-valid-for takes 0 to 86400 seconds".into()))?;
    if format == Format::Json {
        print_json(&body);
        return Ok(());
    }
    let wire::RotatedCredential { agent_credential: credential, previous_valid_until: until } =
        parse(&body, "rotated credential")?;
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
            g.id.to_string(),
            g.terms.email.to_string(),
            g.terms.role.as_str().into(),
            g.terms.scope.kind().as_str().into(),
            g.terms.scope.namespace().map(ToString::to_string).unwrap_or_default(),
            g.status.as_str().into(),
            g.error.clone().unwrap_or_default(),
        ]);
    }
    t
}

pub fn access(cmd: Access, format: Format) -> Result<()> {
    let api = Api::new(&crate::session::current()?)?;
    match cmd {
        Access::List { cluster } => {
            let cluster = api.resolve_cluster(&cluster)?;
            let body = api.grants_json(&cluster.id).map_err(admin_only)?;
            match format {
                Format::Json => print_json(&body),
                Format::Table => {
                    let grants = parse::<wire::GrantList>(&body, "grant list")?.grants;
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
            // The control plane validates (and names the bad field); the CLI only carries the arguments.
            let scope = if namespace.is_some() { ScopeKind::Namespace } else { ScopeKind::Cluster };
            let body = CreateGrant {
                email: Some(email),
                role: Some(role.as_str().to_owned()),
                scope: Some(scope.as_str().to_owned()),
                namespace,
            };
            let created = api
                .post_json(&cluster_path(&cluster.id, &["access", "grants"]), &body)
                .map_err(admin_only)
                .map_err(|e| {
                    let name = cluster.name.clone();
                    e.hint_on(409, move |a| match a.code {
                        ErrorCode::DuplicateGrant => format!("`lanyard cluster access list {name}` shows the grant that exists"),
                        _ => format!("cluster {name} does not support access grants"),
                    })
                    .hint_on(422, |a| match a.code {
                        ErrorCode::MemberNotEligible => "the member must sign in once (e.g. `lanyard login`) and be active before they can be granted access".into(),
                        _ => "fix the argument named by `field` and retry".into(),
                    })
                })?;
            match format {
                Format::Json => print_json(&created),
                Format::Table => {
                    let grant: Grant = parse(&created, "grant")?;
                    grants_table(std::slice::from_ref(&grant)).print();
                    note(&format!(
                        "Granted; `lanyard cluster access status {} --wait` waits until the agent applies it",
                        cluster.name
                    ));
                }
            }
        }
        Access::Revoke { cluster, grant_id, email } => {
            let grant_id = grant_id.as_deref().map(parse_grant_id).transpose()?;
            let cluster = api.resolve_cluster(&cluster)?;
            let ids: Vec<GrantId> = match (grant_id, email) {
                (Some(id), _) => vec![id],
                (None, Some(email)) => {
                    let body = api.grants_json(&cluster.id).map_err(admin_only)?;
                    let grants = parse::<wire::GrantList>(&body, "grant list")?.grants;
                    let wanted = Email::parse(&email)
                        .ok_or_else(|| CliError::Usage(format!("{email:?} is not an email address (--email)")))?;
                    let ids: Vec<GrantId> =
                        grants.into_iter().filter(|g| g.terms.email == wanted).map(|g| g.id).collect();
                    if ids.is_empty() {
                        return Err(CliError::NotFound(format!(
                            "{wanted} holds no grant on {}: `lanyard cluster access list {}` shows the grants",
                            cluster.name, cluster.name
                        )));
                    }
                    ids
                }
                (None, None) => return Err(CliError::Usage("name a grant id or --email".into())),
            };
            for id in &ids {
                api.delete(&cluster_path(&cluster.id, &["access", "grants", id.as_str()]))
                    .map_err(admin_only)
                    .map_err(|e| {
                        e.hint_on(404, |_| {
                            format!("`lanyard cluster access list {}` shows the live grants", cluster.name)
                        })
                    })?;
            }
            match format {
                Format::Json => print_json(&json!({"cluster": cluster.id, "revoked": ids})),
                Format::Table => {
                    let list: Vec<&str> = ids.iter().map(GrantId::as_str).collect();
                    note(&format!("Revoked {} grant(s) on {}: {}", ids.len(), cluster.name, list.join(", ")))
                }
            }
        }
        Access::RevokeAll { cluster, yes } => {
            let cluster = api.resolve_cluster(&cluster)?;
            confirm(Irreversible::RevokeAll, cluster.name.as_str(), yes)?;
            let body =
                api.post_json(&cluster_path(&cluster.id, &["access", "revoke-all"]), &json!({})).map_err(admin_only)?;
            match format {
                Format::Json => print_json(&body),
                Format::Table => {
                    let done: wire::RevokeAllResult = parse(&body, "revoke-all result")?;
                    note(&format!(
                        "Revoked every grant ({}) and every token on {}; revocation epoch is now {}",
                        done.revoked, cluster.name, done.revocation_epoch
                    ))
                }
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
    let (body, list) = loop {
        let body = api.grants_json(&cluster.id).map_err(admin_only)?;
        let list: wire::GrantList = parse(&body, "grant list")?;
        let pending = list.grants.iter().any(|g| g.status == GrantStatus::Pending);
        let now = Instant::now();
        if !wait || !pending || now >= deadline {
            break (body, list);
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(500)));
    };
    let (agent_online, grants) = (list.agent_online, list.grants);
    let count = |s: GrantStatus| grants.iter().filter(|g| g.status == s).count();
    let (pending, failed, offline) =
        (count(GrantStatus::Pending), count(GrantStatus::Failed), count(GrantStatus::ClusterOffline));
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
                count(GrantStatus::Applied),
                if agent_online { "online" } else { "offline" }
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
