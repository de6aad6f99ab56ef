//! What a Kubernetes API request asks for, read from its method and path the
//! way the apiserver reads it (its `RequestInfoFactory`): the verb, API
//! group and version, resource, subresource, namespace and name, or a
//! non-resource path. For the audit record; authorisation stays with the
//! apiserver's RBAC.

use serde::Serialize;

use crate::http::Method;

/// A request's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestInfo {
    /// A request on an API resource.
    Resource {
        /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
        verb: &'static str,
        /// The API group (`""` for the core group).
        group: String,
        /// The API version.
        version: String,
        /// The resource (`pods`).
        resource: String,
        /// The subresource (`exec`, `log`, `portforward`, `status`), if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        subresource: Option<String>,
        /// The namespace, for a namespaced request.
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The object's name, for a request on one object.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Anything else (`/version`, `/healthz`, discovery).
    NonResource {
        /// The lower-case method.
        verb: String,
        /// The path, without the query.
        path: String,
    },
}

/// Longest path segment kept in a record (an apiserver refuses longer names anyway).
const MAX_SEGMENT: usize = 253;

/// The target of a request with `method` on `path` (without the query);
/// `watch` says whether the query asks to watch (`watch=true`).
pub fn request_info(method: Method, path: &str, watch: bool) -> RequestInfo {
    let non_resource =
        || RequestInfo::NonResource { verb: method.as_str().to_ascii_lowercase(), path: path.to_owned() };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| s.len() > MAX_SEGMENT || *s == "." || *s == "..") {
        return non_resource();
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return non_resource(),
    };
    // The legacy `/watch/` prefix.
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, more @ ..] if !more.is_empty() => (Some(*ns), more),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [] => return non_resource(),
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub, ..] => (*resource, Some(*name), Some(*sub)),
    };
    let collection = name.is_none();
    let verb = match method {
        Method::Get | Method::Head if watch || watch_prefix => "watch",
        Method::Get | Method::Head if collection => "list",
        Method::Get | Method::Head => "get",
        Method::Post => "create",
        Method::Put => "update",
        Method::Patch => "patch",
        Method::Delete if collection => "deletecollection",
        Method::Delete => "delete",
        Method::Options | Method::Other => return non_resource(),
    };
    RequestInfo::Resource {
        verb,
        group: group.to_owned(),
        version: version.to_owned(),
        resource: resource.to_owned(),
        subresource: subresource.map(str::to_owned),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    }
}

/// Whether a query string asks to watch (`watch=true` or `watch=1`).
pub fn query_watches(query: &str) -> bool {
    query.split('&').any(|pair| matches!(pair, "watch=true" | "watch=1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(info: &RequestInfo) -> (&str, &str, &str, Option<&str>, Option<&str>, Option<&str>) {
        match info {
            RequestInfo::Resource { verb, group, resource, subresource, namespace, name, .. } => {
                (verb, group.as_str(), resource.as_str(), subresource.as_deref(), namespace.as_deref(), name.as_deref())
            }
            RequestInfo::NonResource { .. } => panic!("not a resource request: {info:?}"),
        }
    }

    #[test]
    fn resource_requests_read_as_the_apiserver_reads_them() {
        let cases = [
            (Method::Get, "/api/v1/namespaces/team-a/pods", false, ("list", "", "pods", None, Some("team-a"), None)),
            (Method::Get, "/api/v1/namespaces/team-a/pods", true, ("watch", "", "pods", None, Some("team-a"), None)),
            (
                Method::Get,
                "/api/v1/watch/namespaces/team-a/pods",
                false,
                ("watch", "", "pods", None, Some("team-a"), None),
            ),
            (
                Method::Get,
                "/api/v1/namespaces/team-a/pods/web",
                false,
                ("get", "", "pods", None, Some("team-a"), Some("web")),
            ),
            (
                Method::Post,
                "/api/v1/namespaces/team-a/pods/web/exec",
                false,
                ("create", "", "pods", Some("exec"), Some("team-a"), Some("web")),
            ),
            (
                Method::Get,
                "/api/v1/namespaces/team-a/pods/web/log",
                false,
                ("get", "", "pods", Some("log"), Some("team-a"), Some("web")),
            ),
            (Method::Get, "/api/v1/namespaces", false, ("list", "", "namespaces", None, None, None)),
            (Method::Get, "/api/v1/namespaces/team-a", false, ("get", "", "namespaces", None, None, Some("team-a"))),
            (
                Method::Delete,
                "/api/v1/namespaces/team-a/configmaps",
                false,
                ("deletecollection", "", "configmaps", None, Some("team-a"), None),
            ),
            (
                Method::Delete,
                "/api/v1/namespaces/team-a/configmaps/c",
                false,
                ("delete", "", "configmaps", None, Some("team-a"), Some("c")),
            ),
            (
                Method::Patch,
                "/apis/apps/v1/namespaces/team-a/deployments/web",
                false,
                ("patch", "apps", "deployments", None, Some("team-a"), Some("web")),
            ),
            (
                Method::Put,
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
                false,
                ("update", "rbac.authorization.k8s.io", "clusterroles", None, None, Some("view")),
            ),
            (Method::Get, "/api/v1/nodes", false, ("list", "", "nodes", None, None, None)),
        ];
        for (method, path, watch, want) in cases {
            assert_eq!(resource(&request_info(method, path, watch)), want, "{method} {path}");
        }
    }

    #[test]
    fn everything_else_is_a_non_resource_path() {
        for path in
            ["/version", "/healthz", "/api", "/apis", "/apis/apps", "/api/v1", "/openapi/v2", "/api/v1/../secrets"]
        {
            assert!(matches!(request_info(Method::Get, path, false), RequestInfo::NonResource { .. }), "{path}");
        }
        assert!(query_watches("resourceVersion=1&watch=true") && query_watches("watch=1"));
        assert!(!query_watches("watch=false") && !query_watches("notwatch=true"));
    }
}
