//! The fault matrix: a blue-green release on the real testbed under 100 requests/s through a
//! router while its control plane misbehaves. The release talks to an apiserver of its own
//! (`apiserver.sh <port>` over the shared etcd) and a Prometheus of its own, so SIGKILL / SIGSTOP
//! never touch what other tests use; the stand-in kubelet and the routers stay on the shared
//! apiserver and keep following the cluster throughout. Each scenario asserts where traffic ends,
//! the outcome and outputs, the state record, and that no request failed beyond the faulty
//! version's own errors.

mod support_bluegreen;
mod support_k8s;

use fm_deploy::deploy::bluegreen::{Color, Outcome, Phase};
use fm_deploy::deploy::bluegreen_run::{NoProgress, RunEnd, deploy_blue_green, promote_blue_green};
use fm_deploy::deploy::colors::{BgCluster, Selector};
use fm_deploy::policy::model::InconclusivePolicy;
use std::time::{Duration, Instant};
use support_bluegreen::faults::*;
use support_bluegreen::flow::{never_cancel, output};
use support_bluegreen::scenario::*;
use support_k8s::apiserver::PrivateApiserver;

/// Protects "the rollback always lands": the apiserver is SIGKILLed right after the switch, the
/// error-rate trigger fires while it is down, the revert keeps being retried and lands once the
/// apiserver is back — run ends rolled back (exit 1), traffic on blue, record `rolled-back`, the
/// wait reported. Prints the apiserver-ready → revert-landed time (BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_in_monitoring_revert_lands_after_restart() -> anyhow::Result<()> {
    let (s, api) = rig("bgf-monitor").await?;
    let port = api.port;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let cluster = Watched::new(&s.cluster);
    let cfg = fast(&s, Duration::from_secs(20), vec![error_rate(0.5, 1, 2)]);
    let release = deploy_blue_green(&cluster, &s.metrics, &NoProgress, &cfg, V2, never_cancel());
    let faults = async {
        cluster.wait("switched", MARK_WAIT).await?;
        // v2 turns faulty once it has the traffic (it passed its health checks healthy).
        s.app(V2).set_knobs(&[("error_rate", "1.0")]).await?;
        api.kill().await?;
        // The trigger fires with the apiserver gone: the revert is asked for and cannot land.
        cluster.wait("revert", MARK_WAIT).await?;
        let back = PrivateApiserver::start(&s.tb, port).await?;
        anyhow::Ok((back, Instant::now()))
    };
    let (r, f) = tokio::join!(release, faults);
    let (back, ready) = f?;
    let r = r?;
    s.wait_live_on(V1).await?;
    let hits = load.finish().await;

    assert_eq!(
        r.end,
        RunEnd::Finished(Outcome::RolledBack {
            trigger: "error-rate".into()
        }),
        "{:#?}",
        r.timeline
    );
    assert_eq!(r.exit_code(), 1);
    assert_eq!(output(&r, "rolled-back"), "true");
    assert_eq!(output(&r, "active-color"), "blue");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    assert_eq!(record(&s).await?.phase, Phase::RolledBack);
    let landed = cluster
        .at("reverted")
        .ok_or_else(|| anyhow::anyhow!("the revert never landed"))?;
    assert!(r.revert_waited.is_some_and(|w| w > Duration::ZERO));
    println!(
        "BENCH revert_after_apiserver_ready_ms={}",
        landed.saturating_duration_since(ready).as_millis()
    );
    assert_no_loss(&hits, Some(s.app(V2).addr));
    back.kill().await?;
    s.cleanup().await
}

/// Protects the release through outages before and at the switch: the apiserver is SIGKILLed once
/// the green Deployment is applied (readiness wait and preview run into the outage) and again as
/// the switch is sent; every write is retried until it lands, the release succeeds, green live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_during_readiness_and_switch_release_succeeds() -> anyhow::Result<()> {
    let (s, api) = rig("bgf-switch").await?;
    let port = api.port;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let cluster = Watched::new(&s.cluster);
    let cfg = fast(
        &s,
        Duration::from_secs(2),
        vec![memory(0.95, 1), health(0.5, 1)],
    );
    let release = deploy_blue_green(&cluster, &s.metrics, &NoProgress, &cfg, V2, never_cancel());
    let faults = async {
        cluster.wait("applied", MARK_WAIT).await?;
        api.kill().await?;
        let again = PrivateApiserver::start(&s.tb, port).await?;
        cluster.wait("switch", MARK_WAIT).await?;
        again.kill().await?;
        PrivateApiserver::start(&s.tb, port).await
    };
    let (r, back) = tokio::join!(release, faults);
    let (r, back) = (r?, back?);
    assert_eq!(
        r.end,
        RunEnd::Finished(Outcome::Succeeded),
        "{:#?}",
        r.timeline
    );
    s.wait_live_on(V2).await?;
    let hits = load.finish().await;

    assert_eq!(r.exit_code(), 0);
    assert_eq!(output(&r, "active-color"), "green");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    assert_eq!(record(&s).await?.phase, Phase::Succeeded);
    assert_no_loss(&hits, None);
    back.kill().await?;
    s.cleanup().await
}

