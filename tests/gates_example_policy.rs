//! The bundled example policy (examples/fm-deploy.yml), loaded by the real loader, driving the
//! real tools on the planted sample project for the development branch (basic tier). Tools the
//! example names but this machine lacks (pip-audit, safety) fail closed with an install hint.

mod support_gates;

use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::gates::runner::{ExecOutcome, ProcessRunner, ToolCommand, ToolRunner};
use fm_deploy::policy;
use fm_deploy::verdict::Decision;
use std::future::Future;
use support_gates::*;

/// The real process runner with the tools venv first on PATH (the container image has the tools
/// on its PATH; the test process does not).
struct WithPath(String);

impl ToolRunner for WithPath {
    fn run(&self, cmd: &ToolCommand) -> impl Future<Output = ExecOutcome> + Send {
        let mut cmd = cmd.clone();
        cmd.env
            .entry("PATH".into())
            .or_insert_with(|| self.0.clone());
        async move { ProcessRunner.run(&cmd).await }
    }
}

/// development → basic tier of the example: each gate's outcome and the decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_policy_basic_tier_on_planted_project() {
    let bin = python_tools();
    let policy = match policy::load_file(&repo_root().join("examples/fm-deploy.yml")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let rule = policy.branch_rule("development").expect("development rule");
    let tier = &policy.tiers[&rule.tier];
    let dir = project("sample-project");
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
    // `pytest tests/unit`: the sample project has no such folder; pytest exits 4 → crash.
    assert!(
        matches!(run("unit-tests").outcome, GateOutcome::Crashed { .. }),
        "{:?}",
        run("unit-tests").outcome
    );
    assert_eq!(r.verdict.decision, Decision::Block);
}
