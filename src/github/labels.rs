//! The gates' label-approval port over GitHub's issue events and team memberships.
//!
//! Decides nothing: "who added the label" is `reviews::label_added_by` (pure); matching approvers
//! happens in `gates::run`.

use crate::gates::run::{ApprovalError, LabelApprovals};
use crate::github::GithubClient;
use crate::github::reviews::{self, PullRequests};

impl LabelApprovals for GithubClient {
    async fn label_added_by(&self, pr: u64, label: &str) -> Result<Option<String>, ApprovalError> {
        let events = self
            .list_issue_events(pr)
            .await
            .map_err(|e| ApprovalError(e.to_string()))?;
        Ok(reviews::label_added_by(&events, label))
    }

    async fn is_team_member(&self, user: &str, team: &str) -> Result<bool, ApprovalError> {
        let Some((org, slug)) = team.split_once('/') else {
            return Ok(false);
        };
        PullRequests::is_team_member(self, org, slug, user)
            .await
            .map_err(|e| ApprovalError(e.to_string()))
    }
}
