//! Blue-green operations end to end on the real testbed: SIGTERM during monitoring, a re-run after a
//! kill, manual rollback, cleanup after keep_until, manual promote, replica-ratio proportions and
//! NGINX canary weights per step.

mod support_bluegreen;
mod support_k8s;

use chrono::Utc;
use fm_deploy::deploy::bluegreen::{Color, Outcome, Phase, ShiftKind};
use fm_deploy::deploy::bluegreen_run::{
    NoProgress, RunEnd, cancel_on_signals, cleanup_blue_green, deploy_blue_green,
    promote_blue_green, rollback_blue_green,
};
use fm_deploy::policy::model::NoDataPolicy;
use std::sync::Mutex;
use std::time::Duration;
use support_bluegreen::flow::*;
use support_bluegreen::scenario::*;

/// Protects cancellation: SIGTERM while green is monitored puts traffic back on blue, scales green
/// down and reports `cancelled` — with no failed request under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_monitoring_returns_traffic_to_blue() -> anyhow::Result<()> {
    let s = Scenario::start("bg-sigterm", &[V1, V2], false).await?;
    first_release(&s).await?;
    let (cancel, _signals) = cancel_on_signals()?;
    let cfg = s.config(
        Duration::from_secs(60),
        NoDataPolicy::Hold,
        vec![error_rate(0.01, 5, 3)],
    );
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let run = deploy_blue_green(&s.cluster, &s.metrics, &NoProgress, &cfg, V2, cancel);
    let kill = async {
        wait_selector(&s.client, &s.ns.name, "green").await?;
        s.wait_live_on(V2).await?;
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM)?;
        anyhow::Ok(())
    };
    let (r, k) = tokio::join!(run, kill);
    k?;
    let r = r?;
    s.wait_live_on(V1).await?;
    let hits = load.finish().await;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Cancelled), "{r:#?}");
    assert_eq!(r.state.phase, Phase::Cancelled);
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await.0, 0);
    assert_eq!(output(&r, "active-color"), "blue");
    let failed = unexplained_failures(&hits, None);
    assert!(
        failed.is_empty(),
        "{} requests failed across switch and cancel",
        failed.len()
    );
    s.cleanup().await
}

/// Protects resume: a run killed while monitoring leaves its record; the re-run (same run id) finds
/// traffic on green and monitors it again instead of redeploying, then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_after_kill_resumes_monitoring() -> anyhow::Result<()> {
    let s = Scenario::start("bg-resume", &[V1, V2], false).await?;
    first_release(&s).await?;
    let cfg = s.config(
        Duration::from_secs(120),
        NoDataPolicy::Hold,
        vec![health(0.5, 2)],
    );
    let killed = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::select! {
            r = deploy_blue_green(&s.cluster, &s.metrics, &NoProgress, &cfg, V2, never_cancel()) => Some(r),
            w = wait_selector(&s.client, &s.ns.name, "green") => { w.ok(); None }
        }
    })
    .await?;
    assert!(killed.is_none(), "the first run was killed mid-way");
    // give the dropped run no chance to do anything more: it is gone; the record says monitoring
    let cfg = s.config(
        Duration::from_secs(6),
        NoDataPolicy::Hold,
        vec![health(0.5, 2)],
    );
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
    assert!(
        r.timeline
            .first()
            .is_some_and(|e| e.what.starts_with("monitor green")),
        "{:?}",
        r.timeline
    );
    assert!(
        !r.timeline.iter().any(|e| e.what.starts_with("deploy")),
        "{:?}",
        r.timeline
    );
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    assert_eq!(r.state.previous, Some(Color::Blue));
    s.cleanup().await
}

/// Protects manual `rollback` after a success and `cleanup` after keep_until: traffic back on blue
/// (checked first), then the colour out of its keep window is scaled to 0 — not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_rollback_then_cleanup() -> anyhow::Result<()> {
    let s = Scenario::start("bg-manual", &[V1, V2], false).await?;
    first_release(&s).await?;
    let r = release_v2(&s, 4, NoDataPolicy::Hold, vec![health(0.5, 2)]).await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded));
    s.wait_live_on(V2).await?;

    let cfg = s.config(Duration::from_secs(4), NoDataPolicy::Hold, vec![]);
    let r = rollback_blue_green(&s.cluster, &s.metrics, &NoProgress, &cfg, never_cancel()).await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(output(&r, "active-color"), "blue");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    s.wait_live_on(V1).await?;
    assert_eq!(r.state.active_image.as_deref(), Some(V1));
    assert_eq!(
        s.replicas("green").await.0,
        2,
        "green is now the kept previous colour"
    );
    let keep_until = r
        .state
        .keep_until
        .ok_or_else(|| anyhow::anyhow!("no keep_until"))?;

    let early = cleanup_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        Utc::now(),
        never_cancel(),
    )
    .await?;
    assert!(
        matches!(early.end, RunEnd::Finished(Outcome::Nothing { .. })),
        "{:?}",
        early.end
    );
    assert_eq!(s.replicas("green").await.0, 2);
    let late = keep_until + chrono::Duration::seconds(1);
    let r = cleanup_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        late,
        never_cancel(),
    )
    .await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(s.replicas("green").await.0, 0);
    assert_eq!(s.replicas("blue").await, (2, 2));
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    s.cleanup().await
}

