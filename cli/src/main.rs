//! `lanyard`, the command line. Today it serves the local run: `lanyard dev
//! init` creates the development issuer's key, and `lanyard dev token` signs a
//! session token with it, and `lanyard dev seed` gives the local run a demo
//! organisation and cluster. Login, access management and the kubectl exec
//! plugin come next.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use jwt_simple::prelude::Ed25519KeyPair;
use lanyard_core::dev::{self, SessionClaims};

#[derive(Parser)]
#[command(name = "lanyard", version, about = "SSO-backed, short-lived kubectl access")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The local run's development issuer (never trusted by a deployment unless configured).
    #[command(subcommand)]
    Dev(Dev),
}

#[derive(Subcommand)]
enum Dev {
    /// Create the development issuer's key in the state folder (if missing) and
    /// print the `session_issuers` value that trusts it.
    Init {
        #[arg(long, env = "LANYARD_STATE", default_value = ".lanyard")]
        state: PathBuf,
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
    },
}

/// The demo organisation's members: (email, admin).
const DEMO_MEMBERS: [(&str, bool); 2] = [("alice@demo.example", true), ("bob@demo.example", false)];

const KEY_FILE: &str = "dev-issuer.jwk";

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lanyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dev(Dev::Init { state }) => {
            let key = load_or_create_key(&state)?;
            let issuers = serde_json::Value::Array(vec![dev::issuer_entry(&key, dev::DEV_ISSUER, dev::AUDIENCE)]);
            println!("{issuers}");
        }
        Command::Dev(Dev::Token { email, org, admin, name, ttl, state }) => {
            let key = load_key(&state)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let claims = SessionClaims { email, org, admin, name, ttl_secs: ttl };
            println!("{}", dev::mint_session(&key, dev::DEV_ISSUER, dev::AUDIENCE, &claims, now));
        }
        Command::Dev(Dev::Seed { url, org, state, wait_secs }) => seed(&url, &org, &state, wait_secs)?,
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn seed(url: &str, org: &str, state: &Path, wait_secs: u64) -> Result<()> {
    use std::time::{Duration, Instant};
    let key = load_key(state)?;
    let token = |email: &str, admin: bool| {
        let claims = SessionClaims { email: email.into(), org: org.into(), admin, name: None, ttl_secs: 300 };
        dev::mint_session(&key, dev::DEV_ISSUER, dev::AUDIENCE, &claims, unix_now())
    };
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let clusters_url = format!("{url}/api/v1/clusters");
    let admin = token(DEMO_MEMBERS[0].0, true);
    // Wait until the control plane answers (any HTTP answer will do).
    let deadline = Instant::now() + Duration::from_secs(wait_secs);
    let listing = loop {
        match client.get(&clusters_url).bearer_auth(&admin).send() {
            Ok(resp) => break resp,
            Err(e) if Instant::now() < deadline && (e.is_connect() || e.is_timeout()) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => anyhow::bail!("the control plane at {url} did not answer within {wait_secs}s: {e}"),
        }
    };
    anyhow::ensure!(listing.status().is_success(), "listing clusters answered {}: {}", listing.status(), listing.text()?);
    for (email, admin) in DEMO_MEMBERS {
        let resp = client.get(&clusters_url).bearer_auth(token(email, admin)).send()?;
        anyhow::ensure!(resp.status().is_success(), "signing in {email} answered {}", resp.status());
    }
    let listing: serde_json::Value = listing.json()?;
    let has_demo = listing["clusters"].as_array().is_some_and(|cs| cs.iter().any(|c| c["name"] == "demo"));
    if !has_demo {
        let resp = client
            .post(&clusters_url)
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": "demo", "kind": "standard", "proxy_url": "http://127.0.0.1:8443"}))
            .send()?;
        anyhow::ensure!(resp.status().as_u16() == 201, "registering the demo cluster answered {}", resp.status());
        let body: serde_json::Value = resp.json()?;
        let credential = body["agent_credential"].as_str().unwrap_or_default();
        write_secret(&state.join("demo-agent.credential"), credential)?;
        eprintln!("registered cluster demo ({}); its agent credential is in {}", body["cluster"]["id"], state.join("demo-agent.credential").display());
    }
    Ok(())
}

/// Write a secret to a new file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

fn load_key(state: &Path) -> Result<Ed25519KeyPair> {
    let path = state.join(KEY_FILE);
    let jwk = fs::read_to_string(&path).with_context(|| {
        format!("no development issuer key at {}: start the local run first (see README), or run `lanyard dev init`", path.display())
    })?;
    Ed25519KeyPair::from_jwk(&jwk).map_err(|_| anyhow::anyhow!("{} is not an Ed25519 private JWK", path.display()))
}

fn load_or_create_key(state: &Path) -> Result<Ed25519KeyPair> {
    if state.join(KEY_FILE).exists() {
        return load_key(state);
    }
    fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let key = dev::new_key();
    let path = state.join(KEY_FILE);
    write_secret(&path, &key.to_jwk())?;
    Ok(key)
}
