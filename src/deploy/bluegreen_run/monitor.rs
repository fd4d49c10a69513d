//! Watching a colour: every trigger sampled on its interval for a monitoring window or a shift
//! step's pause, each sample bounded below the interval, the verdict taken on the series.

use super::actions::Boxed;
use super::{Ctx, FiredTrigger, MonitorSnapshot, Progress, TriggerStatus, cancelled, probe};
use crate::deploy::bluegreen::{Color, Event};
use crate::deploy::colors::BgCluster;
use crate::deploy::metrics::{MetricsSource, substitute_color};
use crate::deploy::triggers::{DecisionLatency, MonitorVerdict, TriggerSeries, verdict};
use crate::policy::model::{NoDataPolicy, TriggerSource};
use chrono::Utc;
use std::time::{Duration, Instant};

impl<C: BgCluster, M: MetricsSource, P: Progress> Ctx<'_, C, M, P> {
    /// Samples every trigger against `color` every `sample_every` for `window`; returns the event.
    pub(super) fn watch<'s>(
        &'s mut self,
        color: Color,
        window: Duration,
        shift_step: Option<usize>,
        hold: bool,
    ) -> Boxed<'s, Event> {
        Box::pin(async move {
            let spec = &self.cfg.rollback;
            let start = Instant::now();
            self.monitor_start = Some(start);
            self.series = spec.triggers.iter().map(TriggerSeries::new).collect();
            let mut last_progress: Option<Instant> = None;
            let mut last_renew = Instant::now();
            let mut tick = start;
            loop {
                if last_renew.elapsed() >= self.renew_every() {
                    self.renew("monitoring").await?;
                    last_renew = Instant::now();
                }
                let values = futures::future::join_all(
                    spec.triggers
                        .iter()
                        .map(|t| self.sample(&t.source, color, shift_step.is_none())),
                )
                .await;
                let at = start.elapsed();
                for (s, v) in self.series.iter_mut().zip(values) {
                    s.push(at, v);
                }
                let v = verdict(&self.series, spec.on_no_data, spec.min_data, at, window);
                if last_progress.is_none_or(|p| p.elapsed() >= self.cfg.progress_every)
                    || v != MonitorVerdict::Continue
                {
                    last_progress = Some(Instant::now());
                    let snapshot = self.snapshot(color, shift_step, at, window, spec.on_no_data);
                    self.progress.monitoring(&snapshot).await;
                }
                match v {
                    MonitorVerdict::Fire {
                        trigger,
                        satisfied_at,
                        detected_at,
                    } => {
                        let series = self.series.iter().find(|s| s.name == trigger);
                        self.fired = Some(FiredTrigger {
                            name: trigger.clone(),
                            above: series.map_or(0.0, |s| s.condition.above),
                            samples: series.map(|s| s.samples.clone()).unwrap_or_default(),
                            latency: Some(DecisionLatency {
                                satisfied_at,
                                detected_at,
                                reverted_at: detected_at,
                            }),
                        });
                        return Ok(Event::TriggerFired { trigger });
                    }
                    MonitorVerdict::Passed => {
                        return Ok(if hold {
                            Event::StepHeld
                        } else {
                            Event::MonitorPassed { now: Utc::now() }
                        });
                    }
                    MonitorVerdict::Inconclusive { detail } => {
                        tracing::warn!(%detail, "monitoring window inconclusive");
                        return Ok(Event::Inconclusive {
                            detail,
                            then: spec.on_inconclusive,
                        });
                    }
                    MonitorVerdict::Continue => {}
                }
                tick += spec.sample_every;
                let mut cancel = self.cancel.clone();
                tokio::select! {
                    biased;
                    () = cancelled(&mut cancel) => return Ok(Event::Cancel),
                    () = tokio::time::sleep_until(tick.into()) => {}
                }
            }
        })
    }

    fn snapshot(
        &self,
        color: Color,
        shift_step: Option<usize>,
        elapsed: Duration,
        window: Duration,
        no_data: NoDataPolicy,
    ) -> MonitorSnapshot {
        MonitorSnapshot {
            color,
            shift_step,
            elapsed,
            window,
            triggers: self
                .series
                .iter()
                .map(|s| TriggerStatus {
                    name: s.name.clone(),
                    value: s.samples.last().and_then(|x| x.value),
                    above: s.condition.above,
                    state: s.state(no_data),
                })
                .collect(),
        }
    }

    /// One sample, bounded below the sample interval: a source that does not answer in time is a
    /// "no data" sample, on time.
    async fn sample(&self, source: &TriggerSource, color: Color, live: bool) -> Option<f64> {
        let limit = crate::deploy::metrics::query_timeout(self.cfg.rollback.sample_every);
        match tokio::time::timeout(limit, self.sample_unbounded(source, color, live)).await {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(timeout = ?limit, "trigger sample timed out: no data");
                None
            }
        }
    }

    async fn sample_unbounded(
        &self,
        source: &TriggerSource,
        color: Color,
        live: bool,
    ) -> Option<f64> {
        match source {
            TriggerSource::Prometheus { query, .. } => {
                match self
                    .metrics
                    .instant(&substitute_color(query, color.as_str()))
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        // A failed query is a gap: `on_no_data` decides.
                        tracing::warn!(error = %e, "trigger query failed");
                        None
                    }
                }
            }
            TriggerSource::Probe { path } => {
                let target = self.cfg.urls.target(color, live);
                let n = self.cfg.probes_per_sample.max(1);
                let results = futures::future::join_all(
                    (0..n).map(|_| probe(self.cluster, &self.http, &target, path)),
                )
                .await;
                let failed = results.iter().filter(|ok| !**ok).count();
                Some(failed as f64 / f64::from(n))
            }
        }
    }
}
