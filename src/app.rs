//! The only orchestrator: one function per command.

/// Entry point placeholder; replaced as commands land.
pub fn run() {}
