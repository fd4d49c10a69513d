//! `setup` against GitHub: reads branch protection and environments, writes what
//! [`crate::setup`] computed. Needs a token with `administration: write`.
//!
//! Owns: the requests (which endpoint, which body, percent-encoded names), resolving reviewer names
//! to ids, and the report of what was written. Must not touch: what "protected as the policy says"
//! means — desired state, parsing, diffs and bodies are the pure functions in [`crate::setup`].

use super::predeploy::encode_query as encode_segment;
use super::{Error, GithubClient, SetupHint};
use crate::setup::{self as plan, BranchProtection, EnvironmentProtection, ReviewerId, SetupPlan};
use http::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What happened to one branch or environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetupOutcome {
    /// Already as the policy says; nothing was sent.
    Unchanged,
    /// The difference was written.
    Applied,
    /// A dry run: the difference was found and not written.
    WouldApply,
}

/// One branch or environment: its name, the difference found, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    pub name: String,
    /// `key: current → desired` lines from [`crate::setup::diff_branch`] /
    /// [`crate::setup::diff_environment`]; empty when nothing differs.
    pub diff: Vec<String>,
    pub outcome: SetupOutcome,
}

/// The result of [`run_setup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupReport {
    pub dry_run: bool,
    pub branches: Vec<TargetReport>,
    pub environments: Vec<TargetReport>,
    /// Rules branch protection cannot express (from the plan), with the reason.
    pub not_applied: Vec<String>,
}

impl SetupReport {
    /// Branches and environments whose protection was written in this run.
    pub fn applied(&self) -> usize {
        self.targets()
            .filter(|t| t.outcome == SetupOutcome::Applied)
            .count()
    }

    /// Branches and environments that differ from the policy (written, or not in a dry run).
    pub fn changed(&self) -> usize {
        self.targets().filter(|t| !t.diff.is_empty()).count()
    }

    fn targets(&self) -> impl Iterator<Item = &TargetReport> {
        self.branches.iter().chain(&self.environments)
    }

    /// The job-summary Markdown: every difference, what is not applied, and whether it was written.
    pub fn render_markdown(&self) -> String {
        let mut diffs: Vec<(String, Vec<String>)> = Vec::new();
        for b in &self.branches {
            diffs.push((format!("branch `{}`", b.name), b.diff.clone()));
        }
        for e in &self.environments {
            diffs.push((format!("environment `{}`", e.name), e.diff.clone()));
        }
        let shell = SetupPlan {
            not_applied: self.not_applied.clone(),
            ..SetupPlan::default()
        };
        let mut md = shell.render_markdown(&diffs);
        let changed = self.changed();
        md.push('\n');
        md.push_str(&match (self.dry_run, changed) {
            (_, 0) => "Nothing to change.\n".to_string(),
            (true, n) => format!("Dry run: {n} change(s) found, nothing written.\n"),
            (false, _) => format!("Applied {} change(s).\n", self.applied()),
        });
        md
    }
}

fn branch_path(client: &GithubClient, branch: &str) -> String {
    format!(
        "{}/branches/{}/protection",
        client.repo_path(),
        encode_segment(branch)
    )
}

fn wrap(target: String, source: Error) -> Error {
    Error::Setup {
        target,
        status_hint: SetupHint::Administration,
        source: Box::new(source),
    }
}

/// GitHub's message on the 404 for a branch without protection. Its other 404s — "Not Found" to a
/// token without administration access, "Branch not found" — must not read as "unprotected", or a
/// dry run with the wrong token would report a protected branch as open.
const NOT_PROTECTED: &str = "Branch not protected";

fn is_not_protected(e: &Error) -> bool {
    matches!(e, Error::Status { status: 404, message, .. } if message.eq_ignore_ascii_case(NOT_PROTECTED))
}

/// `GET …/branches/{branch}/protection`, normalised. GitHub's 404 "Branch not protected" is an
/// unprotected branch; any other failure (a 404 "Not Found" to a token without administration
/// access included) is an error naming the branch.
pub async fn read_branch(client: &GithubClient, branch: &str) -> Result<BranchProtection, Error> {
    let path = branch_path(client, branch);
    match client.send::<Value, ()>(Method::GET, &path, None).await {
        Ok(v) => Ok(plan::parse_branch_protection(branch, Some(&v), false)),
        Err(e) if is_not_protected(&e) => Ok(plan::parse_branch_protection(branch, None, false)),
        Err(e) => Err(wrap(format!("read branch protection of `{branch}`"), e)),
    }
}

