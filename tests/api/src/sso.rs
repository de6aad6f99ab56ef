//! The control plane signed into by a real OpenID Connect provider: Dex (see
//! the `lanyard-dex` crate) trusted as the only issuer, with its
//! [`session_issuer_entry`] (organisations `acme` and `globex` and the admin
//! role from Dex's `groups`), the web client's secret in
//! `oidc_client_secrets`, and outbound HTTP allowed to Dex only (`idp_origin`).

use lanyard_dex::{Dex, Front, Setup, session_issuer_entry};
use serde_json::{Value, json};

use crate::{App, Options};

/// Dex and the control plane that trusts it.
pub struct SsoEnv {
    pub dex: Dex,
    pub app: App,
}

/// How to start an [`SsoEnv`].
#[derive(Debug, Clone)]
pub struct SsoOptions {
    /// Dex's setup (its `lanyard-web` redirect URI is added).
    pub setup: Setup,
    /// Members of the issuer's `session_issuers` entry, replacing the defaults.
    pub entry: Value,
    /// Whether outbound HTTP to Dex is allowed (`idp_origin`).
    pub allow_outbound: bool,
    /// Whether Cluster Access is on (`access_gateway_enabled`).
    pub gateway: bool,
}

impl Default for SsoOptions {
    fn default() -> Self {
        SsoOptions { setup: Setup::default(), entry: json!({}), allow_outbound: true, gateway: true }
    }
}

impl SsoEnv {
    pub fn start() -> SsoEnv {
        SsoEnv::start_with(SsoOptions::default())
    }

    pub fn start_with(options: SsoOptions) -> SsoEnv {
        let front = Front::bind().expect("bind Dex's front");
        let issuer = front.issuer();
        let origin = format!("http://{}", front.address());
        let mut entry = session_issuer_entry(&issuer);
        for (k, v) in options.entry.as_object().expect("entry is a JSON object") {
            entry[k] = v.clone();
        }
        let mut extra = vec![("session_issuers".to_owned(), Value::Array(vec![entry]).to_string())];
        if options.allow_outbound {
            extra.push(("idp_origin".to_owned(), origin.clone()));
            extra.push(("idp_keys_origin".to_owned(), origin));
        }
        let mut app = App::start_with(Options { extra, gateway: options.gateway, ..Options::default() });
        let setup = options.setup.web_redirect_uri(format!("{}/auth/callback", app.url));
        let dex = Dex::start(front, setup).expect("start Dex");
        // The web client's secret exists once Dex does: the host reads it at start.
        app.set_variable("oidc_client_secrets", json!({ issuer: dex.web_client_secret() }).to_string());
        app.stop();
        app.resume();
        SsoEnv { dex, app }
    }

    /// A member's session: their real ID token from Dex, through the CLI's client.
    pub fn session(&self, email: &str) -> String {
        self.dex.cli_tokens(email).expect("sign in at Dex").id_token
    }
}
