//! On pull requests the policy and the exceptions file come from the base commit, never from the
//! PR's checkout: a PR cannot weaken the gates that judge it.
//!
//! Owns: where the base copies are read from (the checkout's history through `git`, else GitHub's
//! contents API, else a refusal), comparing them with the PR's copies, and the pure rule "policy
//! origin → extra requirement". Must not touch: parsing the policy (`load`), the verdict's other
//! rules, GitHub's API (the adapter in `github::contents` implements [`BaseFiles`]).

use crate::gates::runner::{ExecOutcome, ExitStatus, ToolCommand, ToolRunner};
use serde::Serialize;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Longest diff kept per file (characters); the check run cuts the whole text again at its limit.
const DIFF_MAX_CHARS: usize = 20_000;

/// How the base copies were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// `git show <sha>:<path>` in the checkout.
    Git,
    /// `GET /repos/{owner}/{repo}/contents/{path}?ref=<sha>`.
    ContentsApi,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Git => "the checkout's git history",
            Via::ContentsApi => "GitHub's contents API",
        })
    }
}

/// One file's base and PR copies (`None`: the commit has no such file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copies {
    /// Repository-relative, `/`-separated.
    pub path: String,
    pub base: Option<String>,
    pub head: Option<String>,
}

/// A file the PR changes, with its unified diff (base → PR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub diff: String,
}

/// Where the policy in effect came from on a pull request, and what the PR changes in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyOrigin {
    pub base_sha: String,
    pub via: Via,
    /// The policy file in the base commit, at the checkout's policy path.
    pub policy_path: String,
    /// `false`: the base has no policy (the PR adds it), so the PR's policy is in effect.
    pub base_has_policy: bool,
    pub changes: Vec<FileChange>,
}

/// What the policy origin adds to the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// Why approval is needed, one line each.
    pub reasons: Vec<String>,
    /// A verified approval label can grant it; `false` when no trusted approver list exists yet
    /// (the base has no policy), so only getting the policy onto the base branch clears it.
    pub grantable: bool,
}

/// The changed files among `copies`, each with its diff. Pure.
pub fn changes(copies: &[Copies]) -> Vec<FileChange> {
    copies
        .iter()
        .filter(|c| c.base != c.head)
        .map(|c| FileChange {
            path: c.path.clone(),
            diff: unified_diff(&c.path, c.base.as_deref(), c.head.as_deref()),
        })
        .collect()
}

/// `--- a/path` / `+++ b/path` unified diff, `/dev/null` for a missing side. Pure.
pub fn unified_diff(path: &str, base: Option<&str>, head: Option<&str>) -> String {
    let a = if base.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    let b = if head.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".to_string()
    };
    let diff = similar::TextDiff::from_lines(base.unwrap_or(""), head.unwrap_or(""))
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    crate::report::checks::truncate_chars(&diff, DIFF_MAX_CHARS)
}

/// The extra requirement of a policy origin: none when the PR leaves both files alone and the base
/// has a policy; otherwise needs-approval, grantable by label only when the base has a policy. Pure.
pub fn requirement(o: &PolicyOrigin) -> Option<Requirement> {
    let mut reasons: Vec<String> = Vec::new();
    if !o.base_has_policy {
        reasons.push(format!(
            "the base commit {} has no policy file `{}`: this pull request's own policy is in effect, \
             so the decision needs approval until the policy is on the base branch",
            short(&o.base_sha),
            o.policy_path
        ));
    }
    for c in o
        .changes
        .iter()
        .filter(|c| o.base_has_policy || c.path != o.policy_path)
    {
        reasons.push(format!(
            "this pull request changes `{}` (the base commit's copy is in effect)",
            c.path
        ));
    }
    (!reasons.is_empty()).then_some(Requirement {
        reasons,
        grantable: o.base_has_policy,
    })
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Why the base copies could not be read. Reads after "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error(
        "read the policy of the pull request's base commit {sha}: tried {tried}; the pull request's \
         own copy is never used in its place"
    )]
    Unavailable { sha: String, tried: String },
    #[error("read `{path}` at the pull request's base commit {sha} through {via}: {reason}")]
    Read {
        path: String,
        sha: String,
        via: Via,
        reason: String,
    },
    #[error(
        "read the policy of the pull request's base commit: `{sha}` is not a commit SHA (from the event payload's pull_request.base.sha)"
    )]
    BadSha { sha: String },
    #[error(
        "read `{path}` at the pull request's base commit: the path must be relative and inside the workspace"
    )]
    BadPath { path: String },
}

