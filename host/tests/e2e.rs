//! End-to-end tests: the fixture component served by `lanyard-host` over real
//! HTTP. They need the fixture built for wasm32-wasip2 (each test says how
//! if it is missing).

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use lanyard_host::{CasMode, ClientSpinHeaders, spawn};

#[tokio::test]
async fn spin_headers_and_path_parameters() {
    init_logs();
    let app = TestApp::new("headers");
    // The stricter host, so that each spin-* header has the host's value alone.
    let host = app.spawn_with(|config| config.client_spin_headers = ClientSpinHeaders::Strip);
    let addr = host.addr();

    let reply = send(
        addr,
        "POST",
        "/clusters/c-1/grants/g_2?x=1&y=%20",
        &[
            ("spin-path-match-cluster-id", "forged"),
            ("Spin-Full-Url", "http://evil/"),
            ("authorization", "Bearer t0ken"),
            ("x-custom", "kept"),
        ],
        b"body",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["method"], "Method::Post");
    assert_eq!(echo["path_with_query"], "/clusters/c-1/grants/g_2?x=1&y=%20");
    // In strict mode the forged values are gone; only the host's remain.
    assert_eq!(header(&echo, "spin-path-match-cluster-id"), "c-1");
    assert_eq!(header(&echo, "spin-path-match-grant-id"), "g_2");
    assert_eq!(header(&echo, "spin-full-url"), format!("http://{addr}/clusters/c-1/grants/g_2?x=1&y=%20"));
    let route = "/clusters/:cluster_id/grants/:grant_id";
    assert_eq!(header(&echo, "spin-matched-route"), route);
    assert_eq!(header(&echo, "spin-raw-component-route"), route);
    assert_eq!(header(&echo, "spin-component-route"), route);
    assert_eq!(header(&echo, "spin-path-info"), "");
    assert_eq!(header(&echo, "spin-base-path"), "/");
    let client = header(&echo, "spin-client-addr");
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    // Ordinary headers pass through; `host` is withheld as wasi:http does.
    assert_eq!(header(&echo, "authorization"), "Bearer t0ken");
    assert_eq!(header(&echo, "x-custom"), "kept");
    assert!(header_values(&echo, "host").is_empty());

    let echo = get(addr, "/echo/a/b/").await.json();
    assert_eq!(header(&echo, "spin-path-info"), "/a/b/");
    assert_eq!(header(&echo, "spin-matched-route"), "/echo/...");
    assert_eq!(header(&echo, "spin-raw-component-route"), "/echo/...");
    assert_eq!(header(&echo, "spin-component-route"), "/echo");
    let echo = get(addr, "/echo").await.json();
    assert_eq!(header(&echo, "spin-path-info"), "");

    host.shutdown().expect("clean shutdown");
}

#[tokio::test]
async fn client_spin_headers_are_kept_like_spin_by_default() {
    let app = TestApp::new("keep");
    let host = app.spawn();
    let addr = host.addr();
    let forged = [("spin-path-match-cluster-id", "forged"), ("Spin-Full-Url", "http://evil/")];
    let echo = send(addr, "GET", "/clusters/real/grants/g", &forged, b"").await.json();
    // As Spin: the client's value first, the host's after it.
    assert_eq!(header_values(&echo, "spin-path-match-cluster-id"), ["forged", "real"]);
    assert_eq!(
        header_values(&echo, "spin-full-url"),
        ["http://evil/".to_string(), format!("http://{addr}/clusters/real/grants/g")]
    );
}

