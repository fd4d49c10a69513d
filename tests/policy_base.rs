//! A pull request cannot weaken its own gates: the `gates` binary on `pull_request` events reads the
//! policy and the exceptions file from the base commit (the checkout's git history, else GitHub's
//! contents API through Prism and the fake, else exit 2), shows the PR's changes to them in the
//! `fm-deploy / decision` check run, and applies only exceptions on the base with a listed approver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_gates;
mod support_github;

use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::gates::runner::ProcessRunner;
use fm_deploy::verdict::Decision;
use std::path::{Path, PathBuf};
use support_gates::git;
use support_github::{TOKEN, Testbed};

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");
const POLICY_PATH: &str = ".github/fm-deploy.yml";
const EXCEPTIONS_PATH: &str = ".github/fm-deploy-exceptions.yml";
const PR: u64 = 2;

/// The strict policy: `check` passes only when `ok.txt` exists; `security` replays bandit's real
/// output (three high findings: needs approval).
fn policy(check: &str, with_security: bool) -> String {
    format!(
        r#"version: 1
app: {{name: web, image: ghcr.io/org/web}}
branches:
  master: {{tier: basic}}
tiers:
  basic: [{tier}]
gates:
  check: {{run: {check}, parser: exit-code}}
  security:
    run: [python3, -c, "import sys; sys.stdout.write(open('bandit.json').read()); sys.exit(1)"]
    parser: bandit
overrides:
  label: fm-deploy/approve
  approvers: [sec-lead]
  exceptions_file: {EXCEPTIONS_PATH}
"#,
        tier = if with_security {
            "check, security"
        } else {
            "check"
        },
    )
}

const STRICT: &str = "[test, -f, ok.txt]";
const WEAK: &str = "[\"true\"]";

/// Writes `files` (path, Some(text) or None to delete) and commits them; returns the commit SHA.
fn commit(dir: &Path, files: &[(&str, Option<&str>)]) -> String {
    for (p, text) in files {
        let path = dir.join(p);
        match text {
            Some(t) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, t).unwrap();
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "change"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A repository whose first commit is the base and second the PR head; returns (dir, base, head).
fn repo(
    base: &[(&str, Option<&str>)],
    head: &[(&str, Option<&str>)],
) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "master"]);
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bandit/findings.json"),
        dir.path().join("bandit.json"),
    )
    .unwrap();
    let b = commit(dir.path(), base);
    let h = commit(dir.path(), head);
    (dir, b, h)
}

/// The real `pull_request` `opened` fixture, pointed at these commits.
fn payload(dir: &Path, base: &str, head: &str) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events/pull_request.opened.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    v["pull_request"]["base"]["sha"] = base.into();
    v["pull_request"]["head"]["sha"] = head.into();
    assert_eq!(v["number"], PR);
    let p = dir.join("event.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    outputs: String,
    summary: String,
}