/// Reads files at a commit: the checkout's git history, or GitHub's contents API.
pub trait BaseFiles: Sync {
    /// Whether this source can read `sha` at all; `Err` carries why not, for the refusal message.
    fn has_commit(&self, sha: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// The file at `sha`, `None` when the commit has no such file.
    fn read_at(
        &self,
        sha: &str,
        path: &str,
    ) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

/// The source the base copies are read from, picked once per run.
pub enum Chosen<'a, G, A> {
    Git(&'a G),
    Api(&'a A),
}

impl<G: BaseFiles, A: BaseFiles> Chosen<'_, G, A> {
    pub fn via(&self) -> Via {
        match self {
            Chosen::Git(_) => Via::Git,
            Chosen::Api(_) => Via::ContentsApi,
        }
    }

    /// The file at `sha`; a failure names the path, the commit and the source.
    pub async fn read(&self, sha: &str, path: &str) -> Result<Option<String>, BaseError> {
        let r = match self {
            Chosen::Git(g) => g.read_at(sha, path).await,
            Chosen::Api(a) => a.read_at(sha, path).await,
        };
        r.map_err(|reason| BaseError::Read {
            path: path.to_string(),
            sha: sha.to_string(),
            via: self.via(),
            reason,
        })
    }
}

/// The checkout's history when it has `sha`, else the contents API when there is a client, else a
/// refusal naming what was tried. A shallow checkout never falls back to the PR's files.
pub async fn choose<'a, G: BaseFiles, A: BaseFiles>(
    git: &'a G,
    api: Option<&'a A>,
    sha: &str,
) -> Result<Chosen<'a, G, A>, BaseError> {
    if !is_commit_sha(sha) {
        return Err(BaseError::BadSha {
            sha: sha.to_string(),
        });
    }
    let git_why = match git.has_commit(sha).await {
        Ok(()) => return Ok(Chosen::Git(git)),
        Err(why) => why,
    };
    let tried = format!("`git cat-file -e {sha}^{{commit}}` in the checkout ({git_why})");
    match api {
        Some(a) => match a.has_commit(sha).await {
            Ok(()) => Ok(Chosen::Api(a)),
            Err(why) => Err(BaseError::Unavailable {
                sha: sha.to_string(),
                tried: format!("{tried} and GitHub's contents API ({why})"),
            }),
        },
        None => Err(BaseError::Unavailable {
            sha: sha.to_string(),
            tried: format!(
                "{tried}; GitHub's contents API was not tried (no `github-token` or not in GitHub Actions)"
            ),
        }),
    }
}

/// 40 (SHA-1) or 64 (SHA-256) hex digits: never an option or a revision expression to git.
pub fn is_commit_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `path` (relative to `workspace`, or absolute inside it) as a repository path: `/`-separated,
/// no `.`/`..` components. The workspace is the repository's root in GitHub Actions.
pub fn repo_path(workspace: &Path, path: &Path) -> Result<String, BaseError> {
    let bad = || BaseError::BadPath {
        path: path.display().to_string(),
    };
    let rel: PathBuf = if path.is_absolute() {
        path.strip_prefix(workspace)
            .map_err(|_| bad())?
            .to_path_buf()
    } else {
        path.to_path_buf()
    };
    let mut parts: Vec<String> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(bad)?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(bad()),
        }
    }
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(parts.join("/"))
}

/// The checkout's git history, through `git` argv (no shell) run in the workspace.
pub struct GitFiles<'a, R> {
    pub workspace: &'a Path,
    pub runner: &'a R,
}

const GIT_TIMEOUT: Duration = Duration::from_secs(60);
const GIT_OUTPUT_CAP: u64 = 16 * 1024 * 1024;

