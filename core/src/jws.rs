//! The shape of a compact JWS, checked before any signature is: one reader
//! of a token's three segments for both kinds of token Lanyard accepts
//! (session tokens from an organisation's identity provider, cluster tokens
//! it mints itself).
//!
//! jwt-simple verifies signatures and registered claims; what it lets
//! through, and what this module refuses, is everything that makes two
//! readers of one token disagree or that asks the verifier to trust the
//! token about its own key:
//!
//! * a segment that is not canonical unpadded base64url (padding, stray
//!   characters, non-zero trailing bits): two decoders could read it
//!   differently, and a token would have several spellings;
//! * a header or payload that is not one JSON object, or that names a
//!   member twice at any depth (`{"rev": 1, "rev": 9}`): which of the two a
//!   reader keeps is an accident of its JSON library;
//! * a header that carries or points at key material (`jwk`, `jku`, `x5u`,
//!   `x5c`), that asks for extensions (`crit`) or for an unencoded payload
//!   (`b64`): keys come from configuration, never from the token.
//!
//! Lanyard's own cluster tokens are held to their exact shape on top
//! ([`Profile::ClusterToken`]): a header of `alg`, `typ` and `kid` only.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Which tokens a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// An identity provider's ID token: any header member but those that
    /// bring their own keys or extensions.
    SessionToken,
    /// A token Lanyard minted: exactly the header it writes.
    ClusterToken,
}

/// Header members no token may carry.
const REFUSED_HEADER_MEMBERS: [&str; 6] = ["jwk", "jku", "x5u", "x5c", "crit", "b64"];
/// The only header members of a cluster token.
const CLUSTER_HEADER_MEMBERS: [&str; 3] = ["alg", "typ", "kid"];

/// Why a token's compact form was refused (never echoing the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// Not three dot-separated segments.
    #[error("is not a JWT (three dot-separated segments)")]
    Segments,
    /// A segment is empty or not canonical unpadded base64url.
    #[error("has a segment that is not canonical base64url")]
    Base64,
    /// The header or the payload is not a single JSON object.
    #[error("has a header or payload that is not a JSON object")]
    NotAnObject,
    /// The header or the payload names one member twice.
    #[error("names a member twice")]
    DuplicateMember,
    /// The header carries a member that is refused (key material, `crit`).
    #[error("has a `{0}` header, which is never accepted")]
    RefusedHeader(&'static str),
    /// A cluster token's header carries a member Lanyard never writes.
    #[error("has a header member that Lanyard never writes")]
    UnexpectedHeader,
}

/// A token's decoded header and payload, once its compact form passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Compact {
    /// The protected header.
    pub header: serde_json::Map<String, Value>,
    /// The claims.
    pub payload: serde_json::Map<String, Value>,
}

/// Check a compact JWS's form under `profile`; returns its header and
/// payload (not verified: the signature is jwt-simple's to check after).
pub fn check_compact(token: &str, profile: Profile) -> Result<Compact, Defect> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Defect::Segments);
    };
    let header = object(&canonical(header)?)?;
    let payload = object(&canonical(payload)?)?;
    canonical(signature)?;
    if let Some(refused) = REFUSED_HEADER_MEMBERS.iter().find(|m| header.contains_key(**m)) {
        return Err(Defect::RefusedHeader(refused));
    }
    if profile == Profile::ClusterToken && header.keys().any(|k| !CLUSTER_HEADER_MEMBERS.contains(&k.as_str())) {
        return Err(Defect::UnexpectedHeader);
    }
    Ok(Compact { header, payload })
}

/// A JWT's payload, read without verifying the signature (`None` unless its
/// compact form passes [`Profile::SessionToken`]): only for choosing which
/// keys to try, or for showing a person what their own token says.
pub fn unverified_payload(token: &str) -> Option<serde_json::Map<String, Value>> {
    check_compact(token, Profile::SessionToken).ok().map(|c| c.payload)
}

/// The bytes of a non-empty, canonical, unpadded base64url segment. The
/// engine refuses padding and non-zero trailing bits; re-encoding closes the
/// rest.
fn canonical(segment: &str) -> Result<Vec<u8>, Defect> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| Defect::Base64)?;
    if bytes.is_empty() || URL_SAFE_NO_PAD.encode(&bytes) != segment {
        return Err(Defect::Base64);
    }
    Ok(bytes)
}

/// One JSON object with no member named twice at any depth.
fn object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Defect> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match Unique::deserialize(&mut de) {
        Ok(_) => {}
        Err(e) if e.to_string().starts_with(DUPLICATE) => return Err(Defect::DuplicateMember),
        Err(_) => return Err(Defect::NotAnObject),
    }
    de.end().map_err(|_| Defect::NotAnObject)?;
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Defect::NotAnObject),
    }
}

const DUPLICATE: &str = "duplicate member";