/// Writes `desired` over `current`: `PUT …/protection` with the policy's body, then
/// `POST`/`DELETE …/protection/required_signatures` only when signed commits differ (the PUT body
/// cannot carry them).
pub async fn apply_branch(
    client: &GithubClient,
    desired: &BranchProtection,
    current: &BranchProtection,
) -> Result<(), Error> {
    let branch = &desired.branch;
    let target = || format!("apply branch protection to `{branch}`");
    let path = branch_path(client, branch);
    let body = plan::branch_protection_body(desired);
    client
        .send_raw(Method::PUT, &path, Some(&body))
        .await
        .map_err(|e| wrap(target(), e))?;
    if desired.signed_commits != current.signed_commits {
        let sig = format!("{path}/required_signatures");
        let method = if desired.signed_commits {
            Method::POST
        } else {
            Method::DELETE
        };
        client
            .send_raw::<()>(method, &sig, None)
            .await
            .map_err(|e| wrap(format!("set signed commits on `{branch}`"), e))?;
    }
    Ok(())
}

/// Every environment of the repository, as GitHub answers `GET /repos/{o}/{r}/environments`.
pub async fn list_environments(client: &GithubClient) -> Result<Vec<Value>, Error> {
    let path = format!("{}/environments", client.repo_path());
    client
        .get_all::<Value>(&path, Some("environments"))
        .await
        .map_err(|e| wrap("list environments".to_string(), e))
}

/// The environment called `name` among `listed`, normalised; absent → unprotected defaults.
pub fn pick_environment(listed: &[Value], name: &str) -> EnvironmentProtection {
    let found = listed.iter().find(|e| e["name"].as_str() == Some(name));
    plan::parse_environment(name, found)
}

/// One environment's protection. Reads the list: `GET …/environments/{name}` of a missing
/// environment answers 404, which GitHub's description does not declare.
pub async fn read_environment(
    client: &GithubClient,
    name: &str,
) -> Result<EnvironmentProtection, Error> {
    Ok(pick_environment(&list_environments(client).await?, name))
}

/// `org/team` → the team's id (`GET /orgs/{org}/teams/{slug}`); `login` → the user's id
/// (`GET /users/{login}`).
pub async fn resolve_reviewer(client: &GithubClient, who: &str) -> Result<ReviewerId, Error> {
    let (path, team) = match who.split_once('/') {
        Some((org, slug)) => (
            format!(
                "/orgs/{}/teams/{}",
                encode_segment(org),
                encode_segment(slug)
            ),
            true,
        ),
        None => (format!("/users/{}", encode_segment(who)), false),
    };
    let fail = |source: Error| Error::Setup {
        target: format!("resolve reviewer `{who}`"),
        status_hint: SetupHint::Reviewer,
        source: Box::new(source),
    };
    let v: Value = client
        .send::<Value, ()>(Method::GET, &path, None)
        .await
        .map_err(fail)?;
    let id = v["id"].as_u64().ok_or_else(|| {
        fail(Error::Unexpected {
            method: "GET".into(),
            path: path.clone(),
            what: "no numeric `id`".into(),
        })
    })?;
    Ok(if team {
        ReviewerId::Team(id)
    } else {
        ReviewerId::User(id)
    })
}

/// `PUT /repos/{o}/{r}/environments/{name}` with the policy's body; creates the environment when
/// it does not exist. `reviewers` are the resolved ids of `desired.reviewers`.
pub async fn apply_environment(
    client: &GithubClient,
    desired: &EnvironmentProtection,
    reviewers: &[ReviewerId],
) -> Result<(), Error> {
    let path = format!(
        "{}/environments/{}",
        client.repo_path(),
        encode_segment(&desired.environment)
    );
    let body = plan::environment_body(desired, reviewers);
    client
        .send_raw(Method::PUT, &path, Some(&body))
        .await
        .map_err(|e| {
            wrap(
                format!("apply protection to environment `{}`", desired.environment),
                e,
            )
        })?;
    Ok(())
}

