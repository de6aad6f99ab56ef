//! The Access view in a real headless Chromium, signed in through real Dex
//! (Chromium fills in Dex's own login form): the admin's view (grant, the
//! agent's reported status replacing `pending`, the server's validation
//! error, revoke one, revoke all behind its confirmation, keyboard-only
//! granting), the member's views (no access; access with a kubeconfig that
//! real kubectl reads), a cookie write without the CSRF header refused, the
//! unavailable and sandbox explanations, a network error with its retry,
//! the page at 375 px, and axe-core's check. The agent is not under test here: the test reports results through
//! the agent API with the cluster's credential, as the agent does.
//! Screenshots of every state go to `target/browser-artifacts/`.

use std::time::Duration;

use lanyard_api_tests::App;
use lanyard_api_tests::sso::{SsoEnv, SsoOptions};
use lanyard_browser_tests::{Browser, keys};
use lanyard_dex::{ALICE, BOB, PASSWORD};
use lanyard_test_support::{Probe, wait_for};
use serde_json::json;

/// Open `path` and sign in at Dex as `email` when asked; back on `path`.
fn open_signed_in(browser: &Browser, app: &App, path: &str, email: &str) {
    browser.goto(&format!("{}{path}", app.url)).unwrap();
    if browser.url().unwrap().contains("/dex/") {
        let login = browser.find("#login").unwrap();
        browser.type_into(&login, email).unwrap();
        browser.type_into(&browser.find("#password").unwrap(), PASSWORD).unwrap();
        browser.click(&browser.find("#submit-login").unwrap()).unwrap();
    }
    wait_for(&format!("to be back on {path}"), Duration::from_secs(20), || {
        let url = browser.url()?;
        Ok(if url.ends_with(path) { Probe::Ready(()) } else { Probe::NotYet(url) })
    })
    .unwrap();
}

/// Dex, the control plane trusting it, a cluster `prod` registered by alice
/// (admin of acme) with bob in the directory, and a browser of `width` px.
struct Scene {
    sso: SsoEnv,
    admin: String,
    cluster: String,
    credential: String,
    browser: Browser,
}

impl Scene {
    fn start(options: SsoOptions, width: u32) -> Scene {
        let sso = SsoEnv::start_with(options);
        let admin = sso.session(ALICE.email);
        let (cluster, credential) = sso.app.register(&admin, "prod", "standard");
        sso.app.get("/api/v1/clusters", &sso.session(BOB.email)).expect(200); // bob joins the directory
        let browser = Browser::start(width, 900).unwrap();
        Scene { sso, admin, cluster, credential, browser }
    }
}

/// Wait until the first grant's status cell says `status`.
fn wait_for_status(browser: &Browser, status: &str) {
    wait_for(&format!("a grant to show {status}"), Duration::from_secs(20), || {
        let shown = browser.execute(
            "const s = document.querySelector('#grants .status'); return s ? s.firstChild.textContent : document.body.innerText;",
            json!([]),
        )?;
        Ok(if shown == json!(status) { Probe::Ready(()) } else { Probe::NotYet(shown.to_string()) })
    })
    .unwrap();
}

fn no_serious_violations(browser: &Browser, what: &str) {
    let violations = browser.axe().unwrap();
    assert!(violations.is_empty(), "axe-core on {what}: {violations:#?}");
}

/// The agent's part, through the agent API: online, and every pending grant applied.
fn agent_applies_everything(app: &App, cluster: &str, credential: &str, admin: &str) {
    let agent = |p: &str| format!("/agent/v1/clusters/{cluster}/{p}");
    app.post(&agent("heartbeat"), credential, json!({"version": "0.1.0"})).expect(200);
    let grants = app.grants(admin, cluster);
    let results: Vec<_> = grants.iter().map(|g| json!({"grant_id": g["id"], "state": "applied"})).collect();
    app.post(&agent("reports"), credential, json!({ "results": results })).expect(200);
}

