//! The Spin application manifest (`spin.toml`, `spin_manifest_version = 2`).
//!
//! Only what the host needs is read: the application `[variables]`, the
//! `[[trigger.http]]` routes, and each `[component.<id>]`'s Wasm `source`,
//! `key_value_stores`, `allowed_outbound_hosts` (see [`crate::outbound`]) and
//! `[component.<id>.variables]`. Everything else in the file (`build`,
//! descriptions, ...) is accepted and ignored.
//!
//! Variables resolve as `spin up` resolves them: an explicit override (what
//! `spin up --variable name=value` gives), else the environment variable
//! `SPIN_VARIABLE_<NAME_IN_UPPER_CASE>`, else the declared default. A required
//! variable without a value is a start-up error that names it. Component
//! variables are templates (`"prefix-{{ name }}-suffix"`) over the application
//! variables, resolved once at start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a manifest could not be loaded, or its variables not resolved.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the manifest {path} is not valid TOML for a Spin manifest: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unsupported manifest: {0}")]
    Unsupported(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error("invalid variable name {name:?}: {reason}")]
    InvalidVariableName { name: String, reason: &'static str },
    #[error("invalid template {template:?}: {reason}")]
    InvalidTemplate { template: String, reason: String },
    #[error("required variable {0:?} has no value (set SPIN_VARIABLE_{upper} or pass it as an override)", upper = .0.to_ascii_uppercase())]
    MissingRequiredVariable(String),
    #[error("variable override {0:?} names no variable declared in the manifest's [variables]")]
    UnknownOverride(String),
}

/// One application variable declared in `[variables]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    /// The value used when neither an override nor the environment gives one.
    pub default: Option<String>,
    /// Whether start-up fails when no value is found.
    pub required: bool,
    /// Whether the value is secret (the host never logs variable values anyway).
    pub secret: bool,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// The route exactly as written in the manifest.
    pub route: String,
    /// The id of the component that serves it.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentDecl {
    pub id: String,
    /// The Wasm file, made absolute against the manifest's directory.
    pub source: PathBuf,
    /// The key-value store labels the component may open.
    pub key_value_stores: Vec<String>,
    /// Component variable name → template over application variables.
    pub variables: BTreeMap<String, Template>,
    /// `allowed_outbound_hosts`, each a template over application variables.
    pub allowed_outbound_hosts: Vec<Template>,
}

/// A parsed `spin.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The directory the manifest is in; component sources are relative to it.
    pub dir: PathBuf,
    pub variables: BTreeMap<String, VariableDecl>,
    pub triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One component's templates, after resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedComponent {
    /// Its variables with their values.
    pub variables: BTreeMap<String, String>,
    /// Its `allowed_outbound_hosts` entries.
    pub allowed_outbound_hosts: Vec<String>,
}

