//! Runs the blue-green state machine against the cluster, Prometheus and HTTP probes.
//!
//! Owns: the loop "persist state → execute action → observe → next event", the monitoring loop
//! (sampling every `sample_every`, progress at most every 10 s), cancellation, the Lease, timing
//! (decision latency, Ready → switched) and the report. Must not decide: every decision is
//! `bluegreen::step` or `triggers::verdict`.

use crate::deploy::bluegreen::{
    Action, BgConfig, BgState, Color, Event, Outcome, ShiftKind, Transition, step,
};
use crate::deploy::colors::{BgCluster, ClusterError};
use crate::deploy::metrics::MetricsSource;
use crate::deploy::triggers::{DecisionLatency, TriggerSeries, TriggerState};
use crate::policy::model::RollbackSpec;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod actions;
mod monitor;

use actions::Next;

#[derive(Debug, thiserror::Error)]
pub enum BgError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The Lease was lost mid-release: this run stopped acting (`during` says where).
    #[error("{source}; stopped acting on the cluster during {during}")]
    LeaseLost {
        during: String,
        #[source]
        source: Box<ClusterError>,
    },
    #[error("build the http client for health probes")]
    Http(#[source] reqwest::Error),
}

impl BgError {
    /// Infrastructure failure: exit 2.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// Where each colour can be reached from the runner (health checks and probe triggers).
#[derive(Debug, Clone)]
pub enum ColorUrls {
    /// `{color}` substituted (`https://{color}.preview.example.com`).
    Template(String),
    /// One base URL per colour.
    Fixed(BTreeMap<Color, String>),
    /// A preview URL that always reaches the colour not yet live (the preview Service), and the
    /// environment's URL for the live one.
    PreviewAndLive { preview: String, live: String },
    /// No `preview_url`: the colour not yet live through the apiserver's service proxy to its own
    /// Service (`<service>-<color>`), so a runner outside the cluster network reaches it with the
    /// kubeconfig it deploys with; the environment's URL for the live one.
    ProxyAndLive { service: String, live: String },
}

/// Where one probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Straight from the runner to this base URL.
    Url(String),
    /// Through the apiserver's service proxy to this Service of the environment's namespace.
    ServiceProxy { service: String },
}

impl Target {
    /// `path` on this target, for messages.
    pub fn describe(&self, path: &str) -> String {
        match self {
            Target::Url(base) => format!("{base}{path}"),
            Target::ServiceProxy { service } => {
                format!("{path} of Service {service} (apiserver proxy)")
            }
        }
    }
}

impl ColorUrls {
    /// How the colour not yet live is reached, for the plan.
    pub fn describe_idle(&self) -> String {
        match self {
            ColorUrls::Template(t) => format!("{t} (`{{color}}` → the idle colour)"),
            ColorUrls::Fixed(m) => m.values().cloned().collect::<Vec<_>>().join(" / "),
            ColorUrls::PreviewAndLive { preview, .. } => preview.clone(),
            ColorUrls::ProxyAndLive { service, .. } => format!(
                "the apiserver's service proxy to Service/{service}-<idle>:http (no preview_url; works from outside the cluster network)"
            ),
        }
    }

    /// Where `color` is probed; `live` says whether the Service selects it right now.
    pub fn target(&self, color: Color, live: bool) -> Target {
        let url = match self {
            ColorUrls::Template(t) => t.replace("{color}", color.as_str()),
            ColorUrls::Fixed(m) => m.get(&color).cloned().unwrap_or_default(),
            ColorUrls::PreviewAndLive { live: url, .. }
            | ColorUrls::ProxyAndLive { live: url, .. }
                if live =>
            {
                url.clone()
            }
            ColorUrls::PreviewAndLive { preview, .. } => preview.clone(),
            ColorUrls::ProxyAndLive { service, .. } => {
                return Target::ServiceProxy {
                    service: crate::deploy::colors::color_service_name(service, color),
                };
            }
        };
        Target::Url(url.trim_end_matches('/').to_string())
    }
}

/// `GET` of `path` on `target`: the HTTP status, or why none came.
async fn get<C: BgCluster>(
    cluster: &C,
    http: &reqwest::Client,
    target: &Target,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    match target {
        Target::Url(base) => http
            .get(format!("{base}{path}"))
            .timeout(timeout)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string()),
        Target::ServiceProxy { service } => cluster.proxy_get(service, path, timeout).await,
    }
}

