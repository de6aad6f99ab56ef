//! The real `lanyard` binary signing in with a real identity provider (Dex,
//! from `lanyard-dex`), each test in its own HOME and LANYARD_CONFIG: the
//! browser flow (the test plays the browser: `Dex::sign_in`, then delivers
//! the redirect to the CLI's loopback callback), the device flow, the
//! timeout, a forged callback, silent renewal with a short ID-token
//! lifetime, the one-line failure once Dex has forgotten the refresh token,
//! and logout. Most tests bypass discovery (`--issuer`, `--client-id`); the
//! last runs the whole path against the real control plane trusting Dex.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use lanyard_api_tests::sso::{SsoEnv, SsoOptions};
use lanyard_cli::config::{Config, SessionInfo};
use lanyard_dex::{ALICE, BOB, CLI_CLIENT_ID, Dex, Front, PASSWORD, Setup};

fn dex(setup: Setup) -> Dex {
    Dex::start(Front::bind().expect("bind Dex's front"), setup).expect("start Dex")
}

/// A `lanyard` run whose stderr is read line by line while it runs.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(env: &Env, args: &[&str]) -> Running {
        let mut child = env.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn lanyard");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, seen: Vec::new() }
    }

    /// The first stderr line (from now on) that `pick` accepts, mapped; waits up to 60 s.
    #[track_caller]
    fn line<T>(&mut self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let picked = pick(&line);
                    self.seen.push(line);
                    if let Some(v) = picked {
                        return v;
                    }
                }
                Err(_) => panic!("no {what} on lanyard's stderr; it printed: {:#?}", self.seen),
            }
        }
    }

    /// Wait for the exit; the exit code, stdout and all of stderr.
    fn finish(mut self) -> Out {
        let mut stdout = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        // The reader ends at EOF, which the exit brings.
        self.seen.extend(self.lines.iter());
        Out { code: status.code().unwrap_or(-1), stdout, stderr: self.seen.join("\n") }
    }
}

fn login_args<'a>(issuer: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["login", "--issuer", issuer, "--client-id", CLI_CLIENT_ID];
    args.extend_from_slice(extra);
    args
}

/// Sign `email` in through the browser flow; the finished run.
fn browser_login(env: &Env, dex: &Dex, email: &str) -> Out {
    let issuer = dex.issuer();
    let mut run = Running::start(env, &login_args(&issuer, &["--no-browser", "--timeout", "60s"]));
    let url = run.line("authorization URL", |l| l.starts_with(&issuer).then(|| l.to_owned()));
    let location = dex.sign_in(&url, email, PASSWORD).expect("sign in at Dex");
    assert!(location.starts_with("http://127.0.0.1:") && location.contains("/callback?"), "{location}");
    let page = reqwest::blocking::get(&location).expect("deliver the code to the CLI");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("Signed in"));
    run.finish()
}

fn saved(env: &Env) -> Config {
    Config::load(&env.config).unwrap()
}

fn session_exp(env: &Env) -> u64 {
    SessionInfo::from_token(saved(env).session_token.as_deref().unwrap()).expires_at.expect("exp")
}

/// Wait (with a deadline) until the saved session has expired.
fn wait_expired(env: &Env) {
    let exp = session_exp(env);
    wait_until("the saved session's exp to pass", Duration::from_secs(60), || lanyard_api_tests::unix_now() > exp);
}

