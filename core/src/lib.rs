//! Lanyard's core library, shared by every Spin component, the agent and the CLI.
//!
//! It is the functional core of the control plane, in layers that only ever
//! import downwards (ARCHITECTURE.md lists them):
//!
//! * **foundations**: injected time and randomness ([`clock`], [`random`]),
//!   the key-value interface ([`kv`]), ids, digests and secrets ([`ids`]),
//!   HTTP methods ([`method`]);
//! * **the domain**: types that make bad states unrepresentable ([`model`]),
//!   what a grant means in RBAC ([`rbac`]), the stored records ([`records`]);
//! * **the wire**: every message of both APIs, defined once ([`wire`]), and
//!   the error contract ([`error`]);
//! * **services**: the request shape ([`http`]), configuration ([`config`]),
//!   sessions ([`identity`]) and the shape of a token ([`jws`]), authorization decided once ([`authz`]), cluster
//!   tokens ([`token`]), kubeconfigs ([`kubeconfig`]), the store layout over
//!   the key-value interface ([`store`]), the development issuer ([`dev`]),
//!   and the access proxy's decisions ([`proxy`]);
//! * **the endpoints**: the table that describes each once ([`endpoint`]) and
//!   their handlers ([`api`]), as functions from a request and an
//!   environment to a response.
//!
//! No Spin types appear here, so all of it compiles and is tested natively
//! as well as for `wasm32-wasip2`.

#![deny(missing_docs)]

pub mod api;
mod api_error_map;
pub mod authz;
pub mod clock;
pub mod config;
pub mod dev;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod identity;
pub mod ids;
pub mod jws;
pub mod kubeconfig;
pub mod kv;
pub mod method;
pub mod model;
pub mod oidc;
pub mod outbound;
pub mod portal;
pub mod proxy;
pub mod random;
pub mod rbac;
pub mod records;
pub mod store;
pub mod token;
pub mod wire;

pub use api::{Admission, Handler, admit, handle, handler, serve};
pub use endpoint::{Endpoint, Env};
pub use error::ApiError;