async fn gates(api: &str, ws: &Path, event: &Path, token: Option<&str>) -> Run {
    let scratch = tempfile::tempdir().unwrap();
    let outputs = scratch.path().join("outputs");
    let summary = scratch.path().join("summary");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", event)
        .env("GITHUB_WORKSPACE", ws)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_API_URL", api)
        .env("GITHUB_REPOSITORY", "octo/app")
        .env("GITHUB_RUN_ID", "4250")
        .env("GITHUB_JOB", "gates")
        .env("INPUT_COMMAND", "gates");
    if let Some(t) = token {
        cmd.env("INPUT_GITHUB-TOKEN", t);
    }
    let out = cmd.output().await.unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

impl Run {
    fn decision(&self) -> &str {
        self.outputs
            .lines()
            .find_map(|l| l.strip_prefix("decision="))
            .unwrap_or_else(|| panic!("no decision output:\n{}\n{}", self.stdout, self.stderr))
    }

    fn report(&self) -> serde_json::Value {
        // `report<<DELIM` … `DELIM` (multi-line output syntax) or `report=…`.
        let mut lines = self.outputs.lines();
        while let Some(l) = lines.next() {
            if let Some(v) = l.strip_prefix("report=") {
                return serde_json::from_str(v).unwrap();
            }
            if let Some(delim) = l.strip_prefix("report<<") {
                let body: Vec<&str> = lines.by_ref().take_while(|x| *x != delim).collect();
                return serde_json::from_str(&body.join("\n")).unwrap();
            }
        }
        panic!("no report output: {}", self.outputs)
    }

    fn explain(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn decision_check(tb: &Testbed) -> support_github::fake::CheckRun {
    let runs = tb.fake.state().check_runs.clone();
    runs.iter()
        .find(|r| r.name == "fm-deploy / decision")
        .cloned()
        .unwrap_or_else(|| panic!("no decision check run: {runs:?}"))
}

/// A PR that swaps its failing gate for `true` is judged by the base's gate (block), and the
/// decision check run shows the policy diff; a PR that only weakens the policy (its gates pass
/// either way) needs approval, which the approve label added by a listed approver grants — and the
/// same label added by anyone else does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weakened_policy_is_judged_by_the_base_and_needs_approval() {
    let tb = Testbed::start().await;
    let (dir, base, head) = repo(
        &[(POLICY_PATH, Some(&policy(STRICT, false)))],
        &[(POLICY_PATH, Some(&policy(WEAK, false)))],
    );
    let run = gates(
        &tb.url,
        dir.path(),
        &payload(dir.path(), &base, &head),
        Some(TOKEN),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.explain());
    assert_eq!(run.decision(), "block", "{}", run.explain());
    assert!(
        run.stdout
            .contains("read through the checkout's git history"),
        "{}",
        run.explain()
    );
    let d = decision_check(&tb);
    assert_eq!(d.conclusion.as_deref(), Some("failure"));
    assert_eq!(d.head_sha, head);
    let text = d.text.unwrap_or_default();
    assert!(
        text.contains("```diff")
            && text.contains("-  check: {run: [test, -f, ok.txt], parser: exit-code}")
            && text.contains("+  check: {run: [\"true\"], parser: exit-code}"),
        "{text}"
    );
    assert!(
        d.summary
            .unwrap_or_default()
            .contains("changes `.github/fm-deploy.yml`")
    );

    // The PR also adds ok.txt: the base's gate passes, the policy change alone needs approval.
    let head = commit(dir.path(), &[("ok.txt", Some("ok"))]);
    let event = payload(dir.path(), &base, &head);
    let run = gates(&tb.url, dir.path(), &event, Some(TOKEN)).await;
    assert_eq!(run.code, Some(1), "{}", run.explain());
    assert_eq!(run.decision(), "needs-approval", "{}", run.explain());
    assert!(run.summary.contains("### Policy"), "{}", run.summary);

    tb.fake.state().issue_events.insert(
        PR,
        vec![(
            "labeled".into(),
            "mallory".into(),
            "fm-deploy/approve".into(),
            "2026-11-27T10:00:00Z".into(),
        )],
    );
    let run = gates(&tb.url, dir.path(), &event, Some(TOKEN)).await;
    assert_eq!(run.decision(), "needs-approval", "{}", run.explain());

    tb.fake.state().issue_events.insert(
        PR,
        vec![(
            "labeled".into(),
            "sec-lead".into(),
            "fm-deploy/approve".into(),
            "2026-11-27T10:00:00Z".into(),
        )],
    );
    let run = gates(&tb.url, dir.path(), &event, Some(TOKEN)).await;
    assert_eq!(run.code, Some(0), "{}", run.explain());
    assert_eq!(run.decision(), "allow");
    let overrides = run.report()["gates"]["overrides"].clone();
    assert!(
        overrides.as_array().is_some_and(|o| o
            .iter()
            .any(|x| x["gate"] == "policy-change" && x["user"] == "sec-lead")),
        "{overrides}"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

/// A shallow checkout without the base commit reads the base policy through the contents API at
/// the base SHA (and is judged by it); with no token either, the run exits 2 naming what it tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_checkout_uses_the_contents_api_or_exits_2() {
    let tb = Testbed::start().await;
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "master"]);
    let head = commit(dir.path(), &[(POLICY_PATH, Some(&policy(WEAK, false)))]);
    let base = "5".repeat(40);
    tb.fake
        .state()
        .files
        .insert((base.clone(), POLICY_PATH.into()), policy(STRICT, false));
    let event = payload(dir.path(), &base, &head);

    let run = gates(&tb.url, dir.path(), &event, Some(TOKEN)).await;
    assert_eq!(run.code, Some(1), "{}", run.explain());
    assert_eq!(run.decision(), "block", "{}", run.explain());
    assert!(
        run.stdout.contains("read through GitHub's contents API"),
        "{}",
        run.explain()
    );
    let asked = tb.fake.count(
        &http::Method::GET,
        &format!("/repos/octo/app/contents/.github/fm-deploy.yml?ref={base}"),
    );
    assert_eq!(
        asked,
        1,
        "{:?}",
        tb.fake
            .requests()
            .iter()
            .map(|l| &l.path)
            .collect::<Vec<_>>()
    );
    assert!(
        decision_check(&tb)
            .text
            .unwrap_or_default()
            .contains("+  check: {run: [\"true\"], parser: exit-code}")
    );
    tb.assert_clean().await;

    let run = gates(&tb.url, dir.path(), &event, None).await;
    assert_eq!(run.code, Some(2), "{}", run.explain());
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains(&format!("git cat-file -e {base}^{{commit}}"))
            && all.contains("contents API was not tried")
            && all.contains("never used in its place"),
        "{all}"
    );
    assert!(!run.outputs.contains("decision=allow"), "{}", run.outputs);
    tb.stop().await;
}