#[test]
fn an_admin_grants_sees_the_agents_status_revokes_one_and_revokes_all() {
    let Scene { sso, admin, cluster, credential, browser } = Scene::start(SsoOptions::default(), 1280);
    let app = &sso.app;
    app.post(&format!("/agent/v1/clusters/{cluster}/heartbeat"), &credential, json!({"version": "0.1.0"})).expect(200);
    let page = format!("/clusters/{cluster}/access");
    open_signed_in(&browser, app, &page, ALICE.email);
    browser.wait_for_text("Access to prod").unwrap();
    browser.wait_for_text("Grant access").unwrap();
    no_serious_violations(&browser, "the admin's view");
    browser.screenshot("admin-empty").unwrap();

    // A bad namespace: the live hint as it is typed, then the server's own message beside the field.
    browser
        .execute(
            "document.getElementById('grant-email').value = arguments[0]; document.getElementById('grant-role').value = 'edit';",
            json!([BOB.email]),
        )
        .unwrap();
    let namespace = browser.find("#grant-namespace").unwrap();
    browser.type_into(&namespace, "Team_A").unwrap();
    let hint =
        browser.execute("return document.getElementById('grant-namespace-error').textContent;", json!([])).unwrap();
    assert!(hint.as_str().unwrap().contains("Lower-case"), "{hint}");
    browser.click(&browser.find("form.grant button[type=submit]").unwrap()).unwrap();
    browser.wait_for_text("not a valid DNS-1123 label").unwrap();
    let invalid =
        browser.execute("return document.getElementById('grant-namespace').getAttribute('aria-invalid');", json!([]));
    assert_eq!(invalid.unwrap(), json!("true"));
    browser.screenshot("admin-validation-error").unwrap();

    // cluster-admin only at cluster scope.
    let offered = browser
        .execute("return document.querySelector('#grant-role option[value=\"cluster-admin\"]').disabled;", json!([]))
        .unwrap();
    assert_eq!(offered, json!(true), "cluster-admin is not offered for a namespace");

    // Grant: pending, then the agent's report shows through the page's own refresh.
    browser.execute("document.getElementById('grant-namespace').value = '';", json!([])).unwrap();
    browser.type_into(&namespace, "team-a").unwrap();
    browser.click(&browser.find("form.grant button[type=submit]").unwrap()).unwrap();
    wait_for_status(&browser, "pending");
    browser.screenshot("admin-pending").unwrap();
    agent_applies_everything(app, &cluster, &credential, &admin);
    wait_for_status(&browser, "applied");
    browser.screenshot("admin-applied").unwrap();

    // Revoke the one grant.
    browser.click(&browser.find("#grants button[aria-label^='Revoke edit of bob']").unwrap()).unwrap();
    browser.wait_for_text("Nobody has access to this cluster.").unwrap();
    assert!(app.grants(&admin, &cluster).is_empty());

    // Revoke all: a confirmation that says what it does and wants the cluster's name.
    app.grant_access(&admin, &cluster, BOB.email, "view", None);
    browser.goto(&format!("{}{page}", app.url)).unwrap();
    browser.click(&browser.find("#revoke-all").unwrap()).unwrap();
    browser.wait_for_text("invalidates every token").unwrap();
    let confirm = browser.find("#revoke-all-dialog button.danger").unwrap();
    let disabled =
        || browser.execute("return document.querySelector('#revoke-all-dialog button.danger').disabled;", json!([]));
    assert_eq!(disabled().unwrap(), json!(true), "not before the name is typed");
    browser.type_into(&browser.find("#revoke-all-name").unwrap(), "pro").unwrap();
    assert_eq!(disabled().unwrap(), json!(true), "not with a wrong name");
    browser.type_into(&browser.find("#revoke-all-name").unwrap(), "d").unwrap();
    assert_eq!(disabled().unwrap(), json!(false));
    browser.screenshot("admin-revoke-all-confirmation").unwrap();
    browser.click(&confirm).unwrap();
    browser.wait_for_text("Revoked 1 grant(s)").unwrap();
    assert!(app.grants(&admin, &cluster).is_empty());

    // A cookie write without the CSRF header, from the page itself, is refused.
    let status = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0], {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'},\
               body: JSON.stringify({email: arguments[1], role: 'view', scope: 'cluster'})})\
             .then(r => r.json().then(b => done([r.status, b.error.code])), e => done(String(e)));",
            json!([format!("/org/clusters/{cluster}/access/grants"), BOB.email]),
        )
        .unwrap();
    assert_eq!(status, json!([403, "csrf_required"]));
    assert!(app.grants(&admin, &cluster).is_empty(), "nothing was granted");
}

#[test]
fn granting_works_from_the_keyboard_alone() {
    let Scene { sso, admin, cluster, browser, .. } = Scene::start(SsoOptions::default(), 1280);
    let app = &sso.app;
    open_signed_in(&browser, app, &format!("/clusters/{cluster}/access"), ALICE.email);
    browser.wait_for_text("Grant access").unwrap();
    // Focus the member list with Tab presses from the start of the page, then choose,
    // move on and type, and submit with Enter: no click.
    browser.execute("document.activeElement.blur(); document.body.focus();", json!([])).unwrap();
    wait_for("the member list to have the focus", Duration::from_secs(10), || {
        browser.press(&[keys::TAB])?;
        let id = browser.execute("return document.activeElement.id;", json!([]))?;
        Ok(if id == json!("grant-email") { Probe::Ready(()) } else { Probe::NotYet(id.to_string()) })
    })
    .unwrap();
    browser.press(&["b"]).unwrap(); // "Bob <bob@acme.example>"
    browser.press(&[keys::TAB, "v"]).unwrap(); // role: view
    browser.press(&[keys::TAB]).unwrap(); // scope radios: "One namespace" is checked
    browser.press(&[keys::TAB]).unwrap(); // the namespace
    let focused = browser.execute("return document.activeElement.id;", json!([])).unwrap();
    assert_eq!(focused, json!("grant-namespace"));
    browser.press(&["team-a", keys::ENTER]).unwrap();
    // No agent has connected to this cluster: an unapplied grant says so.
    wait_for_status(&browser, "cluster offline");
    let grants = app.grants(&admin, &cluster);
    assert_eq!(grants.len(), 1);
    assert_eq!((grants[0]["email"].as_str(), grants[0]["role"].as_str()), (Some(BOB.email), Some("view")));
    assert_eq!(grants[0]["namespace"], json!("team-a"));
}

