//! The action's image, run exactly as GitHub's runner runs a container action (see
//! `support_image`): `plan` through the file commands, every offline gate of the example policy on
//! the planted sample project inside the image, a pull request classified against its diff by the
//! image's git on a workspace owned by another user, and SIGTERM while a gate runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_gates;
mod support_github;
mod support_image;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support_gates::git;
use support_image::{Job, copy_tree};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn payload(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/events").join(name)).unwrap())
        .unwrap()
}

/// A push payload for `branch` at `sha`.
fn push(branch: &str, sha: &str) -> Value {
    let mut p = payload("push.branch.json");
    p["ref"] = Value::String(format!("refs/heads/{branch}"));
    p["after"] = Value::String(sha.to_string());
    p
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The runner's workspace belongs to the runner's user (uid 1001), not to the container's root:
/// git refuses such a repository unless the image trusts it.
fn chown_runner(dir: &Path) {
    let st = std::process::Command::new("chown")
        .args(["-R", "1001:1001"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `plan` for `main` inside the image: exit 0, the outputs (tier, strategy, environment, matrix,
/// report) written through /github/file_commands, the plan in the step summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_outputs_and_summary_through_file_commands() {
    let mut job = Job::new("push", &push("main", &"a".repeat(40)));
    std::fs::create_dir_all(job.workspace.join(".github")).unwrap();
    std::fs::copy(
        root().join("examples/fm-deploy.yml"),
        job.workspace.join(".github/fm-deploy.yml"),
    )
    .unwrap();
    job.input("command", "plan")
        .input("github-token", "ghs_image_test_token_0123456789")
        .input("dry-run", "false");
    let out = job.run().await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let o = job.outputs();
    assert_eq!(
        o.get("tier").map(String::as_str),
        Some("comprehensive"),
        "{o:?}"
    );
    assert_eq!(o.get("strategy").map(String::as_str), Some("blue-green"));
    assert_eq!(o.get("environment").map(String::as_str), Some("production"));
    let matrix: Value = serde_json::from_str(&o["matrix"]).unwrap();
    assert!(matrix.is_object(), "{matrix}");
    let report: Value = serde_json::from_str(&o["report"]).unwrap();
    assert_eq!(report["branch"], "main", "{report}");
    let summary = job.summary();
    assert!(summary.contains("blue-green"), "{summary}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::add-mask::ghs_image_test_token_0123456789"),
        "the token is masked before anything else is printed"
    );
}

/// The example policy's basic tier on the planted sample project, inside the image: every gate
/// whose tool works offline runs the image's own pinned tool and finds its planted problem; the
/// tools that need a vulnerability database (pip-audit, safety) are present (they do not "fail to
/// start"), and so is git (no note about the diff); nothing is downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_offline_gate_finds_its_planted_problem_inside_the_image() {
    let mut job = Job::new("push", &push("development", &"b".repeat(40)));
    copy_tree(&root().join("examples/sample-project"), &job.workspace);
    std::fs::create_dir_all(job.workspace.join(".github")).unwrap();
    std::fs::copy(
        root().join("examples/fm-deploy.yml"),
        job.workspace.join(".github/fm-deploy.yml"),
    )
    .unwrap();
    // `unit-tests` reads what the matrix job uploaded and the gates job downloaded: the pytest
    // JUnit and Cobertura reports captured from the real tools on the sample project.
    let cell = job.workspace.join("reports/tests-ubuntu-latest-py3.10");
    std::fs::create_dir_all(&cell).unwrap();
    for (from, to) in [
        ("pytest/findings.junit.xml", "junit.xml"),
        ("coverage/findings.cobertura.xml", "coverage.xml"),
    ] {
        std::fs::copy(root().join("tests/fixtures").join(from), cell.join(to)).unwrap();
    }
    // detect-secrets scans tracked files: the checkout is a repository.
    git(&job.workspace, &["init", "-q"]);
    git(&job.workspace, &["add", "-A"]);
    git(&job.workspace, &["commit", "-q", "-m", "initial"]);
    chown_runner(&job.workspace);
    job.input("command", "gates");
    let out = job.run().await;
    assert_eq!(out.status.code(), Some(1), "blocked: {}", text(&out));
    let report: Value = serde_json::from_str(&job.outputs()["report"]).unwrap();
    let gates = report["gates"]["gates"].as_array().unwrap();
    let gate = |name: &str| {
        gates
            .iter()
            .find(|g| g["gate"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    for name in ["format", "lint", "types", "bandit", "secrets", "unit-tests"] {
        let g = gate(name);
        assert_eq!(
            g["failed"],
            false,
            "{name} ran cleanly: {g}\n{}",
            text(&out)
        );
        let counted: u64 = g["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(counted > 0, "{name} found its planted problem: {g}");
        assert_ne!(g["decision"], "allow", "{g}");
    }
    for name in ["dependencies", "safety"] {
        let reasons = gate(name)["reasons"].to_string();
        assert!(
            !reasons.contains("not found on PATH") && !reasons.contains("could not start"),
            "{name} is in the image: {reasons}"
        );
    }
    assert_eq!(gates.len(), 8, "{report}");
}

const DIFF_POLICY: &str = r#"version: 1
app: {name: web, image: ghcr.io/org/web}
branches:
  master: {tier: basic, diff: new-in-diff}
tiers:
  basic: [lint]
gates:
  lint:
    run: [flake8, --format=json, .]
    parser: flake8-json
    block_over: 0
"#;

/// A pull request against `master` inside the image: the image's git diffs `origin/master...head`
/// in a workspace owned by the runner's user, and only the two findings the pull request adds
/// count (the sample project's 17 pre-existing ones do not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_findings_are_classified_against_the_diff() {
    let tmp_payload = payload("pull_request.opened.json");
    let mut job = Job::new("pull_request", &tmp_payload);
    let ws = job.workspace.clone();
    copy_tree(&root().join("examples/sample-project"), &ws);
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(ws.join(".github/fm-deploy.yml"), DIFF_POLICY).unwrap();
    // As in tests/gates_diff_overrides.rs: the base ends client.py with a clean statement, so the
    // line the pull request adds carries exactly F401 and E402.
    let client = ws.join("certsolver/client.py");
    let mut s = std::fs::read_to_string(&client).unwrap();
    s.push_str("\n\nCLEAN = 1\n");
    std::fs::write(&client, s).unwrap();
    git(&ws, &["init", "-q"]);
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "base"]);
    let base = git(&ws, &["rev-parse", "HEAD"]);
    git(&ws, &["update-ref", "refs/remotes/origin/master", &base]);
    let mut s = std::fs::read_to_string(&client).unwrap();
    s.push_str("import json\n");
    std::fs::write(&client, s).unwrap();
    git(&ws, &["commit", "-q", "-am", "change"]);
    let head = git(&ws, &["rev-parse", "HEAD"]);
    chown_runner(&ws);
    let mut p = tmp_payload;
    p["pull_request"]["base"]["ref"] = Value::String("master".into());
    // The policy is read from the base commit (in the checkout), never the pull request's copy.
    p["pull_request"]["base"]["sha"] = Value::String(base.clone());
    p["pull_request"]["head"]["sha"] = Value::String(head.clone());
    std::fs::write(
        job.dir.path().join("workflow/event.json"),
        serde_json::to_vec(&p).unwrap(),
    )
    .unwrap();
    job.input("command", "gates")
        .env("GITHUB_REF", "refs/pull/2/merge")
        .env("GITHUB_BASE_REF", "master")
        .env("GITHUB_HEAD_REF", "changes")
        .env("GITHUB_SHA", &head);
    let out = job.run().await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_str(&job.outputs()["report"]).unwrap();
    assert_eq!(report["gates"]["notes"], serde_json::json!([]), "{report}");
    let lint = &report["gates"]["gates"][0];
    let counted: u64 = lint["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2, "F401 and E402 on the added line only: {lint}");
}

const SLOW_POLICY: &str = r#"version: 1
app: {name: web, image: ghcr.io/org/web}
branches:
  master: {tier: basic}
tiers:
  basic: [slow, quick]
gates:
  slow:
    run: [python3, -c, "import pathlib, time; pathlib.Path('started').write_text('1'); time.sleep(600)"]
    parser: exit-code
    timeout: 15m
  quick: {run: ["true"], parser: exit-code}
"#;

/// SIGTERM to the container (a cancelled job) while a gate's tool runs: fm-deploy, behind tini,
/// stops the tool, concludes the started check runs `cancelled`, exits 2 — long before the tool
/// would have ended (it sleeps for ten minutes; the wait below gives up after one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_gates_concludes_check_runs_cancelled() {
    let tb = support_github::Testbed::start().await;
    let sha = "c".repeat(40);
    let mut job = Job::new("push", &push("master", &sha));
    std::fs::create_dir_all(job.workspace.join(".github")).unwrap();
    std::fs::write(job.workspace.join(".github/fm-deploy.yml"), SLOW_POLICY).unwrap();
    job.input("command", "gates")
        .input("github-token", "ghs_image_cancel_token_0123456789")
        .env("GITHUB_API_URL", &tb.url);
    let mut child = job
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let started = job.workspace.join("started").exists();
        let posted = tb
            .fake
            .state()
            .check_runs
            .iter()
            .any(|r| r.name == "fm-deploy / slow" && r.status == "in_progress");
        if started && posted {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the container ended before the gate started: {st}");
        }
        assert!(Instant::now() < deadline, "the slow gate never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kill = tokio::process::Command::new("podman")
        .args(["kill", "--signal", "TERM", &job.name])
        .output()
        .await
        .unwrap();
    assert!(kill.status.success(), "{}", text(&kill));
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the container stops after SIGTERM instead of waiting for its tool")
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gates: cancelled"), "{}", text(&out));
    let runs = tb.fake.state().check_runs.clone();
    let slow = runs
        .iter()
        .find(|r| r.name == "fm-deploy / slow")
        .unwrap_or_else(|| panic!("{runs:?}"));
    assert_eq!(slow.status, "completed", "{slow:?}");
    assert_eq!(slow.conclusion.as_deref(), Some("cancelled"), "{slow:?}");
    assert!(
        runs.iter().all(|r| r.status == "completed"),
        "no check run left in progress: {runs:?}"
    );
    assert!(
        !runs.iter().any(|r| r.name == "fm-deploy / decision"),
        "a cancelled run posts no decision"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

const SCANNERS_POLICY: &str = r#"version: 1
app: {name: web, image: ghcr.io/org/web}
branches:
  master: {tier: basic}
tiers:
  basic: [container-scan, leaks]
gates:
  container-scan: {run: [trivy, image, --format, json, "{image}"], parser: trivy}
  leaks: {run: [gitleaks, git, --report-format, json, --report-path, leaks.json], parser: gitleaks, report: leaks.json}
"#;

/// In an image built without the scanners (SCANNERS=none, as here), the trivy and gitleaks gates
/// fail closed, and the message says the tool is not in this image; the run blocks. An image that
/// has them (the published one) runs them instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_missing_from_the_image_fail_closed_saying_so() {
    let has = tokio::process::Command::new("podman")
        .args(["run", "--rm", "--entrypoint", "sh"])
        .arg(support_image::image())
        .args(["-c", "command -v trivy || command -v gitleaks"])
        .output()
        .await
        .unwrap();
    let mut job = Job::new("push", &push("master", &"e".repeat(40)));
    std::fs::create_dir_all(job.workspace.join(".github")).unwrap();
    std::fs::write(job.workspace.join(".github/fm-deploy.yml"), SCANNERS_POLICY).unwrap();
    job.input("command", "gates");
    let out = job.run().await;
    let report: Value = serde_json::from_str(&job.outputs()["report"]).unwrap();
    let gates = report["gates"]["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 2, "{report}");
    if has.status.success() {
        for g in gates {
            assert!(
                !g["reasons"].to_string().contains("not found on PATH"),
                "{g}"
            );
        }
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for g in gates {
        let reasons = g["reasons"].to_string();
        assert_eq!(g["failed"], true, "{g}");
        assert_eq!(g["decision"], "block", "{g}");
        assert!(
            reasons.contains("was not found on PATH") && reasons.contains("not in this image"),
            "{reasons}"
        );
    }
}
