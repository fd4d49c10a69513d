//! Check runs against Prism (proxy mode, GitHub's OpenAPI description) in front of the stateful fake:
//! exact request counts, every annotation exactly once, retries across injected failures, re-runs,
//! the fork fallback, and errors that must not be retried.

mod support_github;

use axum::http::Method;
use fm_deploy::gates::finding::{Finding, Severity};
use fm_deploy::github::event::pull_request_event;
use fm_deploy::github::{ChecksSession, Started};
use fm_deploy::report::checks::{
    CheckConclusion, GateCheck, MAX_WORKFLOW_ERRORS, MAX_WORKFLOW_WARNINGS, external_id,
    requests_for_gate, select_workflow_annotations, workflow_command,
};
use support_github::fake::{Fault, FaultKind};
use support_github::{READ_ONLY_TOKEN, TOKEN, Testbed, finding};

fn gate(name: &str, findings: Vec<Finding>, budget: u32) -> GateCheck {
    GateCheck {
        name: name.into(),
        conclusion: if findings.is_empty() {
            CheckConclusion::Success
        } else {
            CheckConclusion::Failure
        },
        title: format!("{} finding(s)", findings.len()),
        summary_markdown: format!("## {name}\n\n{} finding(s).", findings.len()),
        text_markdown: None,
        findings,
        annotation_budget: budget,
    }
}

fn mixed_findings(n: usize) -> Vec<Finding> {
    let sev = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
        Severity::Info,
    ];
    (0..n).map(|i| finding(i, sev[i % sev.len()])).collect()
}

/// Messages the fake holds for one check run, sorted (to compare as multisets).
fn stored_messages(tb: &Testbed, name: &str, sha: &str) -> Vec<String> {
    let st = tb.fake.state();
    let runs: Vec<_> = st
        .check_runs
        .iter()
        .filter(|r| r.name == name && r.head_sha == sha)
        .collect();
    assert_eq!(runs.len(), 1, "exactly one check run {name} on {sha}");
    let mut m: Vec<String> = runs[0]
        .annotations
        .iter()
        .map(|a| a["message"].as_str().unwrap_or_default().to_string())
        .collect();
    m.sort();
    m
}

fn expected_messages(findings: &[Finding]) -> Vec<String> {
    let mut m: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
    m.sort();
    m
}

/// A gate with N findings under budget costs exactly 2 + ⌈N/50⌉ requests (one lookup GET, one create
/// POST, ⌈N/50⌉ PATCHes with completion folded into the last), and each annotation arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_costs_two_plus_ceil_n_over_50() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    for n in [1usize, 49, 50, 51, 137] {
        let sha = format!("{n:040}");
        let before = tb.fake.requests().len();
        let findings = mixed_findings(n);
        let session = ChecksSession::open(
            &client,
            &sha,
            Some("https://github.com/octo/app/actions/runs/7"),
        )
        .await
        .unwrap_or_else(|e| panic!("open: {e:#}"));
        let Started::Posted(handle) = session
            .start(
                "lint",
                &external_id("7", "gates", "lint"),
                "2026-01-01T00:00:00Z",
            )
            .await
            .unwrap_or_else(|e| panic!("start: {e}"))
        else {
            panic!("no access with a checks:write token");
        };
        let report = session
            .finish(
                &handle,
                &gate("lint", findings.clone(), 1000),
                "2026-01-01T00:00:05Z",
            )
            .await
            .unwrap_or_else(|e| panic!("finish: {e}"));
        let sent = tb.fake.requests().len() - before;
        assert_eq!(sent, 2 + n.div_ceil(50), "n = {n}");
        assert_eq!(sent, 1 + requests_for_gate(report.annotations.len()));
        assert_eq!(
            stored_messages(&tb, "fm-deploy / lint", &sha),
            expected_messages(&findings),
            "n = {n}"
        );
        let st = tb.fake.state();
        let run = st
            .check_runs
            .iter()
            .find(|r| r.head_sha == sha)
            .unwrap_or_else(|| panic!("run"));
        assert_eq!(run.status, "completed");
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        let rank = |l: &serde_json::Value| match l.as_str() {
            Some("failure") => 3,
            Some("warning") => 2,
            _ => 1,
        };
        let ranks: Vec<u8> = run
            .annotations
            .iter()
            .map(|a| rank(&a["annotation_level"]))
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] >= w[1]),
            "most severe first: {ranks:?}"
        );
    }
    // A clean gate: lookup, create, one completing PATCH.
    let sha = "c".repeat(40);
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(h)) = session
        .start(
            "format",
            &external_id("7", "gates", "format"),
            "2026-01-01T00:00:00Z",
        )
        .await
    else {
        panic!("start")
    };
    let before = tb.fake.requests().len();
    session
        .finish(&h, &gate("format", vec![], 1000), "2026-01-01T00:00:01Z")
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    assert_eq!(tb.fake.requests().len() - before, 1);
    tb.assert_clean().await;
    tb.stop().await;
}

