//! Spin's host interfaces for one request's instance: `fermyon:spin/key-value`
//! and `fermyon:spin/variables` (2.0.0), and `wasi:keyvalue/{store,atomics,batch}`
//! (0.2.0-draft2), generated with `bindgen!` from the repository's WIT
//! (`/wit`, the single source of those definitions) and implemented on
//! [`SpinHost`].
//!
//! Behaviour follows Spin's key-value factor: a label opens only if it is in
//! the component's `key_value_stores` (else `access-denied`); at most 256
//! stores and 256 compare-and-swap handles may be open at once per instance;
//! `list-keys` returns every key and rejects a cursor; a failed swap answers
//! `cas-failed` with a fresh handle whose `current` has been read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};

use crate::kv::{Cas, CasMode, KvError, KvStore, SwapError};

/// Host bindings for one world of the repository's WIT, generated the one
/// way both worlds need: every import async and trappable, `with` mapping
/// the world's resources to the types below.
macro_rules! host_bindings {
    (path: $path:tt, world: $world:tt, with: { $($with:tt)* }) => {
        wasmtime::component::bindgen!({
            path: $path,
            world: $world,
            imports: { default: async | trappable },
            with: { $($with)* },
        });
    };
}

/// Generated bindings for `fermyon:spin@2.0.0` (world `host` in wit/spin).
pub mod spin {
    host_bindings!(path: "../wit/spin", world: "host", with: {
        "fermyon:spin/key-value.store": super::SpinStore,
    });
}

/// Generated bindings for `wasi:keyvalue@0.2.0-draft2` (world `imports` in wit/keyvalue).
pub mod wasi_keyvalue {
    host_bindings!(path: "../wit/keyvalue", world: "imports", with: {
        "wasi:keyvalue/store.bucket": super::Bucket,
        "wasi:keyvalue/atomics.cas": super::CasHandle,
    });
}

use spin::fermyon::spin::key_value as spin_kv;
use spin::fermyon::spin::variables as spin_vars;
use wasi_keyvalue::wasi::keyvalue::{atomics, batch, store as wasi_store};

/// Spin's limit on open stores (and on open compare-and-swaps) per instance.
const TABLE_CAPACITY: usize = 256;

/// What one component may do: the facts its instances need from the manifest.
#[derive(Debug, Clone)]
pub struct ComponentContext {
    pub id: String,
    /// The store labels in the component's `key_value_stores`.
    pub key_value_stores: BTreeSet<String>,
    /// The component's variables with their resolved values.
    pub variables: BTreeMap<String, String>,
    /// Where it may send HTTP requests.
    pub outbound: Arc<crate::outbound::AllowedHosts>,
}

/// An open `fermyon:spin/key-value` store.
#[derive(Debug)]
pub struct SpinStore {
    label: String,
}

/// An open `wasi:keyvalue/store` bucket.
#[derive(Debug)]
pub struct Bucket {
    label: String,
}

/// A resource naming one open store by its label: [`SpinStore`] and
/// [`Bucket`], the two interfaces' handles on the same stores.
trait OpenStore: Send + 'static {
    fn label(&self) -> &str;
}

impl OpenStore for SpinStore {
    fn label(&self) -> &str {
        &self.label
    }
}

impl OpenStore for Bucket {
    fn label(&self) -> &str {
        &self.label
    }
}

/// Why a store did not open, in the order Spin checks.
enum OpenRefused {
    /// The label is not in the component's `key_value_stores`.
    AccessDenied,
    /// [`TABLE_CAPACITY`] stores are open already.
    TableFull,
}

/// A `wasi:keyvalue/atomics` compare-and-swap handle.
#[derive(Debug)]
pub struct CasHandle {
    cas: Cas,
}

/// The per-instance state behind Spin's host interfaces.
pub struct SpinHost {
    component: Arc<ComponentContext>,
    kv: KvStore,
    cas_mode: CasMode,
    table: ResourceTable,
    open_stores: usize,
    open_cas: usize,
}

impl SpinHost {
    pub fn new(component: Arc<ComponentContext>, kv: KvStore, cas_mode: CasMode) -> SpinHost {
        SpinHost { component, kv, cas_mode, table: ResourceTable::new(), open_stores: 0, open_cas: 0 }
    }

