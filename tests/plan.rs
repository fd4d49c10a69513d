//! The planner on the bundled example, one case per kind of branch and event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use fm_deploy::plan::{Command, DeployPlan, PlanRequest, Trigger, plan};
use fm_deploy::policy::model::StrategyKind;
use fm_deploy::policy::{self, Policy};
use std::path::Path;

fn example() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml");
    policy::load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn req(branch: &str, trigger: Trigger) -> PlanRequest {
    PlanRequest {
        command: Command::Plan,
        trigger,
        branch: branch.into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        environment_override: None,
        image: Default::default(),
        dry_run: true,
    }
}

fn gate_names(p: &fm_deploy::plan::Plan) -> Vec<&str> {
    p.gates.iter().map(|g| g.name.as_str()).collect()
}

/// development: basic gates, direct deploy with smoke test, 1 review.
#[test]
fn development_push() {
    let p = plan(&req("development", Trigger::Push), &example()).unwrap();
    assert_eq!(p.environment.as_deref(), Some("development"));
    assert_eq!(p.tier.as_deref(), Some("basic"));
    assert_eq!(p.reviews_required, 1);
    assert_eq!(p.strategy(), Some(StrategyKind::Direct));
    assert_eq!(
        gate_names(&p),
        [
            "format",
            "lint",
            "types",
            "bandit",
            "dependencies",
            "safety",
            "secrets",
            "unit-tests"
        ]
    );
    insta::assert_snapshot!(p.render_text());
}

/// staging: enhanced gates plus the four post-deploy gates run against the staging URL.
#[test]
fn staging_push() {
    let p = plan(&req("staging", Trigger::Push), &example()).unwrap();
    assert_eq!(p.strategy(), Some(StrategyKind::Rolling));
    assert_eq!(p.reviews_required, 2);
    let post: Vec<_> = p
        .gates
        .iter()
        .filter(|g| {
            g.argv
                .iter()
                .any(|a| a.contains("https://staging.fm-llm-solver.com"))
        })
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(
        post,
        [
            "smoke-tests",
            "integration-deployed",
            "performance-deployed",
            "e2e-deployed"
        ]
    );
    assert_eq!(p.matrix.as_ref().map(|m| m.job_count), Some(2));
    insta::assert_snapshot!(p.render_text());
}

/// main: comprehensive gates, blue-green with four triggers and their worst-case detection.
#[test]
fn main_push() {
    let p = plan(&req("main", Trigger::Push), &example()).unwrap();
    assert_eq!(p.strategy(), Some(StrategyKind::BlueGreen));
    assert_eq!(p.gates.len(), 15);
    let DeployPlan::Planned(d) = &p.deploy else {
        panic!("main deploys")
    };
    let detect: Vec<(&str, u64)> = d
        .triggers
        .iter()
        .map(|t| (t.name.as_str(), t.worst_case_detection.as_secs()))
        .collect();
    assert_eq!(
        detect,
        [
            ("error-rate", 190),
            ("latency-p95", 250),
            ("health", 70),
            ("memory", 130)
        ]
    );
    assert!(
        d.pre_deploy
            .iter()
            .any(|s| s.contains("`staging` is healthy"))
    );
    let unit = p.gates.iter().find(|g| g.name == "unit-tests").unwrap();
    assert_eq!(unit.coverage_min.map(|r| r.0), Some(0.8));
    insta::assert_snapshot!(p.render_markdown());
}

/// hotfix/*: production, emergency — staging health is not required.
#[test]
fn hotfix_push() {
    let p = plan(&req("hotfix/security-patch", Trigger::Push), &example()).unwrap();
    assert_eq!(p.environment.as_deref(), Some("production"));
    let DeployPlan::Planned(d) = &p.deploy else {
        panic!("hotfix deploys")
    };
    assert!(d.emergency);
    assert!(
        d.pre_deploy
            .iter()
            .any(|s| s.contains("not required: emergency"))
    );
}

/// feature/*: gates only, with the reason shown.
#[test]
fn feature_push() {
    let p = plan(&req("feature/user-dashboard", Trigger::Push), &example()).unwrap();
    assert_eq!(p.environment, None);
    assert_eq!(p.tier.as_deref(), Some("basic"));
    assert!(matches!(&p.deploy, DeployPlan::Skipped { reason } if reason.contains("gates only")));
    insta::assert_snapshot!(p.render_text());
}

