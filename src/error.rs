//! Errors at the top boundary and their exit codes.
