//! Report-only gates: the matrix jobs' JUnit and Cobertura files (as the example workflows upload
//! and download them, `reports/tests-<cell>/…`) reach the decision, merged across cells.

mod support_gates;

use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::gates::runner::ProcessRunner;
use fm_deploy::policy::model::{MatrixSpec, ParserKind, Policy};
use fm_deploy::report::checks::{CheckConclusion, GateCheck, build_report};
use fm_deploy::verdict::Decision;
use std::path::Path;
use support_gates::*;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures").join(rel))
        .unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// A Cobertura report of one file whose lines 1..=4 have these hits.
fn coverage(hits: [u32; 4]) -> String {
    let lines: String = hits
        .iter()
        .enumerate()
        .map(|(i, h)| format!(r#"<line number="{}" hits="{h}"/>"#, i + 1))
        .collect();
    format!(
        r#"<?xml version="1.0" ?><coverage version="7.6" line-rate="0.5"><sources><source>/work</source></sources><packages><package name="certsolver" line-rate="0.5"><classes><class name="solver.py" filename="certsolver/solver.py" line-rate="0.5"><methods/><lines>{lines}</lines></class></classes></package></packages></coverage>"#
    )
}

fn put(ws: &Path, rel: &str, bytes: &[u8]) {
    let p = ws.join(rel);
    std::fs::create_dir_all(p.parent().unwrap_or(ws)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
}

/// Tier `enhanced` over a 2 OS × 1 Python matrix, with one report-only test gate.
fn matrix_policy() -> Policy {
    let mut g = gate("unit-tests", &[], ParserKind::Junit);
    g.report = Some("reports/tests-*/junit.xml".into());
    g.coverage = Some("reports/tests-*/coverage.xml".into());
    let mut t = tier("enhanced", &["unit-tests"], Some(0.7));
    t.matrix = Some("enhanced".into());
    let mut p = policy(vec![g], vec![t], vec![], 2);
    p.matrices.insert(
        "enhanced".into(),
        MatrixSpec {
            name: "enhanced".into(),
            os: vec!["ubuntu-latest".into(), "windows-latest".into()],
            python: vec!["3.10".into()],
            services: vec![],
            include: vec![],
            exclude: vec![],
        },
    );
    p
}

/// The matrix policy's decision on the reports in `ws`.
async fn decide(ws: &Path) -> fm_deploy::gates::run::GatesReport {
    let p = matrix_policy();
    run_gates(
        &p,
        &p.tiers["enhanced"],
        &GateContext::new(ws),
        &ProcessRunner,
        &NoLabels,
    )
    .await
}

/// Results of both cells merge: counts add up, the failures name their cell, annotations carry
/// the failure message and traceback, and coverage is the union of the covered lines (75 %, where
/// an average of the two rates would say 50 % and fail the 70 % minimum).
#[tokio::test]
async fn cells_merge_into_one_decision() {
    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    put(
        ws.path(),
        "reports/tests-ubuntu-latest-py3.10/junit.xml",
        &fixture("pytest/findings.junit.xml"),
    );
    put(
        ws.path(),
        "reports/tests-windows-latest-py3.10/junit.xml",
        &fixture("pytest/clean.junit.xml"),
    );
    put(
        ws.path(),
        "reports/tests-ubuntu-latest-py3.10/coverage.xml",
        coverage([1, 1, 0, 0]).as_bytes(),
    );
    put(
        ws.path(),
        "reports/tests-windows-latest-py3.10/coverage.xml",
        coverage([0, 0, 2, 0]).as_bytes(),
    );
    let r = decide(ws.path()).await;
    let run = &r.runs[0];
    let tests = run
        .metrics
        .tests
        .unwrap_or_else(|| panic!("{:?}", run.outcome));
    assert_eq!(
        (tests.tests, tests.failures, tests.errors, tests.skipped),
        (15, 1, 1, 1)
    );
    assert_eq!(run.metrics.coverage, Some(0.75));
    let findings = run.outcome.findings();
    assert_eq!(findings.len(), 3, "{findings:#?}");
    assert!(
        findings
            .iter()
            .all(|f| f.message.starts_with("[ubuntu-latest-py3.10] ")),
        "{findings:#?}"
    );
    let verdict = &r.verdict.gates[0];
    assert_eq!(verdict.decision, Decision::Block);
    assert!(
        !verdict.reasons.iter().any(|x| x.contains("coverage")),
        "75 % passes the 70 % minimum: {:?}",
        verdict.reasons
    );

    let report = build_report(
        &GateCheck {
            name: "unit-tests".into(),
            conclusion: CheckConclusion::Failure,
            title: "t".into(),
            summary_markdown: String::new(),
            text_markdown: None,
            findings: findings.to_vec(),
            annotation_budget: 50,
        },
        &[],
    );
    let failed = report
        .annotations
        .iter()
        .find(|a| a.message.contains("test_classify_expired_is_critical"))
        .unwrap_or_else(|| panic!("{:#?}", report.annotations));
    assert_eq!(
        (failed.path.as_str(), failed.start_line),
        ("tests/test_solver.py", 36)
    );
    let details = failed.raw_details.as_deref().unwrap_or_default();
    assert!(details.contains("- critical\n  + expired"), "{details}");
    assert!(
        details.contains("E       AssertionError: assert 'expired' == 'critical'"),
        "{details}"
    );
    assert!(
        details.ends_with("tests/test_solver.py:36: AssertionError"),
        "{details}"
    );
}

/// A cell of the matrix that uploaded nothing fails the gate closed, naming the cell and the
/// file it should have uploaded; so does a cell whose report is cut short.
#[tokio::test]
async fn a_missing_or_broken_cell_fails_closed() {
    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    put(
        ws.path(),
        "reports/tests-ubuntu-latest-py3.10/junit.xml",
        &fixture("pytest/clean.junit.xml"),
    );
    put(
        ws.path(),
        "reports/tests-ubuntu-latest-py3.10/coverage.xml",
        coverage([1, 1, 1, 0]).as_bytes(),
    );
    let r = decide(ws.path()).await;
    match &r.runs[0].outcome {
        GateOutcome::Unparseable { message, .. } => assert!(
            message.contains(
                "`windows-latest-py3.10` (no reports/tests-windows-latest-py3.10/junit.xml)"
            ),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.verdict.decision, Decision::Block);

    let clean = fixture("pytest/clean.junit.xml");
    put(
        ws.path(),
        "reports/tests-windows-latest-py3.10/junit.xml",
        &clean[..clean.len() / 2],
    );
    put(
        ws.path(),
        "reports/tests-windows-latest-py3.10/coverage.xml",
        coverage([1, 1, 1, 0]).as_bytes(),
    );
    let r = decide(ws.path()).await;
    match &r.runs[0].outcome {
        GateOutcome::Unparseable { message, .. } => assert!(
            message.starts_with("[windows-latest-py3.10] report file") && message.contains("junit"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.verdict.decision, Decision::Block);
}
