//! The endpoint table (`lanyard_core::endpoint::ENDPOINTS`) is the one
//! description of the HTTP surface: `spin.toml`'s routes and components, the
//! component crates and `openapi.yaml`'s operations must all say what it says.
//! Adding an endpoint is one table entry plus its component; forgetting one
//! of the others fails here.

use std::collections::BTreeSet;

use lanyard_api_tests::{openapi, repo_root};
use lanyard_core::endpoint::ENDPOINTS;
use lanyard_host::Manifest;

fn openapi_path(route: &str) -> String {
    route
        .split('/')
        .map(|s| s.strip_prefix(':').map_or(s.to_owned(), |p| format!("{{{p}}}")))
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn spin_toml_routes_exactly_the_table() {
    let manifest = Manifest::load(&repo_root().join("spin.toml")).expect("spin.toml loads");
    let routed: BTreeSet<(String, String)> =
        manifest.triggers.iter().map(|t| (t.route.clone(), t.component.clone())).collect();
    let table: BTreeSet<(String, String)> =
        ENDPOINTS.iter().flat_map(|s| s.routes.iter().map(|r| (r.path.to_owned(), s.component.to_owned()))).collect();
    let missing: Vec<_> = table.difference(&routed).collect();
    let extra: Vec<_> = routed.difference(&table).collect();
    assert!(missing.is_empty(), "routes in the endpoint table that spin.toml does not route: {missing:?}");
    assert!(extra.is_empty(), "routes in spin.toml that the endpoint table does not have: {extra:?}");
    for spec in ENDPOINTS {
        let component =
            manifest.components.get(spec.component).unwrap_or_else(|| panic!("no component {}", spec.component));
        let wasm = format!("fn_{}.wasm", spec.component.replace('-', "_"));
        assert!(component.source.ends_with(&wasm), "component {} is built from {wasm}", spec.component);
    }
}

#[test]
fn each_component_serves_its_endpoint() {
    for spec in ENDPOINTS {
        let path = repo_root().join("functions").join(spec.component).join("src/lib.rs");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let serves = format!("Endpoint::{:?}", spec.endpoint);
        assert!(source.contains(&serves), "{} should serve {serves}", path.display());
        let cargo =
            std::fs::read_to_string(repo_root().join("functions").join(spec.component).join("Cargo.toml")).unwrap();
        assert!(cargo.contains(&format!("name = \"fn-{}\"", spec.component)), "crate fn-{}", spec.component);
    }
}

#[test]
fn openapi_documents_exactly_the_methods_of_the_table() {
    let doc = openapi::spec().doc();
    for spec in ENDPOINTS {
        for route in spec.routes.iter().filter(|r| r.path != "/...") {
            let path = openapi_path(route.path);
            let item = &doc["paths"][&path];
            assert!(item.is_object(), "openapi.yaml does not document {path}");
            let documented: BTreeSet<String> = ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_ascii_uppercase())
                .collect();
            let served: BTreeSet<String> = route.methods.iter().map(|m| m.as_str().to_owned()).collect();
            assert_eq!(documented, served, "{path}: openapi.yaml's operations against the endpoint table");
        }
    }
}
