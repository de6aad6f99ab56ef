//! The access proxy's header rewriting: any set of client headers. A request
//! with any `Impersonate-*` header is refused; any other is forwarded with
//! exactly one `Impersonate-User` (the member), no credential of the client,
//! nothing hop-by-hop but an upgrade's own pair; and the request's kind for
//! the audit (`request_info`) never panics on its path.
#![no_main]

use arbitrary::Arbitrary;
use lanyard_core::http::Method;
use lanyard_core::proxy::headers::{IMPERSONATE_USER, upstream_headers};
use lanyard_core::proxy::request_info::{query_watches, request_info};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<(String, Vec<u8>)>,
    method: u8,
    path: String,
    query: String,
}

const USER: &str = "lanyard:dev@acme.example";

fuzz_target!(|input: Input| {
    let incoming: Vec<(&str, &[u8])> = input.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let impersonating = incoming.iter().any(|(n, _)| n.to_ascii_lowercase().starts_with("impersonate-"));
    match upstream_headers(&incoming, USER) {
        Err(_) => assert!(impersonating, "refused without an impersonation header"),
        Ok(out) => {
            assert!(!impersonating, "an impersonation header was forwarded");
            let users: Vec<_> = out.iter().filter(|(n, _)| n == IMPERSONATE_USER).collect();
            assert_eq!(users.len(), 1, "exactly one Impersonate-User");
            assert_eq!(users[0].1, USER.as_bytes());
            for (name, _) in &out {
                assert!(name.as_ref() != "authorization" && name.as_ref() != "proxy-authorization");
                assert!(!name.starts_with("impersonate-") || name == IMPERSONATE_USER);
                assert_eq!(name.to_ascii_lowercase(), name.as_ref(), "names are lower case");
            }
        }
    }
    let methods = [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete];
    let method = methods[usize::from(input.method) % methods.len()];
    let _ = request_info(method, &input.path, query_watches(&input.query));
});