/// Past the per-gate budget, only the most severe annotations are posted and the rest are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_overflow_is_counted_in_summary() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let sha = "b".repeat(40);
    let findings = mixed_findings(130);
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(h)) = session
        .start("lint", "fm-deploy:1:gates:lint", "2026-01-01T00:00:00Z")
        .await
    else {
        panic!("start")
    };
    let report = session
        .finish(&h, &gate("lint", findings, 60), "2026-01-01T00:00:01Z")
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    assert_eq!(report.over_budget, 70);
    let runs = tb.fake.state().check_runs.clone();
    let run = &runs[0];
    assert_eq!(run.annotations.len(), 60);
    assert!(
        run.summary
            .as_deref()
            .unwrap_or_default()
            .contains("70 more finding(s) not annotated")
    );
    // 130 findings at 5 severities: the 26 critical and 26 high come first, then 8 of the medium ones.
    let levels: Vec<&str> = run
        .annotations
        .iter()
        .map(|a| a["annotation_level"].as_str().unwrap_or_default())
        .collect();
    assert!(levels[..52].iter().all(|l| *l == "failure"));
    assert!(levels[52..].iter().all(|l| *l == "warning"));
    tb.assert_clean().await;
    tb.stop().await;
}

/// Injected 502, 500, 429 and a secondary-rate-limit 403 with retry-after are retried; nothing is lost
/// and nothing is duplicated, and each failure costs exactly one extra request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_across_injected_failures() {
    let tb = Testbed::start().await;
    {
        let mut st = tb.fake.state();
        st.faults = vec![
            Fault {
                method: Method::GET,
                path_contains: "/check-runs".into(),
                kind: FaultKind::Status(500),
                times: 1,
            },
            Fault {
                method: Method::POST,
                path_contains: "/check-runs".into(),
                kind: FaultKind::TooMany { retry_after: 1 },
                times: 1,
            },
            Fault {
                method: Method::PATCH,
                path_contains: "/check-runs/".into(),
                kind: FaultKind::Status(502),
                times: 1,
            },
            Fault {
                method: Method::PATCH,
                path_contains: "/check-runs/".into(),
                kind: FaultKind::Secondary {
                    retry_after: Some(2),
                },
                times: 1,
            },
            Fault {
                method: Method::PATCH,
                path_contains: "/check-runs/".into(),
                kind: FaultKind::Secondary { retry_after: None },
                times: 1,
            },
        ];
    }
    let client = tb.client(TOKEN);
    let sha = "d".repeat(40);
    let findings = mixed_findings(160);
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(h)) = session
        .start("lint", "fm-deploy:2:gates:lint", "2026-01-01T00:00:00Z")
        .await
    else {
        panic!("start")
    };
    session
        .finish(
            &h,
            &gate("lint", findings.clone(), 1000),
            "2026-01-01T00:00:01Z",
        )
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    let log = tb.fake.requests();
    assert_eq!(log.iter().filter(|l| l.injected).count(), 5);
    assert_eq!(log.len(), 2 + 160usize.div_ceil(50) + 5);
    assert_eq!(
        client.requests_sent(),
        u64::try_from(log.len()).unwrap_or(0)
    );
    assert_eq!(
        stored_messages(&tb, "fm-deploy / lint", &sha),
        expected_messages(&findings)
    );
    assert!(
        tb.fake.state().faults.iter().all(|f| f.times == 0),
        "every fault fired"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

/// A re-run of the same job finds its own check run by external_id and updates it: no second run,
/// no annotation posted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_updates_its_own_check_run() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let sha = "e".repeat(40);
    let ext = external_id("99", "gates", "lint");
    let findings = mixed_findings(75);
    for attempt in 0..2 {
        let session = ChecksSession::open(&client, &sha, None)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let Ok(Started::Posted(h)) = session.start("lint", &ext, "2026-01-01T00:00:00Z").await
        else {
            panic!("start")
        };
        if attempt == 1 {
            assert_eq!(h.posted_before.len(), 75);
        }
        session
            .finish(
                &h,
                &gate("lint", findings.clone(), 1000),
                "2026-01-01T00:00:01Z",
            )
            .await
            .unwrap_or_else(|e| panic!("finish: {e}"));
    }
    assert_eq!(
        tb.fake.count(&Method::POST, "/check-runs"),
        1,
        "the re-run created no second run"
    );
    assert_eq!(
        stored_messages(&tb, "fm-deploy / lint", &sha),
        expected_messages(&findings)
    );
    // A different job's run with the same name is not ours: it gets its own.
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(_)) = session
        .start(
            "lint",
            &external_id("100", "gates", "lint"),
            "2026-01-01T00:00:00Z",
        )
        .await
    else {
        panic!("start")
    };
    assert_eq!(tb.fake.count(&Method::POST, "/check-runs"), 2);
    tb.assert_clean().await;
    tb.stop().await;
}

