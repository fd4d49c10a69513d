//! The bundled example policy (examples/fm-deploy.yml), loaded by the real loader, driving the
//! real tools on the planted sample project for the development branch (basic tier). Tools the
//! example names but this machine lacks (pip-audit, safety) fail closed with an install hint.

mod support_gates;

use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::policy;
use fm_deploy::verdict::Decision;
use support_gates::*;

/// development → basic tier of the example: each gate's outcome and the decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_policy_basic_tier_on_planted_project() {
    let bin = python_tools();
    let mut policy = match policy::load_file(&repo_root().join("examples/fm-deploy.yml")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    // Offline: the install step (pip from PyPI) is proven by gates_project_env with a local wheel.
    policy.install.clear();
    let rule = policy.branch_rule("development").expect("development rule");
    let tier = &policy.tiers[&rule.tier];
    let dir = project("sample-project");
    // What the matrix's one cell (ubuntu-latest, Python 3.10) uploads and the gates job downloads.
    let cell = "reports/tests-ubuntu-latest-py3.10";
    let st = std::process::Command::new(bin.join("pytest"))
        .args([
            "tests/unit",
            "-q",
            "-p",
            "no:cacheprovider",
            "--cov=certsolver",
        ])
        .arg(format!("--junitxml={cell}/junit.xml"))
        .arg(format!("--cov-report=xml:{cell}/coverage.xml"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("run pytest: {e}"));
    assert!(dir.path().join(cell).join("junit.xml").is_file(), "{st:?}");
    let mut ctx = GateContext::new(dir.path());
    ctx.environment = rule.environment.clone();
    // Only pip-audit and safety must be missing: keep a PATH without them.
    let runner = WithPath(format!("{}:/usr/bin:/bin", bin.display()));
    let r = run_gates(&policy, tier, &ctx, &runner, &NoLabels).await;

    let run = |g: &str| {
        r.runs
            .iter()
            .find(|x| x.gate == g)
            .unwrap_or_else(|| panic!("{g} did not run"))
            .clone()
    };
    let verdict = |g: &str| {
        r.verdict
            .gates
            .iter()
            .find(|x| x.gate == g)
            .expect("gate verdict")
            .clone()
    };
    assert_eq!(r.runs.len(), tier.gates.len());
    assert_eq!(run("format").outcome.findings().len(), 9);
    assert_eq!(
        verdict("format").decision,
        Decision::Block,
        "the example maps medium to block"
    );
    assert_eq!(run("lint").outcome.findings().len(), 17);
    assert_eq!(verdict("lint").decision, Decision::Block);
    assert_eq!(run("types").outcome.findings().len(), 7);
    assert_eq!(
        verdict("types").decision,
        Decision::Block,
        "the example maps high to block"
    );
    assert_eq!(
        run("bandit").outcome.findings().len(),
        14,
        "bandit -r certsolver: the 6 asserts under tests/ are out of scope"
    );
    assert_eq!(verdict("bandit").decision, Decision::NeedsApproval);
    assert_eq!(run("secrets").outcome.findings().len(), 6);
    assert_eq!(verdict("secrets").decision, Decision::Block);
    for g in ["dependencies", "safety"] {
        match run(g).outcome {
            GateOutcome::FailedToStart {
                missing: true,
                message,
                ..
            } => {
                assert!(
                    message.contains("was not found on PATH") && message.contains("pip install"),
                    "{message}"
                )
            }
            other => panic!("{g}: {other:?}"),
        }
        assert_eq!(verdict(g).decision, Decision::Block);
    }
    // The cell's `pytest tests/unit`: 1 failed and 1 errored test are critical, the skip is info,
    // each named by its cell.
    let unit = run("unit-tests");
    let sev: Vec<_> = unit
        .outcome
        .findings()
        .iter()
        .map(|f| f.severity.as_str())
        .collect();
    assert_eq!(
        sev.iter().filter(|s| **s == "critical").count(),
        2,
        "{:?}",
        unit.outcome
    );
    assert_eq!(verdict("unit-tests").decision, Decision::Block);
    assert!(
        unit.metrics.coverage.is_some(),
        "coverage read from the cell's coverage.xml"
    );
    assert!(
        unit.outcome
            .findings()
            .iter()
            .all(|f| f.message.starts_with("[ubuntu-latest-py3.10] ")),
        "{:?}",
        unit.outcome
    );
    assert_eq!(r.verdict.decision, Decision::Block);
}

/// Every file under `dir` except `.git`, with its size: what the gates may not change.
fn listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    fn walk(root: &std::path::Path, d: &std::path::Path, out: &mut Vec<(String, u64)>) {
        let entries = std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let meta = e
                .metadata()
                .unwrap_or_else(|x| panic!("{}: {x}", p.display()));
            out.push((rel, if meta.is_dir() { 0 } else { meta.len() }));
            if meta.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Gates never see each other's artifacts: the comprehensive tier (parallel gates, one
/// workspace) run three times on the planted project gives the same findings every time, and the
/// checkout is byte-for-byte listed the same and `git status --ignored` clean afterwards (no
/// `.mypy_cache`, `__pycache__`, `.pytest_cache`, `.coverage` or report written into it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comprehensive_tier_is_repeatable_and_leaves_the_checkout_alone() {
    let bin = python_tools();
    let mut policy = policy::load_file(&repo_root().join("examples/fm-deploy.yml"))
        .unwrap_or_else(|e| panic!("{e}"));
    policy.install.clear();
    let tier = &policy.tiers["comprehensive"];
    let dir = project("sample-project");
    let before = listing(dir.path());
    let runner = WithPath(format!("{}:/usr/bin:/bin", bin.display()));
    let mut seen: Option<Vec<(String, Vec<String>)>> = None;
    for round in 0..3 {
        let ctx = GateContext::new(dir.path());
        let r = run_gates(&policy, tier, &ctx, &runner, &NoLabels).await;
        let mut findings: Vec<(String, Vec<String>)> = r
            .runs
            .iter()
            .map(|g| {
                let mut f: Vec<String> = g
                    .outcome
                    .findings()
                    .iter()
                    .map(|f| format!("{} {} {:?}", f.fingerprint, f.message, f.path))
                    .collect();
                f.sort();
                (g.gate.clone(), f)
            })
            .collect();
        findings.sort();
        let secrets = &findings
            .iter()
            .find(|(g, _)| g == "secrets")
            .expect("secrets")
            .1;
        assert_eq!(secrets.len(), 6, "round {round}: {secrets:#?}");
        assert!(
            secrets
                .iter()
                .all(|f| !f.contains("CACHEDIR.TAG") && !f.contains("cache")),
            "round {round}: {secrets:#?}"
        );
        match &seen {
            None => seen = Some(findings),
            Some(first) => assert_eq!(first, &findings, "round {round} differs from round 0"),
        }
        assert_eq!(
            listing(dir.path()),
            before,
            "round {round} changed the checkout"
        );
        let st = std::process::Command::new("git")
            .args([
                "status",
                "--porcelain",
                "--ignored",
                "--untracked-files=all",
            ])
            .current_dir(dir.path())
            .output()
            .expect("git status");
        assert_eq!(String::from_utf8_lossy(&st.stdout), "", "round {round}");
    }
}