/// Protects the manual gate: a release pauses after checks with traffic on blue; `promote` switches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_promote_pauses_then_switches() -> anyhow::Result<()> {
    let s = Scenario::start("bg-promote", &[V1, V2], false).await?;
    first_release(&s).await?;
    let mut cfg = s.config(
        Duration::from_secs(4),
        NoDataPolicy::Hold,
        vec![health(0.5, 2)],
    );
    cfg.bg.manual_promote = true;
    let r = deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        V2,
        never_cancel(),
    )
    .await?;
    assert_eq!(r.end, RunEnd::Paused);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await, (2, 2));
    let r = promote_blue_green(&s.cluster, &s.metrics, &NoProgress, &cfg, never_cancel()).await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.cleanup().await
}

/// Protects replica-ratio shifting: with 4 replicas and steps 25/50/100 the router serves 3 blue + 1
/// green, then 2 + 2, then green only; blue is back at full size afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_ratio_shift_proportions() -> anyhow::Result<()> {
    let s = Scenario::start("bg-ratio", &[V1, V2], false).await?;
    first_release(&s).await?;
    let mut cfg = s.config(
        Duration::from_secs(4),
        NoDataPolicy::Hold,
        vec![health(0.5, 2)],
    );
    cfg.bg.replicas = 4;
    cfg.bg.shift = ShiftKind::ReplicaRatio;
    cfg.bg.steps = vec![25, 50, 100];
    cfg.shift_pause = Duration::from_secs(4);
    let rec = Recorder {
        router: &s.live,
        blue: s.app(V1).addr,
        green: s.app(V2).addr,
        client: s.client.clone(),
        ns: s.ns.name.clone(),
        canary: None,
        seen: Mutex::new(Vec::new()),
        transitions: Mutex::new(Vec::new()),
        snapshots: Mutex::new(Vec::new()),
    };
    let r = deploy_blue_green(&s.cluster, &s.metrics, &rec, &cfg, V2, never_cancel()).await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    let seen = rec.seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        seen.contains(&(Some(0), 3, 1, None)),
        "25 %: 3 blue + 1 green: {seen:?}"
    );
    assert!(
        seen.contains(&(Some(1), 2, 2, None)),
        "50 %: 2 + 2: {seen:?}"
    );
    s.wait_live_on(V2).await?;
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    assert_eq!(s.replicas("green").await, (4, 4));
    let blue =
        crate::support_k8s::wait_until(Duration::from_secs(30), "blue back to 4", || async {
            let r = s.replicas("blue").await;
            (r == (4, 4)).then_some(r)
        })
        .await?;
    assert_eq!(blue, (4, 4));
    s.cleanup().await
}

