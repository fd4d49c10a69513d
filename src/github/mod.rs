//! GitHub: the octocrab adapter behind small traits; the one retry policy lives here.
//!
//! Owns: the client ([`client`]), the retry decision ([`retry`]), check runs ([`checks`]), reviews and
//! label overrides ([`reviews`]), files at a commit for the base policy ([`contents`]), pre-deploy
//! validation ([`predeploy`]), the Deployments API ([`deployments`]) and branch/environment protection for `setup` ([`setup`]). Decisions (counting
//! approvals, judging checks green, picking deployments to deactivate) are pure functions here; the
//! traits are the I/O. What `setup` wants is decided in [`crate::setup`].

pub mod checks;
pub mod client;
pub mod contents;
pub mod deployments;
pub mod event;
pub mod labels;
pub mod permissions;
pub mod predeploy;
pub mod retry;
pub mod reviews;
pub mod setup;

pub use checks::{CheckRunHandle, CheckRunSummary, Checks, ChecksSession, Started};
pub use client::{GithubClient, GithubConfig, mask_command};
pub use deployments::{DeploymentOutcome, DeploymentState, Deployments, NewDeployment};
pub use predeploy::{PreDeployProblem, Repository};
pub use retry::RetryPolicy;
pub use reviews::{Approvals, PullRequests, Review};
pub use setup::{SetupOutcome, SetupReport, TargetReport, run_setup};

/// Failures talking to GitHub. Messages read after "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parse repository {0:?} (expected owner/name from GITHUB_REPOSITORY)")]
    Repository(String),
    #[error("build the GitHub client for {url}")]
    Build {
        url: String,
        #[source]
        source: Box<octocrab::Error>,
    },
    #[error(
        "call {method} {path}: GitHub answered {status} ({message}) after {attempts} attempt(s){}",
        needs_text(needs.as_deref())
    )]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
        attempts: u32,
        gave_up: retry::GiveUp,
        /// On a permissions 403: the token permission the request needs
        /// ([`permissions::missing`]).
        needs: Option<String>,
    },
    #[error("call {method} {path}: no answer after {attempts} attempt(s)")]
    Transport {
        method: String,
        path: String,
        attempts: u32,
        #[source]
        source: Box<octocrab::Error>,
    },
    #[error("decode the answer to {method} {path}")]
    Decode {
        method: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("read the answer to {method} {path}: {what}")]
    Unexpected {
        method: String,
        path: String,
        what: String,
    },
    /// A `setup` step, naming the branch, environment or reviewer it was for.
    #[error("{target}{}", hint(*.status_hint, source))]
    Setup {
        target: String,
        /// What a 403 or 404 most likely means for this step.
        status_hint: SetupHint,
        #[source]
        source: Box<Error>,
    },
}

fn needs_text(needs: Option<&str>) -> String {
    needs.map_or_else(String::new, |p| {
        format!(" (the token needs `{p}`: add it to the workflow's `permissions:`)")
    })
}

/// What a refusal (403 / 404) of a `setup` request most likely means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupHint {
    /// Branch protection and environments need `administration: write`; GitHub answers 404 (or 403)
    /// to a token without it, which otherwise reads like a missing branch.
    Administration,
    /// A reviewer lookup: the user or team does not exist, or the token cannot see it.
    Reviewer,
}

fn hint(h: SetupHint, source: &Error) -> &'static str {
    match (source.status(), h) {
        (Some(403 | 404), SetupHint::Administration) => {
            " (the token needs `administration: write` on the repository)"
        }
        (Some(403 | 404), SetupHint::Reviewer) => {
            " (no such user or team, or the token cannot read the organization's teams)"
        }
        _ => "",
    }
}

impl Error {
    /// The HTTP status GitHub answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::Setup { source, .. } => source.status(),
            Error::Repository(_)
            | Error::Build { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Unexpected { .. } => None,
        }
    }

    /// The permission a permissions 403 named, when it was one.
    pub fn missing_permission(&self) -> Option<&str> {
        match self {
            Error::Status { needs, .. } => needs.as_deref(),
            Error::Setup { source, .. } => source.missing_permission(),
            Error::Repository(_)
            | Error::Build { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Unexpected { .. } => None,
        }
    }

    /// A 403 that is not a rate limit: the token lacks the permission (fork PR, no `checks: write`).
    pub fn is_forbidden(&self) -> bool {
        match self {
            Error::Status {
                status: 403,
                gave_up: retry::GiveUp::Permanent,
                ..
            } => true,
            Error::Setup { source, .. } => source.is_forbidden(),
            Error::Status { .. }
            | Error::Repository(_)
            | Error::Build { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Unexpected { .. } => false,
        }
    }
}
