//! GitHub Deployments: create a deployment for the SHA, post its statuses, deactivate the previous
//! ones. The `Deployments` port and its adapter; [`to_deactivate`] is the pure choice.
//!
//! Owns: the request shapes (`required_contexts: []` — our checks already ran — `auto_merge: false`).
//! Must not touch: the rollout itself.

use super::{Error, GithubClient};
use crate::report::checks::truncate_line;
use http::Method;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// `POST /repos/{owner}/{repo}/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDeployment {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub environment: String,
    pub description: String,
    pub required_contexts: Vec<String>,
    pub auto_merge: bool,
    pub production_environment: bool,
    pub transient_environment: bool,
    /// `{"fm_deploy": <marker>}`: a value unique to this create, so a retry after a lost answer
    /// can find the deployment GitHub did create instead of creating a second one.
    pub payload: serde_json::Value,
}

impl NewDeployment {
    /// A deployment of `sha` to `environment`.
    pub fn for_sha(sha: &str, environment: &str, description: &str) -> Self {
        let marker = format!("{sha}:{environment}:{:016x}", rand::random::<u64>());
        NewDeployment {
            git_ref: sha.to_string(),
            environment: environment.to_string(),
            description: truncate_line(description, 140),
            required_contexts: Vec::new(),
            auto_merge: false,
            production_environment: environment == "production",
            transient_environment: false,
            payload: serde_json::json!({ "fm_deploy": marker }),
        }
    }

    fn marker(&self) -> Option<&str> {
        self.payload.get("fm_deploy").and_then(|m| m.as_str())
    }
}

/// Deployment status states the action posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDeploymentStatus {
    pub state: DeploymentState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    pub description: String,
    /// We deactivate previous deployments ourselves (GitHub's automatic version skips production).
    pub auto_inactive: bool,
}

