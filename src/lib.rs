//! Marina: a test-first implementation of the OCI Distribution Specification.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod oci;
pub mod registry;
pub mod server;
pub mod store;
pub mod tls;
