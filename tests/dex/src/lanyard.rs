//! How Lanyard trusts this Dex: one definition of its `session_issuers`
//! entry, shared by the API tests and the local run.

use serde_json::{Value, json};

use crate::{CLI_CLIENT_ID, WEB_CLIENT_ID};

/// The group that makes a Dex user an organisation admin.
pub const ADMIN_GROUP: &str = "platform-admins";
/// The organisations Dex's users belong to (each user's `groups` names one).
pub const ORGANISATIONS: [&str; 2] = ["acme", "globex"];

/// The `session_issuers` entry that trusts Dex at `issuer`: keys and
/// endpoints discovered, the browser sign-in through [`WEB_CLIENT_ID`], the
/// CLI through [`CLI_CLIENT_ID`], the organisation and the admin role read
/// from the `groups` claim.
pub fn session_issuer_entry(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "client_id": WEB_CLIENT_ID,
        "cli_client_id": CLI_CLIENT_ID,
        "orgs": ORGANISATIONS,
        "org_claim": "groups",
        "role_claim": "groups",
        "admin_values": [ADMIN_GROUP],
        "scopes": ["openid", "email", "profile", "groups", "offline_access"],
    })
}
