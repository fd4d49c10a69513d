//! Check runs: the `Checks` port, its octocrab adapter, and the session that posts one check run per
//! gate (create `in_progress`, append annotations over PATCHes, complete on the last PATCH).
//!
//! Owns: finding a re-run's own check run by name + `external_id`, the 403 → no-access fallback
//! signal. Must not touch: payload contents (built by `report::checks`), verdicts.

use super::{Error, GithubClient};
use crate::report::checks::{
    Annotation, AnnotationLevel, CreateCheckRun, GateCheck, GateReport, UpdateCheckRun,
    build_report, check_name, finish_requests, restart_request, start_request,
};
use http::Method;
use serde::Deserialize;
use std::future::Future;

/// What we read back about a check run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRunSummary {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub details_url: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub output: CheckRunOutputSummary,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CheckRunOutputSummary {
    #[serde(default)]
    pub annotations_count: u64,
}

/// The check-runs port.
pub trait Checks: Sync {
    /// Every check run on `head_sha` (latest per name), all pages.
    fn list_check_runs(
        &self,
        head_sha: &str,
    ) -> impl Future<Output = Result<Vec<CheckRunSummary>, Error>> + Send;
    fn create_check_run(
        &self,
        body: &CreateCheckRun,
    ) -> impl Future<Output = Result<CheckRunSummary, Error>> + Send;
    fn update_check_run(
        &self,
        id: u64,
        body: &UpdateCheckRun,
    ) -> impl Future<Output = Result<CheckRunSummary, Error>> + Send;
    /// Annotations already on a check run (a re-run appends to them).
    fn list_annotations(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Vec<Annotation>, Error>> + Send;
}

#[derive(Deserialize)]
struct RawAnnotation {
    path: String,
    start_line: u32,
    end_line: u32,
    start_column: Option<u32>,
    end_column: Option<u32>,
    annotation_level: Option<AnnotationLevel>,
    message: Option<String>,
    title: Option<String>,
    raw_details: Option<String>,
}

impl Checks for GithubClient {
    async fn list_check_runs(&self, head_sha: &str) -> Result<Vec<CheckRunSummary>, Error> {
        let path = format!("{}/commits/{head_sha}/check-runs", self.repo_path());
        self.get_all(&path, Some("check_runs")).await
    }

    async fn create_check_run(&self, body: &CreateCheckRun) -> Result<CheckRunSummary, Error> {
        let path = format!("{}/check-runs", self.repo_path());
        // A 5xx or a lost answer may hide a create GitHub did apply: look for our run (same name
        // and external_id on the commit) before creating it again.
        let probe = || async {
            let runs = self.list_check_runs(&body.head_sha).await?;
            Ok(runs.into_iter().find(|r| {
                r.name == body.name && r.external_id.as_deref() == Some(body.external_id.as_str())
            }))
        };
        self.send_probed(Method::POST, &path, Some(body), probe)
            .await
    }

    async fn update_check_run(
        &self,
        id: u64,
        body: &UpdateCheckRun,
    ) -> Result<CheckRunSummary, Error> {
        let path = format!("{}/check-runs/{id}", self.repo_path());
        self.send(Method::PATCH, &path, Some(body)).await
    }

    async fn list_annotations(&self, id: u64) -> Result<Vec<Annotation>, Error> {
        let path = format!("{}/check-runs/{id}/annotations", self.repo_path());
        let raw: Vec<RawAnnotation> = self.get_all(&path, None).await?;
        Ok(raw
            .into_iter()
            .map(|a| Annotation {
                path: a.path,
                start_line: a.start_line,
                end_line: a.end_line,
                start_column: a.start_column,
                end_column: a.end_column,
                annotation_level: a.annotation_level.unwrap_or(AnnotationLevel::Notice),
                message: a.message.unwrap_or_default(),
                title: a.title.filter(|t| !t.is_empty()),
                raw_details: a.raw_details.filter(|t| !t.is_empty()),
            })
            .collect())
    }
}

/// A check run this job owns, ready to be finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRunHandle {
    pub id: u64,
    pub name: String,
    /// Annotations an earlier attempt of this job already appended (not sent again).
    pub posted_before: Vec<Annotation>,
}

/// Result of starting a gate's check run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Posted(CheckRunHandle),
    /// GitHub answered 403 (fork PR, or no `checks: write`): report through the job summary and
    /// workflow commands instead. The run goes on.
    NoAccess {
        message: String,
    },
}

/// One run's check runs on one commit. Open once per run (one GET for all gates), then `start` and
/// `finish` each gate.
#[derive(Debug)]
pub struct ChecksSession<'a, C: Checks> {
    checks: &'a C,
    head_sha: String,
    details_url: Option<String>,
    existing: Vec<CheckRunSummary>,
}

impl<'a, C: Checks> ChecksSession<'a, C> {
    /// Lists the check runs already on `head_sha` so re-runs find their own. A 403 here (no read
    /// access) is not fatal: nothing is found and `start` decides.
    pub async fn open(
        checks: &'a C,
        head_sha: &str,
        details_url: Option<&str>,
    ) -> Result<Self, Error> {
        let existing = match checks.list_check_runs(head_sha).await {
            Ok(runs) => runs,
            Err(e) if e.is_forbidden() => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(ChecksSession {
            checks,
            head_sha: head_sha.to_string(),
            details_url: details_url.map(str::to_string),
            existing,
        })
    }

    /// Creates `fm-deploy / <gate>` in progress, or puts this job's own run from an earlier attempt
    /// back in progress (one request either way, plus annotation pages when the earlier attempt
    /// posted some).
    pub async fn start(
        &self,
        gate: &str,
        external_id: &str,
        started_at: &str,
    ) -> Result<Started, Error> {
        let name = check_name(gate);
        let own = self
            .existing
            .iter()
            .find(|r| r.name == name && r.external_id.as_deref() == Some(external_id));
        let result = match own {
            Some(run) => {
                let posted_before = if run.output.annotations_count > 0 {
                    self.checks.list_annotations(run.id).await?
                } else {
                    Vec::new()
                };
                self.checks
                    .update_check_run(run.id, &restart_request(self.details_url.as_deref()))
                    .await
                    .map(|r| CheckRunHandle {
                        id: r.id,
                        name: name.clone(),
                        posted_before,
                    })
            }
            None => {
                let body = start_request(
                    gate,
                    &self.head_sha,
                    external_id,
                    self.details_url.as_deref(),
                    started_at,
                );
                self.checks
                    .create_check_run(&body)
                    .await
                    .map(|r| CheckRunHandle {
                        id: r.id,
                        name: name.clone(),
                        posted_before: Vec::new(),
                    })
            }
        };
        match result {
            Ok(handle) => Ok(Started::Posted(handle)),
            Err(e) if e.is_forbidden() => {
                tracing::warn!(
                    check = %name,
                    needs = e.missing_permission().unwrap_or("checks: write"),
                    "no access to check runs (fork pull request, or the token lacks the permission); reporting through annotations instead"
                );
                Ok(Started::NoAccess {
                    message: e.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Appends the gate's annotations in batches of 50 and completes the run on the last PATCH.
    /// Returns what was posted (counts for the job summary).
    pub async fn finish(
        &self,
        handle: &CheckRunHandle,
        gate: &GateCheck,
        completed_at: &str,
    ) -> Result<GateReport, Error> {
        let report = build_report(gate, &handle.posted_before);
        for update in finish_requests(&report, completed_at, self.details_url.as_deref()) {
            self.checks.update_check_run(handle.id, &update).await?;
        }
        Ok(report)
    }
}