#[test]
fn a_member_sees_their_access_and_downloads_a_kubeconfig_that_kubectl_reads() {
    let Scene { sso, admin, cluster, browser, .. } = Scene::start(SsoOptions::default(), 1280);
    let app = &sso.app;
    let page = format!("/clusters/{cluster}/access");

    // No grant: told so, no admin controls.
    open_signed_in(&browser, app, &page, BOB.email);
    browser.wait_for_text("You have no access to this cluster").unwrap();
    assert!(!browser.body_text().unwrap().contains("Grant access"), "a member sees no admin controls");
    no_serious_violations(&browser, "the member's view without access");
    browser.screenshot("member-no-access").unwrap();

    // A grant: which, how to use it, the kubeconfig.
    app.grant_access(&admin, &cluster, BOB.email, "edit", Some("team-a"));
    browser.goto(&format!("{}{page}", app.url)).unwrap();
    browser.wait_for_text("edit in the namespace team-a").unwrap();
    browser.wait_for_text("lanyard cluster kubeconfig add prod").unwrap();
    browser.wait_for_text("-n team-a").unwrap();
    no_serious_violations(&browser, "the member's view");
    browser.screenshot("member-access").unwrap();
    browser.click(&browser.find("#download-kubeconfig").unwrap()).unwrap();
    let file = browser.downloads().join("lanyard-prod.kubeconfig");
    wait_for("the kubeconfig download", Duration::from_secs(20), || {
        Ok(if file.is_file() && std::fs::metadata(&file)?.len() > 0 {
            Probe::Ready(())
        } else {
            Probe::NotYet("none".into())
        })
    })
    .unwrap();
    let out = std::process::Command::new(lanyard_kubectl())
        .args(["config", "view", "--kubeconfig"])
        .arg(&file)
        .args(["-o", "jsonpath={.contexts[0].context.namespace} {.users[0].user.exec.command}"])
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl read it: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "team-a lanyard");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("token:"), "the kubeconfig holds no token");
}

/// kubectl as the other suites run it.
fn lanyard_kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

#[test]
fn sandbox_and_unavailable_clusters_explain_themselves_and_the_page_fits_a_phone() {
    let Scene { sso, admin, cluster: prod, browser, .. } = Scene::start(SsoOptions::default(), 375);
    let app = &sso.app;
    let sandbox = app.cluster(&admin, "playground", "sandbox");
    open_signed_in(&browser, app, &format!("/clusters/{sandbox}/access"), ALICE.email);
    browser.wait_for_text("Cluster Access is not available for this cluster").unwrap();
    assert!(!browser.body_text().unwrap().contains("Grant access"));
    browser.screenshot("sandbox").unwrap();

    browser.goto(&format!("{}/clusters/{prod}/access", app.url)).unwrap();
    browser.wait_for_text("Grant access").unwrap();
    let overflow = browser.execute("return document.documentElement.scrollWidth;", json!([])).unwrap();
    let widest = browser
        .execute(
            "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 376)               .map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
            json!([]),
        )
        .unwrap();
    assert!(overflow.as_u64().unwrap() <= 375, "the page is {overflow} px wide at 375 px: {widest}");
    no_serious_violations(&browser, "the admin's view at 375 px");
    browser.screenshot("admin-phone").unwrap();

    // The cluster list; first while its request fails as on a broken network: a message and a retry.
    browser.block_urls(&["*/api/v1/clusters"]).unwrap();
    browser.goto(&format!("{}/clusters", app.url)).unwrap();
    browser.wait_for_text("Lanyard could not be reached").unwrap();
    browser.screenshot("network-error").unwrap();
    browser.block_urls(&[]).unwrap();
    browser.click(&browser.find("div.problem button").unwrap()).unwrap();
    browser.wait_for_text("playground").unwrap();
    browser.wait_for_text("sandbox").unwrap();
}

#[test]
fn with_the_gateway_off_the_page_says_cluster_access_is_not_available() {
    let Scene { sso, cluster, browser, .. } =
        Scene::start(SsoOptions { gateway: false, ..SsoOptions::default() }, 1280);
    let app = &sso.app;
    open_signed_in(&browser, app, &format!("/clusters/{cluster}/access"), ALICE.email);
    browser.wait_for_text("Cluster Access is turned off on this Lanyard deployment").unwrap();
    browser.screenshot("gateway-off").unwrap();
}
