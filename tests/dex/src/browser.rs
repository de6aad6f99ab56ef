//! The browser stand-in: drives Dex's sign-in and device pages over plain
//! HTTP as a person would (Dex's pages are server-rendered forms, no script
//! needed). It follows redirects itself, and only while they stay on Dex: the
//! first redirect that leaves Dex (to a client's `redirect_uri`) is returned,
//! not requested. It keeps any cookie Dex sets, for Dex's origin.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use url::Url;

use crate::html::{self, Form};

/// How a sign-in or a device approval went wrong, for tests that expect it to.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Dex showed its login form again, saying the credentials are invalid.
    #[error("Dex refused the password of {email}: it showed its login form again with \"{message}\"")]
    WrongPassword { email: String, message: String },
    /// Dex did not know the device's user code (or it had expired).
    #[error("Dex does not know the user code {user_code} (or it expired): its device page says \"{message}\"")]
    UnknownUserCode { user_code: String, message: String },
    /// Dex answered with one of its error pages.
    #[error("Dex answered {url} with {status} and its error page says \"{message}\"")]
    DexError { url: String, status: StatusCode, message: String },
    /// A page was not the one this step of the flow expects.
    #[error("expected {expected} at {url} ({status}), but the page says \"{text}\"")]
    UnexpectedPage { expected: &'static str, url: String, status: StatusCode, text: String },
}

/// Redirects followed in one step before giving up (a loop, surely).
const MAX_REDIRECTS: usize = 20;

/// A page Dex rendered: where, its status and its HTML.
struct Page {
    url: Url,
    status: StatusCode,
    body: String,
}

impl Page {
    fn text(&self) -> String {
        let text = html::text(&self.body);
        if text.is_empty() { "(nothing)".to_owned() } else { text }
    }

    /// Fails with Dex's error message unless this page is a 200.
    fn ensure_ok(self) -> Result<Page> {
        if self.status != StatusCode::OK {
            return Err(
                SignInError::DexError { url: self.url.to_string(), status: self.status, message: self.text() }.into()
            );
        }
        Ok(self)
    }

    fn form_with(&self, input: &str) -> Option<Form> {
        html::forms(&self.body).into_iter().find(|form| form.has_input(input))
    }

    fn unexpected(&self, expected: &'static str) -> anyhow::Error {
        SignInError::UnexpectedPage { expected, url: self.url.to_string(), status: self.status, text: self.text() }
            .into()
    }
}

/// Where a step of the flow ended.
enum Step {
    /// On a page of Dex's.
    Page(Page),
    /// At a redirect that leaves Dex: its absolute URL, not requested.
    Left(String),
}

/// A cookie-keeping, non-redirecting HTTP client confined to one Dex.
pub(crate) struct Browser {
    client: Client,
    issuer: Url,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub(crate) fn new(issuer: &str) -> Result<Browser> {
        let mut issuer = Url::parse(issuer).with_context(|| format!("the issuer {issuer} is not a URL"))?;
        if !issuer.path().ends_with('/') {
            let path = format!("{}/", issuer.path());
            issuer.set_path(&path);
        }
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .context("could not build the browser stand-in's HTTP client")?;
        Ok(Browser { client, issuer, cookies: Mutex::default() })
    }

    /// Signs in at `authorize_url` and returns where Dex then sends the
    /// browser away (the client's `redirect_uri`, with `code` and `state` or
    /// with `error`), without going there.
    pub(crate) fn sign_in(&self, authorize_url: &str, email: &str, password: &str) -> Result<String> {
        let url =
            Url::parse(authorize_url).with_context(|| format!("the authorization URL {authorize_url} is not a URL"))?;
        let page = match self.get(url)? {
            Step::Left(location) => return Ok(location),
            Step::Page(page) => page.ensure_ok()?,
        };
        match self.log_in(page, email, password)? {
            Step::Left(location) => Ok(location),
            Step::Page(page) => Err(page.ensure_ok()?.unexpected("a redirect back to the client after signing in")),
        }
    }

    /// Approves a device authorization: opens `verification_uri`, enters
    /// `user_code`, signs in, and checks that Dex says the device may go on.
    pub(crate) fn approve_device(
        &self,
        verification_uri: &str,
        user_code: &str,
        email: &str,
        password: &str,
    ) -> Result<()> {
        let url = Url::parse(verification_uri)
            .with_context(|| format!("the verification URI {verification_uri} is not a URL"))?;
        let page = match self.get(url)? {
            Step::Left(location) => bail!("Dex sent the device page {verification_uri} away to {location}"),
            Step::Page(page) => page.ensure_ok()?,
        };
        let Some(form) = page.form_with("user_code") else {
            return Err(page.unexpected("Dex's form for a device's user code"));
        };
        let page = match self.submit(&page, &form, &[("user_code", user_code)])? {
            Step::Left(location) => bail!("Dex sent the browser away to {location} instead of asking to sign in"),
            Step::Page(page) => page,
        };
        // Dex shows its device form again (with 400) for a code it does not know.
        if page.form_with("user_code").is_some() {
            return Err(SignInError::UnknownUserCode { user_code: user_code.to_owned(), message: page.text() }.into());
        }
        let page = page.ensure_ok()?;
        match self.log_in(page, email, password)? {
            Step::Left(location) => {
                bail!("Dex sent the browser away to {location} instead of approving the device")
            }
            Step::Page(page) => {
                let page = page.ensure_ok()?;
                if !page.text().contains("Login Successful") {
                    return Err(page.unexpected("Dex's page saying the device is approved"));
                }
                Ok(())
            }
        }
    }