/// Everything a run needs besides its ports.
#[derive(Debug, Clone)]
pub struct BgRunConfig {
    pub bg: BgConfig,
    pub rollback: RollbackSpec,
    /// Shift step hold time.
    pub shift_pause: Duration,
    pub health_path: String,
    /// Paths validated after the health check (smoke).
    pub endpoints: Vec<String>,
    /// How long health checks retry before failing.
    pub health_deadline: Duration,
    /// Rollout deadline for a colour to become Ready.
    pub ready_deadline: Duration,
    pub urls: ColorUrls,
    /// Lease holder identity (run id).
    pub holder: String,
    pub lease_ttl: Duration,
    pub lease_wait: Duration,
    /// How long the run may live: a pending revert is retried until this much time has passed
    /// since the run started (then the record says `revert-pending`).
    pub run_deadline: Duration,
    /// Requests per probe-trigger sample; the value is the failing fraction.
    pub probes_per_sample: u32,
    /// Progress while monitoring is reported at most this often (≤ 10 s).
    pub progress_every: Duration,
    /// The GitHub check run / Deployment of this run, stored in the record so a re-run updates them
    /// (read them back with `BgCluster::read_state` before creating new ones).
    pub check_run_id: Option<u64>,
    pub deployment_id: Option<u64>,
}

/// One trigger's standing for a progress report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerStatus {
    pub name: String,
    pub value: Option<f64>,
    pub above: f64,
    pub state: TriggerState,
}

/// What the monitoring loop reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorSnapshot {
    pub color: Color,
    /// `Some(step)` while holding a shift step.
    pub shift_step: Option<usize>,
    #[serde(with = "crate::policy::model::duration_text")]
    pub elapsed: Duration,
    #[serde(with = "crate::policy::model::duration_text")]
    pub window: Duration,
    pub triggers: Vec<TriggerStatus>,
}

/// Live progress for the GitHub side (check run updates). Called on every transition, and while
/// monitoring at least every `progress_every` (≤ 10 s) with each trigger's value vs its threshold.
pub trait Progress: Send + Sync {
    fn transition(&self, state: &BgState, action: &Action) -> impl Future<Output = ()> + Send;
    fn monitoring(&self, snapshot: &MonitorSnapshot) -> impl Future<Output = ()> + Send;
}

/// No progress reporting.
pub struct NoProgress;

impl Progress for NoProgress {
    async fn transition(&self, _: &BgState, _: &Action) {}
    async fn monitoring(&self, _: &MonitorSnapshot) {}
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub what: String,
}

/// The trigger that fired, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredTrigger {
    pub name: String,
    pub above: f64,
    pub samples: Vec<crate::deploy::triggers::Sample>,
    pub latency: Option<DecisionLatency>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "end")]
pub enum RunEnd {
    Finished(Outcome),
    /// Waiting for `promote`.
    Paused,
}

/// What a run did, for outputs, the check run and the job summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgReport {
    pub end: RunEnd,
    pub state: BgState,
    pub timeline: Vec<TimelineEntry>,
    /// Every trigger's samples during the last monitoring window (switch → end).
    pub series: Vec<TriggerSeries>,
    pub fired: Option<FiredTrigger>,
    /// The new colour Ready → the selector PATCH returned (health checks and shift included).
    #[serde(with = "crate::policy::model::duration_text::option")]
    pub ready_to_switch: Option<Duration>,
    /// The health checks passed → the selector PATCH returned.
    #[serde(with = "crate::policy::model::duration_text::option")]
    pub checked_to_switch: Option<Duration>,
    /// Run start → the selector switched (the release without monitoring).
    #[serde(with = "crate::policy::model::duration_text::option")]
    pub release_time: Option<Duration>,
    /// How long the revert was retried before it landed (or until the run gave up on it).
    #[serde(with = "crate::policy::model::duration_text::option")]
    pub revert_waited: Option<Duration>,
}

