//! Errors at the top boundary and their exit codes.
//!
//! A failing verdict is not an error: it is an `Outcome` that exits 1. Errors are runs that could not
//! do their job (bad input, bad config, infrastructure) and exit 2.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Policy(#[from] crate::policy::Error),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Inputs(#[from] crate::inputs::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
    #[error("write {what} to {path}")]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Github(#[from] crate::github::Error),
    #[error(transparent)]
    Base(#[from] crate::policy::base::BaseError),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::run::DeployError),
    #[error(transparent)]
    Cluster(#[from] crate::deploy::cluster::ClusterError),
    #[error(transparent)]
    Build(#[from] crate::deploy::manifests::BuildError),
    #[error(transparent)]
    BlueGreen(#[from] crate::deploy::bluegreen_run::BgError),
    #[error(transparent)]
    Health(#[from] crate::deploy::health::HealthError),
    /// SIGTERM / SIGINT arrived (a cancelled job) and the run stopped; names what was stopped.
    #[error("finish {0}: the job was cancelled (SIGTERM or SIGINT)")]
    Cancelled(String),
    #[error("{0}")]
    Other(String),
}

impl ActionError {
    /// 2 for every error: the run could not do its job. (Verdicts that say no exit 1, not here.)
    pub fn exit_code(&self) -> i32 {
        match self {
            ActionError::Policy(_)
            | ActionError::Plan(_)
            | ActionError::Inputs(_)
            | ActionError::Usage(_)
            | ActionError::Runtime(_)
            | ActionError::Write { .. }
            | ActionError::Github(_)
            | ActionError::Base(_)
            | ActionError::Deploy(_)
            | ActionError::Cluster(_)
            | ActionError::Build(_)
            | ActionError::BlueGreen(_)
            | ActionError::Health(_)
            | ActionError::Cancelled(_)
            | ActionError::Other(_) => 2,
        }
    }
}