/// Real pull_request payloads: a same-repository PR gets check runs; a fork PR's read-only token is
/// refused with 403, which does not fail the run: the fallback prints ≤ 10 errors + 10 warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_pull_request_falls_back_to_workflow_commands() {
    let tb = Testbed::start().await;
    tb.fake
        .state()
        .read_only_tokens
        .push(READ_ONLY_TOKEN.into());
    for from_fork in [false, true] {
        let payload = serde_json::to_vec(&support_github::pull_request_payload(from_fork))
            .unwrap_or_default();
        let ev = pull_request_event(&payload)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("a pull_request event"));
        assert_eq!(ev.from_fork, from_fork);
        // GitHub gives fork PRs a read-only GITHUB_TOKEN.
        let client = tb.client(if ev.from_fork { READ_ONLY_TOKEN } else { TOKEN });
        let findings = mixed_findings(40);
        let session = ChecksSession::open(&client, &ev.head_sha, None)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let started = session
            .start("lint", "fm-deploy:5:gates:lint", "2026-01-01T00:00:00Z")
            .await
            .unwrap_or_else(|e| panic!("start must not fail the run: {e}"));
        match (from_fork, started) {
            (false, Started::Posted(h)) => {
                session
                    .finish(&h, &gate("lint", findings, 1000), "2026-01-01T00:00:01Z")
                    .await
                    .unwrap_or_else(|e| panic!("finish: {e}"));
            }
            (true, Started::NoAccess { message }) => {
                assert!(message.contains("403"), "{message}");
                let chosen = select_workflow_annotations(
                    &findings,
                    MAX_WORKFLOW_ERRORS,
                    MAX_WORKFLOW_WARNINGS,
                );
                let lines: Vec<String> = chosen
                    .iter()
                    .map(|f| fm_deploy::runtime::format_annotation(&workflow_command(f)))
                    .collect();
                assert_eq!(
                    lines.iter().filter(|l| l.starts_with("::error ")).count(),
                    10
                );
                assert_eq!(
                    lines.iter().filter(|l| l.starts_with("::warning ")).count(),
                    10
                );
                assert!(lines[0].contains("(critical)"));
            }
            (fork, other) => panic!("fork={fork}: unexpected {other:?}"),
        }
    }
    assert_eq!(
        tb.fake.state().check_runs.len(),
        1,
        "only the same-repository PR got a check run"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

/// 401, 404 and 422 are not retried: one request each, and the error names the call and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_not_retried() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    for code in [401u16, 422] {
        tb.fake.state().faults.push(Fault {
            method: Method::POST,
            path_contains: "/check-runs".into(),
            kind: FaultKind::Status(code),
            times: 1,
        });
        let before = tb.fake.requests().len();
        let session = ChecksSession::open(&client, &"f".repeat(40), None)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let err = session
            .start("lint", "x", "2026-01-01T00:00:00Z")
            .await
            .err()
            .unwrap_or_else(|| panic!("{code} must fail"));
        assert_eq!(err.status(), Some(code));
        assert!(
            err.to_string().contains("POST /repos/octo/app/check-runs"),
            "{err}"
        );
        assert_eq!(
            tb.fake.requests().len() - before,
            2,
            "lookup + one POST, no retry"
        );
    }
    let before = tb.fake.requests().len();
    let err = fm_deploy::github::Checks::update_check_run(
        &client,
        424_242,
        &fm_deploy::report::checks::restart_request(None),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("404 must fail"));
    assert_eq!(err.status(), Some(404));
    assert_eq!(tb.fake.requests().len() - before, 1);
    tb.stop().await;
}

