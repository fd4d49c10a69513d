//! The gate runner: tokio::process with argv only, timeouts, process groups, output caps.