/// A fork PR into main: gates of main's tier, no deploy, no check runs.
#[test]
fn fork_pull_request() {
    let p = plan(
        &req(
            "main",
            Trigger::PullRequest {
                number: 7,
                fork: true,
                head_ref: "patch-1".into(),
            },
        ),
        &example(),
    )
    .unwrap();
    assert_eq!(p.tier.as_deref(), Some("comprehensive"));
    assert!(
        matches!(&p.deploy, DeployPlan::Skipped { reason } if reason.contains("forks never deploy"))
    );
    assert!(p.skipped.iter().any(|s| s.what == "check runs"));
    insta::assert_snapshot!(p.render_text());
}

/// A same-repo PR runs gates only as well.
#[test]
fn same_repo_pull_request() {
    let p = plan(
        &req(
            "development",
            Trigger::PullRequest {
                number: 8,
                fork: false,
                head_ref: "feature/x".into(),
            },
        ),
        &example(),
    )
    .unwrap();
    assert!(matches!(&p.deploy, DeployPlan::Skipped { reason } if reason.contains("gates only")));
    assert!(!p.skipped.iter().any(|s| s.what == "check runs"));
}

/// workflow_dispatch with an `environment` override to an environment open to all branches works…
#[test]
fn dispatch_with_environment_override() {
    let mut r = req("feature/x", Trigger::WorkflowDispatch);
    r.environment_override = Some("development".into());
    let p = plan(&r, &example()).unwrap();
    assert_eq!(p.environment.as_deref(), Some("development"));
    assert_eq!(p.strategy(), Some(StrategyKind::Direct));
}

/// …but not to production from an unprotected branch: refused with the reason.
#[test]
fn dispatch_override_to_protected_environment_refused() {
    let mut r = req("feature/x", Trigger::WorkflowDispatch);
    r.environment_override = Some("production".into());
    let p = plan(&r, &example()).unwrap();
    assert!(
        matches!(&p.deploy, DeployPlan::Skipped { reason } if reason.contains("protected branches only")),
        "{:?}",
        p.deploy
    );
}

/// A manual rollback of staging dispatched from `main` (a protected branch: a literal rule, which
/// `setup` protects) acts on staging; from an unprotected branch it is refused outright — never a
/// rollback of the branch's own environment in its place.
#[test]
fn manual_commands_act_on_the_override_or_on_nothing() {
    let mut r = req("main", Trigger::WorkflowDispatch);
    r.command = Command::Rollback;
    r.environment_override = Some("staging".into());
    let p = plan(&r, &example()).unwrap();
    assert_eq!(p.environment.as_deref(), Some("staging"));

    for command in [Command::Rollback, Command::Promote, Command::Cleanup] {
        let mut r = req("feature/x", Trigger::WorkflowDispatch);
        r.command = command;
        r.environment_override = Some("staging".into());
        let e = plan(&r, &example()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: environment override `staging` refused: branch `feature/x` does not deploy there and `staging` accepts protected branches only (the branches literal rules name); nothing was changed",
                command.as_str()
            )
        );
    }
}

/// An override naming no environment is an error, not a silent fallback.
#[test]
fn dispatch_override_unknown_environment() {
    let mut r = req("main", Trigger::WorkflowDispatch);
    r.environment_override = Some("prod".into());
    assert!(plan(&r, &example()).is_err());
}

/// A branch no rule matches runs nothing, and says why.
#[test]
fn unmatched_branch() {
    let p = plan(&req("release/1.0", Trigger::Push), &example()).unwrap();
    assert!(p.gates.is_empty());
    assert!(
        p.skipped
            .iter()
            .any(|s| s.why.contains("no branch rule matches"))
    );
}

/// The JSON report is valid JSON with the fields workflows read.
#[test]
fn plan_json() {
    let p = plan(&req("main", Trigger::Push), &example()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(v["environment"], "production");
    assert_eq!(v["deploy"]["kind"], "planned");
    assert_eq!(v["deploy"]["triggers"][0]["worst_case_detection"], "3m 10s");
}
