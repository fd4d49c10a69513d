//! A 403 from GitHub that is not a rate limit names the token permission that is missing, through
//! Prism (GitHub's OpenAPI description) in front of the fake: from GitHub's
//! `x-accepted-github-permissions` header when it sends one, else from the endpoint table. A
//! secondary rate limit (also a 403) stays a retried rate limit.

mod support_github;

use axum::http::Method;
use fm_deploy::github::deployments::start_deployment;
use fm_deploy::github::{ChecksSession, Started};
use support_github::fake::{Fault, FaultKind};
use support_github::{READ_ONLY_TOKEN, TOKEN, Testbed};

fn no_permission(method: Method, path: &str, accepted: Option<&'static str>) -> Fault {
    Fault {
        method,
        path_contains: path.into(),
        kind: FaultKind::NoPermission { accepted },
        times: 1,
    }
}

/// Protects the check-run fallback: a 403 on creating a check run still falls back to
/// annotations (the run goes on), and its message names `checks: write`, from the header and,
/// for a read-only token without it, from the table; nothing is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_run_403_names_checks_write() {
    let tb = Testbed::start().await;
    tb.fake.state().faults.push(no_permission(
        Method::POST,
        "/check-runs",
        Some("checks=write"),
    ));
    tb.fake
        .state()
        .read_only_tokens
        .push(READ_ONLY_TOKEN.into());
    let sha = "a".repeat(40);
    for token in [TOKEN, READ_ONLY_TOKEN] {
        let client = tb.client(token);
        let session = ChecksSession::open(&client, &sha, None)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let started = session
            .start("lint", "fm-deploy:9:gates:lint", "2026-01-01T00:00:00Z")
            .await
            .unwrap_or_else(|e| panic!("a 403 must not fail the run: {e}"));
        match started {
            Started::NoAccess { message } => assert!(
                message.contains("403") && message.contains("the token needs `checks: write`"),
                "{token}: {message}"
            ),
            other => panic!("{token}: expected the annotation fallback, got {other:?}"),
        }
    }
    assert_eq!(
        tb.fake.count(&Method::POST, "/check-runs"),
        2,
        "one refused create per token, not retried"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

/// Protects the deploy's GitHub deployment: a 403 on creating it fails with a message naming
/// `deployments: write`; the same 403 as a secondary rate limit is waited out and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_403_names_deployments_write_but_rate_limit_is_retried() {
    let tb = Testbed::start().await;
    let client = tb.client(TOKEN);
    let sha = "b".repeat(40);
    tb.fake
        .state()
        .faults
        .push(no_permission(Method::POST, "/deployments", None));
    let err = start_deployment(&client, &sha, "production", None, None)
        .await
        .err()
        .unwrap_or_else(|| panic!("a 403 must fail the deployment"));
    assert!(err.is_forbidden(), "{err}");
    assert_eq!(err.missing_permission(), Some("deployments: write"));
    assert!(
        err.to_string()
            .contains("the token needs `deployments: write`"),
        "{err}"
    );
    tb.fake.state().faults.push(Fault {
        method: Method::POST,
        path_contains: "/deployments".into(),
        kind: FaultKind::Secondary {
            retry_after: Some(1),
        },
        times: 1,
    });
    let id = start_deployment(&client, &sha, "production", None, None)
        .await
        .unwrap_or_else(|e| panic!("a secondary rate limit is retried: {e}"));
    assert!(id > 0);
    tb.assert_clean().await;
    tb.stop().await;
}
