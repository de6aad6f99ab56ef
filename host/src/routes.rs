//! HTTP route matching as Spin's HTTP trigger does it.
//!
//! A route is a path of `/`-separated segments: a literal (`clusters`), a
//! parameter (`:cluster_id`, one non-empty segment), and optionally a trailing
//! wildcard `/...` that matches any rest of the path, including nothing. As in
//! Spin, one trailing slash is stripped from the route, an exact route also
//! matches the path with one trailing slash, and matching is done on the raw
//! (still percent-encoded) path.
//!
//! When several routes match, the most specific wins: segments are compared
//! left to right and at the first place where the routes differ a literal
//! beats a parameter, which beats the wildcard; so among wildcards the longer
//! literal prefix wins, and an exact route beats a wildcard route of the same
//! prefix. If the same route is declared twice, the later one is used (Spin
//! logs the earlier as a duplicate that is never reached).

use std::cmp::Ordering;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Segment {
    /// Higher is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
        }
    }
}

/// Route parameters and their values, in route order.
pub type Params = Vec<(String, String)>;

/// A route from the manifest, parsed.
#[derive(Debug, Clone)]
pub struct Route {
    raw: String,
    based: String,
    component: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

impl Route {
    /// Parses a route as written in the manifest.
    pub fn parse(raw: &str, component: &str) -> Route {
        // Spin: the base ("/") and the route each lose one trailing slash, and
        // the route is made absolute.
        let absolute = if raw.starts_with('/') { raw.to_string() } else { format!("/{raw}") };
        let based = absolute.strip_suffix('/').map(str::to_string).unwrap_or(absolute);
        let (prefix, wildcard) = if let Some(prefix) = based.strip_suffix("/...") {
            (prefix, true)
        } else if let Some(prefix) = based.strip_suffix("/*") {
            (prefix, true)
        } else {
            (based.as_str(), false)
        };
        let segments = prefix
            .split('/')
            .skip(1)
            .map(|s| match s.strip_prefix(':') {
                Some(name) if !name.is_empty() => Segment::Param(name.to_string()),
                _ => Segment::Literal(s.to_string()),
            })
            .collect();
        Route { raw: raw.to_string(), based, component: component.to_string(), segments, wildcard }
    }

    /// The route as written in the manifest.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The component that serves the route.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Matches `path`, giving the parameters and the wildcard's part of the path.
    fn matches(&self, path: &str) -> Option<(Params, String)> {
        let rest = path.strip_prefix('/')?;
        let ends_with_slash = path.ends_with('/');
        let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        if parts.len() < self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(text) if text == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.push((name.clone(), (*part).to_string()));
                }
                _ => return None,
            }
        }
        let remainder = &parts[self.segments.len()..];
        if !self.wildcard {
            return match remainder {
                [] | [""] => Some((params, String::new())),
                _ => None,
            };
        }
        // Spin's path-info: the captured rest with a leading slash, keeping a
        // trailing slash of the request path.
        let captured = remainder.join("/");
        let captured = captured.strip_suffix('/').unwrap_or(&captured);
        let path_info = match (captured.is_empty(), ends_with_slash) {
            (true, false) => String::new(),
            (true, true) => "/".to_string(),
            (false, false) => format!("/{captured}"),
            (false, true) => format!("/{captured}/"),
        };
        Some((params, path_info))
    }

    /// `Greater` when `self` is more specific than `other`.
    fn specificity(&self, other: &Route) -> Ordering {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match a.rank().cmp(&b.rank()) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match self.segments.len().cmp(&other.segments.len()) {
            // Same shape: the exact route beats the wildcard.
            Ordering::Equal => other.wildcard.cmp(&self.wildcard),
            longer_is_more_specific => longer_is_more_specific,
        }
    }
}

