//! Fault injection points for the blue-green scenarios: a [`BgCluster`] wrapper that passes every
//! call through and marks when each step starts and ends, so a test can kill the apiserver or
//! freeze Prometheus at an exact phase of the release (condition waits on the marks, no sleeps).

use fm_deploy::deploy::bluegreen::{BgState, Color};
use fm_deploy::deploy::colors::{BgCluster, ClusterError, Selector};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Watched<'a, C> {
    pub inner: &'a C,
    marks: Mutex<Vec<(String, Instant)>>,
}

impl<'a, C: BgCluster> Watched<'a, C> {
    pub fn new(inner: &'a C) -> Self {
        Self {
            inner,
            marks: Mutex::new(Vec::new()),
        }
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
        self.mark("apply");
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
        self.mark(&format!("scale {color} {replicas}"));
        self.inner.scale(color, replicas).await
    }
    async fn switch(&self, selector: Selector, state: &BgState) -> Result<(), ClusterError> {
        self.mark("switch");
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
        self.mark("revert");
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
