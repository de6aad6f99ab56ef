//! Merging Lanyard's kubeconfig into the user's, and taking it out again.
//!
//! The file is the first of `$KUBECONFIG` (colon-separated) or
//! `~/.kube/config`. It is read into YAML values, so every field Lanyard does
//! not know (other clusters, users, contexts, preferences, extensions, and
//! `current-context`) survives as it was, in its order; only the entries
//! with Lanyard's names are replaced or removed. It is written back
//! atomically with mode 0600 ([`fsutil::write_atomic`]).
//!
//! A Lanyard entry is recognised by its user: an exec plugin whose command is
//! `lanyard` with arguments `cluster token … --cluster <id>`.
//!
//! The control plane's kubeconfig is merged only if it is exactly what Lanyard
//! writes ([`check`]), because kubectl runs the exec command it names: one
//! cluster, user and context named `lanyard-<cluster name>`; the cluster an
//! `https` server (plain `http` only to a loopback host) with at most its CA;
//! the user only an exec plugin with Lanyard's `apiVersion`, the command
//! `lanyard` (found on `PATH`; no other path is accepted), exactly the
//! arguments `cluster token --control-plane <the control plane you logged in
//! to> --cluster <the cluster's id>`, `interactiveMode: Never`, no `env`; the
//! context only that cluster, that user and a namespace. Anything else is
//! refused and the file is not touched.

use std::path::{Path, PathBuf};

use lanyard_core::ids::ClusterId;
use lanyard_core::model::{ClusterName, Namespace};
use serde::Serialize;
use serde_norway::{Mapping, Value};

use crate::error::{CliError, Result};
use crate::fsutil;

/// The exec plugin's `apiVersion` in the kubeconfigs Lanyard writes.
pub const EXEC_API_VERSION: &str = lanyard_core::wire::ExecCredential::API_VERSION;
/// The exec plugin's command in the kubeconfigs Lanyard writes.
pub const EXEC_COMMAND: &str = "lanyard";

/// The three lists a kubeconfig merges by name.
const LISTS: [&str; 3] = ["clusters", "users", "contexts"];

/// The kubeconfig file to edit: the first entry of `$KUBECONFIG`, else `~/.kube/config`.
pub fn path() -> Result<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    Ok(fsutil::home()?.join(".kube/config"))
}

/// Read a kubeconfig; a missing or empty file is an empty config.
pub fn load(path: &Path) -> Result<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CliError::Io { context: format!("reading {}", path.display()), source: e });
        }
    };
    parse(&text).map_err(|e| CliError::Failed(format!("{} {e}: fix or move it, then retry", path.display())))
}

/// Parse kubeconfig YAML; an empty document is an empty config.
pub fn parse(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(empty());
    }
    let doc: Value = serde_norway::from_str(text).map_err(|e| format!("is not valid YAML ({e})"))?;
    match doc {
        Value::Mapping(_) => Ok(doc),
        Value::Null => Ok(empty()),
        _ => Err("is not a kubeconfig (not a YAML mapping)".into()),
    }
}

fn empty() -> Value {
    let mut m = Mapping::new();
    m.insert("apiVersion".into(), "v1".into());
    m.insert("kind".into(), "Config".into());
    Value::Mapping(m)
}

/// Write a kubeconfig atomically with mode 0600.
pub fn save(path: &Path, doc: &Value) -> Result<()> {
    let text = serde_norway::to_string(doc).map_err(|e| CliError::Failed(format!("encoding the kubeconfig: {e}")))?;
    fsutil::write_atomic(path, text.as_bytes())
}

fn name_of(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

/// The list `key` of a document, created (empty) if missing or null.
fn list_mut<'a>(doc: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>> {
    let k = Value::from(key);
    if matches!(doc.get(&k), None | Some(Value::Null)) {
        doc.insert(k.clone(), Value::Sequence(Vec::new()));
    }
    match doc.get_mut(&k) {
        Some(Value::Sequence(s)) => Ok(s),
        _ => Err(CliError::Failed(format!("the kubeconfig's `{key}` is not a list: fix the file, then retry"))),
    }
}

