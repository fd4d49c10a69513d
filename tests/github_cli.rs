//! The `fm-deploy gates` binary inside "Actions" talking to GitHub through Prism (GitHub's official
//! OpenAPI description, proxy mode, `--errors`) in front of the stateful fake: one check run per
//! gate, annotations, the decision run, outputs and exit code — the whole wiring, not the library.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_github;

use std::path::{Path, PathBuf};
use support_github::{READ_ONLY_TOKEN, Testbed};

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const POLICY: &str = r#"version: 1
app: {name: web, image: ghcr.io/org/web}
branches:
  master: {tier: basic}
tiers:
  basic: [lint, noop]
gates:
  # The real flake8 output recorded in the fixtures, replayed with flake8's exit code 1.
  lint:
    run: [python3, -c, "import sys; sys.stdout.write(open('lint.txt').read()); sys.exit(1)"]
    parser: flake8
    block_over: 0
  noop: {run: ["true"], parser: exit-code}
"#;

/// A push run: `fm-deploy / lint` fails with one annotation per finding, `fm-deploy / noop`
/// succeeds, `fm-deploy / decision` fails; `decision=block`, exit 1; Prism saw no request GitHub
/// would reject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_post_check_runs_through_prism() {
    let tb = Testbed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(ws.join(".github/fm-deploy.yml"), POLICY).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/flake8/findings.txt"),
        ws.join("lint.txt"),
    )
    .unwrap();
    let findings = std::fs::read_to_string(ws.join("lint.txt"))
        .unwrap()
        .lines()
        .count();
    let payload = root().join("tests/fixtures/events/push.branch.json");
    let sha: String = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(&payload).unwrap(),
    )
    .unwrap()["after"]
        .as_str()
        .unwrap()
        .to_string();
    let outputs = dir.path().join("outputs");
    let summary = dir.path().join("summary");

    let out = tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_EVENT_PATH", &payload)
        .env("GITHUB_WORKSPACE", &ws)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_API_URL", &tb.url)
        .env("GITHUB_REPOSITORY", "octocat/hello-world")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_JOB", "pipeline")
        .env("INPUT_COMMAND", "gates")
        .env("INPUT_GITHUB-TOKEN", "ghs_cli_test_token_0123456789")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    assert!(outputs.contains("decision=block"), "{outputs}");

    let runs = tb.fake.state().check_runs.clone();
    let by = |name: &str| {
        runs.iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {runs:?}"))
    };
    let lint = by("fm-deploy / lint");
    assert_eq!(lint.head_sha, sha);
    assert_eq!(lint.status, "completed");
    assert_eq!(lint.conclusion.as_deref(), Some("failure"));
    assert_eq!(
        lint.annotations.len(),
        findings,
        "every finding annotated once"
    );
    assert_eq!(lint.external_id, "fm-deploy:4242:pipeline:lint");
    assert_eq!(
        by("fm-deploy / noop").conclusion.as_deref(),
        Some("success")
    );
    let decision = by("fm-deploy / decision");
    assert_eq!(decision.conclusion.as_deref(), Some("failure"));
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("Gates: block")
    );
    assert!(
        !stdout.contains("ghs_cli_test_token_0123456789")
            || stdout.contains("::add-mask::ghs_cli_test_token_0123456789")
    );
    tb.assert_clean().await;
    tb.stop().await;
}

async fn run_gates(
    tb: &Testbed,
    ws: &Path,
    event: &str,
    payload: &Path,
    token: &str,
) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", event)
        .env("GITHUB_EVENT_PATH", payload)
        .env("GITHUB_WORKSPACE", ws)
        .env("GITHUB_API_URL", &tb.url)
        .env("GITHUB_REPOSITORY", "octocat/hello-world")
        .env("GITHUB_RUN_ID", "4243")
        .env("GITHUB_JOB", "gates")
        .env("INPUT_COMMAND", "gates")
        .env("INPUT_GITHUB-TOKEN", token)
        .output()
        .await
        .unwrap()
}

/// A fork pull request's read-only token: check-run creation gets 403, the run goes on and reports
/// the most severe findings as workflow-command annotations (at most 10 errors + 10 warnings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_pull_request_falls_back_to_annotations() {
    let tb = Testbed::start().await;
    tb.fake
        .state()
        .read_only_tokens
        .push(READ_ONLY_TOKEN.into());
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    let payload = root().join("tests/fixtures/events/derived/pull_request.opened.fork.json");
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&payload).unwrap()).unwrap();
    let base_ref = base["pull_request"]["base"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(
        ws.join(".github/fm-deploy.yml"),
        POLICY.replace("  master:", &format!("  {base_ref}:")),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/fixtures/flake8/findings.txt"),
        ws.join("lint.txt"),
    )
    .unwrap();

    let out = run_gates(&tb, &ws, "pull_request", &payload, READ_ONLY_TOKEN).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tb.fake.state().check_runs.is_empty(),
        "nothing was created with a read-only token"
    );
    let annotations = stdout
        .lines()
        .filter(|l| l.starts_with("::error ") || l.starts_with("::warning "))
        .count();
    assert!(
        (1..=20).contains(&annotations),
        "{annotations} annotations:\n{stdout}"
    );
    assert!(
        stdout.contains("::error file=") || stdout.contains("::warning file="),
        "{stdout}"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

/// `setup` from a workflow_dispatch run: the example policy's branch and environment protection
/// written through Prism, then a second run that writes nothing; `dry-run` writes nothing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_command_applies_then_is_idempotent() {
    let tb = Testbed::start().await;
    for team in ["qa-team", "senior-developers", "devops"] {
        tb.fake.add_team("org", team);
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_path_buf();
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::copy(
        root().join("examples/fm-deploy.yml"),
        ws.join(".github/fm-deploy.yml"),
    )
    .unwrap();
    let payload = root().join("tests/fixtures/events/workflow_dispatch.json");
    let setup = |dry_run: &'static str| {
        let ws = ws.clone();
        let payload = payload.clone();
        let url = tb.url.clone();
        async move {
            tokio::process::Command::new(BIN)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_EVENT_NAME", "workflow_dispatch")
                .env("GITHUB_EVENT_PATH", &payload)
                .env("GITHUB_REF", "refs/heads/main")
                .env("GITHUB_WORKSPACE", &ws)
                .env("GITHUB_API_URL", &url)
                .env("GITHUB_REPOSITORY", "org/fm-llm-solver")
                .env("GITHUB_RUN_ID", "4244")
                .env("INPUT_COMMAND", "setup")
                .env("INPUT_DRY-RUN", dry_run)
                .env("INPUT_GITHUB-TOKEN", support_github::TOKEN)
                .output()
                .await
                .unwrap()
        }
    };
    let dry = setup("true").await;
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    assert!(
        tb.fake.writes().is_empty(),
        "dry run wrote: {:?}",
        tb.fake.writes()
    );
    assert!(String::from_utf8_lossy(&dry.stdout).contains("required reviews: 0 → 3"));

    let first = setup("false").await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let written = tb.fake.writes().len();
    assert_eq!(
        written,
        6,
        "3 branch protections, main's signatures, staging and production: {:?}",
        tb.fake.writes()
    );

    let second = setup("false").await;
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(
        tb.fake.writes().len(),
        written,
        "a second run writes nothing"
    );
    tb.assert_clean().await;
    tb.stop().await;
}