/// Protects NGINX canary shifting: the canary Ingress carries `canary-weight` 20 then 50 while each
/// step is held, and 0 after the final selector switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_canary_weights_per_step() -> anyhow::Result<()> {
    let s = Scenario::start("bg-canary", &[V1, V2], true).await?;
    first_release(&s).await?;
    let mut cfg = s.config(
        Duration::from_secs(4),
        NoDataPolicy::Hold,
        vec![health(0.5, 2)],
    );
    cfg.bg.shift = ShiftKind::NginxCanary;
    cfg.bg.steps = vec![20, 50, 100];
    cfg.shift_pause = Duration::from_secs(2);
    let rec = Recorder {
        router: &s.live,
        blue: s.app(V1).addr,
        green: s.app(V2).addr,
        client: s.client.clone(),
        ns: s.ns.name.clone(),
        canary: Some(format!("{SERVICE}-canary")),
        seen: Mutex::new(Vec::new()),
        transitions: Mutex::new(Vec::new()),
        snapshots: Mutex::new(Vec::new()),
    };
    let r = deploy_blue_green(&s.cluster, &s.metrics, &rec, &cfg, V2, never_cancel()).await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    let seen = rec.seen.lock().map(|v| v.clone()).unwrap_or_default();
    let weights: Vec<(Option<usize>, Option<String>)> =
        seen.iter().map(|(st, _, _, w)| (*st, w.clone())).collect();
    assert!(
        weights
            .iter()
            .filter(|(st, _)| *st == Some(0))
            .all(|(_, w)| w.as_deref() == Some("20")),
        "{weights:?}"
    );
    assert!(
        weights
            .iter()
            .filter(|(st, _)| *st == Some(1))
            .all(|(_, w)| w.as_deref() == Some("50")),
        "{weights:?}"
    );
    assert!(
        weights.iter().any(|(st, _)| *st == Some(0))
            && weights.iter().any(|(st, _)| *st == Some(1))
    );
    assert!(
        weights
            .iter()
            .filter(|(st, _)| st.is_none())
            .all(|(_, w)| w.as_deref() == Some("0")),
        "{weights:?}"
    );
    let ing = kube::Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(
        s.client.clone(),
        &s.ns.name,
    )
    .get(&format!("{SERVICE}-canary"))
    .await?;
    let backend = ing
        .spec
        .and_then(|s| s.rules)
        .and_then(|r| r.into_iter().next())
        .and_then(|r| r.http);
    let backend = backend
        .and_then(|h| h.paths.into_iter().next())
        .and_then(|p| p.backend.service)
        .map(|s| s.name);
    assert_eq!(backend.as_deref(), Some("web-preview"));
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.cleanup().await
}

/// Protects the environment Lease: while one release holds it, a second (another run) waits and
/// then fails naming the holder, leaving the first release's traffic alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_release_waits_for_the_lease_then_fails() -> anyhow::Result<()> {
    let s = Scenario::start("bg-lease", &[V1, V2], false).await?;
    first_release(&s).await?;
    let first = s.config(
        Duration::from_secs(8),
        NoDataPolicy::Hold,
        vec![health(0.5, 2)],
    );
    let mut second = s.config(Duration::from_secs(8), NoDataPolicy::Hold, vec![]);
    second.holder = "run-2".into();
    second.lease_wait = Duration::from_secs(1);
    let one = deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &first,
        V2,
        never_cancel(),
    );
    let two = async {
        wait_selector(&s.client, &s.ns.name, "green").await?;
        anyhow::Ok(
            deploy_blue_green(
                &s.cluster,
                &s.metrics,
                &NoProgress,
                &second,
                V1,
                never_cancel(),
            )
            .await,
        )
    };
    let (one, two) = tokio::join!(one, two);
    let err = match two? {
        Ok(r) => anyhow::bail!("the second release ran: {:?}", r.end),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("held by run-1"), "{err}");
    assert_eq!(one?.end, RunEnd::Finished(Outcome::Succeeded));
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.cleanup().await
}

/// Protects a rollback during an NGINX canary step: the weight goes back to 0 before anything else,
/// the selector stays on blue, green is scaled down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_during_canary_step_resets_weight() -> anyhow::Result<()> {
    let s = Scenario::start("bg-canary-rb", &[V1, V2], true).await?;
    first_release(&s).await?;
    s.app(V2).set_knobs(&[("memory_mb", "110")]).await?;
    let mut cfg = s.config(
        Duration::from_secs(10),
        NoDataPolicy::Hold,
        vec![memory(0.95, 2)],
    );
    cfg.bg.shift = ShiftKind::NginxCanary;
    cfg.bg.steps = vec![20, 100];
    cfg.shift_pause = Duration::from_secs(20);
    let r = deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        V2,
        never_cancel(),
    )
    .await?;
    assert_eq!(
        r.end,
        RunEnd::Finished(Outcome::RolledBack {
            trigger: "memory".into()
        }),
        "{r:#?}"
    );
    assert!(
        !r.timeline.iter().any(|e| e.what == "selector on green"),
        "{:?}",
        r.timeline
    );
    let ing = kube::Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(
        s.client.clone(),
        &s.ns.name,
    )
    .get(&format!("{SERVICE}-canary"))
    .await?;
    let weight = ing
        .metadata
        .annotations
        .and_then(|a| a.get("nginx.ingress.kubernetes.io/canary-weight").cloned());
    assert_eq!(weight.as_deref(), Some("0"));
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(s.replicas("green").await.0, 0);
    s.cleanup().await
}