impl BgReport {
    /// 0 released / nothing to do / paused, 1 rolled back or failed (a verdict), 2 refused.
    pub fn exit_code(&self) -> i32 {
        match &self.end {
            RunEnd::Paused => 0,
            RunEnd::Finished(o) => match o {
                Outcome::Succeeded | Outcome::Nothing { .. } => 0,
                Outcome::RolledBack { .. } | Outcome::Failed { .. } | Outcome::Cancelled => 1,
                Outcome::Refused { .. } | Outcome::RevertPending { .. } => 2,
            },
        }
    }

    /// Step outputs: `active-color`, `rolled-back`, `trigger`, `outcome`, `decision-latency-ms`.
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        let outcome = match &self.end {
            RunEnd::Paused => "paused",
            RunEnd::Finished(o) => match o {
                Outcome::Succeeded => "succeeded",
                Outcome::RolledBack { .. } => "rolled-back",
                Outcome::Failed { .. } => "failed",
                Outcome::Cancelled => "cancelled",
                Outcome::Nothing { .. } => "nothing",
                Outcome::Refused { .. } => "refused",
                Outcome::RevertPending { .. } => "revert-pending",
            },
        };
        let rolled_back = matches!(self.end, RunEnd::Finished(Outcome::RolledBack { .. }));
        let mut out = vec![
            (
                "active-color",
                self.state
                    .active
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            ),
            ("rolled-back", rolled_back.to_string()),
            (
                "trigger",
                self.fired
                    .as_ref()
                    .map(|f| f.name.clone())
                    .unwrap_or_default(),
            ),
            ("outcome", outcome.to_string()),
        ];
        if let Some(l) = self.fired.as_ref().and_then(|f| f.latency) {
            out.push(("decision-latency-ms", l.total().as_millis().to_string()));
        }
        out
    }
}

/// Cancellation: flips to `true` once on SIGTERM / SIGINT (or when a test says so).
pub type Cancel = watch::Receiver<bool>;

/// A cancel signal that fires on SIGTERM or SIGINT. Keep the returned task alive for the run.
pub fn cancel_on_signals() -> std::io::Result<(Cancel, tokio::task::JoinHandle<()>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok((rx, task))
}

/// Resolves when `cancel` is (or becomes) true; never when its sender is gone without cancelling.
async fn cancelled(cancel: &mut Cancel) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How long a revert is still tried once the run is cancelled (a cancelled job gets SIGINT, then
/// SIGTERM 7.5 s later): a revert the cancellation itself asked for lands in that time unless the
/// apiserver is away, and then the record says `revert-pending`.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// How long a run that gives up on its revert tries to record `revert-pending`.
const PENDING_RECORD_WAIT: Duration = Duration::from_secs(5);

struct Ctx<'a, C, M, P> {
    cluster: &'a C,
    metrics: &'a M,
    progress: &'a P,
    cfg: &'a BgRunConfig,
    http: reqwest::Client,
    cancel: Cancel,
    started: Instant,
    timeline: Vec<TimelineEntry>,
    series: Vec<TriggerSeries>,
    fired: Option<FiredTrigger>,
    monitor_start: Option<Instant>,
    ready_at: Option<Instant>,
    checked_at: Option<Instant>,
    ready_to_switch: Option<Duration>,
    checked_to_switch: Option<Duration>,
    release_time: Option<Duration>,
    revert_waited: Option<Duration>,
}

/// `deploy` with strategy blue-green: release `image` on the idle colour (or resume / undo what a
/// dead run left), take and release the Lease.
pub async fn deploy_blue_green<C: BgCluster, M: MetricsSource, P: Progress>(
    cluster: &C,
    metrics: &M,
    progress: &P,
    cfg: &BgRunConfig,
    image: &str,
    cancel: Cancel,
) -> Result<BgReport, BgError> {
    let event = Event::Deploy {
        image: image.to_string(),
        now: Utc::now(),
    };
    with_lease(cluster, metrics, progress, cfg, cancel, event).await
}

/// `rollback`: traffic to the previous colour (scaled back up, Ready, healthy first).
pub async fn rollback_blue_green<C: BgCluster, M: MetricsSource, P: Progress>(
    cluster: &C,
    metrics: &M,
    progress: &P,
    cfg: &BgRunConfig,
    cancel: Cancel,
) -> Result<BgReport, BgError> {
    with_lease(
        cluster,
        metrics,
        progress,
        cfg,
        cancel,
        Event::ManualRollback { now: Utc::now() },
    )
    .await
}