/// The harness itself can fail: a request GitHub would reject (51 annotations, a `fatal` level, no
/// head_sha) is stopped by Prism with 422 and never reaches the fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prism_rejects_what_github_would_reject() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let ann = serde_json::json!({"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "warning", "message": "m"});
    let bad = [
        serde_json::json!({"name": "x", "head_sha": "a", "output": {"title": "t", "summary": "s", "annotations": vec![ann.clone(); 51]}}),
        serde_json::json!({"name": "x", "head_sha": "a", "output": {"title": "t", "summary": "s", "annotations": [{"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "fatal", "message": "m"}]}}),
        serde_json::json!({"name": "x"}),
        serde_json::json!({"name": "x", "head_sha": "a", "output": {"title": "t", "summary": "s".repeat(65_536)}}),
    ];
    for body in &bad {
        let err = client
            .send_raw(Method::POST, "/repos/octo/app/check-runs", Some(body))
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted: {body}"));
        assert_eq!(err.status(), Some(422), "{err}");
    }
    assert!(
        tb.fake.requests().is_empty(),
        "rejected requests reached the fake"
    );
    tb.stop().await;
}

/// The harness also checks GitHub's answers: a fake response that drifts from GitHub's schema is
/// turned into an error by Prism (`--errors`), so the fake cannot silently diverge from GitHub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prism_flags_responses_that_drift_from_github() {
    let tb = Testbed::start().await;
    tb.fake.state().faults.push(Fault {
        method: Method::POST,
        path_contains: "/check-runs".into(),
        kind: FaultKind::Body(201, serde_json::json!({"id": "not-a-number", "name": 5})),
        times: 1,
    });
    let client = tb.client_with(
        TOKEN,
        fm_deploy::github::RetryPolicy {
            max_attempts: 1,
            ..fm_deploy::github::RetryPolicy::default()
        },
    );
    let body = fm_deploy::report::checks::start_request(
        "lint",
        &"a".repeat(40),
        "x",
        None,
        "2026-01-01T00:00:00Z",
    );
    let result = fm_deploy::github::Checks::create_check_run(&client, &body).await;
    let err = result
        .err()
        .unwrap_or_else(|| panic!("a drifting response was accepted"));
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(err.to_string().contains("prism/errors#VIOLATIONS"), "{err}");
    // The fake did answer; Prism replaced its answer. With retries, a drift fails every attempt.
    assert_eq!(tb.fake.requests().len(), 1);
    tb.stop().await;
}

/// A response slower than the read timeout is abandoned and retried like a 5xx; the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_response_is_retried_after_read_timeout() {
    let tb = Testbed::start().await;
    tb.fake.state().faults.push(Fault {
        method: Method::GET,
        path_contains: "/check-runs".into(),
        kind: FaultKind::Slow(std::time::Duration::from_secs(3)),
        times: 1,
    });
    let mut cfg = tb.config(TOKEN);
    cfg.read_timeout = std::time::Duration::from_millis(500);
    let client = fm_deploy::github::GithubClient::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let sha = "5".repeat(40);
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(_)) = session
        .start("lint", "fm-deploy:3:gates:lint", "2026-01-01T00:00:00Z")
        .await
    else {
        panic!("start")
    };
    assert_eq!(client.requests_sent(), 3, "slow GET, its retry, the create");
    // The abandoned slow request still completes at the fake, later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tb.fake.count(&Method::GET, "/check-runs") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow request never finished at the fake"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tb.stop().await;
}

/// Gates finishing at the same time share one client: their writes reach GitHub one at a time
/// (secondary rate limits punish concurrent writes), and every annotation still arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gates_write_one_at_a_time() {
    let tb = Testbed::start().await;
    tb.fake.state().latency = std::time::Duration::from_millis(5);
    let client = tb.client(TOKEN);
    let sha = "7".repeat(40);
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let names = ["lint", "types", "bandit", "secrets"];
    let run_gate = |name: &'static str| {
        let session = &session;
        async move {
            let Ok(Started::Posted(h)) = session
                .start(
                    name,
                    &external_id("8", "gates", name),
                    "2026-01-01T00:00:00Z",
                )
                .await
            else {
                panic!("start {name}")
            };
            session
                .finish(
                    &h,
                    &gate(name, mixed_findings(120), 1000),
                    "2026-01-01T00:00:01Z",
                )
                .await
                .unwrap_or_else(|e| panic!("finish {name}: {e}"))
        }
    };
    let (a, b, c, d) = tokio::join!(
        run_gate(names[0]),
        run_gate(names[1]),
        run_gate(names[2]),
        run_gate(names[3])
    );
    assert!([a, b, c, d].iter().all(|r| r.annotations.len() == 120));
    assert_eq!(tb.fake.state().max_writes_in_flight, 1);
    for name in names {
        assert_eq!(
            stored_messages(&tb, &format!("fm-deploy / {name}"), &sha),
            expected_messages(&mixed_findings(120))
        );
    }
    assert_eq!(tb.fake.requests().len(), 1 + 4 * (1 + 3));
    tb.assert_clean().await;
    tb.stop().await;
}

