//! Lanyard's core library, shared by every Spin component (and, later, the
//! agent and the CLI).
//!
//! It is the functional core of the control plane: domain types that make bad
//! states unrepresentable ([`model`]), the error contract ([`error`]),
//! session verification ([`identity`]), authorization decided once
//! ([`authz`]), the domain records ([`records`]), the store layout over a
//! small key-value trait ([`store`], [`kv`]), and the endpoints themselves ([`api`]) as functions from a request
//! and an environment to a response. No Spin types appear here, so all of it
//! compiles and is tested natively as well as for `wasm32-wasip2`.

pub mod agent_api;
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
pub mod kubeconfig;
pub mod kv;
pub mod model;
pub mod rbac;
pub mod records;
pub mod store;
pub mod token;

pub use api::{handle, precheck};
pub use endpoint::{Endpoint, Env};
pub use error::ApiError;