    /// Adds every interface of both worlds to `linker`, reaching this state
    /// through `get`.
    pub fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut SpinHost,
    ) -> wasmtime::Result<()> {
        type Me = wasmtime::component::HasSelf<SpinHost>;
        spin::Host_::add_to_linker::<T, Me>(linker, get)?;
        wasi_keyvalue::Imports::add_to_linker::<T, Me>(linker, get)?;
        Ok(())
    }

    fn may_open(&self, label: &str) -> bool {
        self.component.key_value_stores.contains(label)
    }

    /// Opens `label` as the resource `wrap` makes of it, if the component
    /// may open it and the table has room.
    fn open_store<S: OpenStore>(
        &mut self,
        label: String,
        wrap: fn(String) -> S,
    ) -> wasmtime::Result<Result<Resource<S>, OpenRefused>> {
        if !self.may_open(&label) {
            return Ok(Err(OpenRefused::AccessDenied));
        }
        if self.open_stores >= TABLE_CAPACITY {
            return Ok(Err(OpenRefused::TableFull));
        }
        let store = self.table.push(wrap(label))?;
        self.open_stores += 1;
        Ok(Ok(store))
    }

    fn close_store<S: OpenStore>(&mut self, store: Resource<S>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open_stores = self.open_stores.saturating_sub(1);
        Ok(())
    }

    /// Runs `op` on the store that `store` has open (its label the second
    /// argument).
    fn on_store<S: OpenStore, R: Send + 'static>(
        &self,
        store: &Resource<S>,
        op: impl FnOnce(&KvStore, &str) -> R + Send + 'static,
    ) -> wasmtime::Result<impl Future<Output = wasmtime::Result<R>> + Send + 'static> {
        let label = self.table.get(store)?.label().to_string();
        Ok(self.kv(move |kv| op(kv, &label)))
    }

    /// Runs a store operation, on the calling thread.
    ///
    /// Not on tokio's blocking pool: an operation is one prepared SQLite
    /// statement on a connection in WAL mode (microseconds), while handing it
    /// to a pool thread and back costs two thread wake-ups per operation,
    /// which profiling showed to be most of the host's share of a request.
    /// The store's mutex is held only for the statement.
    fn kv<R: Send + 'static>(
        &self,
        op: impl FnOnce(&KvStore) -> R + Send + 'static,
    ) -> impl Future<Output = wasmtime::Result<R>> + Send + 'static {
        std::future::ready(Ok(op(&self.kv)))
    }
}

fn spin_err(e: KvError) -> spin_kv::Error {
    spin_kv::Error::Other(e.to_string())
}

fn wasi_err(e: KvError) -> wasi_store::Error {
    wasi_store::Error::Other(e.to_string())
}

/// The methods `fermyon:spin/key-value`'s store and `wasi:keyvalue/store`'s
/// bucket share one for one, for the resource `$store` whose errors are
/// `$error` (made by `$to_error`): `get`, `set`, `delete` and `exists` on the
/// label the resource has open, and `drop`.
macro_rules! shared_store_methods {
    ($store:ty, $error:ty, $to_error:expr) => {
        async fn get(
            &mut self,
            store: Resource<$store>,
            key: String,
        ) -> wasmtime::Result<Result<Option<Vec<u8>>, $error>> {
            Ok(self.on_store(&store, move |kv, label| kv.get(label, &key))?.await?.map_err($to_error))
        }

        async fn set(
            &mut self,
            store: Resource<$store>,
            key: String,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), $error>> {
            Ok(self.on_store(&store, move |kv, label| kv.set(label, &key, &value))?.await?.map_err($to_error))
        }

        async fn delete(&mut self, store: Resource<$store>, key: String) -> wasmtime::Result<Result<(), $error>> {
            Ok(self.on_store(&store, move |kv, label| kv.delete(label, &key))?.await?.map_err($to_error))
        }

        async fn exists(&mut self, store: Resource<$store>, key: String) -> wasmtime::Result<Result<bool, $error>> {
            Ok(self.on_store(&store, move |kv, label| kv.exists(label, &key))?.await?.map_err($to_error))
        }

        async fn drop(&mut self, store: Resource<$store>) -> wasmtime::Result<()> {
            self.close_store(store)
        }
    };
}

// ---------------------------------------------------------------- fermyon:spin/key-value

impl spin_kv::Host for SpinHost {}

impl spin_kv::HostStore for SpinHost {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<SpinStore>, spin_kv::Error>> {
        Ok(self.open_store(label, |label| SpinStore { label })?.map_err(|refused| match refused {
            OpenRefused::AccessDenied => spin_kv::Error::AccessDenied,
            OpenRefused::TableFull => spin_kv::Error::StoreTableFull,
        }))
    }

    shared_store_methods!(SpinStore, spin_kv::Error, spin_err);

    async fn get_keys(&mut self, store: Resource<SpinStore>) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        Ok(self.on_store(&store, |kv, label| kv.get_keys(label))?.await?.map_err(spin_err))
    }
}

// ---------------------------------------------------------------- fermyon:spin/variables

/// Why a variable name is invalid (Spin's rules), or `None` if it is valid.
fn invalid_name_reason(name: &str) -> Option<String> {
    crate::manifest::validate_variable_name(name).err().map(|e| e.to_string())
}