/// Reads every branch and environment of `plan`, diffs it against the policy, and writes what
/// differs — nothing when it already matches (idempotent) and nothing at all when `dry_run`.
/// Stops at the first failure: what was written before it stays written, and the error names the
/// branch, environment or reviewer.
pub async fn run_setup(
    client: &GithubClient,
    plan: &SetupPlan,
    dry_run: bool,
) -> Result<SetupReport, Error> {
    let outcome = |diff: &[String]| match (diff.is_empty(), dry_run) {
        (true, _) => SetupOutcome::Unchanged,
        (false, true) => SetupOutcome::WouldApply,
        (false, false) => SetupOutcome::Applied,
    };
    let mut report = SetupReport {
        dry_run,
        branches: Vec::new(),
        environments: Vec::new(),
        not_applied: plan.not_applied.clone(),
    };
    for want in &plan.branches {
        let current = read_branch(client, &want.branch).await?;
        let diff = plan::diff_branch(&current, want);
        let result = outcome(&diff);
        if result == SetupOutcome::Applied {
            apply_branch(client, want, &current).await?;
        }
        tracing::info!(branch = %want.branch, changes = diff.len(), ?result, "branch protection");
        report.branches.push(TargetReport {
            name: want.branch.clone(),
            diff,
            outcome: result,
        });
    }
    if plan.environments.is_empty() {
        return Ok(report);
    }
    let listed = list_environments(client).await?;
    let mut resolved: BTreeMap<String, ReviewerId> = BTreeMap::new();
    for want in &plan.environments {
        let current = pick_environment(&listed, &want.environment);
        let diff = plan::diff_environment(&current, want);
        let result = outcome(&diff);
        if result == SetupOutcome::Applied {
            let mut ids = Vec::with_capacity(want.reviewers.len());
            for who in &want.reviewers {
                let id = match resolved.get(who) {
                    Some(id) => *id,
                    None => {
                        let id = resolve_reviewer(client, who).await?;
                        resolved.insert(who.clone(), id);
                        id
                    }
                };
                ids.push(id);
            }
            apply_environment(client, want, &ids).await?;
        }
        tracing::info!(environment = %want.environment, changes = diff.len(), ?result, "environment protection");
        report.environments.push(TargetReport {
            name: want.environment.clone(),
            diff,
            outcome: result,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Environments are picked by exact name from the list; a missing one reads as unprotected.
    #[test]
    fn picks_environment_by_name() {
        let listed = vec![
            json!({"name": "staging", "protection_rules": [{"type": "wait_timer", "wait_timer": 5}]}),
            json!({"name": "production", "protection_rules": [{"type": "wait_timer", "wait_timer": 10}]}),
        ];
        assert_eq!(
            pick_environment(&listed, "production").wait_timer_minutes,
            10
        );
        let missing = pick_environment(&listed, "Production");
        assert_eq!(
            missing,
            EnvironmentProtection {
                environment: "Production".into(),
                ..EnvironmentProtection::default()
            }
        );
    }

    /// The report counts written targets apart from dry-run findings, and says which it was.
    #[test]
    fn report_markdown_says_what_was_written() {
        let t = |name: &str, diff: &[&str], outcome| TargetReport {
            name: name.into(),
            diff: diff.iter().map(|s| s.to_string()).collect(),
            outcome,
        };
        let mut r = SetupReport {
            dry_run: true,
            branches: vec![
                t(
                    "main",
                    &["required reviews: 0 → 3"],
                    SetupOutcome::WouldApply,
                ),
                t("staging", &[], SetupOutcome::Unchanged),
            ],
            environments: vec![],
            not_applied: vec!["branch rule `feature/*`: use a ruleset".into()],
        };
        let md = r.render_markdown();
        assert!(
            md.contains("- **branch `main`**:\n  - required reviews: 0 → 3"),
            "{md}"
        );
        assert!(
            md.contains("branch `staging`**: already as the policy says"),
            "{md}"
        );
        assert!(md.contains("not applied: branch rule `feature/*`"), "{md}");
        assert!(
            md.contains("Dry run: 1 change(s) found, nothing written."),
            "{md}"
        );
        assert_eq!(r.applied(), 0);
        r.dry_run = false;
        r.branches[0].outcome = SetupOutcome::Applied;
        assert_eq!(r.applied(), 1);
        assert!(r.render_markdown().contains("Applied 1 change(s)."));
    }
}
