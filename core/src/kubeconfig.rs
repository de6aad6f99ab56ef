//! The kubeconfig Lanyard hands a member: one cluster, user and context, all
//! named `lanyard-<cluster name>`. The cluster entry points at the cluster's
//! access proxy (with its CA); the user is a `client.authentication.k8s.io/v1`
//! exec plugin (`lanyard cluster token …`) that mints short-lived tokens on
//! demand. It never contains a token or any other secret.
//!
//! Rendered by hand as YAML whose every scalar is a JSON string (valid YAML),
//! so no YAML library is needed in the Wasm components.

use base64::Engine as _;

use crate::records::ClusterRecord;

/// The name of the cluster, user and context entries.
pub fn entry_name(cluster: &ClusterRecord) -> String {
    format!("lanyard-{}", cluster.name)
}

/// The kubeconfig for `cluster`, whose proxy is trusted by `ca` (PEM; none
/// for a publicly trusted one), minting through the control plane at
/// `control_plane`, with `namespace` as the context's default namespace.
pub fn render(cluster: &ClusterRecord, ca: Option<&str>, control_plane: &str, namespace: Option<&str>) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let name = q(&entry_name(cluster));
    let mut out = String::new();
    out.push_str("apiVersion: v1\nkind: Config\nclusters:\n");
    out.push_str(&format!("- name: {name}\n  cluster:\n    server: {}\n", q(&cluster.proxy_url)));
    if let Some(ca) = ca {
        let data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
        out.push_str(&format!("    certificate-authority-data: {}\n", q(&data)));
    }
    out.push_str(&format!("users:\n- name: {name}\n  user:\n    exec:\n"));
    out.push_str("      apiVersion: client.authentication.k8s.io/v1\n      command: lanyard\n      args:\n");
    for arg in ["cluster", "token", "--control-plane", control_plane, "--cluster", cluster.id.as_str()] {
        out.push_str(&format!("      - {}\n", q(arg)));
    }
    out.push_str("      interactiveMode: Never\n      provideClusterInfo: false\n");
    out.push_str("      installHint: \"Install the lanyard CLI and run `lanyard login` (see the Lanyard README).\"\n");
    out.push_str(&format!("contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"));
    if let Some(ns) = namespace {
        out.push_str(&format!("    namespace: {}\n", q(ns)));
    }
    out.push_str(&format!("current-context: {name}\npreferences: {{}}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClusterId;
    use crate::model::{ClusterKind, ClusterName};

    fn cluster(ca: Option<&str>) -> ClusterRecord {
        ClusterRecord {
            id: ClusterId::parse("c_0123456789abcdef01234567").unwrap(),
            org: "acme".into(),
            name: ClusterName::parse("prod").unwrap(),
            kind: ClusterKind::Standard,
            proxy_url: "https://proxy.example:8443".into(),
            ca_pem: ca.map(str::to_owned),
            agent_credential_hash: "secret-hash".into(),
            created_at: 0,
            created_by: "a".into(),
        }
    }

    #[test]
    fn renders_the_exec_plugin_and_the_namespace() {
        let text = render(&cluster(None), None, "https://lanyard.example", Some("team-a"));
        assert_eq!(
            text,
            r#"apiVersion: v1
kind: Config
clusters:
- name: "lanyard-prod"
  cluster:
    server: "https://proxy.example:8443"
users:
- name: "lanyard-prod"
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: lanyard
      args:
      - "cluster"
      - "token"
      - "--control-plane"
      - "https://lanyard.example"
      - "--cluster"
      - "c_0123456789abcdef01234567"
      interactiveMode: Never
      provideClusterInfo: false
      installHint: "Install the lanyard CLI and run `lanyard login` (see the Lanyard README)."
contexts:
- name: "lanyard-prod"
  context:
    cluster: "lanyard-prod"
    user: "lanyard-prod"
    namespace: "team-a"
current-context: "lanyard-prod"
preferences: {}
"#
        );
        assert!(!render(&cluster(None), None, "u", None).contains("namespace:"));
        assert!(!text.contains("secret-hash"));
    }

    #[test]
    fn carries_the_ca_base64_encoded_and_quotes_everything() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let text = render(&cluster(Some(pem)), Some(pem), "https://x\"y", None);
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        assert!(text.contains(&format!("certificate-authority-data: \"{data}\"")));
        assert!(text.contains(r#"- "https://x\"y""#), "hostile characters stay inside a quoted scalar");
    }
}