/// Every component's templates, after resolution, by component id.
pub type Resolved = BTreeMap<String, ResolvedComponent>;

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir =
            std::path::absolute(&dir).map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        Manifest::parse(&text, &dir).map_err(|e| match e {
            ManifestError::Parse { message, .. } => ManifestError::Parse { path: path.to_path_buf(), message },
            other => other,
        })
    }

    /// Parses manifest text; relative component sources are joined to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| ManifestError::Parse { path: PathBuf::from("spin.toml"), message: e.to_string() })?;
        if raw.spin_manifest_version != 2 {
            return Err(ManifestError::Unsupported(format!(
                "spin_manifest_version = {} (only 2 is supported)",
                raw.spin_manifest_version
            )));
        }

        let mut variables = BTreeMap::new();
        for (name, decl) in raw.variables {
            validate_variable_name(&name)?;
            if decl.required && decl.default.is_some() {
                return Err(ManifestError::Invalid(format!(
                    "variable {name:?} cannot be both required and have a default"
                )));
            }
            if !decl.required && decl.default.is_none() {
                return Err(ManifestError::Invalid(format!(
                    "variable {name:?} must either be required or have a default"
                )));
            }
            variables
                .insert(name, VariableDecl { default: decl.default, required: decl.required, secret: decl.secret });
        }

        let mut components = BTreeMap::new();
        for (id, raw_component) in raw.component {
            let source = match raw_component.source {
                toml::Value::String(path) => dir.join(path),
                _ => {
                    return Err(ManifestError::Unsupported(format!(
                        "component {id:?}: only a local file path is supported as `source`"
                    )));
                }
            };
            let mut component_variables = BTreeMap::new();
            for (name, text) in raw_component.variables {
                validate_variable_name(&name)?;
                let template = Template::parse(&text)?;
                for reference in template.references() {
                    if !variables.contains_key(reference) {
                        return Err(ManifestError::InvalidTemplate {
                            template: text.clone(),
                            reason: format!("unknown variable {reference:?}"),
                        });
                    }
                }
                component_variables.insert(name, template);
            }
            let mut allowed_outbound_hosts = Vec::new();
            for text in &raw_component.allowed_outbound_hosts {
                let template = Template::parse(text)?;
                if let Some(unknown) = template.references().find(|r| !variables.contains_key(*r)) {
                    return Err(ManifestError::InvalidTemplate {
                        template: text.clone(),
                        reason: format!("unknown variable {unknown:?}"),
                    });
                }
                allowed_outbound_hosts.push(template);
            }
            for label in &raw_component.key_value_stores {
                if label != "default" {
                    return Err(ManifestError::Invalid(format!(
                        "component {id:?} uses key-value store {label:?}, but only \"default\" exists"
                    )));
                }
            }
            components.insert(
                id.clone(),
                ComponentDecl {
                    id,
                    source,
                    key_value_stores: raw_component.key_value_stores,
                    variables: component_variables,
                    allowed_outbound_hosts,
                },
            );
        }

        let mut triggers = Vec::new();
        for trigger in raw.trigger.http {
            let route = match trigger.route {
                toml::Value::String(route) => route,
                toml::Value::Table(table) if table.get("private") == Some(&toml::Value::Boolean(true)) => {
                    // A private endpoint has no route: nothing to serve over HTTP.
                    continue;
                }
                other => {
                    return Err(ManifestError::Invalid(format!(
                        "trigger route must be a string or {{ private = true }}, not {other}"
                    )));
                }
            };
            let component = match trigger.component {
                toml::Value::String(id) => id,
                _ => {
                    return Err(ManifestError::Unsupported(format!(
                        "route {route:?}: only a component id is supported as `component`"
                    )));
                }
            };
            if !components.contains_key(&component) {
                return Err(ManifestError::Invalid(format!(
                    "route {route:?} names component {component:?}, which is not defined"
                )));
            }
            triggers.push(HttpTrigger { route, component });
        }

        Ok(Manifest { dir: dir.to_path_buf(), variables, triggers, components })
    }

    /// Resolves every application variable (override, else the environment as
    /// read by `env`, else the default) once, and then every component's
    /// templates over them: its variables and, as Spin does, its
    /// `allowed_outbound_hosts`.
    ///
    /// `env` is given the full environment variable name
    /// (`SPIN_VARIABLE_<NAME>`); the host passes `std::env::var`.
    pub fn resolve(
        &self,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Resolved, ManifestError> {
        let app_values = self.app_values(overrides, env)?;
        let mut resolved = BTreeMap::new();
        for (id, component) in &self.components {
            let mut variables = BTreeMap::new();
            for (name, template) in &component.variables {
                variables.insert(name.clone(), template.render(&app_values)?);
            }
            let allowed_outbound_hosts =
                component.allowed_outbound_hosts.iter().map(|t| t.render(&app_values)).collect::<Result<_, _>>()?;
            resolved.insert(id.clone(), ResolvedComponent { variables, allowed_outbound_hosts });
        }
        Ok(resolved)
    }

    /// Every application variable's value: override, else environment, else default.
    fn app_values(
        &self,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<&str, String>, ManifestError> {
        if let Some(unknown) = overrides.keys().find(|k| !self.variables.contains_key(*k)) {
            return Err(ManifestError::UnknownOverride(unknown.clone()));
        }
        let mut app_values = BTreeMap::new();
        for (name, decl) in &self.variables {
            let value =
                overrides.get(name).cloned().or_else(|| env(&env_variable_name(name))).or_else(|| decl.default.clone());
            match value {
                Some(value) => {
                    app_values.insert(name.as_str(), value);
                }
                None => return Err(ManifestError::MissingRequiredVariable(name.clone())),
            }
        }
        Ok(app_values)
    }
}

/// The environment variable Spin reads for application variable `name`.
pub fn env_variable_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Checks a variable name as Spin does: lower-case ASCII letters, digits and
/// single underscores; starting with a letter, ending with a letter or digit.
pub fn validate_variable_name(name: &str) -> Result<(), ManifestError> {
    let invalid = |reason| Err(ManifestError::InvalidVariableName { name: name.to_string(), reason });
    let (Some(first), Some(last)) = (name.bytes().next(), name.bytes().last()) else {
        return invalid("must not be empty");
    };
    if !name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
        return invalid("may contain only lower-case letters, digits and underscores");
    }
    if !first.is_ascii_lowercase() {
        return invalid("must start with a lower-case letter");
    }
    if !last.is_ascii_alphanumeric() {
        return invalid("must end with a lower-case letter or digit");
    }
    if name.contains("__") {
        return invalid("must not contain consecutive underscores");
    }
    Ok(())
}