    /// Fills in and submits Dex's login form on `page`.
    fn log_in(&self, page: Page, email: &str, password: &str) -> Result<Step> {
        let Some(form) = page.form_with("password") else {
            return Err(page.unexpected("Dex's login form (email and password)"));
        };
        let step = self.submit(&page, &form, &[("login", email), ("password", password)])?;
        // Dex shows its login form again (with 401) for a wrong password.
        if let Step::Page(page) = &step
            && page.form_with("password").is_some()
        {
            let text = page.text();
            let message = text.split_once("Invalid").map_or(text.as_str(), |(_, rest)| rest);
            return Err(
                SignInError::WrongPassword { email: email.to_owned(), message: format!("Invalid{message}") }.into()
            );
        }
        Ok(step)
    }

    /// Submits `form` of `page`: its inputs with their values, `fields` over them.
    fn submit(&self, page: &Page, form: &Form, fields: &[(&str, &str)]) -> Result<Step> {
        let action = page
            .url
            .join(&form.action)
            .with_context(|| format!("the form's action {:?} at {} is not a URL", form.action, page.url))?;
        let mut values: Vec<(String, String)> =
            form.inputs.iter().filter(|(name, _)| !fields.iter().any(|(field, _)| field == name)).cloned().collect();
        values.extend(fields.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        if form.method == "post" {
            self.ensure_on_dex(&action)?;
            let response = self.send(self.client.post(action.clone()).form(&values), &action)?;
            self.follow(action, response)
        } else {
            let mut action = action;
            action.query_pairs_mut().clear().extend_pairs(&values);
            self.get(action)
        }
    }

    /// GETs `url` on Dex and follows Dex's redirects.
    fn get(&self, url: Url) -> Result<Step> {
        self.ensure_on_dex(&url)?;
        let response = self.send(self.client.get(url.clone()), &url)?;
        self.follow(url, response)
    }

    /// Follows redirects from `response` (to `url`) while they stay on Dex.
    fn follow(&self, mut url: Url, mut response: reqwest::blocking::Response) -> Result<Step> {
        for _ in 0..MAX_REDIRECTS {
            let status = response.status();
            if !status.is_redirection() {
                let body = response.text().with_context(|| format!("could not read Dex's page {url}"))?;
                return Ok(Step::Page(Page { url, status, body }));
            }
            let location = response
                .headers()
                .get(LOCATION)
                .with_context(|| format!("Dex answered {url} with {status} but no Location"))?
                .to_str()
                .with_context(|| format!("Dex's Location at {url} is not text"))?;
            let next =
                url.join(location).with_context(|| format!("Dex redirected {url} to {location:?}, not a URL"))?;
            if !self.on_dex(&next) {
                return Ok(Step::Left(next.to_string()));
            }
            response = self.send(self.client.get(next.clone()), &next)?;
            url = next;
        }
        bail!("Dex redirected more than {MAX_REDIRECTS} times from {url}")
    }

    fn send(&self, request: RequestBuilder, url: &Url) -> Result<reqwest::blocking::Response> {
        let cookies = self.cookie_header();
        let request = if cookies.is_empty() { request } else { request.header(COOKIE, cookies) };
        let response = request.send().with_context(|| format!("could not reach Dex at {url}"))?;
        self.keep_cookies(&response);
        Ok(response)
    }

    fn on_dex(&self, url: &Url) -> bool {
        url.origin() == self.issuer.origin()
            && (url.path().starts_with(self.issuer.path()) || url.path() == self.issuer.path().trim_end_matches('/'))
    }

    fn ensure_on_dex(&self, url: &Url) -> Result<()> {
        if !self.on_dex(url) {
            bail!("{url} is not on this Dex ({}); the browser stand-in only visits Dex", self.issuer);
        }
        Ok(())
    }

    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    /// Keeps every cookie of `response` (name and value; the browser only
    /// visits one origin, so domain and path do not matter), and forgets those
    /// it expires.
    fn keep_cookies(&self, response: &reqwest::blocking::Response) {
        let mut cookies = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        for header in response.headers().get_all(SET_COOKIE) {
            let Ok(header) = header.to_str() else { continue };
            let mut attributes = header.split(';');
            let Some((name, value)) = attributes.next().and_then(|pair| pair.split_once('=')) else { continue };
            let expired = attributes.any(|attribute| {
                let attribute = attribute.trim().to_ascii_lowercase();
                attribute == "max-age=0" || attribute.starts_with("max-age=-")
            });
            if expired {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}
