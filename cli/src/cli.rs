//! The command tree (clap derive).
//!
//! ```text
//! lanyard [-o table|json]
//!   login [--control-plane URL] [--org O] [--device] [--no-browser] [--timeout D] [--issuer URL --client-id ID]
//!   login --control-plane URL (--token T | --token-stdin | --dev --email E [--org O] [--admin] [--state DIR])
//!   logout
//!   whoami [--local]
//!   cluster list
//!   cluster delete CLUSTER [--yes]
//!   cluster credential rotate CLUSTER [--previous-valid-for S]
//!   cluster access list|status|grant|revoke|revoke-all CLUSTER …
//!   cluster kubeconfig add|remove CLUSTER, kubeconfig list
//!   cluster token --control-plane URL --cluster ID       (the kubectl exec plugin)
//!   dev init|token|seed                                  (the local run)
//! ```

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use lanyard_core::model::Role;

use crate::output::Format;

#[derive(Parser)]
#[command(
    name = "lanyard",
    version,
    about = "SSO-backed, short-lived kubectl access",
    after_help = "Exit codes: 0 ok, 1 error, 2 usage or confirmation refused, 3 not logged in or session rejected, \
                  4 forbidden, 5 not found, 6 conflict.\n\
                  Config: $LANYARD_CONFIG or ~/.config/lanyard/config.json. Kubeconfig: first file of $KUBECONFIG or ~/.kube/config."
)]
pub struct Cli {
    /// Output format: aligned tables for people, or JSON for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Log in to a control plane: sign in with your organisation's identity provider (or take a
    /// session token), check the session, then save it (mode 0600).
    Login(Login),
    /// Forget the session and its refresh token (the control plane URL is kept).
    Logout,
    /// Show the control plane and who the session says you are; exit 3 if the control plane rejects it.
    Whoami {
        /// Only read the saved session (renewing it if it has expired); do not ask the control plane.
        #[arg(long)]
        local: bool,
    },
    /// Clusters, their access, kubeconfig entries and tokens.
    #[command(subcommand)]
    Cluster(Cluster),
    /// The local run's development issuer (never trusted by a deployment unless configured).
    #[command(subcommand)]
    Dev(Dev),
}

/// A duration as `--timeout` takes it: `90s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| "give a duration such as 90s, 5m or 1h".to_owned())?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    };
    match secs {
        Some(0) => Err("must be more than zero".into()),
        Some(secs) => Ok(std::time::Duration::from_secs(secs)),
        None => Err("give a duration such as 90s, 5m or 1h".into()),
    }
}

#[derive(Args)]
#[command(group(ArgGroup::new("credential").args(["token", "token_stdin", "dev"])))]
#[command(
    after_help = "Without --token, --token-stdin or --dev, `lanyard login` signs you in with your organisation's \
                  identity provider, which the control plane names: it opens your browser (or prints the URL to open), \
                  or with --device shows a code to enter on another device. The session is renewed silently with the \
                  provider's refresh token until the provider ends it."
)]
pub struct Login {
    /// The control plane's https:// URL (plain http:// only to localhost, 127.0.0.0/8 or [::1], e.g. the
    /// local run's http://127.0.0.1:3000); default: the one you last logged in to.
    #[arg(long, env = "LANYARD_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// The organisation: which of the control plane's identity providers to sign in with (for a deployment
    /// that trusts several); with --dev, the organisation of the minted session (default demo).
    #[arg(long)]
    pub org: Option<String>,
    /// Sign in with the device flow: show a code to enter on another device (for machines without a browser).
    #[arg(long, conflicts_with_all = ["credential", "no_browser"])]
    pub device: bool,
    /// Do not try to open a browser; only print the sign-in URL.
    #[arg(long, conflicts_with = "credential")]
    pub no_browser: bool,
    /// How long to wait for the browser sign-in to come back (e.g. 90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, conflicts_with = "credential")]
    pub timeout: std::time::Duration,
    /// Sign in with this OpenID Connect issuer instead of the one the control plane names (needs --client-id).
    #[arg(long, value_name = "URL", requires = "client_id", conflicts_with = "credential")]
    pub issuer: Option<String>,
    /// (--issuer) The OAuth client id the control plane accepts ID tokens for.
    #[arg(long, value_name = "ID", requires = "issuer")]
    pub client_id: Option<String>,
    /// A session token from your SSO (prefer --token-stdin: arguments are visible to other users).
    #[arg(long)]
    pub token: Option<String>,
    /// Read the session token from standard input.
    #[arg(long)]
    pub token_stdin: bool,
    /// Mint a session with the local run's development issuer key.
    #[arg(long, requires = "email")]
    pub dev: bool,
    /// (--dev) Your email address.
    #[arg(long, requires = "dev")]
    pub email: Option<String>,
    /// (--dev) Be an organisation admin.
    #[arg(long, requires = "dev")]
    pub admin: bool,
    /// (--dev) The local run's state folder, where the development issuer key is.
    #[arg(long, env = "LANYARD_STATE", default_value = ".lanyard")]
    pub state: PathBuf,
    /// (--dev) Session lifetime in seconds.
    #[arg(long, default_value_t = 8 * 3600, requires = "dev")]
    pub ttl: u64,
}