/// `promote`: continue a release paused before the switch.
pub async fn promote_blue_green<C: BgCluster, M: MetricsSource, P: Progress>(
    cluster: &C,
    metrics: &M,
    progress: &P,
    cfg: &BgRunConfig,
    cancel: Cancel,
) -> Result<BgReport, BgError> {
    with_lease(cluster, metrics, progress, cfg, cancel, Event::Promote).await
}

/// `cleanup`: scale down the previous colour once its `keep_until` has passed (`now` is the clock
/// reading, a parameter so scheduled runs and tests agree on it).
pub async fn cleanup_blue_green<C: BgCluster, M: MetricsSource, P: Progress>(
    cluster: &C,
    metrics: &M,
    progress: &P,
    cfg: &BgRunConfig,
    now: DateTime<Utc>,
    cancel: Cancel,
) -> Result<BgReport, BgError> {
    with_lease(
        cluster,
        metrics,
        progress,
        cfg,
        cancel,
        Event::Cleanup { now },
    )
    .await
}

async fn with_lease<C: BgCluster, M: MetricsSource, P: Progress>(
    cluster: &C,
    metrics: &M,
    progress: &P,
    cfg: &BgRunConfig,
    cancel: Cancel,
    first: Event,
) -> Result<BgReport, BgError> {
    cluster
        .acquire_lease(&cfg.holder, cfg.lease_ttl, cfg.lease_wait)
        .await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(BgError::Http)?;
    let mut cx = Ctx {
        cluster,
        metrics,
        progress,
        cfg,
        http,
        cancel,
        started: Instant::now(),
        timeline: Vec::new(),
        series: Vec::new(),
        fired: None,
        monitor_start: None,
        ready_at: None,
        checked_at: None,
        ready_to_switch: None,
        checked_to_switch: None,
        release_time: None,
        revert_waited: None,
    };
    let result = Box::pin(drive(&mut cx, first)).await;
    let released = cluster.release_lease(&cfg.holder).await;
    let report = result?;
    released?;
    Ok(report)
}

fn describe(action: &Action) -> String {
    match action {
        Action::DeployIdle {
            color,
            image,
            replicas,
        } => format!("deploy {color} ({image}, {replicas} replicas)"),
        Action::HealthCheck { color } => format!("health-check {color}"),
        Action::Shift { percent, to, .. } => format!("shift {percent}% to {to}"),
        Action::Switch { to } => format!("switch selector to {to}"),
        Action::Monitor { color, window } => {
            format!(
                "monitor {color} for {}",
                humantime::format_duration(*window)
            )
        }
        Action::Revert { to, .. } => format!("traffic back to {to}"),
        Action::Abandon { color, .. } => format!("scale {color} to 0"),
        Action::Pause => "paused for promote".into(),
        Action::ScaleUp { color, replicas } => format!("scale {color} to {replicas}"),
        Action::ScaleDown { color } => format!("scale {color} to 0"),
        Action::Finish(o) => match o {
            Outcome::Succeeded => "succeeded".into(),
            Outcome::RolledBack { trigger } => format!("rolled back ({trigger})"),
            Outcome::Failed { reason } => format!("failed: {reason}"),
            Outcome::Cancelled => "cancelled".into(),
            Outcome::Nothing { reason } => format!("nothing to do: {reason}"),
            Outcome::Refused { reason } => format!("refused: {reason}"),
            Outcome::RevertPending { reason } => format!("revert pending: {reason}"),
        },
    }
}

