//! What a test's Dex knows: the static users (with their groups), the static
//! clients (the CLI's public one, the web app's confidential one, and an
//! optional third party), the ID tokens' lifetime, and the Dex configuration
//! file made from them.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// The password of every static user.
pub const PASSWORD: &str = "lanyard-test-password";

/// The client ID of the CLI: a public client (no secret, PKCE), which Dex lets
/// redirect to any `http://127.0.0.1:<port>` or `http://localhost:<port>`.
pub const CLI_CLIENT_ID: &str = "lanyard-cli";

/// The client ID of the control plane's web sign-in: a confidential client
/// whose redirect URIs are [`Setup::web_redirect_uris`].
pub const WEB_CLIENT_ID: &str = "lanyard-web";

/// The client ID of a confidential client that is not Lanyard, for tests that
/// a token issued to another application is refused (see [`Setup::other_app`]).
pub const OTHER_CLIENT_ID: &str = "other-app";

/// The redirect URI of [`OTHER_CLIENT_ID`] (nothing listens there).
pub const OTHER_APP_REDIRECT_URI: &str = "http://127.0.0.1:9/other-app/callback";

/// One static user of the password database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// The login, and the ID token's `email` (Dex marks it verified).
    pub email: &'static str,
    /// The `name` claim (scope `profile`).
    pub name: &'static str,
    /// The `sub` Dex derives its subject from (with the connector's ID).
    pub user_id: &'static str,
    /// The `groups` claim (scope `groups`).
    pub groups: &'static [&'static str],
}

/// Alice: an Acme platform administrator.
pub const ALICE: User = User {
    email: "alice@acme.example",
    name: "Alice",
    user_id: "0b3c6a9e-alice",
    groups: &["acme", "platform-admins"],
};

/// Bob: an Acme member without administrative groups.
pub const BOB: User = User { email: "bob@acme.example", name: "Bob", user_id: "5d1f2e7a-bob", groups: &["acme"] };

/// Carol: a member of another organisation, Globex.
pub const CAROL: User =
    User { email: "carol@globex.example", name: "Carol", user_id: "9a4e8c2b-carol", groups: &["globex"] };

/// Every static user.
pub const USERS: [User; 3] = [ALICE, BOB, CAROL];

/// The cost of the users' bcrypt hashes: the smallest Dex accepts (it refuses
/// a login whose hash costs less than Go's `bcrypt.DefaultCost`, 10).
const BCRYPT_COST: u32 = 10;

/// How a test's Dex is set up; `Setup::default()` suits most tests.
#[derive(Debug, Clone)]
pub struct Setup {
    /// How long an ID token is valid (Dex's `expiry.idTokens`); 10 minutes by
    /// default. Tests of silent renewal shorten it to a few seconds.
    pub id_token_lifetime: Duration,
    /// Where `lanyard-web` may send the browser back to (the control plane's
    /// `/auth/callback`). Dex accepts only these, exactly.
    pub web_redirect_uris: Vec<String>,
    /// Whether the third client, [`OTHER_CLIENT_ID`], exists.
    pub other_app: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup { id_token_lifetime: Duration::from_secs(600), web_redirect_uris: Vec::new(), other_app: false }
    }
}

impl Setup {
    /// ID tokens valid for `lifetime` (Dex rounds nothing: "5s" is 5 s).
    pub fn id_token_lifetime(mut self, lifetime: Duration) -> Setup {
        self.id_token_lifetime = lifetime;
        self
    }

    /// Lets `lanyard-web` redirect to `uri` too.
    pub fn web_redirect_uri(mut self, uri: impl Into<String>) -> Setup {
        self.web_redirect_uris.push(uri.into());
        self
    }

    /// Adds the confidential client [`OTHER_CLIENT_ID`].
    pub fn with_other_app(mut self) -> Setup {
        self.other_app = true;
        self
    }
}

/// The secrets of the confidential clients, made fresh for each Dex.
#[derive(Debug, Clone)]
pub(crate) struct Secrets {
    pub(crate) web: String,
    pub(crate) other_app: String,
}

impl Secrets {
    pub(crate) fn generate() -> Result<Secrets> {
        Ok(Secrets { web: random_hex()?, other_app: random_hex()? })
    }
}

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("could not generate a client secret: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Dex's configuration (JSON, which Dex reads as the YAML it is).
pub(crate) fn dex_config(setup: &Setup, issuer: &str, listen: SocketAddr, secrets: &Secrets) -> Result<Value> {
    let hash = bcrypt::hash(PASSWORD, BCRYPT_COST).context("could not hash the users' password")?;
    let passwords: Vec<Value> = USERS
        .iter()
        .map(|user| {
            json!({
                "email": user.email,
                "hash": hash,
                "username": user.name,
                "userID": user.user_id,
                "groups": user.groups,
            })
        })
        .collect();
    let mut clients = vec![
        json!({ "id": CLI_CLIENT_ID, "name": "Lanyard CLI", "public": true }),
        json!({
            "id": WEB_CLIENT_ID,
            "name": "Lanyard",
            "secret": secrets.web,
            "redirectURIs": setup.web_redirect_uris,
        }),
    ];
    if setup.other_app {
        clients.push(json!({
            "id": OTHER_CLIENT_ID,
            "name": "Other application",
            "secret": secrets.other_app,
            "redirectURIs": [OTHER_APP_REDIRECT_URI],
        }));
    }
    Ok(json!({
        "issuer": issuer,
        "storage": { "type": "memory" },
        "web": { "http": listen.to_string() },
        "logger": { "level": "info", "format": "text" },
        "oauth2": { "skipApprovalScreen": true, "responseTypes": ["code"] },
        "expiry": { "idTokens": go_duration(setup.id_token_lifetime) },
        "enablePasswordDB": true,
        "staticPasswords": passwords,
        "staticClients": clients,
    }))
}

/// `duration` as Go's `time.ParseDuration` reads it.
fn go_duration(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_issuer_the_clients_and_the_users() -> Result<()> {
        let setup = Setup::default().web_redirect_uri("http://127.0.0.1:1/auth/callback").with_other_app();
        let secrets = Secrets::generate()?;
        let listen: SocketAddr = "127.0.0.1:5556".parse()?;
        let config = dex_config(&setup, "http://127.0.0.1:1/dex", listen, &secrets)?;
        assert_eq!(config["issuer"], "http://127.0.0.1:1/dex");
        assert_eq!(config["web"]["http"], "127.0.0.1:5556");
        assert_eq!(config["expiry"]["idTokens"], "600000ms");
        let clients = config["staticClients"].as_array().context("no clients")?;
        let ids: Vec<&str> = clients.iter().filter_map(|client| client["id"].as_str()).collect();
        assert_eq!(ids, [CLI_CLIENT_ID, WEB_CLIENT_ID, OTHER_CLIENT_ID]);
        assert_eq!(clients[0]["public"], true);
        assert!(clients[0].get("secret").is_none() && clients[0].get("redirectURIs").is_none());
        assert_eq!(clients[1]["secret"], secrets.web.as_str());
        let users = config["staticPasswords"].as_array().context("no users")?;
        assert_eq!(users.len(), 3);
        assert_eq!(users[0]["groups"], json!(["acme", "platform-admins"]));
        let hash = users[0]["hash"].as_str().context("no hash")?;
        assert!(bcrypt::verify(PASSWORD, hash)?, "the hash does not match the password");
        Ok(())
    }
}
