//! Grant creation's body, as the admin sends it: any bytes, most of them
//! JSON-shaped. A body the API accepts makes exactly one grant that lists
//! with a status; any other is a 4xx with the error contract and changes
//! nothing.
#![no_main]

use lanyard_core::endpoint::Endpoint;
use lanyard_core::http::{Method, Request};
use lanyard_fuzz::{check_answer, plane};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let p = plane();
    let path = format!("/api/v1/clusters/{}/access/grants", p.cluster);
    let route = "/api/v1/clusters/:cluster_id/access/grants";
    let req = |method, body: Option<&[u8]>| {
        let mut r = Request::new(method, path.clone())
            .on_route(route, &[("cluster_id", &p.cluster)])
            .with_header("authorization", format!("Bearer {}", p.admin));
        if let Some(body) = body {
            r = r.with_header("content-type", "application/json").with_body(body.to_vec());
        }
        r
    };
    let kv = p.kv.clone();
    let listed = |kv| {
        let resp = p.serve_on(kv, Endpoint::Grants, &req(Method::Get, None));
        assert_eq!(resp.status, 200);
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        v["grants"].as_array().unwrap().clone()
    };
    let before = listed(&kv);
    let snapshot = kv.snapshot();
    let resp = p.serve_on(&kv, Endpoint::Grants, &req(Method::Post, Some(body)));
    check_answer(p, &resp);
    let after = listed(&kv);
    match resp.status {
        201 | 200 => {
            let made: Value = serde_json::from_slice(&resp.body).unwrap();
            let id = made["id"].as_str().expect("a created grant has an id");
            let found: Vec<&Value> = after.iter().filter(|g| g["id"] == id).collect();
            assert_eq!(found.len(), 1, "the created grant lists once");
            assert!(found[0]["status"].is_string(), "with a status");
            assert!(after.len() == before.len() + 1 || resp.status == 200, "exactly one grant more");
        }
        status => {
            assert!((400..500).contains(&status), "{status}");
            assert_eq!(kv.snapshot(), snapshot, "a refused grant changed the store");
        }
    }
});
