//! The gates against the real Python tools (pinned, installed by scripts/install-python-tools.sh)
//! on the repository's sample projects: exact findings per tool and the decision per tier.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly"
)]

mod support_gates;

use chrono::NaiveDate;
use fm_deploy::gates::finding::Severity;
use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, GatesReport, NoLabels, PullRequestRef, run_gates};
use fm_deploy::gates::runner::ProcessRunner;
use fm_deploy::policy::model::*;
use fm_deploy::report::gates_summary::{render_markdown, render_text};
use fm_deploy::verdict::{Decision, OverrideUse};
use std::collections::BTreeMap;
use std::path::Path;
use support_gates::*;

/// The policy the guide describes, with the gates this machine can run for real.
fn guide_policy(bin: &Path) -> Policy {
    let path = path_with(bin);
    let app_python = format!(
        "--python={}",
        bin.parent()
            .unwrap()
            .with_file_name(format!(
                "{}-app",
                bin.parent().unwrap().file_name().unwrap().to_string_lossy()
            ))
            .join("bin/python")
            .display()
    );
    let mut gates = vec![
        {
            let mut g = gate(
                "format",
                &["black", "--check", "--diff", "."],
                ParserKind::Black,
            );
            g.block_over = Some(0);
            g
        },
        {
            let mut g = gate(
                "lint",
                &["flake8", "--format=json", "."],
                ParserKind::Flake8Json,
            );
            g.block_over = Some(0);
            g
        },
        {
            let mut g = gate(
                "types",
                &["mypy", "--output", "json", "."],
                ParserKind::MypyJson,
            );
            g.block_over = Some(0);
            g
        },
        gate(
            "security",
            &["bandit", "-r", ".", "-f", "json", "-x", "./reports"],
            ParserKind::Bandit,
        ),
        gate(
            "secrets",
            &["detect-secrets", "scan"],
            ParserKind::DetectSecrets,
        ),
        {
            let mut g = gate(
                "unit-tests",
                &[
                    "python",
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "--junitxml=reports/junit.xml",
                    "--cov",
                    "--cov-report=xml:reports/coverage.xml",
                ],
                ParserKind::Junit,
            );
            g.report = Some("reports/junit.xml".into());
            g.coverage = Some("reports/coverage.xml".into());
            g
        },
        {
            let mut g = gate(
                "licenses",
                &["pip-licenses", &app_python, "--format=json"],
                ParserKind::PipLicenses,
            );
            g.licenses = Some(LicensePolicy {
                deny: vec![
                    "GPL-3.0".into(),
                    "GNU General Public License v3 (GPLv3)".into(),
                ],
                allow: [
                    "MIT License",
                    "MIT",
                    "BSD License",
                    "BSD-3-Clause",
                    "Apache Software License",
                ]
                .map(String::from)
                .to_vec(),
            });
            g
        },
    ];
    for g in &mut gates {
        g.env.insert("PATH".into(), path.clone());
        g.env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        g.env.insert("MYPY_CACHE_DIR".into(), "/dev/null".into());
    }
    let basic = [
        "format",
        "lint",
        "types",
        "security",
        "secrets",
        "unit-tests",
    ];
    let enhanced: Vec<&str> = basic.iter().copied().chain(["licenses"]).collect();
    policy(
        gates,
        vec![
            tier("basic", &basic, None),
            tier("enhanced", &enhanced, None),
            tier("comprehensive", &enhanced, Some(0.8)),
        ],
        vec![
            environment("development", None),
            environment("staging", None),
            environment("production", Some(0.8)),
        ],
        4,
    )
}

fn ctx(dir: &Path, env: &str) -> GateContext {
    GateContext {
        workspace: dir.to_path_buf(),
        phase: GatePhase::PreDeploy,
        environment: Some(env.into()),
        pull_request: None,
        diff_scope: DiffScope::All,
        deploy_url: None,
        image: None,
        today: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        exceptions_from: Default::default(),
        policy_origin: None,
    }
}

fn by_severity(r: &GatesReport, gate: &str) -> BTreeMap<Severity, usize> {
    let run = r
        .runs
        .iter()
        .find(|x| x.gate == gate)
        .unwrap_or_else(|| panic!("no run {gate}"));
    let mut m = BTreeMap::new();
    for f in run.outcome.findings() {
        *m.entry(f.severity).or_default() += 1;
    }
    m
}

fn decision(r: &GatesReport, gate: &str) -> Decision {
    r.verdict
        .gates
        .iter()
        .find(|g| g.gate == gate)
        .unwrap()
        .decision
}

fn all_parsed(r: &GatesReport) {
    for run in &r.runs {
        assert!(
            run.outcome.parsed_cleanly(),
            "{}: {:?}",
            run.gate,
            run.outcome
        );
    }
}

