//! GitHub: the octocrab adapter behind small traits; the one retry policy lives here.
//!
//! Owns: the client ([`client`]), the retry decision ([`retry`]), check runs ([`checks`]), reviews and
//! label overrides ([`reviews`]), pre-deploy validation ([`predeploy`]) and the Deployments API
//! ([`deployments`]). Decisions (counting approvals, judging checks green, picking deployments to
//! deactivate) are pure functions here; the traits are the I/O.

pub mod checks;
pub mod client;
pub mod deployments;
pub mod event;
pub mod labels;
pub mod predeploy;
pub mod retry;
pub mod reviews;

pub use checks::{CheckRunHandle, CheckRunSummary, Checks, ChecksSession, Started};
pub use client::{GithubClient, GithubConfig, mask_command};
pub use deployments::{DeploymentOutcome, DeploymentState, Deployments, NewDeployment};
pub use predeploy::{PreDeployProblem, Repository};
pub use retry::RetryPolicy;
pub use reviews::{Approvals, PullRequests, Review};

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
        "call {method} {path}: GitHub answered {status} ({message}) after {attempts} attempt(s)"
    )]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
        attempts: u32,
        gave_up: retry::GiveUp,
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
}

impl Error {
    /// The HTTP status GitHub answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::Repository(_)
            | Error::Build { .. }
            | Error::Transport { .. }
            | Error::Decode { .. }
            | Error::Unexpected { .. } => None,
        }
    }

    /// A 403 that is not a rate limit: the token lacks the permission (fork PR, no `checks: write`).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Error::Status {
                status: 403,
                gave_up: retry::GiveUp::Permanent,
                ..
            }
        )
    }
}
