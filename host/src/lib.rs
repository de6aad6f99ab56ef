//! `lanyard-host`: runs Lanyard's Spin application (`spin.toml`) with wasmtime,
//! behaving like Spin wherever a component can tell, and never stronger.
//!
//! No Spin CLI can be installed where the project is developed and tested, so
//! this host loads the same `.wasm` components Spin would and provides what
//! Spin provides them: its HTTP routing and `spin-*` request headers
//! ([`routes`], [`headers`]), application variables ([`manifest`]), and a
//! key-value store in one SQLite file with Spin's schema and semantics
//! ([`kv`], [`host`]), plus WASI 0.2 and `wasi:http` with outbound requests
//! limited by `allowed_outbound_hosts` as Spin limits them ([`outbound`]). [`server`] listens and
//! hands each request to a fresh component instance (the private `dispatch`
//! module), as Spin's HTTP trigger does. [`faults`] lets a test make a chosen
//! key-value write fail (never on unless the Rust API turns it on).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let mut config = lanyard_host::HostConfig::new("spin.toml", ".lanyard/state", ".lanyard/cache");
//! config.variables.insert("session_issuers".into(), "[]".into());
//! let host = lanyard_host::spawn(config)?;
//! println!("serving on {}", host.url());
//! host.shutdown()?;
//! # Ok(()) }
//! ```

mod dispatch;
mod drain;
pub mod faults;
pub mod headers;
pub mod host;
pub mod kv;
pub mod manifest;
pub mod outbound;
pub mod routes;
mod runtime;
pub mod server;

pub use faults::{Faults, Plan, Seen};
pub use headers::ClientSpinHeaders;
pub use kv::{CasMode, KvStore};
pub use manifest::{Manifest, ManifestError};
pub use server::{HostConfig, HostHandle, Server, spawn};
