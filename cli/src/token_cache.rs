//! The exec plugin's token cache, so that kubectl does not mint a token per
//! command.
//!
//! One file per (control plane, cluster) under `~/.kube/cache/lanyard/`,
//! named by a SHA-256 of both, mode 0600, written atomically. It holds the
//! `ExecCredential` and a fingerprint (SHA-256) of the session that minted it:
//! after `lanyard login` as someone else the cached token is not reused. A
//! credential is reused until [`REFRESH_BEFORE_SECS`] before its
//! `status.expirationTimestamp`; one without an expiry is never cached.
//!
//! A cached token is handed to each requesting process (the kubectl that runs
//! the plugin, named by its process id) once. kubectl asks again within one
//! run only when its credential expired or was refused with a 401 (a revoked
//! token, say, after revoke-all and a new grant), and then handing it the same
//! token would only fail again: a second request from the same process mints
//! a fresh one.

use std::path::{Path, PathBuf};

use lanyard_core::ids::{ClusterId, digest_hex, parse_rfc3339};
use lanyard_core::wire::ExecCredential;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::fsutil;

/// A cached token is replaced this many seconds before it expires.
pub const REFRESH_BEFORE_SECS: u64 = 60;

/// How many requesting processes an entry remembers.
const REMEMBERED: usize = 16;

#[derive(Serialize, Deserialize)]
struct Entry {
    session: String,
    credential: Value,
    /// The processes it was handed to, most recent last.
    #[serde(default)]
    handed_to: Vec<u32>,
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

/// The cached credential at `path` for process `requester`, if it was minted
/// with `session_token`, is good for more than [`REFRESH_BEFORE_SECS`] after
/// `now`, and was not handed to `requester` before (which is then noted).
pub fn reuse(path: &Path, session_token: &str, now: u64, requester: u32) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut entry: Entry = serde_json::from_str(&text).ok()?;
    if entry.session != digest_hex(&[session_token]) || entry.handed_to.contains(&requester) {
        return None;
    }
    let exp = expiry(&entry.credential)?;
    if now + REFRESH_BEFORE_SECS >= exp {
        return None;
    }
    entry.handed_to.push(requester);
    let excess = entry.handed_to.len().saturating_sub(REMEMBERED);
    entry.handed_to.drain(..excess);
    // Not noted (the file cannot be written): the process may get this token twice, nothing worse.
    let _ = save(path, &entry);
    Some(entry.credential)
}

/// Cache `credential`, handed to `requester` (only if it has an expiry).
pub fn write(path: &Path, session_token: &str, credential: &Value, requester: u32) -> Result<()> {
    if expiry(credential).is_none() {
        return Ok(());
    }
    let entry =
        Entry { session: digest_hex(&[session_token]), credential: credential.clone(), handed_to: vec![requester] };
    save(path, &entry)
}

fn save(path: &Path, entry: &Entry) -> Result<()> {
    fsutil::write_atomic(path, &serde_json::to_vec(entry).unwrap_or_default())
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
        write(&path, "session-a", &credential("2033-05-18T03:33:20Z"), 1).unwrap();
        assert!(reuse(&path, "session-a", exp - REFRESH_BEFORE_SECS - 1, 2).is_some());
        assert!(reuse(&path, "session-a", exp - REFRESH_BEFORE_SECS, 3).is_none());
        assert!(reuse(&path, "session-b", exp - 3600, 4).is_none());
    }

    #[test]
    fn a_process_that_asks_again_gets_no_cached_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let now = 2_000_000_000 - 3600;
        write(&path, "s", &credential("2033-05-18T03:33:20Z"), 10).unwrap();
        assert!(reuse(&path, "s", now, 10).is_none(), "the minting process asks again: its token was refused");
        assert!(reuse(&path, "s", now, 11).is_some(), "another kubectl gets it once");
        assert!(reuse(&path, "s", now, 11).is_none(), "and not twice");
        for pid in 100..100 + REMEMBERED as u32 {
            assert!(reuse(&path, "s", now, pid).is_some());
        }
        assert!(reuse(&path, "s", now, 11).is_some(), "only the most recent processes are remembered");
    }

    #[test]
    fn never_caches_without_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write(&path, "s", &serde_json::json!({"status": {"token": "t"}}), 1).unwrap();
        assert!(!path.exists());
    }
}
