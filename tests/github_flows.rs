//! Reviews gate, label override, pre-deploy validation and the Deployments API against Prism (proxy
//! mode, GitHub's OpenAPI description) in front of the stateful fake, driven by real webhook payloads.

mod support_github;

use axum::http::Method;
use fm_deploy::github::deployments::{DeploymentOutcome, finish_deployment, start_deployment};
use fm_deploy::github::event::pull_request_event;
use fm_deploy::github::predeploy::{PreDeployProblem, validate};
use fm_deploy::github::reviews::{approvals, override_granted_by};
use fm_deploy::github::{ChecksSession, Started};
use fm_deploy::report::checks::{CheckConclusion, GateCheck, external_id};
use support_github::fake::{Fault, FaultKind};
use support_github::{TOKEN, Testbed, pull_request_payload};

/// The reviews gate counts distinct users whose latest review approves the head SHA of the real
/// pull_request payload; stale, dismissed and changes-requested reviews do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_gate_counts_latest_approvals_on_head() {
    let tb = Testbed::start().await;
    let payload = serde_json::to_vec(&pull_request_payload(false)).unwrap_or_default();
    let ev = pull_request_event(&payload)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("pull_request event"));
    let head = ev.head_sha.clone();
    {
        let mut st = tb.fake.state();
        let r = |u: &str, s: &str, c: &str, t: &str| {
            (u.to_string(), s.to_string(), c.to_string(), t.to_string())
        };
        let mut reviews = vec![
            r("alice", "APPROVED", &head, "2026-01-01T10:00:00Z"),
            r(
                "bob",
                "APPROVED",
                "0000000000000000000000000000000000000000",
                "2026-01-01T09:00:00Z",
            ),
            r("carol", "APPROVED", &head, "2026-01-01T09:00:00Z"),
            r("carol", "CHANGES_REQUESTED", &head, "2026-01-01T11:00:00Z"),
            r("dave", "APPROVED", &head, "2026-01-01T09:00:00Z"),
            r("dave", "DISMISSED", &head, "2026-01-01T12:00:00Z"),
            r("erin", "APPROVED", &head, "2026-01-01T09:00:00Z"),
            r("erin", "COMMENTED", &head, "2026-01-01T13:00:00Z"),
        ];
        // Enough reviews to need a second page.
        for i in 0..120 {
            reviews.push(r(
                "alice",
                "COMMENTED",
                &head,
                &format!("2026-01-02T00:{:02}:{:02}Z", i / 60, i % 60),
            ));
        }
        st.reviews.insert(ev.number, reviews);
    }
    let client = tb.client(TOKEN);
    let a = approvals(&client, ev.number, &head, 3)
        .await
        .unwrap_or_else(|e| panic!("reviews: {e}"));
    assert_eq!(a.approvers, ["alice", "erin"]);
    assert!(!a.is_met(), "2 of 3");
    assert_eq!(tb.fake.count(&Method::GET, "/reviews"), 2, "two pages");
    tb.assert_clean().await;
    tb.stop().await;
}

/// The override counts only when the label was last added by an approver (a user or a team
/// member); a label added by the PR author does not override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_label_must_come_from_an_approver() {
    let tb = Testbed::start().await;
    let label = "fm-deploy/approve-high";
    let approvers = vec!["org/security-team".to_string()];
    {
        let mut st = tb.fake.state();
        let e = |ev: &str, who: &str, l: &str, t: &str| {
            (
                ev.to_string(),
                who.to_string(),
                l.to_string(),
                t.to_string(),
            )
        };
        st.issue_events.insert(
            7,
            vec![e("labeled", "author", label, "2026-01-01T00:00:01Z")],
        );
        st.issue_events.insert(
            8,
            vec![
                e("labeled", "author", label, "2026-01-01T00:00:01Z"),
                e("unlabeled", "sec-lead", label, "2026-01-01T00:00:02Z"),
                e("labeled", "sec-lead", label, "2026-01-01T00:00:03Z"),
                e("labeled", "author", "unrelated", "2026-01-01T00:00:04Z"),
            ],
        );
        st.team_members
            .push(("org".into(), "security-team".into(), "sec-lead".into()));
    }
    let client = tb.client(TOKEN);
    let by7 = override_granted_by(&client, 7, label, &approvers)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by7, None, "the author is not an approver");
    let by8 = override_granted_by(&client, 8, label, &approvers)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by8.as_deref(), Some("sec-lead"));
    tb.assert_clean().await;
    tb.stop().await;
}