impl<R: ToolRunner> GitFiles<'_, R> {
    async fn git(&self, args: &[&str]) -> Result<(i32, Vec<u8>), String> {
        let mut argv = vec!["git".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let cmd = ToolCommand {
            argv,
            cwd: self.workspace.to_path_buf(),
            env: Default::default(),
            timeout: GIT_TIMEOUT,
            output_cap: GIT_OUTPUT_CAP,
        };
        match self.runner.run(&cmd).await {
            ExecOutcome::Exited {
                status: ExitStatus::Code(code),
                stdout,
                stderr,
                ..
            } => {
                if stdout.truncated() {
                    return Err(format!(
                        "`git {}` printed more than {GIT_OUTPUT_CAP} bytes",
                        args.join(" ")
                    ));
                }
                if code == 0 {
                    Ok((0, stdout.bytes))
                } else {
                    Err(format!("exit code {code}: {}", stderr.tail(300)))
                }
            }
            ExecOutcome::Exited { status, .. } => Err(format!("`git` ended with {status}")),
            ExecOutcome::FailedToStart { reason, .. } => Err(reason),
            ExecOutcome::TimedOut { after, .. } => Err(format!(
                "`git` timed out after {}",
                humantime::format_duration(after)
            )),
        }
    }
}

impl<R: ToolRunner> BaseFiles for GitFiles<'_, R> {
    async fn has_commit(&self, sha: &str) -> Result<(), String> {
        self.git(&["cat-file", "-e", &format!("{sha}^{{commit}}")])
            .await
            .map(|_| ())
    }

    async fn read_at(&self, sha: &str, path: &str) -> Result<Option<String>, String> {
        let (_, listed) = self
            .git(&["ls-tree", "--full-tree", "-z", sha, "--", path])
            .await?;
        if listed.is_empty() {
            return Ok(None);
        }
        let (_, bytes) = self.git(&["show", &format!("{sha}:{path}")]).await?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("`{path}` is not UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(base_has_policy: bool, changes: Vec<FileChange>) -> PolicyOrigin {
        PolicyOrigin {
            base_sha: "a".repeat(40),
            via: Via::Git,
            policy_path: ".github/fm-deploy.yml".into(),
            base_has_policy,
            changes,
        }
    }

    /// Unchanged files add nothing; a changed one needs approval a label can grant; a base without
    /// a policy needs approval no label can grant.
    #[test]
    fn requirement_follows_the_origin() {
        assert_eq!(requirement(&origin(true, vec![])), None);
        let c = changes(&[
            Copies {
                path: "p.yml".into(),
                base: Some("gates:\n  lint: [flake8]\n".into()),
                head: Some("gates:\n  lint: [\"true\"]\n".into()),
            },
            Copies {
                path: "same.yml".into(),
                base: Some("x".into()),
                head: Some("x".into()),
            },
        ]);
        assert_eq!(c.len(), 1);
        assert!(
            c[0].diff.contains("--- a/p.yml\n+++ b/p.yml\n"),
            "{}",
            c[0].diff
        );
        assert!(
            c[0].diff
                .contains("-  lint: [flake8]\n+  lint: [\"true\"]\n")
        );
        let r = requirement(&origin(true, c)).unwrap();
        assert!(r.grantable && r.reasons[0].contains("changes `p.yml`"));
        let r = requirement(&origin(false, vec![])).unwrap();
        assert!(!r.grantable && r.reasons[0].contains("has no policy file"));
    }

    /// A file only one side has diffs against /dev/null.
    #[test]
    fn added_and_removed_files_diff_against_dev_null() {
        let d = unified_diff("e.yml", None, Some("exceptions: []\n"));
        assert!(d.starts_with("--- /dev/null\n+++ b/e.yml\n"), "{d}");
        let d = unified_diff("e.yml", Some("exceptions: []\n"), None);
        assert!(
            d.contains("+++ /dev/null") && d.contains("-exceptions: []"),
            "{d}"
        );
    }

    /// Only hex SHAs reach git; paths stay inside the workspace.
    #[test]
    fn shas_and_paths_are_checked() {
        assert!(is_commit_sha(&"0f".repeat(20)));
        for bad in ["--output=/tmp/x", "HEAD", "abc", &"g".repeat(40)] {
            assert!(!is_commit_sha(bad), "{bad}");
        }
        let ws = Path::new("/ws");
        assert_eq!(
            repo_path(ws, Path::new("./.github/fm-deploy.yml")).unwrap(),
            ".github/fm-deploy.yml"
        );
        assert_eq!(repo_path(ws, Path::new("/ws/a/b.yml")).unwrap(), "a/b.yml");
        for bad in ["../x.yml", "/etc/passwd", "."] {
            assert!(repo_path(ws, Path::new(bad)).is_err(), "{bad}");
        }
    }
}