/// The fingerprints of bandit's high findings in `ws`, as the gates compute them.
async fn high_fingerprints(ws: &Path) -> Vec<String> {
    let p = fm_deploy::policy::load_str(&policy(STRICT, true), Path::new("p.yml")).unwrap();
    let r = run_gates(
        &p,
        &p.tiers["basic"],
        &GateContext::new(ws),
        &ProcessRunner,
        &NoLabels,
    )
    .await;
    let g = r
        .verdict
        .gates
        .iter()
        .find(|g| g.gate == "security")
        .unwrap();
    assert_eq!(g.decision, Decision::NeedsApproval);
    g.findings
        .iter()
        .filter(|f| f.action == fm_deploy::policy::model::Action::NeedsApproval)
        .map(|f| f.finding.fingerprint.clone())
        .collect()
}

fn exceptions(fps: &[String], approver: &str) -> String {
    let mut y = String::from("exceptions:\n");
    for fp in fps {
        y.push_str(&format!(
            "  - fingerprint: {fp}\n    reason: tracked upstream\n    approver: {approver}\n    expires: 2099-12-31\n"
        ));
    }
    y
}

/// Exceptions count only from the base commit and only with an approver in
/// `overrides.approvers`: one added by the PR does not apply; one on the base naming an unlisted
/// approver does not apply and is reported; one on the base with a listed approver applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_apply_from_the_base_with_a_listed_approver() {
    let tb = Testbed::start().await;
    let strict = policy(STRICT, true);
    let (probe, _, _) = repo(&[("ok.txt", Some("ok"))], &[]);
    let fps = high_fingerprints(probe.path()).await;
    assert_eq!(fps.len(), 3);

    // Added only in the PR: not applied (and the change itself needs approval).
    let (dir, base, head) = repo(
        &[(POLICY_PATH, Some(&strict)), ("ok.txt", Some("ok"))],
        &[(EXCEPTIONS_PATH, Some(&exceptions(&fps, "sec-lead")))],
    );
    let run = gates(
        &tb.url,
        dir.path(),
        &payload(dir.path(), &base, &head),
        Some(TOKEN),
    )
    .await;
    assert_eq!(run.decision(), "needs-approval", "{}", run.explain());
    assert_eq!(run.report()["gates"]["overrides"], serde_json::json!([]));
    assert!(
        decision_check(&tb)
            .text
            .unwrap_or_default()
            .contains("+++ b/.github/fm-deploy-exceptions.yml")
    );

    // On the base, approver not listed: not applied, reported in the summary.
    let (dir, base, head) = repo(
        &[
            (POLICY_PATH, Some(&strict)),
            ("ok.txt", Some("ok")),
            (EXCEPTIONS_PATH, Some(&exceptions(&fps, "mallory"))),
        ],
        &[],
    );
    let run = gates(
        &tb.url,
        dir.path(),
        &payload(dir.path(), &base, &head),
        Some(TOKEN),
    )
    .await;
    assert_eq!(run.decision(), "needs-approval", "{}", run.explain());
    assert!(
        run.summary.contains(
            "names approver `mallory`, who is not among `overrides.approvers`; not applied"
        ),
        "{}",
        run.summary
    );

    // On the base, listed approver, unchanged by the PR: applied, allow.
    let (dir, base, head) = repo(
        &[
            (POLICY_PATH, Some(&strict)),
            ("ok.txt", Some("ok")),
            (EXCEPTIONS_PATH, Some(&exceptions(&fps, "sec-lead"))),
        ],
        &[],
    );
    let run = gates(
        &tb.url,
        dir.path(),
        &payload(dir.path(), &base, &head),
        Some(TOKEN),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.explain());
    assert_eq!(run.decision(), "allow");
    let overrides = run.report()["gates"]["overrides"].clone();
    assert_eq!(overrides.as_array().map(Vec::len), Some(3), "{overrides}");
    tb.assert_clean().await;
    tb.stop().await;
}
