//! `lanyard-local-dex`: Dex for `scripts/run --dex`, the local run that signs
//! people in through a real OpenID Connect provider.
//!
//! ```text
//! lanyard-local-dex --listen 127.0.0.1:5556 --redirect-uri http://127.0.0.1:3000/auth/callback --out DIR
//! ```
//!
//! Starts Dex (the test fixture's users, clients and groups) with its issuer
//! at `http://<listen>/dex`, and writes into `DIR`, each with mode 0600:
//! `session_issuers.json` (the entry that trusts it), `client_secrets.json`
//! (the `oidc_client_secrets` value), `origin` (for `idp_origin`) and
//! `admin.session` (a session of the first admin user, for the local run's
//! seed only: an ID token, valid as long as Dex's ID tokens are). Then runs
//! until SIGINT or SIGTERM, and stops Dex.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lanyard_dex::{ALICE, Dex, Front, Setup, session_issuer_entry};
use serde_json::json;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut redirect, mut out) = (None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value()?.parse::<SocketAddr>().context("--listen must be host:port")?),
            "--redirect-uri" => redirect = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other} (lanyard-local-dex --listen ADDR --redirect-uri URL --out DIR)"),
        }
    }
    let (Some(listen), Some(redirect), Some(out)) = (listen, redirect, out) else {
        bail!("usage: lanyard-local-dex --listen ADDR --redirect-uri URL --out DIR");
    };
    let dex = Dex::start(Front::bind_at(listen)?, Setup::default().web_redirect_uri(redirect))?;
    let issuer = dex.issuer();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_private(&out.join("session_issuers.json"), &json!([session_issuer_entry(&issuer)]).to_string())?;
    write_private(&out.join("client_secrets.json"), &json!({ &issuer: dex.web_client_secret() }).to_string())?;
    write_private(&out.join("origin"), &format!("http://{listen}"))?;
    write_private(&out.join("admin.session"), &dex.cli_tokens(ALICE.email)?.id_token)?;
    eprintln!("Dex is serving {issuer} (its log: {})", dex.log_path().display());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    drop(dex);
    Ok(())
}

/// Write `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
