#![deny(missing_docs)]
//! Marina: a test-first implementation of the OCI Distribution Specification.
//!
//! One crate: a spec-complete reference registry (`marina serve`), a spec harness
//! that checks any registry (`marina check`), a runner for the official Go suites
//! (`marina conformance`), a listing client (`marina list*`), a benchmark
//! (`marina bench`), and the building blocks to embed the registry in your own
//! application or tests.
//!
//! # Architecture
//!
//! Layers call one way, each depending only on the ones below it:
//!
//! | layer | owns |
//! |---|---|
//! | [`cli`] | argument parsing; each subcommand returns an exit code |
//! | [`server`] | binding, TLS (`tls`), signals, the separate metrics address |
//! | `api` | HTTP on poem-openapi: one route table, the access guard, typed parameters, headers, status codes, the JSON error envelope, `/openapi.json`, `/docs` |
//! | `registry` | the spec's semantics (push, pull, uploads, mounts, manifests, tags, referrers, deletes, GC) without HTTP types |
//! | [`store`] | where things live: [`store::MetadataStore`] (SQLite, or PostgreSQL with [`store::PgMetaStore`]) and [`store::BlobStore`] (filesystem), both pluggable |
//! | [`oci`] | the spec's vocabulary: digests, names, tags, references, media types, grammars, manifests, error codes |
//!
//! Beside the stack, `auth` is pure (users, policy, tokens, scopes; no HTTP, no
//! registry): the api's guard asks it. `upstream` is the pull-through cache's
//! client of other registries, which the registry asks on a miss. [`config`] holds the settings and every
//! `MARINA_*` variable name; `metrics` the Prometheus families.
//!
//! [`conformance`] drives the official suites' binaries, [`harness`] checks any registry
//! requirement by requirement, [`bench`](mod@bench) measures one, and [`listing_client`]
//! browses one; they talk HTTP only, the harness and the listing client through the one
//! [`client`]. A unit test reads every `crate::` path and fails when a module uses one
//! it may not. [`Registry`] and [`testing::TestRegistry`] are the entry points for
//! embedding.
//!
//! Modules export what their users need; their inner modules are private, so a
//! module's page lists its API, not its files.
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let registry = marina::Registry::builder().data_dir("./data").referrers(true).build()?;
//! let app = poem::Route::new().nest("/", registry.endpoint());
//! tokio::spawn(registry.maintenance());
//! poem::Server::new(poem::listener::TcpListener::bind("127.0.0.1:5000")).run(app).await?;
//! # Ok(()) }
//! ```
//!
//! # Extending
//!
//! - **A storage backend**: implement [`store::BlobStore`] (and its [`store::Staging`])
//!   or [`store::MetadataStore`] (async traits: implement them under
//!   `#[marina::store::async_trait]`), run [`store::contract::check_blob_store`] /
//!   [`store::contract::check_metadata_store`] against it in a test, and pass it to
//!   [`RegistryBuilder::blob_store`] / [`RegistryBuilder::metadata_store`].
//!   `examples/custom_storage.rs` is a skeleton that passes the contract.
//! - **A registry extension**: add a poem-openapi API struct in `api` whose paths follow
//!   the spec's extension rules (`/v2/_<ext>/…`, `/v2/<name>/_<ext>/…`), put its
//!   semantics in `registry` and its queries in `store`, and add it to the service
//!   tuple in `api::openapi_service`; it then appears in `/openapi.json` and `/docs`.
//! - **A conformance check**: the harness (`marina check`) lists every requirement of
//!   the spec in `spec/requirements.toml`; a new check names the requirements it covers.

pub(crate) mod api;
pub(crate) mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod conformance;
mod embed;
pub mod harness;
pub mod listing_client;
pub(crate) mod logsink;
mod markup;
pub(crate) mod metrics;
pub mod oci;
pub(crate) mod registry;
pub mod server;
pub mod store;
pub mod testing;
pub(crate) mod timefmt;
pub(crate) mod tls;
pub(crate) mod upstream;

pub use api::openapi_document;
pub use embed::{BuildError, Registry, RegistryBuilder};
pub use registry::{GcReport, RegistryError, RetentionItem};

#[cfg(test)]
mod layers;