/// A component variable value: literal text with `{{ name }}` expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    /// Parses `{{ name }}` expressions (whitespace inside the braces is
    /// ignored); an unclosed `{{` or an invalid name is an error.
    pub fn parse(text: &str) -> Result<Template, ManifestError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some((expr, after)) = after_open.split_once("}}") else {
                    return Err(ManifestError::InvalidTemplate {
                        template: text.to_string(),
                        reason: "unmatched '{{'".to_string(),
                    });
                };
                let name = expr.trim();
                validate_variable_name(name).map_err(|e| ManifestError::InvalidTemplate {
                    template: text.to_string(),
                    reason: e.to_string(),
                })?;
                parts.push(Part::Variable(name.to_string()));
                rest = after;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Template { parts })
    }

    /// The application variables the template refers to.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Substitutes the values; a reference without a value is an error.
    pub fn render(&self, values: &BTreeMap<&str, String>) -> Result<String, ManifestError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match values.get(name.as_str()) {
                    Some(value) => out.push_str(value),
                    None => {
                        return Err(ManifestError::InvalidTemplate {
                            template: self.to_string(),
                            reason: format!("unknown variable {name:?}"),
                        });
                    }
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Variable(name) => write!(f, "{{{{ {name} }}}}")?,
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: i64,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: toml::Value,
    component: toml::Value,
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn template_with_literal_text_around_expressions() {
        let t = Template::parse("prefix-{{ a }}-{{b}}{{  c  }}-suffix").expect("parses");
        assert_eq!(t.references().collect::<Vec<_>>(), ["a", "b", "c"]);
        let out = t.render(&values(&[("a", "1"), ("b", "2"), ("c", "3")])).expect("renders");
        assert_eq!(out, "prefix-1-23-suffix");
    }

    #[test]
    fn template_literal_only_and_empty() {
        assert_eq!(Template::parse("plain").unwrap().render(&values(&[])).unwrap(), "plain");
        assert_eq!(Template::parse("").unwrap().render(&values(&[])).unwrap(), "");
    }

    #[test]
    fn template_errors() {
        assert!(matches!(Template::parse("{{ a }} {{ unclosed"), Err(ManifestError::InvalidTemplate { .. })));
        assert!(matches!(Template::parse("{{ Not_Valid }}"), Err(ManifestError::InvalidTemplate { .. })));
        let t = Template::parse("{{ missing }}").unwrap();
        assert!(t.render(&values(&[])).is_err());
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        for good in ["a", "abc", "a1b2", "a_1", "session_issuers"] {
            assert!(validate_variable_name(good).is_ok(), "{good}");
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(validate_variable_name(bad).is_err(), "{bad}");
        }
    }

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/a/:id"
component = "one"
[[trigger.http]]
route = { private = true }
component = "one"
[component.one]
source = "x/one.wasm"
key_value_stores = ["default"]
allowed_outbound_hosts = []
[component.one.variables]
both = "{{ greeting }}, {{ token }}!"
plain = "literal"
[component.one.build]
command = "true"
"#;

    #[test]
    fn parses_a_manifest() {
        let m = Manifest::parse(MANIFEST, Path::new("/app")).expect("parses");
        assert_eq!(m.triggers, vec![HttpTrigger { route: "/a/:id".into(), component: "one".into() }]);
        let one = &m.components["one"];
        assert_eq!(one.source, Path::new("/app/x/one.wasm"));
        assert_eq!(one.key_value_stores, ["default"]);
        assert!(m.variables["token"].required && m.variables["token"].secret);
        assert_eq!(m.variables["greeting"].default.as_deref(), Some("hello"));
    }

    #[test]
    fn resolution_order_is_override_then_env_then_default() {
        let m = Manifest::parse(MANIFEST, Path::new("/app")).unwrap();
        let env = |name: &str| match name {
            "SPIN_VARIABLE_TOKEN" => Some("from-env".to_string()),
            "SPIN_VARIABLE_GREETING" => Some("hi".to_string()),
            _ => None,
        };
        let r = m.resolve(&BTreeMap::new(), env).unwrap();
        assert_eq!(r["one"].variables["both"], "hi, from-env!");
        assert_eq!(r["one"].variables["plain"], "literal");

        let overrides = BTreeMap::from([("token".to_string(), "over".to_string())]);
        let r = m.resolve(&overrides, |_| None).unwrap();
        assert_eq!(r["one"].variables["both"], "hello, over!");
    }

    #[test]
    fn missing_required_variable_is_named() {
        let m = Manifest::parse(MANIFEST, Path::new("/app")).unwrap();
        let err = m.resolve(&BTreeMap::new(), |_| None).unwrap_err();
        assert!(matches!(&err, ManifestError::MissingRequiredVariable(n) if n == "token"));
        assert!(err.to_string().contains("SPIN_VARIABLE_TOKEN"), "{err}");
    }

    #[test]
    fn unknown_override_is_an_error() {
        let m = Manifest::parse(MANIFEST, Path::new("/app")).unwrap();
        let overrides =
            BTreeMap::from([("token".to_string(), "t".to_string()), ("tokn".to_string(), "typo".to_string())]);
        assert!(matches!(
            m.resolve(&overrides, |_| None),
            Err(ManifestError::UnknownOverride(n)) if n == "tokn"
        ));
    }

    #[test]
    fn invalid_manifests_are_rejected() {
        let undefined_ref = MANIFEST.replace("{{ greeting }}", "{{ nope }}");
        assert!(matches!(Manifest::parse(&undefined_ref, Path::new("/")), Err(ManifestError::InvalidTemplate { .. })));
        let bad_store = MANIFEST.replace(r#"["default"]"#, r#"["other"]"#);
        assert!(matches!(Manifest::parse(&bad_store, Path::new("/")), Err(ManifestError::Invalid(_))));
        let bad_component = MANIFEST.replace(r#"component = "one""#, r#"component = "two""#);
        assert!(matches!(Manifest::parse(&bad_component, Path::new("/")), Err(ManifestError::Invalid(_))));
        let both = MANIFEST
            .replace("token = { required = true, secret = true }", "token = { required = true, default = \"x\" }");
        assert!(Manifest::parse(&both, Path::new("/")).is_err());
        let v1 = MANIFEST.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(matches!(Manifest::parse(&v1, Path::new("/")), Err(ManifestError::Unsupported(_))));
    }

    #[test]
    fn the_repository_manifest_loads() {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("run the tests with cargo");
        let path = Path::new(&dir).join("../spin.toml");
        let m = Manifest::load(&path).expect("the repository's spin.toml loads");
        assert!(!m.triggers.is_empty());
        assert!(m.variables.contains_key("session_issuers"));
        for trigger in &m.triggers {
            assert!(m.components.contains_key(&trigger.component));
        }
    }
}
