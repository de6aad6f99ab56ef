//! The Access view's pages and assets (`/clusters`, `/clusters/{id}/access`,
//! `/assets/{file}`): one HTML shell and one script that renders the view
//! from the portal endpoints in the browser (`portal/` at the repository
//! root). The portal component embeds the files and hands them in as
//! [`Assets`], so no other component carries them.
//!
//! A page request without a session cookie is sent to the sign-in, coming
//! back to the same page. Every answer carries a Content-Security-Policy that
//! allows only this origin's own script, style and requests (no inline
//! script), `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` and
//! `nosniff`; pages are never cached.

use crate::endpoint::{Endpoint, check_method};
use crate::http::{Request, Response};
use crate::identity::SESSION_COOKIE;

/// The files of the Access view.
#[derive(Debug, Clone, Copy)]
pub struct Assets {
    /// The page shell.
    pub html: &'static str,
    /// The script.
    pub js: &'static str,
    /// The style sheet.
    pub css: &'static str,
}

/// The policy every portal answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Serve a portal request.
pub fn serve(req: &Request, assets: &Assets) -> Response {
    if let Err(e) = check_method(Endpoint::Portal, req) {
        return with_headers(Response::error(&e));
    }
    if let Some(file) = req.param("file") {
        let (content_type, body) = match file {
            "app.js" => ("text/javascript; charset=utf-8", assets.js),
            "app.css" => ("text/css; charset=utf-8", assets.css),
            _ => return with_headers(Response::error(&crate::ApiError::NotFound("no such file".into()))),
        };
        return with_headers(Response::text(200, content_type, body.to_owned()))
            .with_header("cache-control", "no-cache");
    }
    if req.cookie(SESSION_COOKIE).is_none_or(str::is_empty) {
        let back = crate::outbound::form_encode(&req.path);
        let location = format!("/auth/login?return_to={back}");
        let redirect =
            Response { status: 303, headers: vec![("location".into(), location)], body: Vec::new(), log: None };
        return with_headers(redirect.no_store());
    }
    with_headers(Response::text(200, "text/html; charset=utf-8", assets.html.to_owned()).no_store())
}

fn with_headers(response: Response) -> Response {
    response
        .with_header("content-security-policy", CONTENT_SECURITY_POLICY)
        .with_header("x-frame-options", "DENY")
        .with_header("referrer-policy", "same-origin")
        .with_header("x-content-type-options", "nosniff")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    const ASSETS: Assets = Assets { html: "<html>", js: "js()", css: "a{}" };

    fn get(path: &str, route: &str, params: &[(&str, &str)]) -> Request {
        Request::new(Method::Get, path).on_route(route, params)
    }

    #[test]
    fn pages_need_a_session_cookie_and_assets_do_not() {
        let page =
            serve(&get("/clusters/c_1/access", "/clusters/:cluster_id/access", &[("cluster_id", "c_1")]), &ASSETS);
        assert_eq!(page.status, 303);
        assert_eq!(page.header("location"), Some("/auth/login?return_to=%2Fclusters%2Fc_1%2Faccess"));
        let signed_in = get("/clusters", "/clusters", &[]).with_header("cookie", "lanyard_session=x");
        let page = serve(&signed_in, &ASSETS);
        assert_eq!((page.status, page.body.as_slice()), (200, b"<html>".as_slice()));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        let js = serve(&get("/assets/app.js", "/assets/:file", &[("file", "app.js")]), &ASSETS);
        assert_eq!((js.status, js.header("content-type")), (200, Some("text/javascript; charset=utf-8")));
        let other = serve(&get("/assets/x", "/assets/:file", &[("file", "x")]), &ASSETS);
        assert_eq!(other.status, 404);
        for r in [page, js, other] {
            assert_eq!(r.header("content-security-policy"), Some(CONTENT_SECURITY_POLICY));
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
        }
    }
}