/// The planted project: every tool reports exactly its planted findings, and every tier blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_project_real_tools() {
    use Severity::*;
    let bin = python_tools();
    let p = guide_policy(&bin);
    let dir = project("sample-project");
    let runner = ProcessRunner;

    // development → basic
    let r = run_gates(
        &p,
        &p.tiers["basic"],
        &ctx(dir.path(), "development"),
        &runner,
        &NoLabels,
    )
    .await;
    all_parsed(&r);
    assert_eq!(by_severity(&r, "format"), BTreeMap::from([(Medium, 9)]));
    assert_eq!(
        by_severity(&r, "lint"),
        BTreeMap::from([(Low, 14), (Medium, 3)])
    );
    assert_eq!(by_severity(&r, "types"), BTreeMap::from([(High, 7)]));
    assert_eq!(
        by_severity(&r, "security"),
        BTreeMap::from([(Low, 11), (Medium, 6), (High, 3)])
    );
    assert_eq!(by_severity(&r, "secrets"), BTreeMap::from([(Critical, 6)]));
    assert_eq!(
        by_severity(&r, "unit-tests"),
        BTreeMap::from([(Info, 1), (Critical, 2)])
    );
    let unit = r.runs.iter().find(|x| x.gate == "unit-tests").unwrap();
    assert_eq!(
        unit.metrics
            .tests
            .map(|t| (t.tests, t.failures, t.errors, t.skipped)),
        Some((6, 1, 1, 1))
    );
    assert_eq!(unit.metrics.coverage, Some(0.2764));
    assert!(
        matches!(&r.runs[0].outcome, GateOutcome::Findings { findings } if findings[0].path.as_deref() == Some("certsolver/__init__.py"))
    );
    let gates: BTreeMap<&str, Decision> = r
        .verdict
        .gates
        .iter()
        .map(|g| (g.gate.as_str(), g.decision))
        .collect();
    assert_eq!(
        gates,
        BTreeMap::from([
            ("format", Decision::Block),
            ("lint", Decision::Block),
            ("types", Decision::Block),
            ("security", Decision::NeedsApproval),
            ("secrets", Decision::Block),
            ("unit-tests", Decision::Block),
        ])
    );
    assert_eq!(r.verdict.decision, Decision::Block);
    let md = render_markdown(&r);
    assert!(
        md.contains("## ❌ Gates: block") && md.contains("6 secret(s) detected"),
        "{md}"
    );

    // staging → enhanced: the licence allow list asks approval for certifi (MPL 2.0).
    let r = run_gates(
        &p,
        &p.tiers["enhanced"],
        &ctx(dir.path(), "staging"),
        &runner,
        &NoLabels,
    )
    .await;
    all_parsed(&r);
    assert_eq!(by_severity(&r, "licenses"), BTreeMap::from([(High, 1)]));
    assert_eq!(decision(&r, "licenses"), Decision::NeedsApproval);
    assert_eq!(r.verdict.decision, Decision::Block);

    // main → comprehensive (production): coverage 27.64 % is below 80 % on top of the rest.
    let r = run_gates(
        &p,
        &p.tiers["comprehensive"],
        &ctx(dir.path(), "production"),
        &runner,
        &NoLabels,
    )
    .await;
    all_parsed(&r);
    let unit = r
        .verdict
        .gates
        .iter()
        .find(|g| g.gate == "unit-tests")
        .unwrap();
    assert!(
        unit.reasons
            .iter()
            .any(|x| x == "coverage 27.64% is below the minimum 80%"),
        "{:?}",
        unit.reasons
    );
    assert_eq!(r.verdict.decision, Decision::Block);
}

/// The fixed project: development allows; staging and main need approval for the MPL licence,
/// which a label added by a security-team member grants on a pull request (and is listed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_project_real_tools() {
    let bin = python_tools();
    let mut p = guide_policy(&bin);
    let dir = project("sample-project-clean");
    let runner = ProcessRunner;

    let r = run_gates(
        &p,
        &p.tiers["basic"],
        &ctx(dir.path(), "development"),
        &runner,
        &NoLabels,
    )
    .await;
    all_parsed(&r);
    for g in ["format", "lint", "types", "security", "secrets"] {
        assert_eq!(
            r.runs.iter().find(|x| x.gate == g).unwrap().outcome,
            GateOutcome::Passed,
            "{g}"
        );
    }
    assert_eq!(r.verdict.decision, Decision::Allow, "{}", render_text(&r));

    let r = run_gates(
        &p,
        &p.tiers["comprehensive"],
        &ctx(dir.path(), "production"),
        &runner,
        &NoLabels,
    )
    .await;
    all_parsed(&r);
    let unit = r.runs.iter().find(|x| x.gate == "unit-tests").unwrap();
    assert_eq!(unit.metrics.coverage, Some(0.8191));
    assert_eq!(
        r.verdict.decision,
        Decision::NeedsApproval,
        "{}",
        render_text(&r)
    );

    p.overrides = Some(OverrideSpec {
        label: Some("fm-deploy/approve-high".into()),
        approvers: vec!["org/security-team".into()],
        exceptions_file: None,
    });
    commit_change(dir.path(), "README.md", "docs");
    let mut c = ctx(dir.path(), "staging");
    c.pull_request = Some(PullRequestRef {
        number: 12,
        base: "HEAD~1".into(),
        head: "HEAD".into(),
    });
    c.diff_scope = DiffScope::NewInDiff;
    let mut labels = FakeLabels::default();
    labels
        .added_by
        .insert((12, "fm-deploy/approve-high".into()), "carol".into());
    labels
        .teams
        .insert("org/security-team".into(), vec!["carol".into()]);
    let r = run_gates(&p, &p.tiers["enhanced"], &c, &runner, &labels).await;
    assert_eq!(r.verdict.decision, Decision::Allow, "{}", render_text(&r));
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert!(
        matches!(&r.verdict.overrides[..], [OverrideUse::Label { user, gate, .. }] if user == "carol" && gate == "licenses")
    );
    assert!(render_markdown(&r).contains("added by carol"));
}
