//! Gates: run the tools (argv only), parse their output into findings.
//!
//! Owns: the runner, the parsers and the gate outcome. Must not touch: the verdict (see `verdict`),
//! GitHub, the cluster.

pub mod finding;
pub mod parsers;
pub mod runner;