/// Protects "no blind windows": Prometheus is frozen (SIGSTOP) right after the switch; every query
/// times out below the sample interval (the sampling keeps its pace), the window ends without
/// data and is inconclusive, which rolls back by default — never `succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_frozen_in_monitoring_is_inconclusive_and_rolls_back() -> anyhow::Result<()> {
    let (s, api) = rig("bgf-promstop").await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let cluster = Watched::new(&s.cluster);
    let cfg = fast(&s, Duration::from_secs(3), vec![memory(0.95, 1)]);
    let release = deploy_blue_green(&cluster, &s.metrics, &NoProgress, &cfg, V2, never_cancel());
    let faults = async {
        cluster.wait("switched", MARK_WAIT).await?;
        s.prom.freeze()
    };
    let (r, f) = tokio::join!(release, faults);
    f?;
    let r = r?;
    s.prom.thaw()?;
    s.wait_live_on(V1).await?;
    let hits = load.finish().await;

    match &r.end {
        RunEnd::Finished(Outcome::RolledBack { trigger }) => {
            assert!(trigger.starts_with("inconclusive"), "{trigger}")
        }
        other => panic!("expected an inconclusive rollback, got {other:?}"),
    }
    assert_eq!(r.exit_code(), 1);
    assert_eq!(output(&r, "rolled-back"), "true");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    let series = &r.series[0];
    let no_data = series.samples.iter().filter(|x| x.value.is_none()).count();
    assert!(no_data * 2 > series.samples.len(), "{series:?}");
    // 3 s at 250 ms is 12 samples; a query allowed 5 s would have given one.
    assert!(series.samples.len() >= 6, "sampling stretched: {series:?}");
    assert_eq!(record(&s).await?.phase, Phase::RolledBack);
    assert_no_loss(&hits, None);
    api.kill().await?;
    s.cleanup().await
}

/// Protects `on_inconclusive: pause`: Prometheus is killed right after the switch; the window is
/// inconclusive, the run pauses with traffic on green (record `unproven`), and `promote` accepts
/// the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_killed_in_monitoring_pauses_for_promote() -> anyhow::Result<()> {
    let (s, api) = rig("bgf-promkill").await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let mut cfg = fast(&s, Duration::from_secs(3), vec![memory(0.95, 1)]);
    cfg.rollback.on_inconclusive = InconclusivePolicy::Pause;
    let r = {
        let cluster = Watched::new(&s.cluster);
        let release =
            deploy_blue_green(&cluster, &s.metrics, &NoProgress, &cfg, V2, never_cancel());
        let faults = async {
            cluster.wait("switched", MARK_WAIT).await?;
            s.prom.kill()
        };
        let (r, f) = tokio::join!(release, faults);
        f?;
        r?
    };
    // Killed as the switch returned; the window sees only refused connections.
    assert_eq!(r.end, RunEnd::Paused, "{:#?}", r.timeline);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.state.phase, Phase::Unproven { step: None });
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    assert_eq!(record(&s).await?.phase, Phase::Unproven { step: None });
    let r = promote_blue_green(&s.cluster, &s.metrics, &NoProgress, &cfg, never_cancel()).await?;
    let hits = load.finish().await;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded));
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    assert_eq!(record(&s).await?.phase, Phase::Succeeded);
    assert_no_loss(&hits, None);
    api.kill().await?;
    s.cleanup().await
}

/// Benchmark (BENCHMARKS.md): apiserver ready again → revert landed, over 10 outages. Each round
/// SIGKILLs the private apiserver, asks for a revert (retried at most 250 ms apart), restarts the
/// apiserver and measures from the moment it serves to the moment the revert returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_revert_after_apiserver_restart() -> anyhow::Result<()> {
    let (s, mut api) = rig("bgf-bench").await?;
    let port = api.port;
    let state = s.cluster.read_state().await?;
    let mut times = Vec::new();
    for round in 0..10 {
        api.kill().await?;
        let to = if round % 2 == 0 {
            Color::Green
        } else {
            Color::Blue
        };
        let revert = s
            .cluster
            .revert(Selector::Only(to), &state, false, Duration::from_secs(120));
        let restart = PrivateApiserver::start(&s.tb, port);
        let (landed, back) = tokio::join!(
            async {
                revert.await?;
                anyhow::Ok(Instant::now())
            },
            async {
                let b = restart.await?;
                anyhow::Ok((b, Instant::now()))
            }
        );
        let (b, ready) = back?;
        let landed = landed?;
        times.push(landed.saturating_duration_since(ready));
        assert_eq!(s.selector().await.as_deref(), Some(to.as_str()));
        api = b;
    }
    times.sort();
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    println!(
        "BENCH revert_after_apiserver_ready runs={} median_ms={} max_ms={} all_ms={ms:?}",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    api.kill().await?;
    s.cleanup().await
}
