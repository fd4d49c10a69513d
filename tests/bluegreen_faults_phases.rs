//! The fault matrix, phase by phase: the release's private apiserver SIGKILLed (and restarted on
//! the same port) while the release is held at the start of each phase — the green Deployment's
//! apply, the health check of the idle colour, each gradual shift step, the revert itself —;
//! Prometheus frozen or killed during a shift step; a second client writing the objects between
//! the release's read and its write. The fault lands while
//! the release waits at the phase's mark (`Watched::hold`), so it never races the phase's first
//! request. Each asserts where traffic ends (Service selector and router), the outcome, exit code
//! and outputs, the state record, and that no request failed beyond the faulty version's own
//! errors, at 100 requests/s through the live router.

mod support_bluegreen;
mod support_k8s;

use fm_deploy::deploy::bluegreen_run::{BgReport, BgRunConfig, deploy_blue_green};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};
use support_bluegreen::faults::*;
use support_bluegreen::flow::{knobs_after_switch, never_cancel};
use support_bluegreen::scenario::*;
use support_k8s::apiserver::PrivateApiserver;

/// What a release through an outage left: its report, the restarted apiserver, when that served
/// again, and when the revert (if any) landed.
struct Outage {
    report: BgReport,
    api: PrivateApiserver,
    ready: Instant,
    reverted: Option<Instant>,
}

/// Releases v2 with the private apiserver SIGKILLed while the release waits at `mark`, lets the
/// phase run into the outage, then restarts the apiserver on the same port.
async fn release_through_outage(
    s: &Scenario,
    api: PrivateApiserver,
    cfg: &BgRunConfig,
    mark: &str,
) -> anyhow::Result<Outage> {
    let port = api.port;
    let cluster = Watched::new(&s.cluster);
    cluster.hold(mark);
    let release = Box::pin(deploy_blue_green(
        &cluster,
        &s.metrics,
        &cluster,
        cfg,
        V2,
        never_cancel(),
    ));
    let faults = async {
        cluster.wait(mark, MARK_WAIT).await?;
        api.kill().await?;
        cluster.release(mark);
        let back = PrivateApiserver::start(&s.tb, port).await?;
        anyhow::Ok((back, Instant::now()))
    };
    let (r, f) = tokio::join!(release, faults);
    let (api, ready) = f?;
    Ok(Outage {
        report: r?,
        api,
        ready,
        reverted: cluster.at("reverted"),
    })
}

/// The apiserver dies at `mark` of a release that has nothing wrong with it: every write of the
/// phase (and after) is retried until it lands, the release succeeds, green live, nothing lost.
async fn outage_release_succeeds(prefix: &str, mark: &str, shift: bool) -> anyhow::Result<()> {
    let (s, api) = rig(prefix).await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let triggers = vec![memory(0.95, 1), health(0.5, 1)];
    let cfg = if shift {
        shifting(&s, Duration::from_secs(2), triggers)
    } else {
        fast(&s, Duration::from_secs(2), triggers)
    };
    let out = release_through_outage(&s, api, &cfg, mark).await?;
    assert_released(&s, &out.report, V2).await?;
    let hits = load.finish().await;
    if shift {
        assert_eq!(s.replicas("green").await, (4, 4));
    }
    assert_no_loss(&hits, None);
    out.api.kill().await?;
    s.cleanup().await
}

/// Protects the apply under an outage: the apiserver is SIGKILLed just before the green
/// Deployment's server-side apply is sent; the apply is retried until the restarted apiserver
/// takes it, readiness follows through the re-listing watch, the release succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_during_apply_release_succeeds() -> anyhow::Result<()> {
    outage_release_succeeds("bgf-apply", "apply", false).await
}

/// Protects the health check under an outage: the apiserver is SIGKILLed as the idle colour's
/// health check starts (the checks go through the colour's router, not the apiserver); the switch
/// after it is retried until the apiserver is back, the release succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_during_health_check_release_succeeds() -> anyhow::Result<()> {
    outage_release_succeeds("bgf-health", "health-check", false).await
}

/// Protects every gradual shift step under an outage (replica ratio, steps 25 % and 50 %): the
/// apiserver is SIGKILLed as step `n` starts, the step's scale / selector writes and readiness
/// waits are retried, every step still needs data, the release succeeds with green at full size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_during_each_shift_step_release_succeeds() -> anyhow::Result<()> {
    for n in 0..SHIFT_STEPS.len() - 1 {
        outage_release_succeeds(&format!("bgf-shift{n}"), &format!("shift {n}"), true).await?;
    }
    Ok(())
}

/// Protects the revert itself: the error-rate trigger fires on a faulty v2, the revert starts and
/// the apiserver is SIGKILLed before its first request; the revert is retried until the restarted
/// apiserver takes it — the run ends rolled back (exit 1), blue live, record `rolled-back`, the
/// wait reported; only v2's own errors are lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_mid_revert_revert_lands_after_restart() -> anyhow::Result<()> {
    let (s, api) = rig("bgf-revert").await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let faulty = knobs_after_switch(&s, V2, vec![("error_rate", "1.0")], None);
    let cfg = fast(&s, Duration::from_secs(20), vec![error_rate(0.5, 1, 2)]);
    let out = release_through_outage(&s, api, &cfg, "revert").await?;
    faulty.await??;
    assert_rolled_back(&s, &out.report, "error-rate").await?;
    let hits = load.finish().await;
    let landed = out
        .reverted
        .ok_or_else(|| anyhow::anyhow!("the revert never landed"))?;
    assert!(
        landed >= out.ready,
        "the revert landed before the apiserver was back"
    );
    assert!(out.report.revert_waited.is_some_and(|w| w > Duration::ZERO));
    assert_no_loss(&hits, Some(s.app(V2).addr));
    out.api.kill().await?;
    s.cleanup().await
}

