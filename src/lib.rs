//! Marina: a test-first implementation of the OCI Distribution Specification.

pub mod oci;
pub mod cli;
pub mod harness;
