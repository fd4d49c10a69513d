//! Pre-deploy validation: every check run and commit status on the SHA green (except this run's own),
//! and no open incident. The `Repository` port reads; [`judge`] decides.
//!
//! Owns: what "green" means and which runs are "our own". Must not touch: deploys.

use super::checks::CheckRunSummary;
use super::{Checks, Error, GithubClient};
use serde::Deserialize;
use std::future::Future;

/// One commit status (the latest per context, from the combined status).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitStatus {
    pub context: String,
    /// `success`, `pending`, `failure`, `error`.
    pub state: String,
}

/// An open issue carrying the incident label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenIssue {
    pub number: u64,
    pub title: String,
    #[serde(default)]
    pub html_url: Option<String>,
    /// Present when the "issue" is a pull request (the issues API lists both).
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

/// Why a deploy may not start. Each is reported; any one blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreDeployProblem {
    CheckNotGreen {
        name: String,
        status: String,
        conclusion: Option<String>,
    },
    StatusNotGreen {
        context: String,
        state: String,
    },
    OpenIncident {
        number: u64,
        title: String,
    },
}

impl std::fmt::Display for PreDeployProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PreDeployProblem::CheckNotGreen {
                name,
                status,
                conclusion,
            } => {
                write!(
                    f,
                    "check run `{name}` is {}",
                    conclusion.as_deref().unwrap_or(status)
                )
            }
            PreDeployProblem::StatusNotGreen { context, state } => {
                write!(f, "commit status `{context}` is {state}")
            }
            PreDeployProblem::OpenIncident { number, title } => {
                write!(f, "incident #{number} is open: {title}")
            }
        }
    }
}

/// Whether a check run belongs to this workflow run: one of our own (`external_id` from this run)
/// or a job of this run (its URL points at `/actions/runs/<run_id>/`).
pub fn is_own_run(run: &CheckRunSummary, run_id: &str) -> bool {
    let ours = run
        .external_id
        .as_deref()
        .is_some_and(|e| e.starts_with(&format!("fm-deploy:{run_id}:")));
    let marker = format!("/actions/runs/{run_id}/");
    let this_job = [run.details_url.as_deref(), run.html_url.as_deref()]
        .into_iter()
        .flatten()
        .any(|u| u.contains(&marker));
    ours || this_job
}

/// Judges the commit: check runs must be completed with success, neutral or skipped; statuses must
/// be `success`; incident issues (not pull requests) must be absent. Pending is not green (fail
/// closed).
pub fn judge(
    runs: &[CheckRunSummary],
    statuses: &[CommitStatus],
    incidents: &[OpenIssue],
    run_id: &str,
) -> Vec<PreDeployProblem> {
    let mut problems = Vec::new();
    for r in runs.iter().filter(|r| !is_own_run(r, run_id)) {
        let green = r.status == "completed"
            && matches!(
                r.conclusion.as_deref(),
                Some("success" | "neutral" | "skipped")
            );
        if !green {
            problems.push(PreDeployProblem::CheckNotGreen {
                name: r.name.clone(),
                status: r.status.clone(),
                conclusion: r.conclusion.clone(),
            });
        }
    }
    for s in statuses.iter().filter(|s| s.state != "success") {
        problems.push(PreDeployProblem::StatusNotGreen {
            context: s.context.clone(),
            state: s.state.clone(),
        });
    }
    for i in incidents.iter().filter(|i| i.pull_request.is_none()) {
        problems.push(PreDeployProblem::OpenIncident {
            number: i.number,
            title: i.title.clone(),
        });
    }
    problems
}

/// The repository-state port used before a deploy.
pub trait Repository: Checks {
    /// Latest status per context on `sha` (combined status, all pages).
    fn commit_statuses(
        &self,
        sha: &str,
    ) -> impl Future<Output = Result<Vec<CommitStatus>, Error>> + Send;
    /// Open issues carrying `label`.
    fn open_issues_with_label(
        &self,
        label: &str,
    ) -> impl Future<Output = Result<Vec<OpenIssue>, Error>> + Send;
}