/// What happens to Prometheus during a shift step.
#[derive(Debug, Clone, Copy)]
enum PromFault {
    Freeze,
    Kill,
}

/// Prometheus fails as shift step 0 starts: the step gets no data, is inconclusive and rolls back
/// (never passes blind): the next step and the switch never happen, blue live.
async fn prometheus_fault_in_shift(prefix: &str, fault: PromFault) -> anyhow::Result<()> {
    let (s, api) = rig(prefix).await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let cfg = shifting(&s, Duration::from_secs(3), vec![memory(0.95, 1)]);
    let r = {
        let cluster = Watched::new(&s.cluster);
        cluster.hold("shift 0");
        let release = Box::pin(deploy_blue_green(
            &cluster,
            &s.metrics,
            &cluster,
            &cfg,
            V2,
            never_cancel(),
        ));
        let faults = async {
            cluster.wait("shift 0", MARK_WAIT).await?;
            match fault {
                PromFault::Freeze => s.prom.freeze()?,
                PromFault::Kill => s.prom.kill()?,
            }
            cluster.release("shift 0");
            anyhow::Ok(())
        };
        let (r, f) = tokio::join!(release, faults);
        f?;
        r?
    };
    if let PromFault::Freeze = fault {
        s.prom.thaw()?;
    }
    assert_rolled_back(&s, &r, "inconclusive").await?;
    let hits = load.finish().await;
    let passed = |what: &str| r.timeline.iter().any(|t| t.what.starts_with(what));
    assert!(
        !passed("shift 50%"),
        "a blind step passed: {:#?}",
        r.timeline
    );
    assert!(!passed("switch selector to green"), "{:#?}", r.timeline);
    let series = &r.series[0];
    let no_data = series.samples.iter().filter(|x| x.value.is_none()).count();
    assert!(no_data * 2 > series.samples.len(), "{series:?}");
    assert_no_loss(&hits, None);
    api.kill().await?;
    s.cleanup().await
}

/// Protects "no blind step" with a hung Prometheus: frozen (SIGSTOP) as shift step 0 starts, the
/// step is inconclusive and rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_frozen_in_shift_step_is_inconclusive_and_rolls_back() -> anyhow::Result<()> {
    prometheus_fault_in_shift("bgf-shiftstop", PromFault::Freeze).await
}

/// Protects "no blind step" with Prometheus gone: killed as shift step 0 starts, the step is
/// inconclusive and rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_killed_in_shift_step_is_inconclusive_and_rolls_back() -> anyhow::Result<()> {
    prometheus_fault_in_shift("bgf-shiftkill", PromFault::Kill).await
}

/// Protects the release against a concurrent writer: a second client changes the blue Deployment
/// (replicas, an annotation of its own) between the release's read and its scale at shift step 0,
/// and replaces the live Service (an annotation of its own, with the resourceVersion it read)
/// between the release's read and its selector write. The release's writes land over theirs
/// (forced server-side apply / merge patch), their other fields survive, the release succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_on_service_and_deployment_release_succeeds() -> anyhow::Result<()> {
    let (s, api) = rig("bgf-writer").await?;
    let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
    let cfg = shifting(&s, Duration::from_secs(2), vec![memory(0.95, 1)]);
    let deployments = Api::<Deployment>::namespaced(s.client.clone(), &s.ns.name);
    let services = Api::<Service>::namespaced(s.client.clone(), &s.ns.name);
    let theirs = ("example.test/owner".to_string(), "ops".to_string());
    let r = {
        let cluster = Watched::new(&s.cluster);
        let scale = "scale blue 3";
        cluster.hold(scale);
        cluster.hold("switch");
        let release = Box::pin(deploy_blue_green(
            &cluster,
            &s.metrics,
            &cluster,
            &cfg,
            V2,
            never_cancel(),
        ));
        let writer = async {
            cluster.wait(scale, MARK_WAIT).await?;
            let patch = json!({"metadata": {"annotations": {&theirs.0: &theirs.1}},
                               "spec": {"replicas": 1}});
            deployments
                .patch(
                    &format!("{APP}-blue"),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
            cluster.release(scale);
            cluster.wait("switch", MARK_WAIT).await?;
            let mut svc = services.get(SERVICE).await?;
            svc.metadata
                .annotations
                .get_or_insert_default()
                .insert(theirs.0.clone(), theirs.1.clone());
            services
                .replace(SERVICE, &PostParams::default(), &svc)
                .await?;
            cluster.release("switch");
            anyhow::Ok(())
        };
        let (r, w) = tokio::join!(release, writer);
        w?;
        r?
    };
    assert_released(&s, &r, V2).await?;
    let hits = load.finish().await;
    assert_eq!(s.replicas("green").await, (4, 4));
    let annotation = |a: Option<std::collections::BTreeMap<String, String>>| {
        a.and_then(|mut a| a.remove(&theirs.0))
    };
    let blue = deployments.get(&format!("{APP}-blue")).await?;
    assert_eq!(
        annotation(blue.metadata.annotations),
        Some(theirs.1.clone())
    );
    let svc = services.get(SERVICE).await?;
    assert_eq!(annotation(svc.metadata.annotations), Some(theirs.1.clone()));
    assert_no_loss(&hits, None);
    api.kill().await?;
    s.cleanup().await
}
