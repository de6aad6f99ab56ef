//! A real OpenID Connect provider for Lanyard's tests: Dex (built from its Go
//! module by `scripts/dex`), on loopback, behind a counting reverse proxy.
//!
//! [`Front::bind`] takes a free port first, so that the issuer URL
//! (`http://127.0.0.1:<port>/dex`) is known before Dex, or the control plane
//! under test, starts. [`Dex::start`] then writes Dex's configuration to a
//! private temporary directory and runs Dex on another free port, with the
//! front's URL as its issuer: every client (control plane, CLI, tests) goes
//! through the front, which counts requests by path ([`Dex::requests_to`]).
//!
//! Dex is configured with memory storage; the password database with the
//! static users [`ALICE`], [`BOB`] and [`CAROL`] (password [`PASSWORD`]; their
//! `groups` reach the ID token with the `groups` scope, and Dex marks a static
//! user's email verified); no approval screen; the `code` response type only;
//! the device flow; refresh tokens (scope `offline_access`; Dex rotates them
//! on every refresh and, with no reuse interval configured, refuses an
//! exchanged one at once, answering `invalid_request`, not `invalid_grant`,
//! as it does for any refresh token it does not know); and the static
//! clients [`CLI_CLIENT_ID`] (public: no secret, any loopback redirect, PKCE),
//! [`WEB_CLIENT_ID`] (confidential, [`Dex::web_client_secret`], the redirect
//! URIs of the [`Setup`]) and, if asked for, [`OTHER_CLIENT_ID`].
//!
//! [`Dex::sign_in`] and [`Dex::approve_device`] are a browser stand-in that
//! fills in Dex's HTML forms as a person would. [`Dex::restart`] runs Dex
//! again on the same ports with the same configuration. Dropping a [`Dex`],
//! also while a failed test unwinds, kills Dex and removes its directory.

mod binary;
mod browser;
mod front;
mod html;
mod lanyard;
mod setup;
mod tokens;

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lanyard_test_support::scripts::read_tail;
use lanyard_test_support::{Probe, wait_for};
use serde_json::Value;

pub use binary::{DEX_ENV, DEX_SCRIPT, dex_binary};
pub use browser::SignInError;
pub use front::{Front, ISSUER_PATH};
pub use setup::{
    ALICE, BOB, CAROL, CLI_CLIENT_ID, OTHER_APP_REDIRECT_URI, OTHER_CLIENT_ID, PASSWORD, Setup, USERS, User,
    WEB_CLIENT_ID,
};

pub use lanyard::{ADMIN_GROUP, ORGANISATIONS, session_issuer_entry};
pub use tokens::{CLI_REDIRECT_URI, SCOPES, Tokens};

use browser::Browser;
use setup::Secrets;

/// How long Dex may take to answer its discovery document after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Dex behind its [`Front`].
pub struct Dex {
    /// Dex itself; `None` only while restarting.
    child: Option<Child>,
    front: Front,
    secrets: Secrets,
    binary: PathBuf,
    listen: SocketAddr,
    config_path: PathBuf,
    log_path: PathBuf,
    browser: Browser,
    /// A client for the readiness probe.
    probe: reqwest::blocking::Client,
    /// Holds the configuration and the log; removed on drop, after Dex is killed.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Dex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Dex")
            .field("issuer", &self.issuer())
            .field("listen", &self.listen)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Dex {
    /// Starts Dex behind `front` as `setup` says, and returns once its
    /// discovery document answers, through the front, with the front's issuer.
    pub fn start(front: Front, setup: Setup) -> Result<Dex> {
        let binary = dex_binary()?;
        let dir =
            tempfile::Builder::new().prefix("lanyard-dex-").tempdir().context("could not create Dex's directory")?;
        let listen = free_port()?;
        let secrets = Secrets::generate()?;
        let config = setup::dex_config(&setup, &front.issuer(), listen, &secrets)?;
        let config_path = dir.path().join("config.yaml");
        let text = serde_json::to_string_pretty(&config).context("could not write Dex's configuration")?;
        std::fs::write(&config_path, text).with_context(|| format!("could not write {}", config_path.display()))?;
        let log_path = dir.path().join("dex.log");
        front.forward_to(listen);
        let browser = Browser::new(&front.issuer())?;
        let probe = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("could not build the readiness probe's HTTP client")?;
        let mut dex = Dex { child: None, front, secrets, binary, listen, config_path, log_path, browser, probe, dir };
        dex.run()?;
        Ok(dex)
    }

    /// Stops Dex and starts it again with the same configuration on the same
    /// ports, returning once it answers. Dex keeps everything in memory, so
    /// this has two effects tests rely on: Dex makes new signing keys (the
    /// JWKS at `/dex/keys` has new key IDs, and tokens signed before no longer
    /// verify against it: "rotation at the provider"), and every refresh
    /// token, authorization code and pending device request is gone (a
    /// refresh then fails, "refresh token revoked"; Dex's answer is a 400
    /// with `invalid_request`, not the `invalid_grant` of RFC 6749). The
    /// users, clients and client secrets stay the same.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.run()
    }

