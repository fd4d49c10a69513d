//! Parsers: pure functions from a tool's bytes to findings.
