//! Fault injection points for the blue-green scenarios: a [`BgCluster`] wrapper that passes every
//! call through and marks when each step starts and ends, so a test can kill the apiserver or
//! freeze Prometheus at an exact phase of the release (condition waits on the marks, no sleeps).
//! As the run's [`Progress`] it also marks each action as it starts (`health-check`, `shift <n>`,
//! `monitor`), and a mark can be *held*: the call waits there until the test releases it, so a
//! fault lands before the step's first request, not racing it.

use crate::support_bluegreen::flow::{first_release, output};
use crate::support_bluegreen::scenario::*;
use crate::support_k8s::Testbed;
use crate::support_k8s::apiserver::{PrivateApiserver, free_port};
use fm_deploy::deploy::bluegreen::{Action, BgState, Color, Outcome, Phase, ShiftKind};
use fm_deploy::deploy::bluegreen_run::{BgReport, BgRunConfig, MonitorSnapshot, Progress, RunEnd};
use fm_deploy::deploy::colors::{BgCluster, ClusterError, STATE_ANNOTATION, Selector};
use fm_deploy::deploy::manifests::DeployInputs;
use fm_deploy::policy::model::{NoDataPolicy, TriggerSpec};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Watched<'a, C> {
    pub inner: &'a C,
    marks: Mutex<Vec<(String, Instant)>>,
    held: watch::Sender<BTreeSet<String>>,
}

/// The mark of an action as it starts (`None`: not marked).
fn action_mark(action: &Action) -> Option<String> {
    match action {
        Action::HealthCheck { .. } => Some("health-check".into()),
        Action::Shift { step, .. } => Some(format!("shift {step}")),
        Action::Monitor { .. } => Some("monitor".into()),
        _ => None,
    }
}

impl<'a, C: BgCluster> Watched<'a, C> {
    pub fn new(inner: &'a C) -> Self {
        Self {
            inner,
            marks: Mutex::new(Vec::new()),
            held: watch::Sender::new(BTreeSet::new()),
        }
    }

    /// Calls reaching `what` wait there (marked) until [`Watched::release`].
    pub fn hold(&self, what: &str) {
        self.held.send_modify(|h| {
            h.insert(what.to_string());
        });
    }

    pub fn release(&self, what: &str) {
        self.held.send_modify(|h| {
            h.remove(what);
        });
    }

    /// Marks `what`, then waits while it is held.
    async fn pass(&self, what: &str) {
        self.mark(what);
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|h| !h.contains(what)).await;
    }

    fn mark(&self, what: &str) {
        if let Ok(mut m) = self.marks.lock() {
            m.push((what.to_string(), Instant::now()));
        }
    }

    /// When `what` was first marked.
    pub fn at(&self, what: &str) -> Option<Instant> {
        self.marks
            .lock()
            .ok()?
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, t)| *t)
    }

    /// Waits (deadline `limit`) until `what` is marked.
    pub async fn wait(&self, what: &str, limit: Duration) -> anyhow::Result<Instant> {
        crate::support_k8s::wait_until(limit, &format!("the release to reach {what}"), || async {
            self.at(what)
        })
        .await
    }
}

impl<C: BgCluster> BgCluster for Watched<'_, C> {
    async fn read_state(&self) -> Result<BgState, ClusterError> {
        self.inner.read_state().await
    }
    async fn write_state(&self, state: &BgState) -> Result<(), ClusterError> {
        self.inner.write_state(state).await
    }
    async fn apply_color(
        &self,
        color: Color,
        image: &str,
        replicas: u32,
    ) -> Result<(), ClusterError> {
        self.pass("apply").await;
        let r = self.inner.apply_color(color, image, replicas).await;
        self.mark("applied");
        r
    }
    async fn wait_ready(&self, color: Color, deadline: Duration) -> Result<(), ClusterError> {
        self.mark("wait-ready");
        let r = self.inner.wait_ready(color, deadline).await;
        self.mark("ready");
        r
    }
    async fn scale(&self, color: Color, replicas: u32) -> Result<(), ClusterError> {
        self.pass(&format!("scale {color} {replicas}")).await;
        self.inner.scale(color, replicas).await
    }
    async fn switch(&self, selector: Selector, state: &BgState) -> Result<(), ClusterError> {
        self.pass("switch").await;
        let r = self.inner.switch(selector, state).await;
        self.mark("switched");
        r
    }
    async fn revert(
        &self,
        selector: Selector,
        state: &BgState,
        reset_canary: bool,
        within: Duration,
    ) -> Result<(), ClusterError> {
        self.pass("revert").await;
        let r = self
            .inner
            .revert(selector, state, reset_canary, within)
            .await;
        if r.is_ok() {
            self.mark("reverted");
        }
        r
    }
    async fn preview(&self, color: Color) -> Result<(), ClusterError> {
        self.inner.preview(color).await
    }
    async fn canary_weight(&self, weight: u8) -> Result<(), ClusterError> {
        self.inner.canary_weight(weight).await
    }
    async fn proxy_get(&self, service: &str, path: &str, timeout: Duration) -> Result<u16, String> {
        self.inner.proxy_get(service, path, timeout).await
    }
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<(), ClusterError> {
        self.inner.acquire_lease(holder, ttl, wait).await
    }
    async fn renew_lease(&self, holder: &str) -> Result<(), ClusterError> {
        self.inner.renew_lease(holder).await
    }
    async fn release_lease(&self, holder: &str) -> Result<(), ClusterError> {
        self.inner.release_lease(holder).await
    }
}

