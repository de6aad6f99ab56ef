//! A real headless Chromium for the Access view's tests, driven over the W3C
//! WebDriver protocol by Debian's ChromeDriver (both installed by
//! `scripts/browser-deps`; a missing one is an error naming that script, no
//! test skips).
//!
//! [`Browser::start`] runs ChromeDriver on a free loopback port and opens one
//! session: headless, no sandbox (the tests run as root), downloads into a
//! temporary folder ([`Browser::downloads`]). The client here is the few
//! WebDriver commands the tests use, as blocking JSON over HTTP. Screenshots go
//! to `target/browser-artifacts/` (test artifacts, not committed);
//! [`Browser::axe`] runs axe-core in the page.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use lanyard_test_support::{Probe, repo_root, wait_for};
use serde_json::{Value, json};

/// Where Debian puts them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The script that installs them (and axe-core).
pub const DEPS_SCRIPT: &str = "scripts/browser-deps";
/// How long a test waits for something to appear on the page.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Special keys, as WebDriver spells them.
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const SPACE: &str = "\u{E00D}";
}

/// A found element.
#[derive(Debug, Clone)]
pub struct Element(String);

/// ChromeDriver and one Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::blocking::Client,
    downloads: tempfile::TempDir,
}

impl Browser {
    /// Start ChromeDriver and a headless Chromium `width` × `height` pixels.
    pub fn start(width: u32, height: u32) -> Result<Browser> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            ensure!(Path::new(binary).exists(), "{binary} is missing: run `bash {DEPS_SCRIPT}` (as root)");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start chromedriver")?;
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let root = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver to answer", Duration::from_secs(20), || {
            Ok(match http.get(format!("{root}/status")).send() {
                Ok(r) if r.status().is_success() => Probe::Ready(()),
                other => Probe::NotYet(format!("{other:?}")),
            })
        })?;
        let downloads = tempfile::tempdir()?;
        let mut options = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}"), "--lang=en-US"],
            "prefs": {"download.default_directory": downloads.path(), "download.prompt_for_download": false},
        });
        // A headless window cannot be narrower than about 500 px: a phone's
        // viewport is emulated instead.
        if width < 500 {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
        }
        let capabilities =
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let answer: Value = http.post(format!("{root}/session")).json(&capabilities).send()?.json()?;
        let id = answer["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("chromedriver opened no session: {answer}"))?
            .to_owned();
        let browser = Browser { driver, base: format!("{root}/session/{id}"), http, downloads };
        browser.cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": browser.downloads.path()}),
        )?;
        Ok(browser)
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let request = self.http.request(method.clone(), format!("{}{path}", self.base));
        let request = match body {
            Some(body) => request.json(&body),
            None if method == reqwest::Method::POST => request.json(&json!({})),
            None => request,
        };
        let answer: Value = request.send()?.json()?;
        if let Some(error) = answer["value"].get("error") {
            bail!("WebDriver {method} {path}: {error}: {}", answer["value"]["message"]);
        }
        Ok(answer["value"].clone())
    }

    fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params})))
    }

    /// Open `url`.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).map(drop)
    }

    /// The page's URL.
    pub fn url(&self) -> Result<String> {
        Ok(self.call(reqwest::Method::GET, "/url", None)?.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching `css`, waiting for it.
    pub fn find(&self, css: &str) -> Result<Element> {
        wait_for(&format!("an element {css}"), PATIENCE, || {
            Ok(
                match self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
                {
                    Ok(found) => match found.get(ELEMENT).and_then(Value::as_str) {
                        Some(id) => Probe::Ready(Element(id.to_owned())),
                        None => bail!("WebDriver answered no element reference: {found}"),
                    },
                    Err(e) => Probe::NotYet(e.to_string()),
                },
            )
        })
    }

    pub fn click(&self, element: &Element) -> Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), None).map(drop)
    }

    /// Type `text` into `element` (keys from [`keys`] included).
    pub fn type_into(&self, element: &Element, text: &str) -> Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{}/value", element.0), Some(json!({"text": text})))
            .map(drop)
    }

    /// Press keys on whatever has the focus, as a keyboard would.
    pub fn press(&self, keys: &[&str]) -> Result<()> {
        let mut actions = Vec::new();
        for key in keys {
            for c in key.chars() {
                actions.push(json!({"type": "keyDown", "value": c.to_string()}));
                actions.push(json!({"type": "keyUp", "value": c.to_string()}));
            }
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.call(reqwest::Method::POST, "/actions", Some(body)).map(drop)
    }

    /// Run `script` (a function body; `arguments` are `args`) in the page.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Run an async `script` whose last argument is the callback.
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": args})))
    }

    /// The page's visible text.
    pub fn body_text(&self) -> Result<String> {
        Ok(self.execute("return document.body.innerText;", json!([]))?.as_str().unwrap_or_default().to_owned())
    }

    /// Wait until the page's text contains `text`.
    pub fn wait_for_text(&self, text: &str) -> Result<()> {
        wait_for(&format!("the page to say {text:?}"), PATIENCE, || {
            let body = self.body_text()?;
            Ok(if body.contains(text) { Probe::Ready(()) } else { Probe::NotYet(body) })
        })
    }

    /// Save a screenshot as `target/browser-artifacts/<name>.png`; its path.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.call(reqwest::Method::GET, "/screenshot", None)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default())?;
        let dir = repo_root().join("target/browser-artifacts");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes)?;
        Ok(path)
    }

    /// Make requests to URLs matching these patterns (`*` wildcards) fail as a
    /// network error would; none: every request goes through again.
    pub fn block_urls(&self, patterns: &[&str]) -> Result<()> {
        self.cdp("Network.enable", json!({}))?;
        self.cdp("Network.setBlockedURLs", json!({"urls": patterns})).map(drop)
    }

    /// The folder downloads land in.
    pub fn downloads(&self) -> &Path {
        self.downloads.path()
    }

    /// Run axe-core (from `tests/browser/node_modules`) in the page; the
    /// violations of impact `serious` or `critical`, each as "id: help (targets)".
    pub fn axe(&self) -> Result<Vec<String>> {
        let path = repo_root().join("tests/browser/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("{} is missing: run `bash {DEPS_SCRIPT}`", path.display()))?;
        // Loaded by the test through WebDriver, not by the page: its CSP stays strict.
        self.execute(&source, json!([]))?;
        let result = self.execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done({error: String(e)}));",
            json!([]),
        )?;
        ensure!(result.get("error").is_none(), "axe-core failed: {result}");
        Ok(result
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let targets: Vec<String> =
                    v["nodes"].as_array().into_iter().flatten().map(|n| n["target"].to_string()).collect();
                format!(
                    "{}: {} ({})",
                    v["id"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or("?"),
                    targets.join(", ")
                )
            })
            .collect())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