async fn drive<C: BgCluster, M: MetricsSource, P: Progress>(
    cx: &mut Ctx<'_, C, M, P>,
    first: Event,
) -> Result<BgReport, BgError> {
    let state = cx.cluster.read_state().await?;
    let cfg = cx.cfg;
    let mut tr = step(&state, &cfg.bg, first);
    if cfg.check_run_id.is_some() {
        tr.state.check_run_id = cfg.check_run_id;
    }
    if cfg.deployment_id.is_some() {
        tr.state.deployment_id = cfg.deployment_id;
    }
    let mut written = state;
    loop {
        // A lost Lease stops every action but the revert this run owns (and finishing).
        if !matches!(
            tr.action,
            Action::Revert { .. } | Action::Finish(_) | Action::Pause
        ) {
            cx.renew(&describe(&tr.action)).await?;
        }
        // Switch and Revert write the record in the same PATCH as the selector.
        let carries_state = matches!(tr.action, Action::Switch { .. } | Action::Revert { .. });
        if matches!(tr.action, Action::Finish(Outcome::RevertPending { .. })) {
            // The apiserver may be the reason the revert did not land: record it if it answers
            // soon, say so either way, and end.
            let recorded =
                tokio::time::timeout(PENDING_RECORD_WAIT, cx.cluster.write_state(&tr.state)).await;
            let what = match recorded {
                Ok(Ok(())) => "recorded revert-pending on the live Service".to_string(),
                Ok(Err(e)) => format!("could not record revert-pending: {e}"),
                Err(_) => "could not record revert-pending: the apiserver did not answer".into(),
            };
            tracing::error!("{what}");
            cx.timeline.push(TimelineEntry {
                at: Utc::now(),
                what,
            });
        } else if !carries_state && tr.state != written {
            cx.cluster.write_state(&tr.state).await?;
            written = tr.state.clone();
        }
        cx.progress.transition(&tr.state, &tr.action).await;
        cx.timeline.push(TimelineEntry {
            at: Utc::now(),
            what: describe(&tr.action),
        });
        tracing::info!(phase = ?tr.state.phase, action = %describe(&tr.action), "blue-green");

        // Each action runs in its own boxed future: the loop's frame stays small however many
        // actions there are (debug builds give every await its own stack slot).
        let next = match tr.action.clone() {
            Action::Finish(outcome) => return Ok(cx.report(RunEnd::Finished(outcome), tr.state)),
            Action::Pause => return Ok(cx.report(RunEnd::Paused, tr.state)),
            Action::DeployIdle {
                color,
                image,
                replicas,
            } => Next::Event(cx.bring_up(color, Some(image), replicas).await?),
            Action::ScaleUp { color, replicas } => {
                Next::Event(cx.bring_up(color, None, replicas).await?)
            }
            Action::HealthCheck { color } => Next::Event(cx.health(color).await?),
            Action::Shift {
                step: n,
                percent,
                to,
                from,
            } => Next::Event(cx.shift(&tr.state, n, percent, to, from).await?),
            Action::Switch { to } => Next::Then(cx.switch(&tr.state, to, &mut written).await?),
            Action::Monitor { color, window } => {
                Next::Event(cx.watch(color, window, None, false).await?)
            }
            Action::Revert { to, scale_down } => {
                Next::Then(cx.revert(&tr.state, to, scale_down, &mut written).await?)
            }
            Action::Abandon { color, outcome } => {
                if cfg.bg.shift == ShiftKind::NginxCanary {
                    cx.cluster.canary_weight(0).await?;
                }
                cx.cluster.scale(color, 0).await?;
                Next::Then(Transition {
                    state: tr.state.clone(),
                    action: Action::Finish(outcome),
                })
            }
            Action::ScaleDown { color } => {
                cx.cluster.scale(color, 0).await?;
                Next::Event(Event::ScaledDown)
            }
        };
        tr = match next {
            Next::Event(event) => step(&tr.state, &cfg.bg, event),
            Next::Then(t) => t,
        };
    }
}