impl Repository for GithubClient {
    async fn commit_statuses(&self, sha: &str) -> Result<Vec<CommitStatus>, Error> {
        #[derive(Deserialize)]
        struct Combined {
            statuses: Vec<CommitStatus>,
        }
        let mut out = Vec::new();
        for page in 1..=100u32 {
            let path = format!(
                "{}/commits/{sha}/status?per_page=100&page={page}",
                self.repo_path()
            );
            let c: Combined = self.send(http::Method::GET, &path, None::<&()>).await?;
            let n = c.statuses.len();
            out.extend(c.statuses);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    async fn open_issues_with_label(&self, label: &str) -> Result<Vec<OpenIssue>, Error> {
        let path = format!(
            "{}/issues?state=open&labels={}",
            self.repo_path(),
            encode_query(label)
        );
        self.get_all(&path, None).await
    }
}

/// Reads everything [`judge`] needs and judges it. `incident_label` from the policy's `pre_deploy`.
pub async fn validate<R: Repository>(
    repo: &R,
    sha: &str,
    run_id: &str,
    incident_label: Option<&str>,
) -> Result<Vec<PreDeployProblem>, Error> {
    let runs = repo.list_check_runs(sha).await?;
    let statuses = repo.commit_statuses(sha).await?;
    let incidents = match incident_label {
        Some(label) => repo.open_issues_with_label(label).await?,
        None => Vec::new(),
    };
    Ok(judge(&runs, &statuses, &incidents, run_id))
}

/// Percent-encodes a query value (labels may hold spaces, `/`, `:`).
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::checks::CheckRunOutputSummary;

    fn run(
        name: &str,
        status: &str,
        conclusion: Option<&str>,
        ext: Option<&str>,
        url: &str,
    ) -> CheckRunSummary {
        CheckRunSummary {
            id: 1,
            name: name.into(),
            head_sha: "s".into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
            external_id: ext.map(str::to_string),
            details_url: Some(url.into()),
            html_url: None,
            output: CheckRunOutputSummary::default(),
        }
    }

    /// Failed, pending and foreign runs block; our own run and this job do not.
    #[test]
    fn judges_checks_statuses_incidents() {
        let runs = vec![
            run(
                "ci",
                "completed",
                Some("success"),
                None,
                "https://x/actions/runs/9/job/1",
            ),
            run(
                "lint",
                "completed",
                Some("failure"),
                None,
                "https://x/actions/runs/9/job/2",
            ),
            run(
                "slow",
                "in_progress",
                None,
                None,
                "https://x/actions/runs/9/job/3",
            ),
            run(
                "deploy",
                "in_progress",
                None,
                None,
                "https://x/actions/runs/42/job/7",
            ),
            run(
                "fm-deploy / deploy production",
                "in_progress",
                None,
                Some("fm-deploy:42:deploy:deploy"),
                "https://x",
            ),
        ];
        let statuses = vec![
            CommitStatus {
                context: "ci/legacy".into(),
                state: "success".into(),
            },
            CommitStatus {
                context: "ci/other".into(),
                state: "pending".into(),
            },
        ];
        let incidents = vec![
            OpenIssue {
                number: 5,
                title: "db down".into(),
                html_url: None,
                pull_request: None,
            },
            OpenIssue {
                number: 6,
                title: "a PR".into(),
                html_url: None,
                pull_request: Some(serde_json::json!({})),
            },
        ];
        let p = judge(&runs, &statuses, &incidents, "42");
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "check run `lint` is failure",
                "check run `slow` is in_progress",
                "commit status `ci/other` is pending",
                "incident #5 is open: db down"
            ]
        );
        assert!(judge(&runs[..1], &statuses[..1], &[], "42").is_empty());
    }

    /// Query values are percent-encoded.
    #[test]
    fn encodes_labels() {
        assert_eq!(encode_query("sev 1/prod:x"), "sev%201%2Fprod%3Ax");
    }
}
