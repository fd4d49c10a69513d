//! Performance budgets with a real measurement: examples/perf/perf_probe.py starts the sample
//! service, measures it and writes fm-deploy's perf JSON, which the gate reads as its report.

mod support_gates;

use chrono::NaiveDate;
use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::gates::runner::ProcessRunner;
use fm_deploy::policy::model::*;
use fm_deploy::verdict::Decision;
use std::time::Duration;
use support_gates::*;

fn perf_gate(name: &str, bin: &std::path::Path, budgets: PerfBudgets) -> GateSpec {
    let probe = repo_root().join("examples/perf/perf_probe.py");
    let out = format!("reports/{name}.json");
    let mut g = gate(
        name,
        &[
            "python",
            &probe.display().to_string(),
            "--project",
            ".",
            "--out",
            &out,
            "--requests",
            "20",
        ],
        ParserKind::Perf,
    );
    g.report = Some(out.into());
    g.budgets = Some(budgets);
    g.env.insert("PATH".into(), path_with(bin));
    g.env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    g
}

/// Within the guide's budgets the gate allows; a budget no machine can meet blocks, naming the metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_against_real_measurements() {
    let bin = python_tools();
    let dir = project("sample-project-clean");
    let guide = PerfBudgets {
        page_load: None,
        api: Some(Duration::from_secs(1)),
        certificate_generation: Some(Duration::from_secs(60)),
        error_rate: Some(Ratio(0.001)),
    };
    let impossible = PerfBudgets {
        api: Some(Duration::from_nanos(1)),
        ..guide.clone()
    };
    let unmeasured = PerfBudgets {
        page_load: Some(Duration::from_secs(3)),
        ..guide.clone()
    };
    let p = policy(
        vec![
            perf_gate("perf-guide", &bin, guide),
            perf_gate("perf-impossible", &bin, impossible),
            perf_gate("perf-page-load", &bin, unmeasured),
        ],
        vec![tier(
            "enhanced",
            &["perf-guide", "perf-impossible", "perf-page-load"],
            None,
        )],
        vec![],
        1,
    );
    let ctx = GateContext {
        workspace: dir.path().to_path_buf(),
        phase: GatePhase::PreDeploy,
        environment: None,
        pull_request: None,
        diff_scope: DiffScope::All,
        deploy_url: None,
        image: None,
        today: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        exceptions_from: Default::default(),
        policy_origin: None,
    };
    let r = run_gates(&p, &p.tiers["enhanced"], &ctx, &ProcessRunner, &NoLabels).await;
    for run in &r.runs {
        assert_eq!(run.outcome, GateOutcome::Passed, "{}", run.gate);
        let perf = run.metrics.perf.unwrap();
        assert!(perf.api_ms.is_some() && perf.certificate_generation_ms.is_some());
    }
    let g = |n: &str| {
        r.verdict
            .gates
            .iter()
            .find(|g| g.gate == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        g("perf-guide").decision,
        Decision::Allow,
        "{:?}",
        g("perf-guide").reasons
    );
    assert_eq!(g("perf-impossible").decision, Decision::Block);
    assert!(
        g("perf-impossible").reasons[0].starts_with("API response"),
        "{:?}",
        g("perf-impossible").reasons
    );
    assert_eq!(
        g("perf-page-load").reasons,
        vec!["page load was not measured (budget 3.00s)".to_string()]
    );
    assert_eq!(r.verdict.decision, Decision::Block);
}
