//! Marina: a test-first implementation of the OCI Distribution Specification.

pub mod cli;
pub mod conformance;
pub mod oci;
