//! Malformed, oversized and hostile input: a clear 4xx JSON error, nothing
//! changes, and the component keeps serving.

use lanyard_api_tests::{App, ClusterFixture, Fixture};
use serde_json::json;

#[test]
fn bad_bodies_get_clear_errors_and_change_nothing() {
    let ClusterFixture { app, admin, cluster, .. } =
        Fixture::start().with_cluster("prod").with_member("dev@acme.example");
    let grants = format!("/api/v1/clusters/{cluster}/access/grants");
    let before = app.kv_snapshot();
    let raw = |ct: Option<&str>, body: Vec<u8>| {
        let mut req = app.request("POST", &grants).bearer_auth(&admin).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        App::finish(req)
    };
    let json_ct = Some("application/json");
    raw(json_ct, b"{".to_vec()).expect_error(400, "malformed_request");
    raw(json_ct, b"".to_vec()).expect_error(400, "malformed_request");
    raw(json_ct, b"[]".to_vec()).expect_error(400, "malformed_request");
    raw(json_ct, b"null".to_vec()).expect_error(400, "malformed_request");
    // serde read a struct from an array of its fields: this was a grant (schemathesis).
    raw(json_ct, br#"["dev@acme.example", "view", "cluster"]"#.to_vec()).expect_error(400, "malformed_request");
    raw(json_ct, br#"{"email": 5, "role": "view", "scope": "cluster"}"#.to_vec())
        .expect_error(400, "malformed_request");
    raw(json_ct, br#"{"email": "dev@acme.example", "role": "view", "scope": "cluster", "admin": true}"#.to_vec())
        .expect_error(400, "malformed_request");
    raw(json_ct, vec![0xff, 0xfe, 0x00, 0x7b]).expect_error(400, "malformed_request");
    raw(Some("text/plain"), grant_bytes()).expect_error(415, "unsupported_media_type");
    raw(Some("application/x-www-form-urlencoded"), b"email=dev".to_vec()).expect_error(415, "unsupported_media_type");
    raw(None, grant_bytes()).expect_error(415, "unsupported_media_type");
    // Oversized, with and without a Content-Length that says so.
    let mut big = br#"{"email": "dev@acme.example", "role": "view", "scope": "cluster", "x": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend(br#""}"#);
    raw(json_ct, big.clone()).expect_error(413, "payload_too_large");
    let chunked = app
        .request("POST", &grants)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(big)));
    App::finish(chunked).expect_error(413, "payload_too_large");
    // A 1 MiB body is refused without the component buffering it.
    raw(json_ct, vec![b' '; 1024 * 1024]).expect_error(413, "payload_too_large");
    assert_eq!(app.kv_snapshot(), before, "nothing changed");
    // And the component still serves.
    app.grant(&admin, &cluster, json!({"email": "dev@acme.example", "role": "view", "scope": "cluster"})).expect(201);
}

/// An oversized body is read to its end after the `413`, so the client gets
/// the whole answer and the connection stays usable: a second request on the
/// same socket is answered too. (A connection closed with unread data is
/// reset by the kernel, and the client could lose the `413` itself.)
#[test]
fn an_oversized_body_is_drained_and_the_connection_serves_on() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let body = vec![b' '; 256 * 1024];
    let head = format!(
        "POST /api/v1/clusters/{cluster}/access/grants HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(&body).unwrap();
    let second = format!("GET /api/v1/clusters HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {admin}\r\n\r\n");
    socket.write_all(second.as_bytes()).unwrap();
    let mut reader = BufReader::new(socket);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        statuses.push(status.split_whitespace().nth(1).unwrap_or_default().to_owned());
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            let line = line.to_ascii_lowercase();
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
        }
        let mut answer = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..size]);
            }
        } else {
            answer.resize(length, 0);
            reader.read_exact(&mut answer).unwrap();
        }
        assert!(!answer.is_empty(), "the answer has its body");
    }
    assert_eq!(statuses, ["413", "200"], "both requests answered on one connection");
}

fn grant_bytes() -> Vec<u8> {
    json!({"email": "dev@acme.example", "role": "view", "scope": "cluster"}).to_string().into_bytes()
}

#[test]
fn hostile_path_parameters_are_not_found() {
    let ClusterFixture { app, admin, cluster, .. } = Fixture::start().with_cluster("prod");
    let before = app.kv_snapshot();
    for bad in ["..", "%2e%2e", "c_%00", "C_FFFFFFFFFFFFFFFFFFFFFFFF", &"c_0".repeat(500), "v1%2Fcluster"] {
        app.get(&format!("/api/v1/clusters/{bad}/access/grants"), &admin).expect(404);
        app.delete(&format!("/api/v1/clusters/{cluster}/access/grants/{bad}"), &admin).expect(404);
    }
    // A client cannot forge the router's path-parameter headers.
    let forged = App::finish(
        app.request("GET", "/api/v1/clusters/c_ffffffffffffffffffffffff/access/grants")
            .bearer_auth(&admin)
            .header("spin-path-match-cluster-id", &cluster),
    );
    forged.expect_error(404, "not_found");
    assert_eq!(app.kv_snapshot(), before);
}

#[test]
fn oversized_and_hostile_headers_are_refused_cleanly() {
    let Fixture { app, admin } = Fixture::start();
    let huge_token = "a".repeat(16 * 1024);
    app.get("/api/v1/clusters", &huge_token).expect_error(401, "unauthenticated");
    let r =
        App::finish(app.request("GET", "/api/v1/clusters").header("cookie", format!("lanyard_session={}", "x.y.z")));
    r.expect_error(401, "unauthenticated");
    app.get("/api/v1/clusters", &admin).expect(200);
}
