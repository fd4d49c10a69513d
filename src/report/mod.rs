//! Reports: pure builders for check runs, the job summary, workflow commands and outputs.

pub mod checks;
pub mod gates_summary;
