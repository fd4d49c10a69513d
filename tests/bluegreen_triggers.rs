//! Each rollback trigger end to end on the real testbed with a real Prometheus: latency, health
//! probes, memory, a spike shorter than `for:`, and "no data" under `hold` vs `fail`.

mod support_bluegreen;
mod support_k8s;

use fm_deploy::deploy::bluegreen::Outcome;
use fm_deploy::deploy::bluegreen_run::{NoProgress, RunEnd, deploy_blue_green};
use fm_deploy::policy::model::NoDataPolicy;
use std::time::Duration;
use support_bluegreen::flow::*;
use support_bluegreen::scenario::*;

fn rolled_back(trigger: &str) -> RunEnd {
    RunEnd::Finished(Outcome::RolledBack {
        trigger: trigger.into(),
    })
}

/// Protects the P95 latency trigger: a slow green is rolled back, traffic back on blue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p95_latency_rolls_back() -> anyhow::Result<()> {
    let s = Scenario::start("bg-latency", &[V1, V2], false).await?;
    first_release(&s).await?;
    s.app(V2).set_knobs(&[("latency_ms", "300")]).await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 50)?;
    let r = release_v2(
        &s,
        40,
        NoDataPolicy::Hold,
        vec![error_rate(0.01, 5, 3), latency_p95(0.2, 5, 3)],
    )
    .await?;
    s.wait_live_on(V1).await?;
    let hits = load.finish().await;
    assert_eq!(r.end, rolled_back("latency-p95"), "{r:#?}");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await.0, 0);
    assert!(
        unexplained_failures(&hits, None).is_empty(),
        "slow is not failed: every request answered"
    );
    s.cleanup().await
}

/// Protects the health-probe trigger: green turning unhealthy after the switch (> 50 % probes
/// failing for the window) is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_failures_roll_back() -> anyhow::Result<()> {
    let s = Scenario::start("bg-health", &[V1, V2], false).await?;
    first_release(&s).await?;
    let flip = knobs_after_switch(&s, V2, vec![("healthy", "0")], None);
    let r = release_v2(&s, 40, NoDataPolicy::Hold, vec![health(0.5, 5)]).await?;
    flip.await??;
    assert_eq!(r.end, rolled_back("health"), "{r:#?}");
    assert_eq!(output(&r, "trigger"), "health");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    s.wait_live_on(V1).await?;
    let fired = r
        .fired
        .as_ref()
        .map(|f| f.samples.iter().filter_map(|x| x.value).fold(0.0, f64::max));
    assert_eq!(fired, Some(1.0), "every probe failed");
    s.cleanup().await
}

/// Protects the memory trigger (Prometheus gauge against a budget): a green using > 95 % is rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_above_budget_rolls_back() -> anyhow::Result<()> {
    let s = Scenario::start("bg-memory", &[V1, V2], false).await?;
    first_release(&s).await?;
    s.app(V2).set_knobs(&[("memory_mb", "110")]).await?;
    let r = release_v2(&s, 40, NoDataPolicy::Hold, vec![memory(0.95, 3)]).await?;
    assert_eq!(r.end, rolled_back("memory"), "{r:#?}");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await.0, 0);
    s.cleanup().await
}

/// Protects "for:" end to end: an error spike shorter than the window is seen but does not roll back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_shorter_than_for_does_not_roll_back() -> anyhow::Result<()> {
    let s = Scenario::start("bg-spike", &[V1, V2], false).await?;
    first_release(&s).await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let spike = knobs_after_switch(
        &s,
        V2,
        vec![("error_rate", "1.0")],
        Some((Duration::from_millis(1500), vec![("error_rate", "0")])),
    );
    let r = release_v2(&s, 25, NoDataPolicy::Hold, vec![error_rate(0.01, 10, 2)]).await?;
    spike.await??;
    let _ = load.finish().await;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    let peak = r
        .series
        .iter()
        .flat_map(|t| t.samples.iter().filter_map(|x| x.value))
        .fold(0.0, f64::max);
    assert!(
        peak > 0.01,
        "the spike was visible to the trigger (peak {peak})"
    );
    s.cleanup().await
}

/// Protects `on_no_data` and `min_data`: a query without data rolls back under `fail`, is
/// inconclusive (rolls back) under `hold`, and passes under `hold` only with `min_data: 0%`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_rolls_back_unless_blind_windows_are_allowed() -> anyhow::Result<()> {
    let s = Scenario::start("bg-nodata", &[V1, V2], false).await?;
    first_release(&s).await?;
    let missing = || {
        prom_trigger(
            "absent",
            "sum(not_exported_total{color=\"{color}\"})",
            0.5,
            3,
        )
    };
    let r = release_v2(&s, 12, NoDataPolicy::Fail, vec![missing()]).await?;
    assert_eq!(r.end, rolled_back("absent"), "{r:#?}");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert!(
        r.fired
            .as_ref()
            .is_some_and(|f| f.samples.iter().all(|x| x.value.is_none()))
    );
    // `hold`: a sample without data does not fire, but a window without data is inconclusive
    // (the default `min_data: 80%`) and rolls back: never a pass on no evidence.
    let r = release_v2(&s, 8, NoDataPolicy::Hold, vec![missing()]).await?;
    assert!(
        matches!(&r.end, RunEnd::Finished(Outcome::RolledBack { trigger }) if trigger.starts_with("inconclusive: `absent`")),
        "{r:#?}"
    );
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    // Only a policy that accepts blind windows outright (`min_data: 0%`) lets `hold` pass.
    let mut cfg = s.config(Duration::from_secs(8), NoDataPolicy::Hold, vec![missing()]);
    cfg.rollback.min_data = fm_deploy::policy::model::Ratio(0.0);
    let r = deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        V2,
        never_cancel(),
    )
    .await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.cleanup().await
}
