//! Blue-green releases end to end on the real testbed: kube-apiserver + controller-manager, the
//! stand-in kubelet, sample app processes, a real Prometheus scraping them, routers following the
//! Services' EndpointSlices, and load through the live router.

mod support_bluegreen;
mod support_k8s;

use fm_deploy::deploy::bluegreen::{Outcome, Phase};
use fm_deploy::deploy::bluegreen_run::{NoProgress, RunEnd, deploy_blue_green};
use fm_deploy::policy::model::NoDataPolicy;
use std::time::Duration;
use support_bluegreen::flow::*;
use support_bluegreen::scenario::*;

/// Protects the happy path: green deployed, checked, switched in one PATCH, monitored, kept blue;
/// traffic ends on green and no request fails under 100 req/s during the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_switches_with_zero_downtime() -> anyhow::Result<()> {
    let s = Scenario::start("bg-happy", &[V1, V2], false).await?;
    first_release(&s).await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let r = release_v2(
        &s,
        12,
        NoDataPolicy::Hold,
        vec![error_rate(0.01, 5, 3), health(0.5, 3)],
    )
    .await?;
    s.wait_live_on(V2).await?;
    let hits = load.finish().await;

    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(output(&r, "active-color"), "green");
    assert_eq!(output(&r, "rolled-back"), "false");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    assert_eq!(s.replicas("green").await, (2, 2));
    assert_eq!(
        s.replicas("blue").await.0,
        2,
        "blue is kept for a quick rollback"
    );
    assert_eq!(r.state.phase, Phase::Succeeded);
    assert!(r.state.keep_until.is_some());
    assert!(
        r.series.iter().all(|t| t.samples.len() >= 10),
        "sampled every second for the window"
    );
    let green = s.app(V2).addr.to_string();
    let blue = s.app(V1).addr.to_string();
    assert!(hits.len() >= 500, "load ran: {} requests", hits.len());
    let failed = unexplained_failures(&hits, None);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the switch: {:?}",
        failed.len(),
        hits.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        hits.iter()
            .any(|h| h.backend.as_deref() == Some(blue.as_str()))
    );
    assert_eq!(
        hits.last().and_then(|h| h.backend.clone()),
        Some(green.clone())
    );
    let answered = s.answered_by(20).await?;
    assert!(
        answered
            .iter()
            .all(|(c, b)| *c == 200 && b.as_deref() == Some(green.as_str()))
    );
    s.cleanup().await
}

/// Protects automatic rollback on error rate: the selector goes back to blue, green is scaled to 0,
/// outputs name the trigger, and under load only the faulty version's own answers fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_rolls_back_to_blue() -> anyhow::Result<()> {
    let s = Scenario::start("bg-errors", &[V1, V2], false).await?;
    first_release(&s).await?;
    s.app(V2).set_knobs(&[("error_rate", "0.3")]).await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let r = release_v2(
        &s,
        40,
        NoDataPolicy::Hold,
        vec![error_rate(0.01, 5, 2), health(0.5, 5)],
    )
    .await?;
    s.wait_live_on(V1).await?;
    let hits = load.finish().await;

    assert_eq!(
        r.end,
        RunEnd::Finished(Outcome::RolledBack {
            trigger: "error-rate".into()
        }),
        "{r:#?}"
    );
    assert_eq!(output(&r, "rolled-back"), "true");
    assert_eq!(output(&r, "trigger"), "error-rate");
    assert_eq!(output(&r, "active-color"), "blue");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await.0, 0);
    assert_eq!(s.replicas("blue").await, (2, 2));
    let fired = r
        .fired
        .as_ref()
        .map(|f| (f.name.clone(), f.latency.is_some()));
    assert_eq!(fired, Some(("error-rate".into(), true)));
    let failed = unexplained_failures(&hits, Some(s.app(V2).addr));
    assert!(
        failed.is_empty(),
        "{} requests failed outside the faulty version: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let blue = s.app(V1).addr.to_string();
    assert!(
        s.answered_by(20)
            .await?
            .iter()
            .all(|(c, b)| *c == 200 && b.as_deref() == Some(blue.as_str()))
    );
    s.cleanup().await
}

/// Protects fail-closed before the switch: a green that never becomes Ready is scaled to 0 and the
/// selector never leaves blue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_green_is_never_switched_to() -> anyhow::Result<()> {
    let s = Scenario::start("bg-notready", &[V1], false).await?;
    first_release(&s).await?;
    let mut cfg = s.config(Duration::from_secs(10), NoDataPolicy::Hold, vec![]);
    cfg.ready_deadline = Duration::from_secs(5);
    let r = deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        "example/web:v2-never-ready",
        never_cancel(),
    )
    .await?;
    match &r.end {
        RunEnd::Finished(Outcome::Failed { reason }) => {
            assert!(reason.contains("web-green"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(r.exit_code(), 1);
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await.0, 0);
    assert_eq!(output(&r, "active-color"), "blue");
    s.cleanup().await
}
