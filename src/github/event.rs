//! The parts of a `pull_request` event payload (`GITHUB_EVENT_PATH`) that GitHub reporting needs:
//! PR number, head SHA, base branch, labels, and whether the head lives in a fork. Pure.

use serde::Deserialize;

/// What reporting needs to know about the pull request that triggered the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub number: u64,
    pub head_sha: String,
    pub base_ref: String,
    pub labels: Vec<String>,
    /// The head is in another repository (or a deleted fork): the token is read-only, so check runs
    /// and deployments will be refused.
    pub from_fork: bool,
}

#[derive(Deserialize)]
struct Payload {
    pull_request: Option<RawPr>,
}

#[derive(Deserialize)]
struct RawPr {
    number: u64,
    head: RawEnd,
    base: RawEnd,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
struct RawEnd {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<RawRepo>,
}

#[derive(Deserialize)]
struct RawRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct RawLabel {
    name: String,
}

/// Reads a webhook payload. `Ok(None)` when it is not a pull-request event (push, dispatch).
pub fn pull_request_event(payload: &[u8]) -> Result<Option<PullRequestEvent>, serde_json::Error> {
    let p: Payload = serde_json::from_slice(payload)?;
    Ok(p.pull_request.map(|pr| {
        let base_repo = pr.base.repo.as_ref().map(|r| r.full_name.as_str());
        let head_repo = pr.head.repo.as_ref().map(|r| r.full_name.as_str());
        PullRequestEvent {
            number: pr.number,
            from_fork: head_repo.is_none() || head_repo != base_repo,
            head_sha: pr.head.sha,
            base_ref: pr.base.git_ref,
            labels: pr.labels.into_iter().map(|l| l.name).collect(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head in another repository, or a deleted one, is a fork.
    #[test]
    fn detects_forks() {
        let same = br#"{"pull_request":{"number":2,"head":{"ref":"f","sha":"h","repo":{"full_name":"a/b"}},"base":{"ref":"main","sha":"b","repo":{"full_name":"a/b"}}}}"#;
        let fork = br#"{"pull_request":{"number":2,"head":{"ref":"f","sha":"h","repo":{"full_name":"x/b"}},"base":{"ref":"main","sha":"b","repo":{"full_name":"a/b"}}}}"#;
        let gone = br#"{"pull_request":{"number":2,"head":{"ref":"f","sha":"h","repo":null},"base":{"ref":"main","sha":"b","repo":{"full_name":"a/b"}}}}"#;
        assert_eq!(
            pull_request_event(same).ok().flatten().map(|e| e.from_fork),
            Some(false)
        );
        assert_eq!(
            pull_request_event(fork).ok().flatten().map(|e| e.from_fork),
            Some(true)
        );
        assert_eq!(
            pull_request_event(gone).ok().flatten().map(|e| e.from_fork),
            Some(true)
        );
        assert_eq!(
            pull_request_event(br#"{"ref":"refs/heads/main"}"#)
                .ok()
                .flatten(),
            None
        );
    }
}
