//! `lanyard dev init|token|seed`: the local run's development issuer. `init`
//! creates its key in the state folder, `token` signs a session token with
//! it, `seed` gives the local run a demo organisation and cluster.
//! `lanyard login --dev` mints its session with [`mint_session`].

use std::path::Path;
use std::time::{Duration, Instant};

use jwt_simple::prelude::Ed25519KeyPair;
use lanyard_core::dev::{self, SessionClaims};
use serde_json::{Value, json};

use crate::error::{CliError, Result};
use crate::fsutil::{self, unix_now};

/// The organisation the local run's development issuer speaks for: the
/// default `--org` of `dev token`, `dev seed` and `login --dev`.
const DEMO_ORG: &str = "demo";
/// The demo organisation's members: (email, admin).
const DEMO_MEMBERS: [(&str, bool); 2] = [("alice@demo.example", true), ("bob@demo.example", false)];

const KEY_FILE: &str = "dev-issuer.jwk";
/// The local run's cluster-token signing key.
const SIGNING_KEY_FILE: &str = "token-signing.jwk";

/// Create the development issuer's key (if missing) and print the
/// `session_issuers` value that trusts it for the demo organisation (the
/// deployment must also set `development_mode`, as `scripts/run` does).
pub fn init(state: &Path) -> Result<()> {
    let key = load_or_create_key(state, KEY_FILE)?;
    let issuers = Value::Array(vec![dev::issuer_entry(&key, dev::DEV_ISSUER, dev::AUDIENCE, &[DEMO_ORG])]);
    println!("{issuers}");
    Ok(())
}

/// Create the local run's token signing key (if missing) and print the
/// `token_signing_keys` value that holds it, or with `public` the
/// `token_jwks` value that publishes its public half.
pub fn signing_keys(state: &Path, public: bool) -> Result<()> {
    let key = load_or_create_key(state, SIGNING_KEY_FILE)?;
    let private = format!("[{}]", key.to_jwk());
    if public {
        let keys = lanyard_core::token::SigningKeys::parse(&private)
            .map_err(|e| CliError::Failed(format!("the signing key in the state folder {e}")))?;
        println!("{}", keys.jwks());
    } else {
        println!("{private}");
    }
    Ok(())
}

pub fn token(state: &Path, claims: SessionClaims) -> Result<()> {
    let key = load_key(state)?;
    println!("{}", dev::mint_session(&key, dev::DEV_ISSUER, dev::AUDIENCE, &claims, unix_now()));
    Ok(())
}

/// A session token signed with the development issuer key in `state`.
pub fn mint_session(state: &Path, claims: &SessionClaims) -> Result<String> {
    let key = load_key(state)?;
    Ok(dev::mint_session(&key, dev::DEV_ISSUER, dev::AUDIENCE, claims, unix_now()))
}

/// Where the seed's sessions come from.
enum Sessions {
    /// One admin's session, from a file.
    Given(String),
    /// Minted by the development issuer for the demo members.
    Minted(Box<Ed25519KeyPair>),
}

pub fn seed(url: &str, org: &str, state: &Path, wait_secs: u64, session_file: Option<&Path>) -> Result<()> {
    // With a session file (the local run with Dex), only that admin signs in;
    // otherwise the development issuer mints the demo members' sessions.
    let sessions = match session_file {
        Some(path) => Sessions::Given(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Io { context: format!("reading {}", path.display()), source: e })?
                .trim()
                .to_owned(),
        ),
        None => Sessions::Minted(Box::new(load_key(state)?)),
    };
    let given = matches!(sessions, Sessions::Given(_));
    let token = |email: &str, admin: bool| match &sessions {
        Sessions::Given(session) => session.clone(),
        Sessions::Minted(key) => {
            let claims = SessionClaims { email: email.into(), org: org.into(), admin, name: None, ttl_secs: 300 };
            dev::mint_session(key, dev::DEV_ISSUER, dev::AUDIENCE, &claims, unix_now())
        }
    };
    let transport = |e: reqwest::Error| CliError::Transport(format!("talking to {url}: {e}"));
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().map_err(transport)?;
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
            Err(e) => {
                return Err(CliError::Transport(format!(
                    "the control plane at {url} did not answer within {wait_secs}s: {e}"
                )));
            }
        }
    };
    if !listing.status().is_success() {
        return Err(CliError::Failed(format!(
            "listing clusters answered {}: {}",
            listing.status(),
            listing.text().unwrap_or_default()
        )));
    }
    for (email, admin) in DEMO_MEMBERS.into_iter().filter(|_| !given) {
        let resp = client.get(&clusters_url).bearer_auth(token(email, admin)).send().map_err(transport)?;
        if !resp.status().is_success() {
            return Err(CliError::Failed(format!("signing in {email} answered {}", resp.status())));
        }
    }
    let listing: Value = listing.json().map_err(transport)?;
    let demo = listing["clusters"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == "demo"));
    let id_path = state.join("demo-cluster.id");
    if let Some(id) = demo.and_then(|c| c["id"].as_str()) {
        fsutil::write_atomic(&id_path, id.as_bytes())?;
    } else {
        let resp = client
            .post(&clusters_url)
            .bearer_auth(&admin)
            .json(&json!({"name": "demo", "kind": "standard", "proxy_url": "https://127.0.0.1:8443"}))
            .send()
            .map_err(transport)?;
        if resp.status().as_u16() != 201 {
            return Err(CliError::Failed(format!("registering the demo cluster answered {}", resp.status())));
        }
        let body: Value = resp.json().map_err(transport)?;
        let credential = body["agent_credential"].as_str().unwrap_or_default();
        let path = state.join("demo-agent.credential");
        fsutil::write_atomic(&path, credential.as_bytes())?;
        fsutil::write_atomic(&id_path, body["cluster"]["id"].as_str().unwrap_or_default().as_bytes())?;
        crate::output::note(&format!(
            "registered cluster demo ({}); its agent credential is in {}",
            body["cluster"]["id"],
            path.display()
        ));
    }
    Ok(())
}

fn load_key(state: &Path) -> Result<Ed25519KeyPair> {
    load_key_file(state, KEY_FILE)
}

fn load_key_file(state: &Path, file: &str) -> Result<Ed25519KeyPair> {
    let path = state.join(file);
    let jwk = std::fs::read_to_string(&path).map_err(|_| {
        CliError::Failed(format!(
            "no development issuer key at {}: start the local run first (see README), pass --state, or run `lanyard dev init`",
            path.display()
        ))
    })?;
    Ed25519KeyPair::from_jwk(&jwk)
        .map_err(|_| CliError::Failed(format!("{} is not an Ed25519 private JWK", path.display())))
}

fn load_or_create_key(state: &Path, file: &str) -> Result<Ed25519KeyPair> {
    if state.join(file).exists() {
        return load_key_file(state, file);
    }
    fsutil::create_private_dir(state)?;
    let key = dev::new_key(&lanyard_core::random::SystemRandom)
        .map_err(|e| CliError::Failed(format!("cannot make a signing key: {e}")))?;
    fsutil::write_atomic(&state.join(file), key.to_jwk().as_bytes())?;
    Ok(key)
}