#[test]
fn browser_sign_in_renews_silently_then_ends_in_one_line_and_logout_forgets() {
    let mut dex = dex(Setup::default().id_token_lifetime(Duration::from_secs(5)));
    let env = Env::new();
    let out = browser_login(&env, &dex, ALICE.email);
    out.ok();
    let cfg = saved(&env);
    let first = cfg.session_token.clone().unwrap();
    assert_eq!(SessionInfo::from_token(&first).email.as_deref(), Some(ALICE.email));
    let refresh = cfg.refresh.clone().expect("the refresh token is saved");
    assert_eq!((refresh.issuer.as_str(), refresh.client_id.as_str()), (dex.issuer().as_str(), CLI_CLIENT_ID));
    assert_eq!(mode(&env.config), 0o600);
    for secret in [&first, &refresh.refresh_token] {
        assert!(!out.stderr.contains(secret.as_str()) && !out.stdout.contains(secret.as_str()), "{out:?}");
    }

    // Expired: renewed with the refresh token, silently; Dex rotates the refresh token.
    wait_expired(&env);
    let who = env.run(&["whoami", "--local", "-o", "json"]);
    who.ok();
    assert_eq!(who.json()["email"], ALICE.email);
    assert_eq!(who.stderr, "", "renewal is silent");
    let cfg = saved(&env);
    let second = cfg.session_token.clone().unwrap();
    assert_ne!(second, first, "a new ID token");
    assert!(session_exp(&env) > lanyard_api_tests::unix_now() - 1);
    assert_ne!(
        cfg.refresh.as_ref().unwrap().refresh_token,
        refresh.refresh_token,
        "the rotated refresh token is saved"
    );
    assert_eq!(mode(&env.config), 0o600);

    // Dex forgets every refresh token: once the session expires, the exec
    // plugin fails with one line saying to log in (the control plane named).
    dex.restart().expect("restart Dex");
    let mut cfg = saved(&env);
    cfg.control_plane = Some("http://127.0.0.1:9".into());
    cfg.save(&env.config).unwrap();
    wait_expired(&env);
    let out = env.run(&[
        "cluster",
        "token",
        "--control-plane",
        "http://127.0.0.1:9",
        "--cluster",
        "c_0123456789abcdef01234567",
    ]);
    out.code(3);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("run `lanyard login --control-plane http://127.0.0.1:9`"), "{out:?}");
    let refresh_token = saved(&env).refresh.unwrap().refresh_token;
    assert!(!out.stderr.contains(&refresh_token) && !out.stderr.contains(&second), "{out:?}");
    env.run(&["whoami", "--local"]).code(3);

    // Logout forgets the session and the refresh token.
    env.run(&["logout"]).ok();
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(!text.contains(&refresh_token) && !text.contains("refresh") && !text.contains("session_token"), "{text}");
    assert_eq!(saved(&env).control_plane.as_deref(), Some("http://127.0.0.1:9"));
}

#[test]
fn device_sign_in() {
    let dex = dex(Setup::default());
    let env = Env::new();
    let issuer = dex.issuer();
    let mut run = Running::start(&env, &login_args(&issuer, &["--device"]));
    run.line("the device page's heading", |l| l.contains("open this page").then_some(()));
    let uri = run.line("the verification URI", |l| Some(l.trim().to_owned()));
    let code = run.line("the user code", |l| l.split_once("enter the code: ").map(|(_, c)| c.trim().to_owned()));
    assert!(uri.starts_with(&issuer), "{uri}");
    dex.approve_device(&uri, &code, BOB.email, PASSWORD).expect("approve the device");
    let out = run.finish();
    out.ok();
    let cfg = saved(&env);
    assert_eq!(SessionInfo::from_token(cfg.session_token.as_deref().unwrap()).email.as_deref(), Some(BOB.email));
    assert!(cfg.refresh.is_some());
}

#[test]
fn a_sign_in_that_never_comes_back_times_out_clearly() {
    let dex = dex(Setup::default());
    let env = Env::new();
    let out = env.run(&login_args(&dex.issuer(), &["--no-browser", "--timeout", "1s"]));
    out.code(3);
    assert!(out.stderr.contains("no sign-in came back within 1s"), "{out:?}");
    assert!(out.stderr.contains("lanyard login --device"), "{out:?}");
    assert!(!env.config.exists(), "nothing saved");
}

