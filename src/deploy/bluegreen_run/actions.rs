//! The driver's actions, each a method returning its boxed future (see [`Boxed`]): bringing a
//! colour up, its health check, a shift step, the switch and the revert.

use super::{CANCEL_GRACE, Ctx, Progress, cancelled, health_check, round_ms};
use crate::deploy::bluegreen::{
    BgState, Color, Event, ShiftKind, Transition, ratio_replicas, step,
};
use crate::deploy::bluegreen_run::{BgError, TimelineEntry};
use crate::deploy::colors::{BgCluster, ClusterError, Selector};
use crate::deploy::metrics::MetricsSource;
use chrono::Utc;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// One action of the driver as a boxed future: built in its method's own short frame and polled
/// from the heap, so the driver's frame holds a pointer instead of every action's state (in debug
/// builds each await's future has its own stack slot, and the sum overflowed a 2 MiB test thread).
pub(super) type Boxed<'s, T> = Pin<Box<dyn Future<Output = Result<T, BgError>> + Send + 's>>;

/// Where performing an action leads: an event for the state machine, or the next transition
/// itself (the switch and the revert step the machine as their PATCH lands).
pub(super) enum Next {
    Event(Event),
    Then(Transition),
}

impl<C: BgCluster, M: MetricsSource, P: Progress> Ctx<'_, C, M, P> {
    /// `DeployIdle` (with `image`) or `ScaleUp` (without): `color` at `replicas`, previewed, and
    /// waited for until Ready, cancellable.
    pub(super) fn bring_up<'s>(
        &'s mut self,
        color: Color,
        image: Option<String>,
        replicas: u32,
    ) -> Boxed<'s, Event> {
        Box::pin(async move {
            let cluster = self.cluster;
            let deadline = self.cfg.ready_deadline;
            let deploying = image.is_some();
            let work = async move {
                match &image {
                    Some(image) => cluster.apply_color(color, image, replicas).await?,
                    None => cluster.scale(color, replicas).await?,
                }
                cluster.preview(color).await?;
                cluster.wait_ready(color, deadline).await
            };
            Ok(match self.cancellable(work).await? {
                None => Event::Cancel,
                Some(Ok(())) => {
                    if deploying {
                        self.ready_at = Some(Instant::now());
                    }
                    Event::Ready
                }
                Some(Err(e @ ClusterError::NotReady { .. })) => Event::NotReady {
                    reason: e.to_string(),
                },
                Some(Err(e)) => return Err(e.into()),
            })
        })
    }

    /// `HealthCheck`: the idle colour's health endpoint until it passes or its deadline.
    pub(super) fn health<'s>(&'s mut self, color: Color) -> Boxed<'s, Event> {
        Box::pin(async move {
            let (http, cluster, cfg) = (self.http.clone(), self.cluster, self.cfg);
            let check = async move { health_check(cluster, &http, cfg, color, false).await };
            Ok(match self.cancellable(check).await? {
                None => Event::Cancel,
                Some(Ok(())) => {
                    self.checked_at = Some(Instant::now());
                    Event::HealthPassed
                }
                Some(Err(reason)) => Event::HealthFailed { reason },
            })
        })
    }

    /// `Shift` step `n`: `percent` of the traffic to `to`, then watched for the shift pause.
    pub(super) fn shift<'s>(
        &'s mut self,
        state: &'s BgState,
        n: usize,
        percent: u8,
        to: Color,
        from: Color,
    ) -> Boxed<'s, Event> {
        Box::pin(async move {
            let cfg = self.cfg;
            match cfg.bg.shift {
                ShiftKind::NginxCanary => self.cluster.canary_weight(percent).await?,
                ShiftKind::ReplicaRatio => {
                    let (old, new) = ratio_replicas(cfg.bg.replicas, percent);
                    self.cluster.scale(from, old).await?;
                    self.cluster.scale(to, new).await?;
                    self.cluster.switch(Selector::Both, state).await?;
                    self.cluster.wait_ready(from, cfg.ready_deadline).await?;
                    self.cluster.wait_ready(to, cfg.ready_deadline).await?;
                }
                ShiftKind::None => {}
            }
            self.watch(to, cfg.shift_pause, Some(n), true).await
        })
    }

    /// `Switch`: the selector and the record move to `to` in one PATCH.
    pub(super) fn switch<'s>(
        &'s mut self,
        state: &'s BgState,
        to: Color,
        written: &'s mut BgState,
    ) -> Boxed<'s, Transition> {
        Box::pin(async move {
            let cfg = self.cfg;
            if cfg.bg.shift == ShiftKind::ReplicaRatio && state.active.is_some() {
                // Full size before it takes all traffic.
                self.cluster.scale(to, cfg.bg.replicas).await?;
                self.cluster.wait_ready(to, cfg.ready_deadline).await?;
            }
            let now = Utc::now();
            let after = step(state, &cfg.bg, Event::Switched { now });
            self.cluster
                .switch(Selector::Only(to), &after.state)
                .await?;
            *written = after.state.clone();
            let switched = Instant::now();
            self.ready_to_switch = self.ready_at.map(|r| switched - r);
            self.checked_to_switch = self.checked_at.map(|c| switched - c);
            self.release_time = Some(switched - self.started);
            self.timeline.push(TimelineEntry {
                at: Utc::now(),
                what: format!("selector on {to}"),
            });
            if cfg.bg.shift == ShiftKind::NginxCanary {
                self.cluster.canary_weight(0).await?;
            }
            if cfg.bg.shift == ShiftKind::ReplicaRatio
                && let Some(prev) = state.active
            {
                // The previous colour stays at full size for a quick rollback.
                self.cluster.scale(prev, cfg.bg.replicas).await?;
            }
            Ok(after)
        })
    }

    /// `Revert`: traffic back to `to`, retried for as long as the run may live; nothing else
    /// happens meanwhile. Gives up (revert pending) only at the run's deadline or on cancellation.
    pub(super) fn revert<'s>(
        &'s mut self,
        state: &'s BgState,
        to: Color,
        scale_down: Option<Color>,
        written: &'s mut BgState,
    ) -> Boxed<'s, Transition> {
        Box::pin(async move {
            let cfg = self.cfg;
            let after = step(state, &cfg.bg, Event::Reverted);
            // Whatever carries traffic to the failed colour goes first: the canary weight while
            // shifting (the selector never left `to`), the selector once switched.
            let canary = cfg.bg.shift == ShiftKind::NginxCanary;
            let switched = state.active == state.target;
            let within = cfg.run_deadline.saturating_sub(self.started.elapsed());
            let asked = Instant::now();
            let mut cancel = self.cancel.clone();
            let landed = tokio::select! {
                biased;
                r = self.cluster.revert(Selector::Only(to), &after.state, canary && !switched, within) => Some(r),
                () = async { cancelled(&mut cancel).await; tokio::time::sleep(CANCEL_GRACE).await } => None,
            };
            let waited = asked.elapsed();
            self.revert_waited = Some(waited);
            let reason = match landed {
                Some(Ok(())) => None,
                Some(Err(e)) => Some(format!(
                    "gave up after {}: {e}",
                    humantime::format_duration(round_ms(waited))
                )),
                None => Some(format!(
                    "cancelled; the revert had not landed {} after that ({} in all)",
                    humantime::format_duration(CANCEL_GRACE),
                    humantime::format_duration(round_ms(waited))
                )),
            };
            if let Some(reason) = reason {
                return Ok(step(state, &cfg.bg, Event::RevertAbandoned { reason }));
            }
            *written = after.state.clone();
            let reverted = Instant::now();
            if canary && switched {
                self.cluster.canary_weight(0).await?;
            }
            if let (Some(f), Some(start)) = (self.fired.as_mut(), self.monitor_start)
                && let Some(l) = f.latency.as_mut()
            {
                l.reverted_at = reverted - start;
            }
            self.timeline.push(TimelineEntry {
                at: Utc::now(),
                what: format!(
                    "selector back on {to} (revert waited {})",
                    humantime::format_duration(round_ms(waited))
                ),
            });
            if cfg.bg.shift == ShiftKind::ReplicaRatio {
                self.cluster.scale(to, cfg.bg.replicas).await?;
            }
            if let Some(c) = scale_down {
                self.cluster.scale(c, 0).await?;
            }
            Ok(after)
        })
    }
}