/// The routes of an application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// A route matched for a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component that serves the request.
    pub component: String,
    /// The route as written in the manifest (`spin-raw-component-route`).
    pub raw_route: String,
    /// The route with the base applied (`spin-matched-route`).
    pub based_route: String,
    /// The route without its trailing `/...` (`spin-component-route`).
    pub component_route: String,
    /// `:name` parameters and their (raw) values, in route order.
    pub params: Params,
    /// The part of the path the wildcard matched (`spin-path-info`).
    pub path_info: String,
}

impl Router {
    /// Builds the router from `(route, component)` pairs in manifest order.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Router {
        let mut parsed: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let route = Route::parse(raw, component);
            if let Some(existing) = parsed.iter_mut().find(|r| r.raw == route.raw) {
                tracing::warn!(
                    route = %route.raw,
                    unreachable_component = %existing.component,
                    component = %route.component,
                    "duplicate route: the earlier declaration is never used"
                );
                *existing = route;
            } else {
                parsed.push(route);
            }
        }
        Router { routes: parsed }
    }

    /// The routes, in manifest order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The most specific route matching `path`, if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let mut best: Option<(&Route, Params, String)> = None;
        for route in &self.routes {
            let Some((params, path_info)) = route.matches(path) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((current, _, _)) => route.specificity(current) == Ordering::Greater,
            };
            if better {
                best = Some((route, params, path_info));
            }
        }
        best.map(|(route, params, path_info)| RouteMatch {
            component: route.component.clone(),
            raw_route: route.raw.clone(),
            based_route: route.based.clone(),
            component_route: route.raw.strip_suffix("/...").unwrap_or(&route.raw).to_string(),
            params,
            path_info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().copied())
    }

    fn component(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component)
    }

    /// Checks that each `(path, component)` of `expected` routes so whether
    /// the manifest lists `routes` in this order or the reverse.
    fn routes_in_either_order(routes: &[(&str, &str)], expected: &[(&str, &str)]) {
        let mut reversed = routes.to_vec();
        reversed.reverse();
        for order in [routes, &reversed] {
            let r = router(order);
            for (path, serves) in expected {
                assert_eq!(component(&r, path).as_deref(), Some(*serves), "{path} in {order:?}");
            }
        }
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("/foo", "foo"), ("/foo/bar", "foobar")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/bar").as_deref(), Some("foobar"));
        assert_eq!(component(&r, "/foo/bar/baz"), None);
        assert_eq!(component(&r, "/fo"), None);
        assert_eq!(component(&r, "/foobar"), None);
        assert_eq!(component(&r, "/"), None);
        let m = r.route("/foo").unwrap();
        assert_eq!(m.path_info, "");
        assert_eq!(m.component_route, "/foo");
    }

    #[test]
    fn root_route() {
        let r = router(&[("/", "root")]);
        assert_eq!(component(&r, "/").as_deref(), Some("root"));
        assert_eq!(component(&r, "/x"), None);
    }

    #[test]
    fn parameters_capture_one_non_empty_segment() {
        let r = router(&[("/clusters/:cluster_id/grants/:grant_id", "grant")]);
        let m = r.route("/clusters/c-1/grants/g%201").expect("matches");
        assert_eq!(
            m.params,
            vec![("cluster_id".to_string(), "c-1".to_string()), ("grant_id".to_string(), "g%201".to_string())]
        );
        assert_eq!(m.based_route, "/clusters/:cluster_id/grants/:grant_id");
        assert_eq!(component(&r, "/clusters//grants/g"), None);
        assert_eq!(component(&r, "/clusters/c/grants"), None);
        assert_eq!(component(&r, "/clusters/c/grants/g/x"), None);
    }

    #[test]
    fn wildcard_matches_any_rest_and_sets_path_info() {
        let r = router(&[("/static/...", "static")]);
        let info = |p: &str| r.route(p).map(|m| m.path_info);
        assert_eq!(info("/static").as_deref(), Some(""));
        assert_eq!(info("/static/").as_deref(), Some("/"));
        assert_eq!(info("/static/a").as_deref(), Some("/a"));
        assert_eq!(info("/static/a/b/").as_deref(), Some("/a/b/"));
        assert_eq!(info("/staticx"), None);
        let m = r.route("/static/a").unwrap();
        assert_eq!(m.raw_route, "/static/...");
        assert_eq!(m.based_route, "/static/...");
        assert_eq!(m.component_route, "/static");
    }

    #[test]
    fn catch_all() {
        let r = router(&[("/...", "all")]);
        for path in ["/", "/a", "/a/b/c", "/abc/"] {
            assert_eq!(component(&r, path).as_deref(), Some("all"), "{path}");
        }
        assert_eq!(r.route("/").unwrap().path_info, "/");
        assert_eq!(r.route("/a/b").unwrap().path_info, "/a/b");
        assert_eq!(r.route("/a").unwrap().component_route, "");
    }

    #[test]
    fn exact_beats_wildcard_whatever_the_order() {
        routes_in_either_order(&[("/one", "exact"), ("/...", "wild")], &[("/one", "exact"), ("/two", "wild")]);
        let r = router(&[("/one/...", "wild"), ("/one", "exact")]);
        assert_eq!(component(&r, "/one").as_deref(), Some("exact"));
        assert_eq!(component(&r, "/one/x").as_deref(), Some("wild"));
    }

    #[test]
    fn longest_literal_prefix_wins_among_wildcards() {
        routes_in_either_order(
            &[("/one/...", "one"), ("/one/two/...", "onetwo"), ("/one/two/three/...", "onetwothree")],
            &[("/one/two/three/four", "onetwothree"), ("/one/two/x", "onetwo"), ("/one/x", "one")],
        );
    }

    #[test]
    fn literal_beats_parameter_beats_wildcard() {
        routes_in_either_order(
            &[("/c/:id", "param"), ("/c/new", "literal"), ("/c/...", "wild"), ("/...", "all")],
            &[("/c/new", "literal"), ("/c/x", "param"), ("/c/x/y", "wild"), ("/c", "wild"), ("/d", "all")],
        );
    }

    #[test]
    fn earlier_literal_segment_decides_before_length() {
        let r = router(&[("/a/:x/c/d", "param-first"), ("/a/b/...", "literal-first")]);
        assert_eq!(component(&r, "/a/b/c/d").as_deref(), Some("literal-first"));
        assert_eq!(component(&r, "/a/z/c/d").as_deref(), Some("param-first"));
    }

    #[test]
    fn the_lanyard_routes() {
        let r = router(&[
            ("/api/v1/clusters/:cluster_id/access/grants", "grants"),
            ("/api/v1/clusters/:cluster_id/access/grants/:grant_id", "grant"),
            ("/api/v1/clusters", "clusters"),
            ("/api/v1/members", "directory"),
            ("/api/v1/members/:member_id", "directory"),
            ("/...", "not-found"),
        ]);
        assert_eq!(component(&r, "/api/v1/clusters/c/access/grants").as_deref(), Some("grants"));
        assert_eq!(component(&r, "/api/v1/clusters/c/access/grants/g").as_deref(), Some("grant"));
        assert_eq!(component(&r, "/api/v1/clusters").as_deref(), Some("clusters"));
        assert_eq!(component(&r, "/api/v1/clusters/c").as_deref(), Some("not-found"));
        assert_eq!(component(&r, "/api/v1/members/m").as_deref(), Some("directory"));
    }

    #[test]
    fn later_duplicate_wins() {
        let r = router(&[("/x", "first"), ("/x", "second")]);
        assert_eq!(r.routes().len(), 1);
        assert_eq!(component(&r, "/x").as_deref(), Some("second"));
    }

    #[test]
    fn no_match_without_leading_slash() {
        let r = router(&[("/...", "all")]);
        assert_eq!(component(&r, "*"), None);
    }
}
