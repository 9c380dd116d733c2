//! Marina: a test-first implementation of the OCI Distribution Specification.

pub mod api;
pub mod cli;
pub mod config;
pub mod conformance;
mod embed;
pub mod oci;
pub mod registry;
pub mod server;
pub mod store;
pub mod testing;

pub use embed::{BuildError, Registry, RegistryBuilder};
