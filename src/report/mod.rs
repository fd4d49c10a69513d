//! Reports: pure builders for check runs, the job summary, workflow commands and outputs.
