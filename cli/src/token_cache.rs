//! The exec plugin's token cache, so that kubectl does not mint a token per
//! command.
//!
//! One file per (control plane, cluster) under `~/.kube/cache/lanyard/`,
//! named by a SHA-256 of both, mode 0600, written atomically. It holds the
//! `ExecCredential` and a fingerprint (SHA-256) of the session that minted it:
//! after `lanyard login` as someone else the cached token is not reused. A
//! credential is reused until [`REFRESH_BEFORE_SECS`] before its
//! `status.expirationTimestamp`; one without an expiry is never cached.

use std::path::{Path, PathBuf};

use lanyard_core::ids::{ClusterId, digest_hex, parse_rfc3339};
use lanyard_core::wire::ExecCredential;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::fsutil;

/// A cached token is replaced this many seconds before it expires.
pub const REFRESH_BEFORE_SECS: u64 = 60;

#[derive(Serialize, Deserialize)]
struct Entry {
    session: String,
    credential: Value,
}

/// `~/.kube/cache/lanyard`.
pub fn dir() -> Result<PathBuf> {
    Ok(fsutil::home()?.join(".kube/cache/lanyard"))
}

/// The cache file of (control plane, cluster) in `dir`.
pub fn file(dir: &Path, control_plane: &str, cluster_id: &ClusterId) -> PathBuf {
    dir.join(format!("{}.json", &digest_hex(&[control_plane.trim_end_matches('/'), cluster_id.as_str()])[..32]))
}

/// A credential's `status.expirationTimestamp`, as Unix seconds.
pub fn expiry(credential: &Value) -> Option<u64> {
    let credential = ExecCredential::deserialize(credential).ok()?;
    parse_rfc3339(&credential.status.expiration_timestamp)
}

/// The cached credential at `path`, if it was minted with `session_token` and
/// is good for more than [`REFRESH_BEFORE_SECS`] after `now`.
pub fn read(path: &Path, session_token: &str, now: u64) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let entry: Entry = serde_json::from_str(&text).ok()?;
    if entry.session != digest_hex(&[session_token]) {
        return None;
    }
    let exp = expiry(&entry.credential)?;
    (now + REFRESH_BEFORE_SECS < exp).then_some(entry.credential)
}

/// Cache `credential` (only if it has an expiry).
pub fn write(path: &Path, session_token: &str, credential: &Value) -> Result<()> {
    if expiry(credential).is_none() {
        return Ok(());
    }
    let entry = Entry { session: digest_hex(&[session_token]), credential: credential.clone() };
    let text = serde_json::to_vec(&entry).unwrap_or_default();
    fsutil::write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(exp: &str) -> Value {
        serde_json::json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
            "status": {"token": "t", "expirationTimestamp": exp}})
    }

    #[test]
    fn reuses_until_shortly_before_expiry_and_only_for_the_same_session() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, c2) = (ClusterId::derive(&["1"]), ClusterId::derive(&["2"]));
        let path = file(dir.path(), "http://cp/", &c1);
        assert_eq!(path, file(dir.path(), "http://cp", &c1));
        assert_ne!(path, file(dir.path(), "http://cp", &c2));
        let exp = 2_000_000_000u64; // 2033-05-18T03:33:20Z
        write(&path, "session-a", &credential("2033-05-18T03:33:20Z")).unwrap();
        assert!(read(&path, "session-a", exp - REFRESH_BEFORE_SECS - 1).is_some());
        assert!(read(&path, "session-a", exp - REFRESH_BEFORE_SECS).is_none());
        assert!(read(&path, "session-b", exp - 3600).is_none());
    }

    #[test]
    fn never_caches_without_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write(&path, "s", &serde_json::json!({"status": {"token": "t"}})).unwrap();
        assert!(!path.exists());
    }
}