#[test]
fn a_callback_with_another_state_is_refused() {
    let dex = dex(Setup::default());
    let env = Env::new();
    let issuer = dex.issuer();
    let mut run = Running::start(&env, &login_args(&issuer, &["--no-browser", "--timeout", "60s"]));
    let url = run.line("authorization URL", |l| l.starts_with(&issuer).then(|| l.to_owned()));
    let location = dex.sign_in(&url, ALICE.email, PASSWORD).unwrap();
    let forged = reqwest::Url::parse(&location).unwrap();
    let mut forged_url = forged.clone();
    forged_url.query_pairs_mut().clear();
    for (k, v) in forged.query_pairs() {
        let v = if k == "state" { "forged".into() } else { v };
        forged_url.query_pairs_mut().append_pair(&k, &v);
    }
    assert_eq!(reqwest::blocking::get(forged_url.as_str()).unwrap().status().as_u16(), 400);
    let out = run.finish();
    out.code(3);
    assert!(out.stderr.contains("state does not match"), "{out:?}");
    assert!(!env.config.exists(), "nothing saved");
}

/// The whole path a member takes, against the real control plane trusting
/// Dex: `lanyard login --control-plane URL` (the issuer from `/api/v1/login`),
/// the exec plugin minting a cluster token with that session, then renewing
/// the expired session silently and minting again; the device flow likewise.
#[test]
fn login_through_the_control_plane_then_the_exec_plugin_mints_and_renews_silently() {
    let sso = SsoEnv::start_with(SsoOptions {
        setup: Setup::default().id_token_lifetime(Duration::from_secs(5)),
        ..SsoOptions::default()
    });
    let app = &sso.app;
    let admin = sso.session(ALICE.email);
    let cluster = app.cluster(&admin, "prod", "standard");
    app.grant_access(&admin, &cluster, ALICE.email, "view", Some("default"));
    let bob = sso.session(BOB.email);
    app.get("/api/v1/clusters", &bob).expect(200); // bob joins the directory
    app.grant_access(&admin, &cluster, BOB.email, "view", Some("default"));

    let env = Env::new();
    let issuer = sso.dex.issuer();
    let mut run = Running::start(&env, &["login", "--control-plane", &app.url, "--no-browser", "--timeout", "60s"]);
    let url = run.line("authorization URL", |l| l.starts_with(&issuer).then(|| l.to_owned()));
    let location = sso.dex.sign_in(&url, ALICE.email, PASSWORD).unwrap();
    reqwest::blocking::get(&location).unwrap();
    let out = run.finish();
    out.ok();
    let said = format!("Logged in to {} as {} (organisation acme), admin", app.url, ALICE.email);
    assert!(out.stderr.contains(&said), "the organisation and role as the control plane decided them: {out:?}");

    let token = ["cluster", "token", "--control-plane", app.url.as_str(), "--cluster", cluster.as_str()];
    let minted = env.run(&token);
    minted.ok();
    assert!(minted.json()["status"]["token"].as_str().is_some_and(|t| t.len() > 100), "{minted:?}");

    // The session expires; with no cached cluster token left, the plugin renews it silently and mints.
    let first = saved(&env).session_token.unwrap();
    wait_expired(&env);
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let again = env.run(&token);
    again.ok();
    assert_eq!(again.stderr, "", "renewal is silent");
    assert!(again.json()["status"]["token"].as_str().is_some());
    assert_ne!(saved(&env).session_token.unwrap(), first, "a renewed session");

    // The device flow, for bob.
    let device = Env::new();
    let mut run = Running::start(&device, &["login", "--control-plane", &app.url, "--device"]);
    run.line("the device page's heading", |l| l.contains("open this page").then_some(()));
    let uri = run.line("the verification URI", |l| Some(l.trim().to_owned()));
    let code = run.line("the user code", |l| l.split_once("enter the code: ").map(|(_, c)| c.trim().to_owned()));
    sso.dex.approve_device(&uri, &code, BOB.email, PASSWORD).expect("approve the device");
    run.finish().ok();
    device.run(&token).ok();

    // An organisation this control plane has no provider for: exit 5, naming it.
    let other = Env::new();
    let out = other.run(&["login", "--control-plane", &app.url, "--org", "initech", "--no-browser"]);
    out.code(5);
    assert!(out.stderr.contains("initech"), "{out:?}");
}