    /// The issuer URL, the front's: `http://127.0.0.1:<port>/dex`.
    pub fn issuer(&self) -> String {
        self.front.issuer()
    }

    /// The front, which counts the requests to Dex.
    pub fn front(&self) -> &Front {
        &self.front
    }

    /// How many requests for `path` (e.g. `/dex/keys`) reached the front.
    pub fn requests_to(&self, path: &str) -> usize {
        self.front.requests_to(path)
    }

    /// How many requests reached the front, readiness probes included.
    pub fn total_requests(&self) -> usize {
        self.front.total_requests()
    }

    /// The secret of the confidential client [`WEB_CLIENT_ID`].
    pub fn web_client_secret(&self) -> &str {
        &self.secrets.web
    }

    /// The secret of [`OTHER_CLIENT_ID`] (which exists only if the
    /// [`Setup`] asked for it).
    pub fn other_app_secret(&self) -> &str {
        &self.secrets.other_app
    }

    /// Dex's log (both runs', after a restart).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Signs `email` in with `password` at `authorize_url` (a client's
    /// authorization request to this Dex), following Dex's own redirects and
    /// submitting its login form, and returns the first redirect that leaves
    /// Dex, not requested: the client's `redirect_uri` with `code` and `state`
    /// (or with `error`). A wrong password is a [`SignInError::WrongPassword`].
    pub fn sign_in(&self, authorize_url: &str, email: &str, password: &str) -> Result<String> {
        self.browser.sign_in(authorize_url, email, password)
    }

    /// Approves a device authorization as its user would: opens
    /// `verification_uri` (the device authorization response's), enters
    /// `user_code`, signs `email` in with `password`, and checks that Dex says
    /// the device is approved. The device's next token poll then succeeds.
    pub fn approve_device(&self, verification_uri: &str, user_code: &str, email: &str, password: &str) -> Result<()> {
        self.browser.approve_device(verification_uri, user_code, email, password)
    }

    /// Starts Dex and waits until it answers.
    fn run(&mut self) -> Result<()> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("could not open {}", self.log_path.display()))?;
        writeln!(log, "----- lanyard-dex: starting {} on {} -----", self.binary.display(), self.listen)
            .context("could not write Dex's log")?;
        let stderr = log.try_clone().context("could not share Dex's log file")?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("could not start Dex ({})", self.binary.display()))?;
        self.child = Some(child);
        let ready = self.wait_until_ready();
        ready.map_err(|error| {
            // The tail, not the log's path: the directory goes with the Dex.
            let error = error.context(format!("Dex did not start; the end of its log:\n{}", self.log_tail()));
            self.stop();
            error
        })
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer());
        let issuer = self.issuer();
        let (child, probe) = (&mut self.child, &self.probe);
        wait_for(&format!("Dex to answer {discovery}"), START_TIMEOUT, || {
            if let Some(status) =
                child.as_mut().map(Child::try_wait).transpose().context("could not check on Dex")?.flatten()
            {
                bail!("Dex exited ({status}) before it answered");
            }
            let response = match probe.get(&discovery).send() {
                Ok(response) => response,
                Err(error) => return Ok(Probe::NotYet(format!("{error}"))),
            };
            let status = response.status();
            if !status.is_success() {
                let body = response.text().unwrap_or_default();
                return Ok(Probe::NotYet(format!("{status}: {}", body.trim())));
            }
            let document: Value = response.json().context("Dex's discovery document is not JSON")?;
            if document["issuer"] != issuer.as_str() {
                bail!("Dex's discovery document names the issuer {}, not {issuer}", document["issuer"]);
            }
            Ok(Probe::Ready(()))
        })
    }

    /// Kills Dex and reaps it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort (it may have exited): this also runs on drop.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last [`LOG_TAIL_BYTES`] of Dex's log, from a line boundary.
    fn log_tail(&self) -> String {
        read_tail(&self.log_path).unwrap_or_else(|error| format!("(could not read the log: {error:#})"))
    }
}

impl Drop for Dex {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback address nothing listens on (for Dex, which cannot report the
/// port it would pick itself).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("could not find a free loopback port")?;
    listener.local_addr().context("could not read a free port")
}