#[derive(Subcommand)]
pub enum Cluster {
    /// The organisation's clusters: NAME, ID, KIND, AGENT.
    List,
    /// Delete a cluster (admins): its grants, tokens and agent credential end with it.
    Delete {
        /// The cluster's name or `c_…` id.
        cluster: String,
        /// Do not ask to type the cluster's name (required without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The cluster's agent credential (admins).
    #[command(subcommand)]
    Credential(Credential),
    /// Who has access (admins).
    #[command(subcommand)]
    Access(Access),
    /// Your kubeconfig's Lanyard contexts.
    #[command(subcommand)]
    Kubeconfig(Kubeconfig),
    /// Print an ExecCredential for kubectl (what the kubeconfig's exec plugin runs); cached until shortly before expiry.
    Token {
        /// The control plane that mints the token (https://, or plain http:// to a loopback host).
        #[arg(long)]
        control_plane: String,
        /// The cluster's id (`c_…`) or name.
        #[arg(long)]
        cluster: String,
    },
}

/// A role as `--role` takes it: the core's [`Role`], by its wire name.
fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("must be one of {}", names.join(", "))
    })
}

#[derive(Subcommand)]
pub enum Access {
    /// The cluster's grants: ID, EMAIL, ROLE, SCOPE, NAMESPACE, STATUS, ERROR.
    List { cluster: String },
    /// Grant a member a role, in one namespace or on the whole cluster.
    #[command(group(ArgGroup::new("scope").required(true).args(["namespace", "cluster_scope"])))]
    Grant {
        /// The cluster's name or `c_…` id.
        cluster: String,
        /// The member's email address (they must have signed in once).
        #[arg(long)]
        email: String,
        /// The built-in Kubernetes role to bind.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Grant the role in this namespace only.
        #[arg(long)]
        namespace: Option<String>,
        /// Grant the role on the whole cluster.
        #[arg(long)]
        cluster_scope: bool,
    },
    /// Revoke one grant by id, or every grant of one member.
    #[command(group(ArgGroup::new("which").required(true).args(["grant_id", "email"])))]
    Revoke {
        cluster: String,
        /// The grant's id (`g_…`).
        grant_id: Option<String>,
        /// Revoke every grant this member holds on the cluster.
        #[arg(long)]
        email: Option<String>,
    },
    /// Revoke every grant and every token on the cluster.
    RevokeAll {
        cluster: String,
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The grants' reconcile statuses; with --wait, until none is pending.
    Status {
        cluster: String,
        /// Poll until no grant is pending; exit 1 if any is failed or cluster_offline then, or on timeout.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
pub enum Credential {
    /// Issue a new agent credential and print it, once; the old one keeps working until the
    /// agent uses the new one or --previous-valid-for passes.
    Rotate {
        /// The cluster's name or `c_…` id.
        cluster: String,
        /// Seconds the old credential stays valid if the agent does not use the new one first
        /// (at most 86400); 0 refuses it at once, for a leaked credential.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        previous_valid_for: u64,
    },
}

#[derive(Subcommand)]
pub enum Kubeconfig {
    /// Fetch your kubeconfig for the cluster and merge it into your kubeconfig file.
    Add {
        cluster: String,
        /// Also make it the current context.
        #[arg(long)]
        set_current: bool,
    },
    /// Remove the cluster's Lanyard context, cluster and user entries.
    Remove { cluster: String },
    /// The Lanyard contexts in your kubeconfig file.
    List,
}

#[derive(Subcommand)]
pub enum Dev {
    /// Create the development issuer's key in the state folder (if missing) and
    /// print the `session_issuers` value that trusts it.
    Init {
        #[arg(long, env = "LANYARD_STATE", default_value = ".lanyard")]
        state: PathBuf,
    },
    /// Create the local run's cluster-token signing key in the state folder (if
    /// missing) and print the `token_signing_keys` value that holds it (or,
    /// with `--public`, the `token_jwks` value that publishes it).
    SigningKeys {
        #[arg(long, env = "LANYARD_STATE", default_value = ".lanyard")]
        state: PathBuf,
        /// Print the public JWKS (`token_jwks`) instead of the private keys.
        #[arg(long)]
        public: bool,
    },
    /// Print a session token for the local run.
    Token {
        /// The member's email address.
        #[arg(long)]
        email: String,
        /// The organisation.
        #[arg(long, default_value = "demo")]
        org: String,
        /// Make the member an organisation admin.
        #[arg(long)]
        admin: bool,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 8 * 3600)]
        ttl: u64,
        #[arg(long, env = "LANYARD_STATE", default_value = ".lanyard")]
        state: PathBuf,
    },
    /// Wait for the local control plane, then give it a demo organisation:
    /// sign in its members and register the `demo` cluster (once; its agent
    /// credential is saved in the state folder).
    Seed {
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[arg(long, default_value = "demo")]
        org: String,
        #[arg(long, env = "LANYARD_STATE", default_value = ".lanyard")]
        state: PathBuf,
        /// How long to wait for the control plane to answer.
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
        /// Seed as the admin whose session token is in this file (the local
        /// run with Dex) instead of the development issuer's demo members.
        #[arg(long)]
        session_file: Option<PathBuf>,
    },
}
