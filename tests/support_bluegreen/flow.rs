//! Shared steps of the scenarios: the first release, a release of v2, knobs flipped once traffic is
//! on green, a progress recorder.

use crate::support_bluegreen::scenario::*;
use crate::support_k8s::router::TestRouter;
use fm_deploy::deploy::bluegreen::{Action, BgState, Outcome};
use fm_deploy::deploy::bluegreen_run::{
    BgReport, MonitorSnapshot, NoProgress, Progress, RunEnd, deploy_blue_green,
};
use fm_deploy::policy::model::{NoDataPolicy, TriggerSpec};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

pub fn never_cancel() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

pub fn output(r: &BgReport, key: &str) -> String {
    r.outputs()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Blue live on v1 (the first deploy: blue, no monitoring).
pub async fn first_release(s: &Scenario) -> anyhow::Result<()> {
    let cfg = s.config(Duration::from_secs(5), NoDataPolicy::Hold, vec![]);
    let r = deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        V1,
        never_cancel(),
    )
    .await?;
    anyhow::ensure!(
        r.end == RunEnd::Finished(Outcome::Succeeded),
        "first release: {:?}",
        r.end
    );
    anyhow::ensure!(s.selector().await.as_deref() == Some("blue"));
    s.wait_live_on(V1).await
}

pub async fn release_v2(
    s: &Scenario,
    monitor: u64,
    no_data: NoDataPolicy,
    triggers: Vec<TriggerSpec>,
) -> anyhow::Result<BgReport> {
    let cfg = s.config(Duration::from_secs(monitor), no_data, triggers);
    Ok(deploy_blue_green(
        &s.cluster,
        &s.metrics,
        &NoProgress,
        &cfg,
        V2,
        never_cancel(),
    )
    .await?)
}

/// Waits (deadline 60 s) until the live Service selects `color`.
pub async fn wait_selector(client: &kube::Client, ns: &str, color: &str) -> anyhow::Result<()> {
    let api = Api::<Service>::namespaced(client.clone(), ns);
    crate::support_k8s::wait_until(
        Duration::from_secs(60),
        &format!("the service to select {color}"),
        || {
            let api = api.clone();
            async move {
                let sel = api
                    .get_opt(SERVICE)
                    .await
                    .ok()??
                    .spec?
                    .selector?
                    .get("version")
                    .cloned();
                (sel.as_deref() == Some(color)).then_some(())
            }
        },
    )
    .await
}

/// Once the selector is on green, sets `knobs` on the app at `url` (and, after `hold`, `after`).
pub fn knobs_after_switch(
    s: &Scenario,
    image: &str,
    knobs: Vec<(&'static str, &'static str)>,
    hold: Option<(Duration, Vec<(&'static str, &'static str)>)>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let client = s.client.clone();
    let ns = s.ns.name.clone();
    let url = format!("{}/admin/knobs", s.app(image).url());
    tokio::spawn(async move {
        wait_selector(&client, &ns, "green").await?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        http.post(&url)
            .form(&knobs)
            .send()
            .await?
            .error_for_status()?;
        if let Some((d, after)) = hold {
            tokio::time::sleep(d).await;
            http.post(&url)
                .form(&after)
                .send()
                .await?
                .error_for_status()?;
        }
        Ok(())
    })
}

/// (shift step, blue backends, green backends, canary weight) at one progress report.
pub type Seen = (Option<usize>, usize, usize, Option<String>);

/// Records what the router sends to while each shift step is held, and the canary weight.
pub struct Recorder<'a> {
    pub router: &'a TestRouter,
    pub blue: SocketAddr,
    pub green: SocketAddr,
    pub client: kube::Client,
    pub ns: String,
    pub canary: Option<String>,
    pub seen: Mutex<Vec<Seen>>,
    pub transitions: Mutex<Vec<String>>,
    pub snapshots: Mutex<Vec<MonitorSnapshot>>,
}

impl Progress for Recorder<'_> {
    async fn transition(&self, state: &BgState, action: &Action) {
        if let Ok(mut t) = self.transitions.lock() {
            t.push(format!("{:?} {:?}", state.phase, action));
        }
    }
    async fn monitoring(&self, snapshot: &MonitorSnapshot) {
        let b = self.router.backends();
        let blue = b.iter().filter(|a| **a == self.blue).count();
        let green = b.iter().filter(|a| **a == self.green).count();
        let weight = match &self.canary {
            Some(name) => Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(
                self.client.clone(),
                &self.ns,
            )
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|i| i.metadata.annotations)
            .and_then(|a| a.get("nginx.ingress.kubernetes.io/canary-weight").cloned()),
            None => None,
        };
        if let Ok(mut s) = self.seen.lock() {
            s.push((snapshot.shift_step, blue, green, weight));
        }
        if let Ok(mut s) = self.snapshots.lock() {
            s.push(snapshot.clone());
        }
    }
}