/// GitHub Enterprise Server: a `GITHUB_API_URL` with a path (`/api/v3`) keeps that prefix on every
/// call, and the token is sent to it (requests reach the fake and it sees the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghes_base_url_keeps_its_path_prefix() {
    let fake = support_github::fake::Fake::new(&support_github::trimmed_spec());
    fake.state().read_only_tokens.push(READ_ONLY_TOKEN.into());
    let app = axum::Router::new().nest("/api/v3", fake.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let api = format!("http://{addr}/api/v3/");
    for (token, expect_posted) in [(TOKEN, true), (READ_ONLY_TOKEN, false)] {
        let client = fm_deploy::github::GithubClient::new(&fm_deploy::github::GithubConfig::new(
            &api, token, "octo/app",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let session = ChecksSession::open(&client, &"9".repeat(40), None)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let started = session
            .start("lint", "fm-deploy:1:gates:lint", "2026-01-01T00:00:00Z")
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        assert_eq!(
            matches!(started, Started::Posted(_)),
            expect_posted,
            "{started:?}"
        );
    }
    assert!(
        fake.requests()
            .iter()
            .all(|l| l.path.starts_with("/repos/octo/app/")),
        "nest strips the prefix it matched"
    );
    assert_eq!(fake.requests().len(), 4);
    server.abort();
}

/// The decision run with needs-approval: `action_required` with the run's URL as details_url is a
/// request GitHub accepts, and it completes the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_run_can_require_action() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let sha = "6".repeat(40);
    let url = "https://github.com/octo/app/actions/runs/11";
    let session = ChecksSession::open(&client, &sha, Some(url))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(h)) = session
        .start(
            "decision",
            &external_id("11", "gates", "decision"),
            "2026-01-01T00:00:00Z",
        )
        .await
    else {
        panic!("start")
    };
    let mut g = gate("decision", vec![], 1000);
    g.conclusion = CheckConclusion::ActionRequired;
    g.title = "needs approval: 2 high findings in dependencies".into();
    session
        .finish(&h, &g, "2026-01-01T00:00:01Z")
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    let runs = tb.fake.state().check_runs.clone();
    assert_eq!(runs[0].name, "fm-deploy / decision");
    assert_eq!(runs[0].conclusion.as_deref(), Some("action_required"));
    assert_eq!(runs[0].details_url.as_deref(), Some(url));
    tb.assert_clean().await;
    tb.stop().await;
}

/// A create that GitHub applied but whose answer was lost (502 after the write) is not sent again:
/// before retrying, the client looks for the run by name and external_id and takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_applied_behind_a_502_is_not_duplicated() {
    let tb = Testbed::start().await;
    tb.fake.state().faults.push(Fault {
        method: Method::POST,
        path_contains: "/check-runs".into(),
        kind: FaultKind::AppliedThen(502),
        times: 1,
    });
    let client = tb.client(TOKEN);
    let sha = "4".repeat(40);
    let findings = mixed_findings(60);
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let Ok(Started::Posted(h)) = session
        .start("lint", "fm-deploy:4:gates:lint", "2026-01-01T00:00:00Z")
        .await
    else {
        panic!("start")
    };
    session
        .finish(
            &h,
            &gate("lint", findings.clone(), 1000),
            "2026-01-01T00:00:01Z",
        )
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    assert_eq!(
        tb.fake.count(&Method::POST, "/check-runs"),
        1,
        "no second create"
    );
    assert_eq!(tb.fake.state().check_runs.len(), 1);
    // lookup GET, the applied POST, the probe GET, two PATCHes.
    assert_eq!(tb.fake.requests().len(), 5);
    assert_eq!(
        stored_messages(&tb, "fm-deploy / lint", &sha),
        expected_messages(&findings)
    );
    tb.assert_clean().await;
    tb.stop().await;
}
