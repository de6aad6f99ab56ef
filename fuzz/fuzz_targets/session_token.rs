//! Session token verification: any string as a bearer, and mutations of a
//! real session (the fuzzer edits it byte by byte from the seed corpus).
//! Nothing but the plane's own sessions verifies, and never as another
//! identity than the one they were minted for.
#![no_main]

use lanyard_core::config::Config;
use lanyard_core::identity::{NoCache, verify_session};
use lanyard_core::oidc::StaticKeys;
use lanyard_fuzz::{NOW, TokenInput, plane};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (TokenInput, bool)| {
    let p = plane();
    let token = &input.0.token(if input.1 { &p.admin } else { &p.member });
    let issuers = Config::new(&p.vars).issuers().expect("the plane's issuers");
    match verify_session(token, &issuers, &StaticKeys, &NoCache, NOW) {
        Ok(identity) => {
            let email = identity.email.as_str();
            let known = (*token == p.admin && email == "admin@acme.example")
                || (*token == p.member && email == "dev@acme.example");
            assert!(known, "a token that is not one the issuer signed verified as {email}");
        }
        Err(e) => assert_eq!(e.status(), 401, "{}", e.message()),
    }
});
