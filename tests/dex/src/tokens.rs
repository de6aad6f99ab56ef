//! Tokens straight from Dex for tests that need a member's real ID token
//! without running the CLI or a browser sign-in: the authorization-code flow
//! driven by the browser stand-in, then the code exchanged at the token
//! endpoint (PKCE for the public CLI client, the secret for a confidential one).

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::{CLI_CLIENT_ID, Dex, PASSWORD};

/// A loopback redirect URI for the public client: never listened on, since the
/// stand-in returns the redirect instead of following it.
pub const CLI_REDIRECT_URI: &str = "http://127.0.0.1:38123/callback";
/// The scopes Lanyard's sign-ins ask Dex for.
pub const SCOPES: &str = "openid email profile groups offline_access";

/// What the token endpoint gave.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The ID token: Lanyard's session.
    pub id_token: String,
    /// The refresh token, when `offline_access` was asked for.
    pub refresh_token: Option<String>,
}

impl Dex {
    /// Sign `email` in with the public CLI client (PKCE S256) and exchange the code.
    pub fn cli_tokens(&self, email: &str) -> Result<Tokens> {
        let verifier = random_text();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let code = self.code_for(
            CLI_CLIENT_ID,
            CLI_REDIRECT_URI,
            email,
            &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
        )?;
        self.exchange(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CLI_REDIRECT_URI),
            ("client_id", CLI_CLIENT_ID),
            ("code_verifier", &verifier),
        ])
    }

    /// Sign `email` in with a confidential client and exchange the code.
    pub fn client_tokens(&self, client_id: &str, secret: &str, redirect_uri: &str, email: &str) -> Result<Tokens> {
        let code = self.code_for(client_id, redirect_uri, email, &[])?;
        self.exchange(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
    }

    fn code_for(&self, client_id: &str, redirect_uri: &str, email: &str, extra: &[(&str, &str)]) -> Result<String> {
        let state = random_text();
        let mut params = vec![
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("scope", SCOPES),
            ("state", state.as_str()),
        ];
        params.extend_from_slice(extra);
        let authorize = Url::parse_with_params(&format!("{}/auth", self.issuer()), params)?;
        let location = Url::parse(&self.sign_in(authorize.as_str(), email, PASSWORD)?)?;
        ensure!(location.as_str().starts_with(redirect_uri), "Dex redirected to {location}");
        let query = |name: &str| location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        ensure!(query("state").as_deref() == Some(state.as_str()), "the state came back changed: {location}");
        query("code").with_context(|| format!("no code in {location}"))
    }

    fn exchange(&self, form: &[(&str, &str)]) -> Result<Tokens> {
        let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
        let response = client.post(format!("{}/token", self.issuer())).form(form).send()?;
        let status = response.status();
        let body: Value =
            response.json().with_context(|| format!("the token endpoint answered {status} without JSON"))?;
        ensure!(status.is_success(), "the code exchange answered {status}: {body}");
        let id_token = body["id_token"].as_str().with_context(|| format!("no id_token in {body}"))?.to_owned();
        Ok(Tokens { id_token, refresh_token: body["refresh_token"].as_str().map(str::to_owned) })
    }
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}