/// Merge `incoming` (Lanyard's kubeconfig for one cluster) into `doc`: each
/// cluster, user and context of `incoming` replaces the entry of `doc` with
/// the same name (in place) or is appended. `current-context` changes only
/// with `set_current`. Returns the context's name.
pub fn merge(doc: &mut Value, incoming: &Value, set_current: bool) -> Result<String> {
    let bad = |what: &str| CliError::Transport(format!("the control plane's kubeconfig {what}"));
    let Value::Mapping(target) = doc else {
        return Err(CliError::Failed("the kubeconfig is not a YAML mapping".into()));
    };
    let mut context = None;
    for key in LISTS {
        let entries =
            incoming.get(key).and_then(Value::as_sequence).ok_or_else(|| bad(&format!("has no `{key}` list")))?;
        if entries.len() != 1 {
            return Err(bad(&format!("has {} `{key}` entries, not one", entries.len())));
        }
        let list = list_mut(target, key)?;
        for entry in entries {
            let name = name_of(entry).ok_or_else(|| bad(&format!("has a `{key}` entry without a name")))?;
            if key == "contexts" {
                context = Some(name.to_owned());
            }
            match list.iter_mut().find(|e| name_of(e) == Some(name)) {
                Some(existing) => *existing = entry.clone(),
                None => list.push(entry.clone()),
            }
        }
    }
    let context = context.ok_or_else(|| bad("has no context"))?;
    if set_current {
        target.insert("current-context".into(), Value::from(context.as_str()));
    }
    Ok(context)
}

/// A Lanyard context found in a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanyardContext {
    pub context: String,
    pub cluster_entry: String,
    pub user_entry: String,
    pub cluster_id: Option<String>,
    pub control_plane: Option<String>,
    pub server: Option<String>,
    pub namespace: Option<String>,
    pub current: bool,
}

/// The value after `flag` in an exec plugin's arguments.
fn arg_after(args: &[Value], flag: &str) -> Option<String> {
    let pos = args.iter().position(|a| a.as_str() == Some(flag))?;
    args.get(pos + 1).and_then(Value::as_str).map(str::to_owned)
}

/// The exec arguments of a user entry that runs `lanyard cluster token`.
fn lanyard_exec_args(user: &Value) -> Option<&Vec<Value>> {
    let exec = user.get("user")?.get("exec")?;
    let command = exec.get("command")?.as_str()?;
    let base = Path::new(command).file_name()?.to_str()?;
    if base != "lanyard" {
        return None;
    }
    let args = exec.get("args")?.as_sequence()?;
    let words: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
    words.windows(2).any(|w| w == ["cluster", "token"]).then_some(args)
}

fn find<'a>(doc: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    doc.get(key)?.as_sequence()?.iter().find(|e| name_of(e) == Some(name))
}

/// The Lanyard contexts of `doc`, in file order.
pub fn lanyard_contexts(doc: &Value) -> Vec<LanyardContext> {
    let current = doc.get("current-context").and_then(Value::as_str);
    let contexts = doc.get("contexts").and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default();
    contexts
        .iter()
        .filter_map(|ctx| {
            let name = name_of(ctx)?;
            let body = ctx.get("context")?;
            let user_entry = body.get("user")?.as_str()?;
            let cluster_entry = body.get("cluster").and_then(Value::as_str).unwrap_or_default();
            let args = lanyard_exec_args(find(doc, "users", user_entry)?)?;
            let server = find(doc, "clusters", cluster_entry)
                .and_then(|c| c.get("cluster")?.get("server")?.as_str().map(str::to_owned));
            Some(LanyardContext {
                context: name.to_owned(),
                cluster_entry: cluster_entry.to_owned(),
                user_entry: user_entry.to_owned(),
                cluster_id: arg_after(args, "--cluster"),
                control_plane: arg_after(args, "--control-plane"),
                server,
                namespace: body.get("namespace").and_then(Value::as_str).map(str::to_owned),
                current: current == Some(name),
            })
        })
        .collect()
}

