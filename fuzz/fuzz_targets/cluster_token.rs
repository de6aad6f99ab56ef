//! Cluster token verification, as the access proxy does it: any string, and
//! mutations of a real cluster token. Only the token the plane minted
//! verifies, and only for its cluster and epoch.
#![no_main]

use lanyard_core::ids::ClusterId;
use lanyard_core::token::Verifier;
use lanyard_fuzz::{NOW, TokenInput, plane};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|input: TokenInput| {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let p = plane();
    let token = &input.token(&p.cluster_token);
    let verifier = VERIFIER.get_or_init(|| Verifier::from_jwks(&p.jwks));
    let cluster = ClusterId::parse(&p.cluster).expect("the plane's cluster id");
    if let Ok(v) = verifier.verify(token, &cluster, 0, NOW) {
        assert_eq!(token, &p.cluster_token, "a token the deployment did not mint verified");
        assert_eq!(v.cluster_id, cluster);
    }
});
