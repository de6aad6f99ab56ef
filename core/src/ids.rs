//! Identifiers, digests, secrets and timestamps.
//!
//! Every id Lanyard hands out has a type prefix and a fixed-length lowercase hex
//! body (`c_…` cluster, `g_…` grant, `m_…` member), so a path parameter is
//! checked with [`IdKind::accepts`] before it is used in a store key.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The kinds of id, with their prefix and body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Cluster,
    Grant,
    Member,
}

impl IdKind {
    const fn prefix(self) -> &'static str {
        match self {
            IdKind::Cluster => "c_",
            IdKind::Grant => "g_",
            IdKind::Member => "m_",
        }
    }

    const BODY_LEN: usize = 24;

    /// A deterministic id from the given parts (so that a retry, or a second
    /// writer, computes the same id for the same thing).
    pub fn derive(self, parts: &[&str]) -> String {
        let mut id = String::from(self.prefix());
        id.push_str(&digest_hex(parts)[..Self::BODY_LEN]);
        id
    }

    /// Whether `s` is a well-formed id of this kind.
    pub fn accepts(self, s: &str) -> bool {
        s.strip_prefix(self.prefix()).is_some_and(|body| {
            body.len() == Self::BODY_LEN && body.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    }
}

/// SHA-256 over length-prefixed parts, hex encoded. Length prefixes make
/// `["ab", "c"]` and `["a", "bc"]` different.
pub fn digest_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A fresh secret: `prefix` + 32 random bytes, base64url. Fails only if the
/// platform has no randomness.
pub fn new_secret(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a secret: its SHA-256, hex. Secrets are high-entropy, so
/// a plain hash is enough; the secret itself is never stored.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compare two secrets (or their hashes) in constant time.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// RFC 3339 UTC timestamp (`2026-11-29T11:27:57Z`) for unix seconds.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3_600, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_fixed_length_hex() {
        let id = IdKind::Grant.derive(&["c", "1"]);
        assert!(IdKind::Grant.accepts(&id), "{id}");
        assert!(!IdKind::Cluster.accepts(&id));
        assert_eq!(id, IdKind::Grant.derive(&["c", "1"]));
        assert_ne!(id, IdKind::Grant.derive(&["c1"]));
        for bad in [
            "",
            "g_",
            "g_xyz",
            "G_0123456789abcdef01234567",
            "g_0123456789ABCDEF01234567",
            "g_0123456789abcdef012345678",
            "g_../../etc/passwd",
        ] {
            assert!(!IdKind::Grant.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_951_677), "2026-11-29T11:27:57Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn secrets() {
        let a = new_secret("lya_").unwrap();
        let b = new_secret("lya_").unwrap();
        assert!(a.starts_with("lya_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert!(ct_eq(&secret_hash(&a), &secret_hash(&a)));
        assert!(!ct_eq(&secret_hash(&a), &secret_hash(&b)));
        assert!(!ct_eq("abc", "abcd"));
    }
}