/// Remove the Lanyard context of `cluster` (its name or `c_…` id), with its
/// cluster and user entries; unset `current-context` if it pointed there.
/// Returns what was removed; an error (exit 5) if nothing matched.
pub fn remove(doc: &mut Value, cluster: &str) -> Result<Vec<LanyardContext>> {
    let wanted = format!("lanyard-{cluster}");
    let matches: Vec<LanyardContext> = lanyard_contexts(doc)
        .into_iter()
        .filter(|c| c.context == wanted || c.cluster_id.as_deref() == Some(cluster))
        .collect();
    if matches.is_empty() {
        return Err(CliError::NotFound(format!(
            "no Lanyard context for cluster {cluster:?} in the kubeconfig: `lanyard cluster kubeconfig list` shows them"
        )));
    }
    let Value::Mapping(target) = doc else {
        return Ok(matches);
    };
    for m in &matches {
        for (key, name) in [("contexts", &m.context), ("clusters", &m.cluster_entry), ("users", &m.user_entry)] {
            list_mut(target, key)?.retain(|e| name_of(e) != Some(name.as_str()));
        }
        if target.get("current-context").and_then(Value::as_str) == Some(m.context.as_str()) {
            target.remove("current-context");
        }
    }
    Ok(matches)
}

/// What the kubeconfig for one cluster must say: who mints its tokens, and
/// which cluster it is.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The control plane the user is logged in to (normalised, no trailing slash).
    pub control_plane: &'a str,
    /// The cluster's id.
    pub cluster_id: &'a ClusterId,
    /// The cluster's name: the entries are `lanyard-<name>`.
    pub cluster_name: &'a ClusterName,
}

/// `value` as a mapping whose keys are all in `allowed` and include `required`.
fn fields<'a>(value: &'a Value, what: &str, required: &[&str], allowed: &[&str]) -> Result<&'a Mapping, String> {
    let map = value.as_mapping().ok_or_else(|| format!("{what} is not a mapping"))?;
    for key in map.keys() {
        match key.as_str() {
            Some(k) if allowed.contains(&k) => {}
            _ => return Err(format!("{what} has an unexpected field {}", describe(key))),
        }
    }
    if let Some(missing) = required.iter().find(|k| !map.contains_key(**k)) {
        return Err(format!("{what} has no `{missing}`"));
    }
    Ok(map)
}

/// A YAML value, shortly, for an error message.
fn describe(value: &Value) -> String {
    let text = serde_norway::to_string(value).unwrap_or_default();
    let text = text.trim();
    let short: String = text.chars().take(80).collect();
    if short.len() < text.len() { format!("`{short}…`") } else { format!("`{short}`") }
}

/// The string at `map[key]`, if it is one.
fn text<'a>(map: &'a Mapping, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// `map[key]` must be the string `want`.
fn expect_text(map: &Mapping, what: &str, key: &str, want: &str) -> Result<(), String> {
    match map.get(key) {
        Some(Value::String(s)) if s == want => Ok(()),
        Some(other) => Err(format!("{what}'s `{key}` is {}, not `{want}`", describe(other))),
        None => Err(format!("{what} has no `{key}`")),
    }
}

/// The single entry of `incoming[key]`.
fn single<'a>(incoming: &'a Value, key: &str) -> Result<&'a Value, String> {
    let entries = incoming.get(key).and_then(Value::as_sequence).ok_or_else(|| format!("it has no `{key}` list"))?;
    match entries.as_slice() {
        [one] => Ok(one),
        _ => Err(format!("it has {} `{key}` entries, not one", entries.len())),
    }
}