impl NewDeploymentStatus {
    pub fn new(
        state: DeploymentState,
        environment_url: Option<&str>,
        log_url: Option<&str>,
        description: &str,
    ) -> Self {
        NewDeploymentStatus {
            state,
            environment_url: environment_url
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            log_url: log_url.filter(|u| !u.is_empty()).map(str::to_string),
            // GitHub's limit on a deployment status description.
            description: truncate_line(description, 140),
            auto_inactive: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeploymentSummary {
    pub id: u64,
    pub environment: String,
    #[serde(default)]
    pub sha: String,
    /// What the creator attached (GitHub answers an object, or a string for legacy payloads).
    #[serde(default)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeploymentStatusSummary {
    pub id: u64,
    pub state: String,
}

/// The Deployments port.
pub trait Deployments: Sync {
    fn create_deployment(
        &self,
        d: &NewDeployment,
    ) -> impl Future<Output = Result<DeploymentSummary, Error>> + Send;
    fn create_deployment_status(
        &self,
        id: u64,
        s: &NewDeploymentStatus,
    ) -> impl Future<Output = Result<DeploymentStatusSummary, Error>> + Send;
    /// The most recent deployments to `environment` (newest first, one page of `limit`).
    fn recent_deployments(
        &self,
        environment: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DeploymentSummary>, Error>> + Send;
    /// The latest status of a deployment, if any.
    fn latest_status(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<DeploymentStatusSummary>, Error>> + Send;
}

impl Deployments for GithubClient {
    async fn create_deployment(&self, d: &NewDeployment) -> Result<DeploymentSummary, Error> {
        let path = format!("{}/deployments", self.repo_path());
        // A 5xx or a lost answer may hide a create GitHub did apply: look for this create's
        // marker among the commit's deployments to the environment before creating again.
        let probe = || async {
            let list = format!(
                "{}/deployments?sha={}&environment={}&per_page=30",
                self.repo_path(),
                super::predeploy::encode_query(&d.git_ref),
                super::predeploy::encode_query(&d.environment)
            );
            let found: Vec<DeploymentSummary> = self.send(Method::GET, &list, None::<&()>).await?;
            Ok(found
                .into_iter()
                .find(|x| x.payload.get("fm_deploy").and_then(|m| m.as_str()) == d.marker())
                .map(|x| serde_json::json!({"id": x.id, "environment": x.environment, "sha": x.sha, "payload": x.payload})))
        };
        let v: serde_json::Value = self
            .send_probed(Method::POST, &path, Some(d), probe)
            .await?;
        // 202 carries only a message (an auto-merge happened); with auto_merge false it means trouble.
        if v.get("id").is_none() {
            let what = v
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no deployment id")
                .to_string();
            return Err(Error::Unexpected {
                method: "POST".into(),
                path,
                what,
            });
        }
        serde_json::from_value(v).map_err(|source| Error::Decode {
            method: "POST".into(),
            path,
            source,
        })
    }

    async fn create_deployment_status(
        &self,
        id: u64,
        s: &NewDeploymentStatus,
    ) -> Result<DeploymentStatusSummary, Error> {
        let path = format!("{}/deployments/{id}/statuses", self.repo_path());
        self.send(Method::POST, &path, Some(s)).await
    }

    async fn recent_deployments(
        &self,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<DeploymentSummary>, Error> {
        let path = format!(
            "{}/deployments?environment={}&per_page={}",
            self.repo_path(),
            super::predeploy::encode_query(environment),
            limit.clamp(1, 100)
        );
        self.send(Method::GET, &path, None::<&()>).await
    }

    async fn latest_status(&self, id: u64) -> Result<Option<DeploymentStatusSummary>, Error> {
        let path = format!("{}/deployments/{id}/statuses?per_page=1", self.repo_path());
        let v: Vec<DeploymentStatusSummary> = self.send(Method::GET, &path, None::<&()>).await?;
        Ok(v.into_iter().next())
    }
}

/// Which earlier deployments to mark inactive: every other one whose latest state is live
/// (`success`, `in_progress`, `queued`, `pending`).
pub fn to_deactivate(current: u64, latest: &[(u64, Option<String>)]) -> Vec<u64> {
    latest
        .iter()
        .filter(|(id, _)| *id != current)
        .filter(|(_, s)| {
            matches!(
                s.as_deref(),
                Some("success" | "in_progress" | "queued" | "pending")
            )
        })
        .map(|(id, _)| *id)
        .collect()
}

/// How a deploy ended, for the final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentOutcome {
    Success,
    Failure,
}

/// Starts a deployment: creates it and posts `in_progress`. Returns the deployment id (the
/// `deployment-id` output).
pub async fn start_deployment<D: Deployments>(
    d: &D,
    sha: &str,
    environment: &str,
    environment_url: Option<&str>,
    log_url: Option<&str>,
) -> Result<u64, Error> {
    let dep = d
        .create_deployment(&NewDeployment::for_sha(
            sha,
            environment,
            &format!("fm-deploy {environment}"),
        ))
        .await?;
    let status = NewDeploymentStatus::new(
        DeploymentState::InProgress,
        environment_url,
        log_url,
        "deploying",
    );
    d.create_deployment_status(dep.id, &status).await?;
    Ok(dep.id)
}

/// Ends a deployment: `success` (then the previous live deployments of the environment, among the
/// 10 most recent, become `inactive`) or `failure`.
pub async fn finish_deployment<D: Deployments>(
    d: &D,
    id: u64,
    environment: &str,
    outcome: DeploymentOutcome,
    environment_url: Option<&str>,
    log_url: Option<&str>,
    description: &str,
) -> Result<(), Error> {
    let state = match outcome {
        DeploymentOutcome::Success => DeploymentState::Success,
        DeploymentOutcome::Failure => DeploymentState::Failure,
    };
    d.create_deployment_status(
        id,
        &NewDeploymentStatus::new(state, environment_url, log_url, description),
    )
    .await?;
    if outcome == DeploymentOutcome::Success {
        let mut latest = Vec::new();
        for dep in d.recent_deployments(environment, 10).await? {
            if dep.id != id {
                latest.push((dep.id, d.latest_status(dep.id).await?.map(|s| s.state)));
            }
        }
        for old in to_deactivate(id, &latest) {
            let s =
                NewDeploymentStatus::new(DeploymentState::Inactive, None, log_url, "superseded");
            d.create_deployment_status(old, &s).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only other, live deployments are deactivated.
    #[test]
    fn deactivates_previous_live_ones() {
        let latest = vec![
            (1, Some("success".to_string())),
            (2, Some("inactive".to_string())),
            (3, Some("failure".to_string())),
            (4, None),
            (5, Some("in_progress".to_string())),
            (9, Some("success".to_string())),
        ];
        assert_eq!(to_deactivate(9, &latest), [1, 5]);
    }

    /// The create body is what GitHub expects: ref is the SHA, no required contexts, no auto-merge.
    #[test]
    fn deployment_body_shape() {
        let v = serde_json::to_value(NewDeployment::for_sha("abc", "production", "d"))
            .unwrap_or_default();
        assert_eq!(v["ref"], "abc");
        assert_eq!(v["required_contexts"], serde_json::json!([]));
        assert_eq!(v["auto_merge"], false);
        assert_eq!(v["production_environment"], true);
    }
}
