//! Gates: run the tools (argv only), parse their output into findings.
//!
//! Owns: the runner, the parsers, the gate outcome and the orchestration of a tier's gates. Must
//! not touch: the verdict's rules (see `verdict`), GitHub, the cluster.

pub mod approvals;
pub mod diff;
pub mod exceptions;
pub mod finding;
pub mod matrix_reports;
pub mod outcome;
pub mod parsers;
pub mod project_env;
pub mod run;
pub mod runner;
pub mod scratch;
