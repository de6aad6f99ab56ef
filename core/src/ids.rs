//! Identifiers, digests, secrets and timestamps.
//!
//! Every id Lanyard hands out has a type prefix and a fixed-length lowercase hex
//! body (`c_…` cluster, `g_…` grant, `m_…` member). Each kind is its own type
//! ([`ClusterId`], [`GrantId`], [`MemberId`]), built only by parsing (a path
//! parameter, a stored record, an answer) or by deriving it, so a string that
//! reaches a store key as an id has been checked to be one.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Hex digits in the body of every id.
const ID_BODY_LEN: usize = 24;

/// Whether `s` is `prefix` followed by [`ID_BODY_LEN`] lowercase hex digits.
fn is_id(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|body| {
        body.len() == ID_BODY_LEN && body.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `prefix` and the first [`ID_BODY_LEN`] hex digits of a digest of `parts`.
fn derive_id(prefix: &str, parts: &[&str]) -> String {
    let mut id = String::from(prefix);
    id.push_str(&digest_hex(parts)[..ID_BODY_LEN]);
    id
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// `s` if it is a well-formed id of this kind.
            pub fn parse(s: &str) -> Option<$name> {
                is_id(Self::PREFIX, s).then(|| $name(s.to_owned()))
            }

            /// A deterministic id from the given parts (so that a retry, or a
            /// second writer, computes the same id for the same thing).
            pub fn derive(parts: &[&str]) -> $name {
                $name(derive_id(Self::PREFIX, parts))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(concat!("not a ", $what, " id (", $prefix, " and 24 hex digits)"))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A cluster's id: `c_` and 24 hex digits, derived from (organisation, name, incarnation).
    ClusterId,
    "c_",
    "cluster"
);
id_type!(
    /// A grant's id: `g_` and 24 hex digits, derived from (cluster, epoch, fingerprint, generation).
    GrantId,
    "g_",
    "grant"
);
id_type!(
    /// A member's id: `m_` and 24 hex digits, derived from (organisation, email).
    MemberId,
    "m_",
    "member"
);

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

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A secret Lanyard makes and shows once (an agent credential): `prefix`
/// and 32 random bytes, base64url. Its `Debug` does not show it, so it cannot
/// reach a log by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh secret from `random`.
    pub fn new(prefix: &str, random: &dyn crate::random::Random) -> Result<Secret, crate::random::NoRandomness> {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes)?;
        Ok(Secret(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// The secret itself, to show it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its stored form ([`secret_hash`]).
    pub fn hash(&self) -> String {
        secret_hash(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
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

/// Unix seconds of an RFC 3339 UTC timestamp as [`rfc3339`] writes it
/// (`2026-11-29T11:27:57Z`); anything else is `None`.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape_ok {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days-from-civil (proleptic Gregorian), the inverse of `rfc3339`'s.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + hour * 3_600 + minute * 60 + second;
    let unix = u64::try_from(unix).ok()?;
    // A day past the month's end (`02-30`) does not round-trip.
    (rfc3339(unix) == s).then_some(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_fixed_length_hex() {
        let id = GrantId::derive(&["c", "1"]);
        assert_eq!(GrantId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(ClusterId::parse(id.as_str()), None);
        assert_eq!(id, GrantId::derive(&["c", "1"]));
        assert_ne!(id, GrantId::derive(&["c1"]));
        for bad in [
            "",
            "g_",
            "g_xyz",
            "G_0123456789abcdef01234567",
            "g_0123456789ABCDEF01234567",
            "g_0123456789abcdef012345678",
            "g_../../etc/passwd",
        ] {
            assert_eq!(GrantId::parse(bad), None, "{bad}");
            assert!(serde_json::from_value::<GrantId>(serde_json::json!(bad)).is_err(), "{bad}");
        }
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(serde_json::from_value::<GrantId>(json).unwrap(), id);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_951_677), "2026-11-29T11:27:57Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        for unix in [0, 951_782_400, 1_795_951_677, 4_107_542_399] {
            assert_eq!(parse_rfc3339(&rfc3339(unix)), Some(unix));
        }
        for bad in ["", "2026-02-30T00:00:00Z", "2026-11-29T11:27:57", "2026-11-29 11:27:57Z", "2026-13-01T00:00:00Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets() {
        let a = Secret::new("lya_", &crate::random::SystemRandom).unwrap();
        let b = Secret::new("lya_", &crate::random::SystemRandom).unwrap();
        assert!(a.expose().starts_with("lya_") && a.expose().len() == 4 + 43);
        assert_ne!(a, b);
        assert_eq!(a.hash(), secret_hash(a.expose()));
        assert!(ct_eq(&a.hash(), &a.hash()));
        assert!(!ct_eq(&a.hash(), &b.hash()));
        assert!(!format!("{a:?}").contains(a.expose()), "Debug hides the secret");
        assert!(!ct_eq("abc", "abcd"));
    }
}