impl<C: BgCluster> Progress for Watched<'_, C> {
    async fn transition(&self, _: &BgState, action: &Action) {
        if let Some(m) = action_mark(action) {
            self.pass(&m).await;
        }
    }
    async fn monitoring(&self, _: &MonitorSnapshot) {}
}

/// How long a test waits for the release to reach a mark.
pub const MARK_WAIT: Duration = Duration::from_secs(90);

/// A scenario whose release goes through a private apiserver, with v1 live on blue.
pub async fn rig(prefix: &str) -> anyhow::Result<(Scenario, PrivateApiserver)> {
    let tb = Testbed::get()?;
    anyhow::ensure!(
        tb.is_local(),
        "needs the local testbed (it starts and kills an apiserver)"
    );
    let api = PrivateApiserver::start(&tb, free_port()?).await?;
    let s = rig_on(prefix, &[V1, V2], &api.url()).await?;
    Ok((s, api))
}

/// A scenario with `images` whose release talks to the apiserver at `server`, v1 live on blue.
pub async fn rig_on(prefix: &str, images: &[&str], server: &str) -> anyhow::Result<Scenario> {
    let s = Scenario::start_env(
        prefix,
        images,
        false,
        |_| {},
        &DeployInputs::default(),
        Some(server),
    )
    .await?;
    first_release(&s).await?;
    Ok(s)
}

/// Short windows: sampling every 250 ms, a Lease that outlives an apiserver restart.
pub fn fast(s: &Scenario, monitor: Duration, triggers: Vec<TriggerSpec>) -> BgRunConfig {
    let mut cfg = s.config(monitor, NoDataPolicy::Hold, triggers);
    cfg.rollback.sample_every = Duration::from_millis(250);
    cfg.lease_ttl = Duration::from_secs(40);
    cfg.ready_deadline = Duration::from_secs(60);
    cfg
}

/// [`fast`] with a replica-ratio shift: 4 replicas, steps 25 % and 50 % held `pause` each.
pub fn shifting(s: &Scenario, pause: Duration, triggers: Vec<TriggerSpec>) -> BgRunConfig {
    let mut cfg = fast(s, Duration::from_secs(2), triggers);
    cfg.bg.replicas = 4;
    cfg.bg.shift = ShiftKind::ReplicaRatio;
    cfg.bg.steps = SHIFT_STEPS.to_vec();
    cfg.shift_pause = pause;
    cfg
}

/// The gradual steps of [`shifting`] (the last is the switch).
pub const SHIFT_STEPS: [u8; 3] = [25, 50, 100];

/// The record on the live Service, read through the shared apiserver.
pub async fn record(s: &Scenario) -> anyhow::Result<BgState> {
    let svc = Api::<Service>::namespaced(s.client.clone(), &s.ns.name)
        .get(SERVICE)
        .await?;
    let text = svc
        .metadata
        .annotations
        .and_then(|mut a| a.remove(STATE_ANNOTATION))
        .ok_or_else(|| anyhow::anyhow!("no state record on the live service"))?;
    Ok(serde_json::from_str(&text)?)
}

/// The load ran, and every failed request was answered by `faulty` (the version broken on purpose).
pub fn assert_no_loss(hits: &[Hit], faulty: Option<std::net::SocketAddr>) {
    let failed = unexplained_failures(hits, faulty);
    assert!(hits.len() >= 100, "load ran: {} requests", hits.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed beyond the faulty version's own errors: {:?}",
        failed.len(),
        hits.len(),
        &failed[..failed.len().min(5)]
    );
    println!(
        "LOSS requests={} failed={} unexplained=0",
        hits.len(),
        hits.iter()
            .filter(|h| !(200..300).contains(&h.status))
            .count()
    );
}

/// The release of `image` ended `succeeded` with green live: outputs, Service selector, router
/// and record.
pub async fn assert_released(s: &Scenario, r: &BgReport, image: &str) -> anyhow::Result<()> {
    assert_eq!(
        r.end,
        RunEnd::Finished(Outcome::Succeeded),
        "{:#?}",
        r.timeline
    );
    assert_eq!(r.exit_code(), 0);
    assert_eq!(output(r, "outcome"), "succeeded");
    assert_eq!(output(r, "active-color"), "green");
    assert_eq!(output(r, "rolled-back"), "false");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.wait_live_on(image).await?;
    assert_eq!(record(s).await?.phase, Phase::Succeeded);
    Ok(())
}

/// The run ended rolled back by a trigger whose name starts with `trigger`, blue live again.
pub async fn assert_rolled_back(s: &Scenario, r: &BgReport, trigger: &str) -> anyhow::Result<()> {
    match &r.end {
        RunEnd::Finished(Outcome::RolledBack { trigger: t }) => {
            assert!(t.starts_with(trigger), "{t}: {:#?}", r.timeline)
        }
        other => panic!(
            "expected a rollback ({trigger}), got {other:?}: {:#?}",
            r.timeline
        ),
    }
    assert_eq!(r.exit_code(), 1);
    assert_eq!(output(r, "outcome"), "rolled-back");
    assert_eq!(output(r, "rolled-back"), "true");
    assert_eq!(output(r, "active-color"), "blue");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    s.wait_live_on(V1).await?;
    assert_eq!(record(s).await?.phase, Phase::RolledBack);
    Ok(())
}