impl<C: BgCluster, M: MetricsSource, P: Progress> Ctx<'_, C, M, P> {
    /// Runs `work` unless cancelled first (`None`), checking the Lease every third of its TTL (a
    /// lost Lease abandons the work: this run must stop acting).
    async fn cancellable<T>(
        &mut self,
        work: impl Future<Output = T>,
    ) -> Result<Option<T>, BgError> {
        let mut cancel = self.cancel.clone();
        let mut renew = tokio::time::interval_at(
            (Instant::now() + self.renew_every()).into(),
            self.renew_every(),
        );
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                () = cancelled(&mut cancel) => return Ok(None),
                v = &mut work => return Ok(Some(v)),
                _ = renew.tick() => self.renew("a cluster wait").await?,
            }
        }
    }

    fn renew_every(&self) -> Duration {
        (self.cfg.lease_ttl / 3).max(Duration::from_millis(500))
    }

    /// Checks the Lease (renewed in the background, each renewal retried within its duration).
    /// Lost — taken over, or unrenewed for its whole duration — is an error: this run stops acting
    /// on the cluster and says during what.
    async fn renew(&self, during: &str) -> Result<(), BgError> {
        match self.cluster.renew_lease(&self.cfg.holder).await {
            Ok(()) => Ok(()),
            Err(source) => {
                tracing::error!(error = %source, during, "lease lost; stopping");
                Err(BgError::LeaseLost {
                    during: during.to_string(),
                    source: Box::new(source),
                })
            }
        }
    }

    fn report(&mut self, end: RunEnd, state: BgState) -> BgReport {
        BgReport {
            end,
            state,
            timeline: std::mem::take(&mut self.timeline),
            series: std::mem::take(&mut self.series),
            fired: self.fired.take(),
            ready_to_switch: self.ready_to_switch,
            checked_to_switch: self.checked_to_switch,
            release_time: self.release_time,
            revert_waited: self.revert_waited,
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn probe<C: BgCluster>(
    cluster: &C,
    http: &reqwest::Client,
    target: &Target,
    path: &str,
) -> bool {
    matches!(get(cluster, http, target, path, Duration::from_secs(2)).await, Ok(code) if (200..300).contains(&code))
}

/// `/health` then every endpoint through the colour's URL, all 2xx in one round; retried until the
/// deadline. The error names the URL and what it answered.
async fn health_check<C: BgCluster>(
    cluster: &C,
    http: &reqwest::Client,
    cfg: &BgRunConfig,
    color: Color,
    live: bool,
) -> Result<(), String> {
    let target = cfg.urls.target(color, live);
    let mut paths = vec![cfg.health_path.clone()];
    paths.extend(
        cfg.endpoints
            .iter()
            .filter(|p| **p != cfg.health_path)
            .cloned(),
    );
    let deadline = Instant::now() + cfg.health_deadline;
    loop {
        let mut failure = None;
        for p in &paths {
            match get(cluster, http, &target, p, Duration::from_secs(5)).await {
                Ok(code) if (200..300).contains(&code) => {}
                Ok(code) => {
                    let status = reqwest::StatusCode::from_u16(code)
                        .map_or_else(|_| code.to_string(), |s| s.to_string());
                    failure = Some(format!("GET {} answered {status}", target.describe(p)));
                    break;
                }
                Err(e) => {
                    failure = Some(format!("GET {}: {e}", target.describe(p)));
                    break;
                }
            }
        }
        match failure {
            None => return Ok(()),
            Some(f) if Instant::now() >= deadline => return Err(f),
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The environment has no `blue_green` section.
#[derive(Debug, thiserror::Error)]
#[error("read the blue_green settings of environment {environment}: the policy has none")]
pub struct MissingBlueGreen {
    pub environment: String,
}

/// Builds the run configuration and the cluster spec from the validated policy. `holder` is the
/// Lease identity (e.g. `GITHUB_RUN_ID`-`GITHUB_RUN_ATTEMPT`… a re-run of the same run may reuse it).
pub fn from_policy(
    app: &crate::policy::model::AppSpec,
    env: &crate::policy::model::EnvironmentSpec,
    holder: &str,
) -> Result<(BgRunConfig, crate::deploy::colors::ColorsSpec), MissingBlueGreen> {
    use crate::policy::model::ShiftMode;
    let bg = env.blue_green.as_ref().ok_or_else(|| MissingBlueGreen {
        environment: env.name.clone(),
    })?;
    let shift = match &bg.shift.mode {
        ShiftMode::None => ShiftKind::None,
        ShiftMode::NginxCanary { .. } => ShiftKind::NginxCanary,
        ShiftMode::ReplicaRatio => ShiftKind::ReplicaRatio,
    };
    let canary_ingress = match &bg.shift.mode {
        ShiftMode::NginxCanary { ingress } => Some(ingress.clone()),
        ShiftMode::None | ShiftMode::ReplicaRatio => None,
    };
    let preview_service = bg
        .preview_service
        .clone()
        .unwrap_or_else(|| format!("{}-preview", bg.service));
    let urls = match &bg.preview_url {
        Some(u) if u.contains("{color}") => ColorUrls::Template(u.clone()),
        Some(u) => ColorUrls::PreviewAndLive {
            preview: u.clone(),
            live: env.url.clone(),
        },
        None => ColorUrls::ProxyAndLive {
            service: bg.service.clone(),
            live: env.url.clone(),
        },
    };
    let host = env
        .url
        .split("://")
        .nth(1)
        .map(|h| h.split(['/', ':']).next().unwrap_or(h).to_string());
    let run = BgRunConfig {
        bg: BgConfig {
            replicas: env
                .autoscaling
                .as_ref()
                .map_or(env.replicas, |a| a.min.max(env.replicas)),
            shift,
            steps: bg.shift.steps.clone(),
            manual_promote: bg.manual_promote,
            keep_failed: bg.keep_failed,
            monitor: bg.monitor,
            keep_previous: bg.keep_previous,
        },
        rollback: env.rollback.clone(),
        shift_pause: bg.shift.pause,
        health_path: app.health_path.clone(),
        endpoints: env.smoke.endpoints.clone(),
        health_deadline: env.smoke.deadline,
        ready_deadline: env.progress_deadline,
        urls,
        holder: holder.to_string(),
        lease_ttl: Duration::from_secs(30),
        lease_wait: Duration::from_secs(600),
        run_deadline: Duration::from_secs(30 * 60),
        probes_per_sample: 4,
        progress_every: Duration::from_secs(10),
        check_run_id: None,
        deployment_id: None,
    };
    let spec = crate::deploy::colors::ColorsSpec {
        namespace: env.namespace.clone(),
        app: app.name.clone(),
        port: app.port,
        service: bg.service.clone(),
        preview_service,
        canary_ingress,
        ingress_host: host,
    };
    Ok((run, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects URL choice per colour: templates substitute, preview-and-live picks by liveness.
    #[test]
    fn color_urls() {
        let url = |u: &str| Target::Url(u.into());
        let t = ColorUrls::Template("https://{color}.preview.example.com/".into());
        assert_eq!(
            t.target(Color::Green, false),
            url("https://green.preview.example.com")
        );
        let p = ColorUrls::PreviewAndLive {
            preview: "http://preview".into(),
            live: "https://prod".into(),
        };
        assert_eq!(p.target(Color::Blue, false), url("http://preview"));
        assert_eq!(p.target(Color::Blue, true), url("https://prod"));
        let x = ColorUrls::ProxyAndLive {
            service: "web".into(),
            live: "https://prod".into(),
        };
        assert_eq!(
            x.target(Color::Green, false),
            Target::ServiceProxy {
                service: "web-green".into()
            }
        );
        assert_eq!(x.target(Color::Green, true), url("https://prod"));
    }

    /// Protects the outputs and exit codes the workflow reads.
    #[test]
    fn outputs_and_exit_codes() {
        let mut r = BgReport {
            end: RunEnd::Finished(Outcome::RolledBack {
                trigger: "error-rate".into(),
            }),
            state: BgState {
                active: Some(Color::Blue),
                ..BgState::default()
            },
            timeline: vec![],
            series: vec![],
            fired: Some(FiredTrigger {
                name: "error-rate".into(),
                above: 0.01,
                samples: vec![],
                latency: Some(DecisionLatency {
                    satisfied_at: Duration::from_secs(5),
                    detected_at: Duration::from_millis(5300),
                    reverted_at: Duration::from_millis(5320),
                }),
            }),
            ready_to_switch: None,
            checked_to_switch: None,
            release_time: None,
            revert_waited: None,
        };
        assert_eq!(r.exit_code(), 1);
        assert_eq!(
            r.outputs(),
            vec![
                ("active-color", "blue".to_string()),
                ("rolled-back", "true".to_string()),
                ("trigger", "error-rate".to_string()),
                ("outcome", "rolled-back".to_string()),
                ("decision-latency-ms", "320".to_string()),
            ]
        );
        r.end = RunEnd::Paused;
        assert_eq!(r.exit_code(), 0);
        r.end = RunEnd::Finished(Outcome::Refused { reason: "x".into() });
        assert_eq!(r.exit_code(), 2);
    }
}
