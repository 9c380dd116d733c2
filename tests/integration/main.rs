//! Marina's integration tests: one binary, a module per area.

mod conformance; // marina conformance: suite doubles, report parsing, verdicts, server lifecycle