impl spin_vars::Host for SpinHost {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, spin_vars::Error>> {
        if let Some(reason) = invalid_name_reason(&name) {
            return Ok(Err(spin_vars::Error::InvalidName(reason)));
        }
        let id = &self.component.id;
        if self.component.variables.is_empty() {
            return Ok(Err(spin_vars::Error::Undefined(format!("no variable for component {id:?}"))));
        }
        Ok(match self.component.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(spin_vars::Error::Undefined(format!("no variable for {id:?}.{name:?}"))),
        })
    }
}

// ---------------------------------------------------------------- wasi:keyvalue/store

impl wasi_store::Host for SpinHost {
    async fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<Bucket>, wasi_store::Error>> {
        Ok(self.open_store(identifier, |label| Bucket { label })?.map_err(|refused| match refused {
            OpenRefused::AccessDenied => wasi_store::Error::AccessDenied,
            OpenRefused::TableFull => wasi_store::Error::Other("store table full".to_string()),
        }))
    }
}

impl wasi_store::HostBucket for SpinHost {
    shared_store_methods!(Bucket, wasi_store::Error, wasi_err);

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_store::KeyResponse, wasi_store::Error>> {
        let keys = self.on_store(&bucket, |kv, label| kv.get_keys(label))?;
        if cursor.is_some() {
            return Ok(Err(wasi_store::Error::Other("list_keys: cursor not supported".to_string())));
        }
        Ok(keys.await?.map(|keys| wasi_store::KeyResponse { keys, cursor: None }).map_err(wasi_err))
    }
}

// ---------------------------------------------------------------- wasi:keyvalue/batch

impl batch::Host for SpinHost {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_store::Error>> {
        Ok(self.on_store(&bucket, move |kv, label| kv.get_many(label, keys))?.await?.map_err(wasi_err))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        Ok(self.on_store(&bucket, move |kv, label| kv.set_many(label, key_values))?.await?.map_err(wasi_err))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        Ok(self.on_store(&bucket, move |kv, label| kv.delete_many(label, keys))?.await?.map_err(wasi_err))
    }
}

// ---------------------------------------------------------------- wasi:keyvalue/atomics

impl SpinHost {
    fn push_cas(&mut self, handle: CasHandle) -> wasmtime::Result<Result<Resource<CasHandle>, wasi_store::Error>> {
        if self.open_cas >= TABLE_CAPACITY {
            return Ok(Err(wasi_store::Error::Other("too many compare_and_swaps opened".to_string())));
        }
        let cas = self.table.push(handle)?;
        self.open_cas += 1;
        Ok(Ok(cas))
    }
}

impl atomics::HostCas for SpinHost {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wasi_store::Error>> {
        let label = self.table.get(&bucket)?.label.clone();
        let cas = self.kv.cas(&label, &key, self.cas_mode);
        self.push_cas(CasHandle { cas })
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_store::Error>> {
        // Read off the executor, then keep the new snapshot in the handle.
        let mut reader = self.table.get(&cas)?.cas.clone();
        let (reader, value) = self
            .kv(move |_| {
                let value = reader.current();
                (reader, value)
            })
            .await?;
        self.table.get_mut(&cas)?.cas = reader;
        Ok(value.map_err(wasi_err))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        self.open_cas = self.open_cas.saturating_sub(1);
        Ok(())
    }
}

impl atomics::Host for SpinHost {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_store::Error>> {
        Ok(self.on_store(&bucket, move |kv, label| kv.increment(label, &key, delta))?.await?.map_err(wasi_err))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let CasHandle { cas } = self.table.delete(cas)?;
        self.open_cas = self.open_cas.saturating_sub(1);
        let (cas, result) = self
            .kv(move |_| {
                let result = cas.swap(&value);
                (cas, result)
            })
            .await?;
        match result {
            Ok(()) => Ok(Ok(())),
            Err(SwapError::Store(e)) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
            Err(SwapError::CasFailed) => {
                // As Spin: hand back a new handle on the key, already read.
                let mut fresh = self.kv.cas(cas.store(), cas.key(), self.cas_mode);
                let (fresh, read) = self
                    .kv(move |_| {
                        let read = fresh.current();
                        (fresh, read)
                    })
                    .await?;
                if let Err(e) = read {
                    return Ok(Err(atomics::CasError::StoreError(wasi_err(e))));
                }
                match self.push_cas(CasHandle { cas: fresh })? {
                    Ok(handle) => Ok(Err(atomics::CasError::CasFailed(handle))),
                    Err(e) => Ok(Err(atomics::CasError::StoreError(e))),
                }
            }
        }
    }
}