#[tokio::test]
async fn unmatched_paths_get_a_plain_404_and_health_answers() {
    let app = TestApp::new("404");
    let host = app.spawn();
    for path in ["/", "/nothing", "/clusters/c/grants", "/kv/extra", "/.well-known/spin/nope"] {
        let reply = get(host.addr(), path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.body.is_empty(), "{path}: {}", reply.text());
    }
    let health = get(host.addr(), "/.well-known/spin/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.text(), "OK");
}

#[tokio::test]
async fn variables_resolve_per_component() {
    let app = TestApp::new("vars");
    let host = app.spawn();
    let addr = host.addr();
    assert_eq!(ok(&get(addr, "/var/greeting").await), "hello");
    assert_eq!(ok(&get(addr, "/var/token").await), TOKEN);
    assert_eq!(ok(&get(addr, "/var/combined").await), format!("pre-hello-{TOKEN}!"));
    assert_eq!(ok(&get(addr, "/other/var/greeting").await), "second says hello");
    // Another component's variables, or an app variable not mapped into the
    // component, are undefined; a malformed name is invalid.
    let undefined = err(&get(addr, "/other/var/token").await);
    assert!(undefined.contains("Undefined(") && undefined.contains("\\\"second\\\""), "{undefined}");
    assert!(err(&get(addr, "/var/secret_token").await).contains("Undefined("));
    assert!(err(&get(addr, "/var/Greeting").await).contains("InvalidName("));
    assert!(err(&get(addr, "/nokv/var/greeting").await).contains("Undefined("));
}

#[test]
fn a_required_variable_without_value_stops_start_up() {
    let app = TestApp::new("required");
    let mut config = app.config();
    config.variables.clear();
    let error = match spawn(config) {
        Ok(_) => panic!("the host started without a required variable"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("secret_token"), "{error}");
}

#[tokio::test]
async fn key_value_through_both_interfaces_survives_a_restart() {
    let app = TestApp::new("kv");

    let host = app.spawn();
    let addr = host.addr();
    // fermyon:spin/key-value
    assert_eq!(ok(&send(addr, "POST", "/kv?op=set&key=spin-key", &[], b"spin value").await), serde_json::Value::Null);
    assert_eq!(ok(&get(addr, "/kv?op=exists&key=spin-key").await), true);
    assert_eq!(ok(&get(addr, "/kv?op=exists&key=absent").await), false);
    assert_eq!(ok(&get(addr, "/kv?op=get&key=absent").await), serde_json::Value::Null);
    // wasi:keyvalue
    ok(&send(addr, "POST", "/wkv?op=set&key=wasi-key", &[], b"wasi value").await);
    assert_eq!(ok(&get(addr, "/wkv?op=incr&key=counter&delta=5").await), 5);
    ok(&get(addr, "/wkv?op=set-many&pairs=m1:one,m2:two,m3:three").await);
    // Labels other than the component's are denied; so is a component without stores.
    assert!(err(&get(addr, "/kv?op=get&key=x&label=other").await).contains("AccessDenied"));
    assert!(err(&get(addr, "/wkv?op=get&key=x&label=other").await).contains("AccessDenied"));
    assert!(err(&get(addr, "/nokv/kv?op=get&key=x").await).contains("AccessDenied"));
    assert!(err(&get(addr, "/nokv/wkv?op=get&key=x").await).contains("AccessDenied"));
    host.shutdown().expect("clean shutdown");

    let host = spawn(app.config()).expect("host restarts");
    let addr = host.addr();
    // One store behind both interfaces.
    assert_eq!(ok(&get(addr, "/kv?op=get&key=spin-key").await)["text"], "spin value");
    assert_eq!(ok(&get(addr, "/wkv?op=get&key=spin-key").await)["text"], "spin value");
    assert_eq!(ok(&get(addr, "/kv?op=get&key=wasi-key").await)["text"], "wasi value");
    assert_eq!(ok(&get(addr, "/wkv?op=incr&key=counter&delta=1").await), 6);
    // Spin stores an incremented value as 8 little-endian bytes.
    assert_eq!(ok(&get(addr, "/kv?op=get&key=counter").await)["hex"], le_hex(6));
    // A value that is not a counter cannot be incremented: an error, not a trap.
    assert!(err(&get(addr, "/wkv?op=incr&key=wasi-key").await).contains("not a 64-bit integer"));
    let keys = ok(&get(addr, "/kv?op=keys").await);
    assert_eq!(keys, serde_json::json!(["counter", "m1", "m2", "m3", "spin-key", "wasi-key"]));
    assert_eq!(ok(&get(addr, "/wkv?op=list").await)["keys"], keys);
    assert_eq!(ok(&get(addr, "/wkv?op=list").await)["cursor"], serde_json::Value::Null);
    assert!(err(&get(addr, "/wkv?op=list-cursor").await).contains("cursor not supported"));
    // get-many answers only the keys that exist.
    let mut many: Vec<(String, String)> = ok(&get(addr, "/wkv?op=get-many&keys=m3,missing,m1").await)
        .as_array()
        .expect("array")
        .iter()
        .map(|pair| {
            (pair[0].as_str().unwrap_or_default().to_string(), pair[1]["text"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    many.sort();
    assert_eq!(many, [("m1".to_string(), "one".to_string()), ("m3".to_string(), "three".to_string())]);
    ok(&get(addr, "/wkv?op=delete-many&keys=m1,m2").await);
    ok(&get(addr, "/kv?op=delete&key=spin-key").await);
    assert_eq!(ok(&get(addr, "/wkv?op=exists&key=m1").await), false);
    assert_eq!(ok(&get(addr, "/wkv?op=exists&key=spin-key").await), false);
    assert_eq!(ok(&get(addr, "/wkv?op=exists&key=m3").await), true);
    host.shutdown().expect("clean shutdown");

    // The file is a Spin key-value database.
    let db = rusqlite::Connection::open(app.state.path().join("kv.sqlite")).expect("open kv.sqlite");
    let mut rows: Vec<(String, String)> = db
        .prepare("SELECT store, key FROM spin_key_value ORDER BY key")
        .expect("Spin's table")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    let keys: Vec<&str> = rows.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["counter", "m3", "wasi-key"]);
    assert!(rows.iter().all(|(store, _)| store == "default"));
}

#[tokio::test]
async fn compare_and_swap_modes() {
    let app = TempDir::new("cas-app");
    // Default mode: swap always writes.
    let state = TempDir::new("cas-state");
    let host = spawn(config(app.path(), state.path())).expect("host starts");
    let r = ok(&send(host.addr(), "POST", "/wkv?op=cas&key=c", &[], b"first").await);
    assert_eq!(r["current"], serde_json::Value::Null);
    assert_eq!(r["swap"], "ok");
    let r = ok(&send(host.addr(), "POST", "/wkv?op=cas&key=c", &[], b"second").await);
    assert_eq!(r["current"]["text"], "first");
    assert_eq!(r["swap"], "ok");
    drop(host);

    // Spin's SQLite semantics: concurrent CAS loops on one counter lose nothing.
    let state = TempDir::new("cas-spin-state");
    let mut config = config(app.path(), state.path());
    config.cas_mode = CasMode::SpinSqlite;
    let host = spawn(config).expect("host starts");
    let addr = host.addr();
    ok(&send(addr, "POST", "/wkv?op=set&key=n", &[], &0u64.to_le_bytes()).await);
    const N: usize = 24;
    let replies =
        futures_join((0..N).map(|_| async move { get(addr, "/wkv?op=cas-incr&key=n").await }).collect()).await;
    let attempts: u64 = replies.iter().map(|r| ok(r)["attempts"].as_u64().expect("attempts")).sum();
    assert_eq!(ok(&get(addr, "/wkv?op=get&key=n").await)["hex"], le_hex(N as i64));
    eprintln!("{N} concurrent CAS increments took {attempts} attempts in all");
}

#[tokio::test]
async fn concurrent_requests_increment_exactly() {
    let app = TestApp::new("conc");
    let host = app.spawn();
    let addr = host.addr();
    const N: usize = 48;
    let replies = futures_join(
        (0..N)
            .map(|_| async move {
                let incr = get(addr, "/wkv?op=incr&key=hits").await;
                let rmw = get(addr, "/wkv?op=rmw&key=racy").await;
                (incr, rmw)
            })
            .collect(),
    )
    .await;
    for (incr, rmw) in &replies {
        ok(incr);
        ok(rmw);
    }
    assert_eq!(ok(&get(addr, "/wkv?op=incr&key=hits&delta=0").await), N as i64);
    let racy_hex = ok(&get(addr, "/wkv?op=get&key=racy").await)["hex"].as_str().expect("hex").to_string();
    let racy = (0..N as i64).find(|n| le_hex(n + 1) == racy_hex).map(|n| n + 1);
    eprintln!("{N} concurrent get-then-set requests kept {racy:?} updates");
}

#[tokio::test]
async fn a_runaway_request_is_stopped_and_does_not_block_others() {
    let app = TestApp::new("loop");
    let host = app.spawn_with(|config| config.request_timeout = Duration::from_secs(3));
    let addr = host.addr();
    let runaway = tokio::spawn(async move { get(addr, "/loop").await });
    for _ in 0..5 {
        assert_eq!(get(addr, "/echo/x").await.status, StatusCode::OK);
    }
    assert!(!runaway.is_finished(), "the runaway request ended before the others were served");
    let reply = runaway.await.expect("runaway task");
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let json = reply.json();
    assert_eq!(json["error"]["code"], "internal");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("time limit"), "{message}");
    assert_eq!(get(addr, "/echo/after").await.status, StatusCode::OK);
}

#[tokio::test]
async fn failing_guests_give_a_json_500_and_the_host_keeps_serving() {
    let app = TestApp::new("trap");
    let host = app.spawn();
    let addr = host.addr();
    for (path, expected) in
        [("/trap", "trapped"), ("/exit", "exited"), ("/noresponse", "without setting a response"), ("/trap", "trapped")]
    {
        let reply = get(addr, path).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(reply.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        let json = reply.json();
        assert_eq!(json["error"]["code"], "internal", "{path}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{path}: {message}");
        let next = get(addr, "/echo/next").await;
        assert_eq!(next.status, StatusCode::OK, "after {path}");
    }
}

#[test]
fn dropping_the_handle_frees_the_port_and_the_cache_is_reused() {
    let app = TestApp::new("drop");
    let cache = TempDir::new("drop-cache");
    let mut config = app.config();
    config.cache_dir = cache.path().to_path_buf();
    let host = spawn(config.clone()).expect("host starts");
    let addr = host.addr();
    drop(host);
    std::net::TcpListener::bind(addr).expect("the port is free again");

    // Three components share one Wasm file: one precompiled artefact.
    let artefacts = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .expect("cache dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect()
    };
    let first = artefacts(cache.path());
    assert_eq!(first.len(), 1, "{first:?}");
    let modified = std::fs::metadata(&first[0]).and_then(|m| m.modified()).expect("mtime");
    let host = spawn(config).expect("host restarts from the cache");
    drop(host);
    let second = artefacts(cache.path());
    assert_eq!(second, first);
    assert_eq!(
        std::fs::metadata(&second[0]).and_then(|m| m.modified()).expect("mtime"),
        modified,
        "the artefact was recompiled instead of reused"
    );
}

/// Runs futures concurrently on the current task and collects their outputs.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("completed")).collect()
}

#[test]
fn hosts_starting_at_once_share_an_empty_cache_safely() {
    // Threads of one process compile the same component into one cache at the
    // same time (as parallel tests do): every host must start, and the cache
    // must end with one whole artefact.
    let app = TempDir::new("race-app");
    let cache = TempDir::new("race-cache");
    let states: Vec<TempDir> = (0..6).map(|i| TempDir::new(&format!("race-state-{i}"))).collect();
    let barrier = std::sync::Barrier::new(states.len());
    std::thread::scope(|s| {
        for state in &states {
            let (app, cache, barrier) = (&app, &cache, &barrier);
            s.spawn(move || {
                let mut config = config(app.path(), state.path());
                config.cache_dir = cache.path().to_path_buf();
                barrier.wait();
                let host = spawn(config).expect("host starts while others fill the cache");
                drop(host);
            });
        }
    });
    let names: Vec<String> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".cwasm")).count(), 1, "{names:?}");
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "temporary files left: {names:?}");
}