/// Whether `incoming` is exactly the kubeconfig Lanyard writes for
/// `expected` (see the module's documentation); the reason if not.
pub fn check(incoming: &Value, expected: &Expected) -> Result<(), String> {
    let name = format!("lanyard-{}", expected.cluster_name);

    let cluster =
        fields(single(incoming, "clusters")?, "the cluster entry", &["name", "cluster"], &["name", "cluster"])?;
    expect_text(cluster, "the cluster entry", "name", &name)?;
    let body = fields(&cluster["cluster"], "the cluster", &["server"], &["server", "certificate-authority-data"])?;
    let server = text(body, "server").ok_or("the cluster's server is not a string")?;
    let secure = reqwest::Url::parse(server).is_ok_and(|u| {
        u.scheme() == "https"
            || (u.scheme() == "http" && u.host_str().is_some_and(lanyard_core::http::is_loopback_host))
    });
    if !secure {
        return Err(format!("the cluster's server {server:?} is not an https:// URL"));
    }
    if body.get("certificate-authority-data").is_some_and(|v| !v.is_string()) {
        return Err("the cluster's certificate-authority-data is not a string".into());
    }

    let user = fields(single(incoming, "users")?, "the user entry", &["name", "user"], &["name", "user"])?;
    expect_text(user, "the user entry", "name", &name)?;
    let body = fields(&user["user"], "the user", &["exec"], &["exec"])?;
    let exec = fields(
        &body["exec"],
        "the exec plugin",
        &["apiVersion", "command", "args", "interactiveMode"],
        &["apiVersion", "command", "args", "interactiveMode", "provideClusterInfo", "installHint"],
    )?;
    expect_text(exec, "the exec plugin", "apiVersion", EXEC_API_VERSION)?;
    expect_text(exec, "the exec plugin", "command", EXEC_COMMAND)?;
    expect_text(exec, "the exec plugin", "interactiveMode", "Never")?;
    let args: Option<Vec<&str>> = exec["args"].as_sequence().and_then(|a| a.iter().map(Value::as_str).collect());
    let want =
        ["cluster", "token", "--control-plane", expected.control_plane, "--cluster", expected.cluster_id.as_str()];
    let args_ok = args.as_deref().is_some_and(|a| {
        a.len() == want.len()
            && a.iter().zip(want).enumerate().all(|(i, (got, want))| {
                // The control plane may differ by a trailing slash only.
                if i == 3 { got.trim_end_matches('/') == want } else { *got == want }
            })
    });
    if !args_ok {
        return Err(format!("the exec plugin's arguments are {}, not `{}`", describe(&exec["args"]), want.join(" ")));
    }
    if exec.get("provideClusterInfo").is_some_and(|v| v != &Value::Bool(false)) {
        return Err("the exec plugin asks for the cluster's information".into());
    }
    // kubectl prints the install hint when `lanyard` is missing.
    if exec.get("installHint").is_some_and(|v| v.as_str().is_none_or(|h| h.chars().any(char::is_control))) {
        return Err("the exec plugin's installHint is not plain text".into());
    }

    let context =
        fields(single(incoming, "contexts")?, "the context entry", &["name", "context"], &["name", "context"])?;
    expect_text(context, "the context entry", "name", &name)?;
    let body = fields(&context["context"], "the context", &["cluster", "user"], &["cluster", "user", "namespace"])?;
    expect_text(body, "the context", "cluster", &name)?;
    expect_text(body, "the context", "user", &name)?;
    if body.get("namespace").is_some_and(|ns| ns.as_str().is_none_or(|ns| Namespace::parse(ns).is_err())) {
        return Err(format!("the context's namespace {} is not a namespace", describe(&body["namespace"])));
    }
    Ok(())
}

