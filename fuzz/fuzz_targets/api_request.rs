//! Any request to any endpoint, as the host hands it to a component: the
//! method, the path and its route parameters, headers (with or without one
//! of the plane's credentials) and a body, all chosen by the fuzzer. Every
//! answer must keep the error contract, never be a 500, never echo a
//! credential; and a request that was refused must change nothing.
#![no_main]

use arbitrary::Arbitrary;
use lanyard_core::http::{Method, Request};
use lanyard_fuzz::{check_answer, endpoints, plane, route_of};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Who {
    Nobody,
    Admin,
    Member,
    Agent,
    Raw(String),
    Cookie,
}

#[derive(Debug, Arbitrary)]
struct Input {
    endpoint: u8,
    method: u8,
    /// Route parameters in the order the route names them; the plane's
    /// cluster id where absent.
    params: Vec<String>,
    use_real_ids: bool,
    who: Who,
    headers: Vec<(String, Vec<u8>)>,
    query: String,
    body: Vec<u8>,
}

const METHODS: [Method; 6] = [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete];

fuzz_target!(|input: Input| {
    let p = plane();
    let all = endpoints();
    let endpoint = all[usize::from(input.endpoint) % all.len()];
    let route = endpoint.spec().routes[0].path;
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let names: Vec<&str> = route.split('/').filter_map(|s| s.strip_prefix(':')).collect();
    let mut params = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let value = match (input.use_real_ids, *name) {
            (true, "cluster_id") => p.cluster.clone(),
            (true, "grant_id") => p.grant.clone(),
            _ => input.params.get(i).cloned().unwrap_or_else(|| p.cluster.clone()),
        };
        params.push((*name, value));
    }
    let path: String = route
        .split('/')
        .map(|s| match s.strip_prefix(':') {
            Some(name) => params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str()).to_owned(),
            None => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/");
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut req = Request::new(method, path.clone()).on_route(route_of(endpoint, &path), &borrowed);
    req = req.with_query(input.query);
    req = match &input.who {
        Who::Nobody => req,
        Who::Admin => req.with_header("authorization", format!("Bearer {}", p.admin)),
        Who::Member => req.with_header("authorization", format!("Bearer {}", p.member)),
        Who::Agent => req.with_header("authorization", format!("Bearer {}", p.agent)),
        Who::Raw(value) => req.with_header("authorization", value.clone()),
        Who::Cookie => req.with_header("cookie", format!("lanyard_session={}", p.admin)),
    };
    for (name, value) in input.headers.into_iter().take(16) {
        req = req.with_header(&name, value);
    }
    let req = req.with_body(input.body);
    let kv = p.kv.clone();
    let before = kv.snapshot();
    let resp = p.serve_on(&kv, endpoint, &req);
    check_answer(p, &resp);
    if resp.status >= 400 {
        // A refused request leaves the store as it was, but for what the
        // store keeps about callers whatever they ask (verified sessions,
        // mint counters) and the zero a read of a missing counter leaves.
        let kept = |(k, v): &(String, String)| !k.contains("/session/") && !k.contains("/rate/") && v != "#0";
        let after: Vec<(String, String)> = kv.snapshot().into_iter().filter(kept).collect();
        let before: Vec<(String, String)> = before.into_iter().filter(kept).collect();
        if before != after {
            let changed: Vec<&(String, String)> = after
                .iter()
                .filter(|e| !before.contains(e))
                .chain(before.iter().filter(|e| !after.contains(e)))
                .collect();
            panic!("a refused request ({}) changed the store: {changed:?}", resp.status);
        }
    }
});