/// Pre-deploy validation: a red check, a pending status and an open incident each block; this run's
/// own check runs do not; once everything is green and the incident closed, nothing blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_deploy_requires_green_checks_and_no_incident() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let sha = "a".repeat(40);
    let run_id = "4242";
    // Other workflows' check runs, created through the API like any app would.
    for (name, conclusion) in [
        ("ci / unit", CheckConclusion::Success),
        ("ci / lint", CheckConclusion::Failure),
    ] {
        let session = ChecksSession::open(&client, &sha, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Ok(Started::Posted(h)) = session
            .start(name, &format!("other:{name}"), "2026-01-01T00:00:00Z")
            .await
        else {
            panic!("start")
        };
        let g = GateCheck {
            name: name.into(),
            conclusion,
            title: "t".into(),
            summary_markdown: "s".into(),
            text_markdown: None,
            findings: vec![],
            annotation_budget: 10,
        };
        session
            .finish(&h, &g, "2026-01-01T00:00:01Z")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // This run's own deploy check run, still in progress: ignored.
    let session = ChecksSession::open(&client, &sha, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Ok(Started::Posted(_)) = session
        .start(
            "deploy production",
            &external_id(run_id, "deploy", "deploy production"),
            "2026-01-01T00:00:00Z",
        )
        .await
    else {
        panic!("start")
    };
    {
        let mut st = tb.fake.state();
        st.commit_statuses
            .push((sha.clone(), "legacy/ci".into(), "success".into()));
        st.commit_statuses
            .push((sha.clone(), "legacy/scan".into(), "pending".into()));
        st.issues.push((
            12,
            "checkout is down".into(),
            vec!["incident".into()],
            false,
            true,
        ));
        st.issues.push((
            13,
            "a PR labelled incident".into(),
            vec!["incident".into()],
            true,
            true,
        ));
        st.issues.push((
            14,
            "old incident".into(),
            vec!["incident".into()],
            false,
            false,
        ));
    }
    let problems = validate(&client, &sha, run_id, Some("incident"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        problems,
        vec![
            PreDeployProblem::CheckNotGreen {
                name: "fm-deploy / ci / lint".into(),
                status: "completed".into(),
                conclusion: Some("failure".into())
            },
            PreDeployProblem::StatusNotGreen {
                context: "legacy/scan".into(),
                state: "pending".into()
            },
            PreDeployProblem::OpenIncident {
                number: 12,
                title: "checkout is down".into()
            },
        ]
    );
    {
        let mut st = tb.fake.state();
        st.commit_statuses
            .push((sha.clone(), "legacy/scan".into(), "success".into()));
        st.issues.retain(|i| i.0 != 12);
        for r in st
            .check_runs
            .iter_mut()
            .filter(|r| r.name == "fm-deploy / ci / lint")
        {
            r.conclusion = Some("success".into());
        }
    }
    let problems = validate(&client, &sha, run_id, Some("incident"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(problems.is_empty(), "{problems:?}");
    tb.assert_clean().await;
    tb.stop().await;
}

/// Deployments: created for the SHA with required_contexts [] and auto_merge false, in_progress then
/// success with environment_url and log_url; the previous live deployment becomes inactive; a
/// failed deploy ends in failure and deactivates nothing; an injected 502 loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_move_through_statuses() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let env_url = "https://fm-llm-solver.com";
    let log_url = "https://github.com/octo/app/actions/runs/77";
    let first = start_deployment(
        &client,
        &"1".repeat(40),
        "production",
        Some(env_url),
        Some(log_url),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    finish_deployment(
        &client,
        first,
        "production",
        DeploymentOutcome::Success,
        Some(env_url),
        Some(log_url),
        "deployed",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tb.fake.state().faults.push(Fault {
        method: Method::POST,
        path_contains: "/statuses".into(),
        kind: FaultKind::Status(502),
        times: 1,
    });
    let second = start_deployment(
        &client,
        &"2".repeat(40),
        "production",
        Some(env_url),
        Some(log_url),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    finish_deployment(
        &client,
        second,
        "production",
        DeploymentOutcome::Success,
        Some(env_url),
        Some(log_url),
        "deployed",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let third = start_deployment(
        &client,
        &"3".repeat(40),
        "production",
        Some(env_url),
        Some(log_url),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    finish_deployment(
        &client,
        third,
        "production",
        DeploymentOutcome::Failure,
        Some(env_url),
        Some(log_url),
        "rolled back: error-rate",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let deployments = tb.fake.state().deployments.clone();
    let states = |id: u64| -> Vec<String> {
        deployments
            .iter()
            .find(|d| d.id == id)
            .map(|d| {
                d.statuses
                    .iter()
                    .map(|s| s["state"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(states(first), ["in_progress", "success", "inactive"]);
    assert_eq!(states(second), ["in_progress", "success"]);
    assert_eq!(states(third), ["in_progress", "failure"]);
    let d = deployments
        .iter()
        .find(|d| d.id == second)
        .unwrap_or_else(|| panic!("second"));
    assert_eq!(d.sha, "2".repeat(40));
    assert_eq!(d.body["ref"], "2".repeat(40));
    assert_eq!(d.body["required_contexts"], serde_json::json!([]));
    assert_eq!(d.body["auto_merge"], false);
    assert_eq!(d.statuses[1]["environment_url"], env_url);
    assert_eq!(d.statuses[1]["log_url"], log_url);
    tb.assert_clean().await;
    tb.stop().await;
}

/// Real push and workflow_dispatch payloads are not pull requests: no reviews gate, no fork logic.
#[test]
fn non_pull_request_payloads_are_recognised() {
    for (event, action) in [("push", ""), ("workflow_dispatch", "")] {
        let payload =
            serde_json::to_vec(&support_github::webhook_example(event, action)).unwrap_or_default();
        assert_eq!(pull_request_event(&payload).ok().flatten(), None, "{event}");
    }
    let pr = serde_json::to_vec(&pull_request_payload(false)).unwrap_or_default();
    let ev = pull_request_event(&pr)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("pull_request"));
    assert_eq!((ev.number, ev.from_fork), (2, false));
}

/// A deployment create that GitHub applied but whose answer was lost (502 after the write) is
/// found by its marker before the retry: exactly one deployment exists, and its id is the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_create_applied_behind_a_502_is_not_duplicated() {
    let tb = Testbed::start().await;
    tb.fake.state().faults.push(Fault {
        method: Method::POST,
        path_contains: "/deployments".into(),
        kind: support_github::fake::FaultKind::AppliedThen(502),
        times: 1,
    });
    let client = tb.client(TOKEN);
    let id = start_deployment(&client, &"5".repeat(40), "production", None, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deployments = tb.fake.state().deployments.clone();
    assert_eq!(deployments.len(), 1, "no second create: {deployments:?}");
    assert_eq!(deployments[0].id, id);
    assert_eq!(
        tb.fake.count(&Method::POST, "/deployments"),
        2,
        "the applied create and its in_progress status"
    );
    tb.assert_clean().await;
    tb.stop().await;
}
