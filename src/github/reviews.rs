//! Pull-request reviews and label overrides: the `PullRequests` port, its adapter, and the pure
//! counting behind the reviews gate and the override check.
//!
//! Owns: "distinct users whose latest review is APPROVED on the head SHA", "who added label X".
//! Must not touch: the gate verdict (the caller compares [`Approvals`] with the policy).

use super::{Error, GithubClient};
use http::Method;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::future::Future;

/// One pull-request review as GitHub lists it (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Review {
    pub id: u64,
    #[serde(default)]
    pub user: Option<Login>,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`, `PENDING`.
    pub state: String,
    /// The commit the review was made on.
    #[serde(default)]
    pub commit_id: Option<String>,
    #[serde(default)]
    pub submitted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Login {
    pub login: String,
}

/// The reviews gate's input: who approves the current head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    /// Distinct logins, sorted.
    pub approvers: Vec<String>,
    pub required: u32,
}

impl Approvals {
    pub fn count(&self) -> u32 {
        u32::try_from(self.approvers.len()).unwrap_or(u32::MAX)
    }

    pub fn is_met(&self) -> bool {
        self.count() >= self.required
    }
}

/// Counts distinct users whose latest deciding review is `APPROVED` on `head_sha`. Deciding reviews
/// are APPROVED, CHANGES_REQUESTED and DISMISSED (a COMMENTED review does not withdraw an approval, as
/// on GitHub). An approval on an older commit is superseded by the push and does not count.
pub fn count_approvals(reviews: &[Review], head_sha: &str, required: u32) -> Approvals {
    let mut latest: BTreeMap<&str, &Review> = BTreeMap::new();
    for r in reviews {
        let Some(user) = r.user.as_ref() else {
            continue;
        };
        if !matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            continue;
        }
        let newer = match latest.get(user.login.as_str()) {
            None => true,
            // GitHub lists oldest first; the timestamp (then the id) settles any other order.
            Some(prev) => {
                (r.submitted_at.as_deref(), r.id) >= (prev.submitted_at.as_deref(), prev.id)
            }
        };
        if newer {
            latest.insert(user.login.as_str(), r);
        }
    }
    let approvers = latest
        .into_iter()
        .filter(|(_, r)| r.state == "APPROVED" && r.commit_id.as_deref() == Some(head_sha))
        .map(|(login, _)| login.to_string())
        .collect();
    Approvals {
        approvers,
        required,
    }
}

/// One issue event (`labeled`, `unlabeled`, …), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssueEvent {
    pub id: u64,
    pub event: String,
    #[serde(default)]
    pub actor: Option<Login>,
    #[serde(default)]
    pub label: Option<LabelName>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LabelName {
    pub name: String,
}

/// Who added `label` most recently, if it is still on the issue: replay the events in order; an
/// `unlabeled` clears it.
pub fn label_added_by(events: &[IssueEvent], label: &str) -> Option<String> {
    let mut sorted: Vec<&IssueEvent> = events.iter().collect();
    sorted.sort_by(|a, b| (a.created_at.as_deref(), a.id).cmp(&(b.created_at.as_deref(), b.id)));
    let mut by = None;
    for e in sorted {
        if e.label
            .as_ref()
            .is_none_or(|l| !l.name.eq_ignore_ascii_case(label))
        {
            continue;
        }
        match e.event.as_str() {
            "labeled" => by = e.actor.as_ref().map(|a| a.login.clone()),
            "unlabeled" => by = None,
            _ => {}
        }
    }
    by
}

/// Whether `login` is allowed to approve by `approvers` (policy entries: a user `alice` or a team
/// `org/team`). Returns the teams to ask GitHub about when no user entry matched.
pub fn approver_match<'a>(
    login: &str,
    approvers: &'a [String],
) -> Result<(), Vec<(&'a str, &'a str)>> {
    let mut teams = Vec::new();
    for a in approvers {
        match a.split_once('/') {
            Some((org, team)) => teams.push((org, team)),
            None if a.trim_start_matches('@').eq_ignore_ascii_case(login) => return Ok(()),
            None => {}
        }
    }
    Err(teams)
}

/// The pull-request port: reviews, label events, team membership.
pub trait PullRequests: Sync {
    fn list_reviews(&self, pr: u64) -> impl Future<Output = Result<Vec<Review>, Error>> + Send;
    fn list_issue_events(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Vec<IssueEvent>, Error>> + Send;
    /// Active membership of `login` in `org/team` (404 means no).
    fn is_team_member(
        &self,
        org: &str,
        team: &str,
        login: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl PullRequests for GithubClient {
    async fn list_reviews(&self, pr: u64) -> Result<Vec<Review>, Error> {
        self.get_all(&format!("{}/pulls/{pr}/reviews", self.repo_path()), None)
            .await
    }

    async fn list_issue_events(&self, number: u64) -> Result<Vec<IssueEvent>, Error> {
        self.get_all(
            &format!("{}/issues/{number}/events", self.repo_path()),
            None,
        )
        .await
    }

    async fn is_team_member(&self, org: &str, team: &str, login: &str) -> Result<bool, Error> {
        #[derive(Deserialize)]
        struct Membership {
            state: String,
        }
        let path = format!("/orgs/{org}/teams/{team}/memberships/{login}");
        match self.send::<Membership, ()>(Method::GET, &path, None).await {
            Ok(m) => Ok(m.state == "active"),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The override check: the user who added `label` to PR `number`, if that user is an approver.
pub async fn override_granted_by<P: PullRequests>(
    prs: &P,
    number: u64,
    label: &str,
    approvers: &[String],
) -> Result<Option<String>, Error> {
    let events = prs.list_issue_events(number).await?;
    let Some(login) = label_added_by(&events, label) else {
        return Ok(None);
    };
    match approver_match(&login, approvers) {
        Ok(()) => Ok(Some(login)),
        Err(teams) => {
            for (org, team) in teams {
                if prs.is_team_member(org, team, &login).await? {
                    return Ok(Some(login));
                }
            }
            Ok(None)
        }
    }
}

/// The reviews gate's data: approvals of the current head vs `required`.
pub async fn approvals<P: PullRequests>(
    prs: &P,
    pr: u64,
    head_sha: &str,
    required: u32,
) -> Result<Approvals, Error> {
    Ok(count_approvals(
        &prs.list_reviews(pr).await?,
        head_sha,
        required,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(id: u64, user: &str, state: &str, sha: &str, at: &str) -> Review {
        Review {
            id,
            user: Some(Login { login: user.into() }),
            state: state.into(),
            commit_id: Some(sha.into()),
            submitted_at: Some(at.into()),
        }
    }

    /// Only the latest deciding review per user counts, on the head SHA; comments do not withdraw.
    #[test]
    fn counts_latest_approvals_on_head() {
        let rs = vec![
            review(1, "alice", "APPROVED", "head", "2026-01-01T00:00:01Z"),
            review(2, "alice", "APPROVED", "head", "2026-01-01T00:00:02Z"),
            review(3, "bob", "APPROVED", "old", "2026-01-01T00:00:01Z"),
            review(4, "carol", "APPROVED", "head", "2026-01-01T00:00:01Z"),
            review(
                5,
                "carol",
                "CHANGES_REQUESTED",
                "head",
                "2026-01-01T00:00:05Z",
            ),
            review(6, "dave", "APPROVED", "head", "2026-01-01T00:00:01Z"),
            review(7, "dave", "DISMISSED", "head", "2026-01-01T00:00:03Z"),
            review(8, "erin", "APPROVED", "head", "2026-01-01T00:00:01Z"),
            review(9, "erin", "COMMENTED", "head", "2026-01-01T00:00:09Z"),
        ];
        let a = count_approvals(&rs, "head", 3);
        assert_eq!(a.approvers, ["alice", "erin"]);
        assert!(!a.is_met());
        assert!(count_approvals(&rs, "head", 2).is_met());
    }

    /// A later approval after a change request counts again.
    #[test]
    fn re_approval_counts() {
        let rs = vec![
            review(
                1,
                "bob",
                "CHANGES_REQUESTED",
                "head",
                "2026-01-01T00:00:01Z",
            ),
            review(2, "bob", "APPROVED", "head", "2026-01-01T00:00:02Z"),
        ];
        assert_eq!(count_approvals(&rs, "head", 1).approvers, ["bob"]);
    }

    fn ev(id: u64, event: &str, who: &str, label: &str) -> IssueEvent {
        IssueEvent {
            id,
            event: event.into(),
            actor: Some(Login { login: who.into() }),
            label: Some(LabelName { name: label.into() }),
            created_at: Some(format!("2026-01-01T00:00:{id:02}Z")),
        }
    }

    /// The label's latest adder wins; removing the label clears it; other labels are ignored.
    #[test]
    fn label_adder_replays_events() {
        let es = vec![
            ev(1, "labeled", "mallory", "ok"),
            ev(2, "labeled", "alice", "other"),
        ];
        assert_eq!(label_added_by(&es, "ok").as_deref(), Some("mallory"));
        let es = vec![
            ev(1, "labeled", "mallory", "ok"),
            ev(2, "unlabeled", "sec", "ok"),
        ];
        assert_eq!(label_added_by(&es, "ok"), None);
        let es = vec![
            ev(1, "labeled", "mallory", "ok"),
            ev(2, "unlabeled", "x", "ok"),
            ev(3, "labeled", "sec", "ok"),
        ];
        assert_eq!(label_added_by(&es, "ok").as_deref(), Some("sec"));
    }

    /// Users match directly; teams are returned for a membership query.
    #[test]
    fn approver_matching() {
        let approvers = vec!["org/security-team".to_string(), "@alice".to_string()];
        assert_eq!(approver_match("Alice", &approvers), Ok(()));
        assert_eq!(
            approver_match("bob", &approvers),
            Err(vec![("org", "security-team")])
        );
    }
}