/// A JSON value walked only to find a member named twice.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// Whether a token whose `exp` is `exp` has expired at `now`, allowing
/// `skew` seconds: RFC 7519 accepts it only *before* `exp`, so at
/// `exp + skew` it is expired (jwt-simple alone still accepts that second).
pub fn is_expired(exp: u64, now: u64, skew: u64) -> bool {
    now >= exp.saturating_add(skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("signature"))
    }

    const HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#;
    const PAYLOAD: &str = r#"{"iss":"lanyard","aud":"c_1","rev":2,"nested":{"a":[{"b":1}]}}"#;

    #[test]
    fn a_well_formed_token_passes_both_profiles() {
        for profile in [Profile::SessionToken, Profile::ClusterToken] {
            let c = check_compact(&token(HEADER, PAYLOAD), profile).unwrap();
            assert_eq!(c.header["kid"], "k1");
            assert_eq!(c.payload["rev"], 2);
        }
    }

    #[test]
    fn malformed_compact_forms_are_refused_with_their_defect() {
        let good = token(HEADER, PAYLOAD);
        let parts: Vec<&str> = good.split('.').collect();
        let cases: Vec<(&str, String, Defect)> = vec![
            ("two segments", format!("{}.{}", parts[0], parts[1]), Defect::Segments),
            ("four segments", format!("{good}.x"), Defect::Segments),
            ("empty signature", format!("{}.{}.", parts[0], parts[1]), Defect::Base64),
            ("padding", format!("{}=.{}.{}", parts[0], parts[1], parts[2]), Defect::Base64),
            ("standard alphabet", format!("{}.{}+.{}", parts[0], parts[1], parts[2]), Defect::Base64),
            ("whitespace", format!("{}.{} .{}", parts[0], parts[1], parts[2]), Defect::Base64),
            ("payload not JSON", format!("{}.{}.{}", parts[0], b64("nope"), parts[2]), Defect::NotAnObject),
            ("payload an array", token(HEADER, "[1]"), Defect::NotAnObject),
            ("trailing data", token(HEADER, r#"{"a":1}{"b":2}"#), Defect::NotAnObject),
            ("duplicate claim", token(HEADER, r#"{"rev":2,"rev":99}"#), Defect::DuplicateMember),
            ("nested duplicate", token(HEADER, r#"{"x":[{"a":1,"a":2}]}"#), Defect::DuplicateMember),
            (
                "duplicate header member",
                token(r#"{"alg":"EdDSA","alg":"none","kid":"k1"}"#, PAYLOAD),
                Defect::DuplicateMember,
            ),
            (
                "jku",
                token(r#"{"alg":"EdDSA","kid":"k1","jku":"https://e.example"}"#, PAYLOAD),
                Defect::RefusedHeader("jku"),
            ),
            ("jwk", token(r#"{"alg":"EdDSA","kid":"k1","jwk":{"kty":"OKP"}}"#, PAYLOAD), Defect::RefusedHeader("jwk")),
            ("x5u", token(r#"{"alg":"RS256","x5u":"https://e.example"}"#, PAYLOAD), Defect::RefusedHeader("x5u")),
            ("x5c", token(r#"{"alg":"RS256","x5c":["MIIB"]}"#, PAYLOAD), Defect::RefusedHeader("x5c")),
            ("crit", token(r#"{"alg":"RS256","crit":["exp"]}"#, PAYLOAD), Defect::RefusedHeader("crit")),
            ("b64", token(r#"{"alg":"RS256","b64":false}"#, PAYLOAD), Defect::RefusedHeader("b64")),
        ];
        for (what, t, want) in cases {
            for profile in [Profile::SessionToken, Profile::ClusterToken] {
                assert_eq!(check_compact(&t, profile), Err(want.clone()), "{what} ({profile:?})");
            }
        }
    }

    #[test]
    fn non_canonical_trailing_bits_are_refused() {
        // "QQ" is the canonical spelling of b"A"; "QR" decodes to the same
        // byte with non-zero trailing bits in a lenient decoder.
        let good = token(HEADER, PAYLOAD);
        let parts: Vec<&str> = good.split('.').collect();
        let sig = URL_SAFE_NO_PAD.encode(b"A");
        assert_eq!(sig, "QQ");
        assert!(check_compact(&format!("{}.{}.QQ", parts[0], parts[1]), Profile::SessionToken).is_ok());
        assert_eq!(check_compact(&format!("{}.{}.QR", parts[0], parts[1]), Profile::SessionToken), Err(Defect::Base64));
    }

    #[test]
    fn a_cluster_token_header_is_exactly_what_lanyard_writes() {
        let extra = token(r#"{"alg":"EdDSA","typ":"JWT","kid":"k1","x5t":"abc"}"#, PAYLOAD);
        assert!(check_compact(&extra, Profile::SessionToken).is_ok(), "an IdP may send a thumbprint");
        assert_eq!(check_compact(&extra, Profile::ClusterToken), Err(Defect::UnexpectedHeader));
    }

    #[test]
    fn expiry_is_exclusive_of_its_second() {
        assert!(!is_expired(100, 99, 0));
        assert!(is_expired(100, 100, 0), "at exp the token is no longer valid");
        assert!(!is_expired(100, 159, 60));
        assert!(is_expired(100, 160, 60));
        assert!(!is_expired(u64::MAX, u64::MAX - 1, 60), "no overflow");
    }

    #[test]
    fn the_unverified_payload_is_only_read_from_a_well_formed_token() {
        assert_eq!(unverified_payload(&token(HEADER, PAYLOAD)).unwrap()["iss"], "lanyard");
        assert!(unverified_payload(&token(HEADER, r#"{"iss":"a","iss":"b"}"#)).is_none());
        assert!(unverified_payload("a.b").is_none());
    }
}