/// Merge `incoming_yaml` (the control plane's kubeconfig for one cluster)
/// into the kubeconfig at `path` and save it, if it is what Lanyard writes
/// for `expected` ([`check`]); otherwise the file is left untouched.
pub fn merge_file(path: &Path, incoming_yaml: &str, expected: &Expected, set_current: bool) -> Result<String> {
    let unexpected = |reason: String| CliError::UnexpectedKubeconfig { reason, path: path.to_path_buf() };
    let incoming = parse(incoming_yaml).map_err(|e| unexpected(format!("it {e}")))?;
    check(&incoming, expected).map_err(unexpected)?;
    let mut doc = load(path)?;
    let context = merge(&mut doc, &incoming, set_current)?;
    save(path, &doc)?;
    Ok(context)
}

/// Remove `cluster`'s Lanyard entries from the kubeconfig at `path` and save it.
pub fn remove_from_file(path: &Path, cluster: &str) -> Result<Vec<LanyardContext>> {
    let mut doc = load(path)?;
    let removed = remove(&mut doc, cluster)?;
    save(path, &doc)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    /// What the control plane serves for cluster `prod` with a `team-a` grant:
    /// the core's own renderer, so the merge is tested on the real shape.
    fn incoming() -> String {
        let cluster = lanyard_core::records::ClusterRecord {
            id: ClusterId::parse("c_0123456789abcdef01234567").unwrap(),
            org: "acme".into(),
            name: ClusterName::parse("prod").unwrap(),
            kind: lanyard_core::model::ClusterKind::Standard,
            proxy_url: "https://proxy.example:8443".into(),
            ca_pem: None,
            agent_credential_hash: String::new(),
            created_at: 0,
            created_by: String::new(),
        };
        lanyard_core::kubeconfig::render(&cluster, cluster.ca_pem.as_deref(), "http://cp", Some("team-a"))
    }

    const EXISTING: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster: {server: "https://127.0.0.1:6443", extensions: [{name: x, extension: {a: 1}}]}
contexts:
- name: kind
  context: {cluster: kind, user: kind}
users:
- name: kind
  user: {token: abc}
current-context: kind
preferences: {colors: true}
x-unknown: [1, 2]
"#;

    #[test]
    fn merge_keeps_everything_else_and_leaves_current_context() {
        let mut doc = parse(EXISTING).unwrap();
        let before = doc.clone();
        let ctx = merge(&mut doc, &parse(&incoming()).unwrap(), false).unwrap();
        assert_eq!(ctx, "lanyard-prod");
        for key in ["current-context", "preferences", "x-unknown", "apiVersion", "kind"] {
            assert_eq!(doc.get(key), before.get(key), "{key}");
        }
        for key in LISTS {
            let list = doc.get(key).unwrap().as_sequence().unwrap();
            assert_eq!(list.len(), 2, "{key}");
            assert_eq!(&list[0], &before.get(key).unwrap().as_sequence().unwrap()[0], "{key}");
        }
        let found = lanyard_contexts(&doc);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].cluster_id.as_deref(), Some("c_0123456789abcdef01234567"));
        assert_eq!(found[0].namespace.as_deref(), Some("team-a"));
        assert!(!found[0].current);
    }

    #[test]
    fn merge_twice_replaces_and_set_current_switches() {
        let mut doc = parse(EXISTING).unwrap();
        merge(&mut doc, &parse(&incoming()).unwrap(), false).unwrap();
        let once = doc.clone();
        merge(&mut doc, &parse(&incoming()).unwrap(), false).unwrap();
        assert_eq!(doc, once);
        merge(&mut doc, &parse(&incoming()).unwrap(), true).unwrap();
        assert_eq!(doc.get("current-context").and_then(Value::as_str), Some("lanyard-prod"));
    }

    #[test]
    fn merge_into_empty_and_remove_restores() {
        let mut doc = parse("").unwrap();
        merge(&mut doc, &parse(&incoming()).unwrap(), true).unwrap();
        assert_eq!(remove(&mut doc, "prod").unwrap().len(), 1);
        assert!(doc.get("current-context").is_none());
        assert!(lanyard_contexts(&doc).is_empty());

        let mut doc = parse(EXISTING).unwrap();
        let before = doc.clone();
        merge(&mut doc, &parse(&incoming()).unwrap(), false).unwrap();
        remove(&mut doc, "c_0123456789abcdef01234567").unwrap();
        assert_eq!(doc, before);
        assert!(matches!(remove(&mut doc, "prod"), Err(CliError::NotFound(_))));
    }

    fn expected() -> Expected<'static> {
        static CLUSTER_ID: LazyLock<ClusterId> =
            LazyLock::new(|| ClusterId::parse("c_0123456789abcdef01234567").unwrap());
        static CLUSTER_NAME: LazyLock<ClusterName> = LazyLock::new(|| ClusterName::parse("prod").unwrap());
        Expected { control_plane: "http://cp", cluster_id: &CLUSTER_ID, cluster_name: &CLUSTER_NAME }
    }

    #[test]
    fn accepts_only_what_lanyard_writes() {
        let good = incoming();
        check(&parse(&good).unwrap(), &expected()).unwrap();
        let slash = good.replace(r#""http://cp""#, r#""http://cp/""#);
        check(&parse(&slash).unwrap(), &expected()).unwrap();
        let tampered = [
            ("command: lanyard", "command: sh"),
            ("command: lanyard", "command: /tmp/evil/lanyard"),
            ("command: lanyard", "command: ./lanyard"),
            ("apiVersion: client.authentication.k8s.io/v1\n", "apiVersion: client.authentication.k8s.io/v1beta1\n"),
            ("interactiveMode: Never", "interactiveMode: IfAvailable"),
            ("interactiveMode: Never\n", "interactiveMode: Never\n      env: [{name: LD_PRELOAD, value: /tmp/x.so}]\n"),
            ("      provideClusterInfo: false", "      provideClusterInfo: true"),
            (
                "      - \"c_0123456789abcdef01234567\"\n",
                "      - \"c_0123456789abcdef01234567\"\n      - \"--extra\"\n",
            ),
            ("\"c_0123456789abcdef01234567\"", "\"c_00000000000000000000000f\""),
            ("\"http://cp\"", "\"http://evil\""),
            ("      - \"token\"\n", "      - \"tokens\"\n"),
            ("  user:\n    exec:", "  user:\n    token: stolen\n    exec:"),
            ("- name: \"lanyard-prod\"\n  user:", "- name: \"kind\"\n  user:"),
            ("- name: \"lanyard-prod\"\n  cluster:", "- name: \"kind\"\n  cluster:"),
            ("- name: \"lanyard-prod\"\n  context:", "- name: \"kind\"\n  context:"),
            ("    user: \"lanyard-prod\"", "    user: \"kind\""),
            ("\"https://proxy.example:8443\"", "\"http://proxy.example:8443\""),
            ("    server:", "    insecure-skip-tls-verify: true\n    server:"),
            ("    namespace: \"team-a\"", "    namespace: \"Team A\""),
            ("installHint: \"Install", "installHint: \"\\e[2JInstall"),
            ("users:\n", "users:\n- {name: other, user: {token: x}}\n"),
        ];
        for (from, to) in tampered {
            assert!(good.contains(from), "{from:?} is not in the rendered kubeconfig");
            let text = good.replacen(from, to, 1);
            let doc = parse(&text).unwrap_or_else(|e| panic!("{to:?}: {e}"));
            assert!(check(&doc, &expected()).is_err(), "accepted {from:?} -> {to:?}");
        }
        let other_cp = Expected { control_plane: "https://cp", ..expected() };
        assert!(check(&parse(&good).unwrap(), &other_cp).is_err());
        let staging = ClusterName::parse("staging").unwrap();
        let other_name = Expected { cluster_name: &staging, ..expected() };
        assert!(check(&parse(&good).unwrap(), &other_name).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_kubeconfig() {
        assert!(parse("- a\n- b\n").is_err());
        assert!(parse(": : :").is_err());
        let mut doc = parse("clusters: 3\n").unwrap();
        assert!(merge(&mut doc, &parse(&incoming()).unwrap(), false).is_err());
    }
}
