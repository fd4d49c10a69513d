//! Runtime plumbing: GITHUB_OUTPUT, step summary, workflow commands.
