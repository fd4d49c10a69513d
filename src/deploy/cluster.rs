//! The Kubernetes adapter: server-side apply of an environment, watching a rollout to readiness,
//! the deploy state record, and the per-environment Lease.
//!
//! Owns: every Kubernetes API call of the direct and rolling deploys ([`Cluster`] / [`KubeCluster`]),
//! and the pure reduction of observed objects to a [`DeploySummary`] ([`summarize`]). Must not
//! decide: whether a rollout is done is `strategy::next_step`'s call; what to do next is the
//! strategy machine's.

use crate::deploy::forbidden::{Forbidden, forbidden, note_unreachable, warming, watch_refusal};
use crate::deploy::manifests::{EnvironmentObjects, FIELD_MANAGER, STATE_CONFIGMAP};
use crate::deploy::strategy::{
    DeploySummary, PodSummary, ProgressCondition, RolloutFailure, RolloutPlan, RolloutStep,
    next_step,
};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("apply {kind} {namespace}/{name}")]
    Apply {
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("read {what}")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("write {what}")]
    Write {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("write {what}: still conflicting (409) after {attempts} fresh reads")]
    Conflict { what: String, attempts: u32 },
    #[error("watch deployment {namespace}/{name}: it was deleted during the rollout")]
    Deleted { namespace: String, name: String },
    #[error("keep lease {namespace}/{name}: {loss}")]
    LeaseLost {
        namespace: String,
        name: String,
        loss: LeaseLoss,
    },
    #[error("decode {what}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("discover which {what} the apiserver serves")]
    Discovery {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "take lease {namespace}/{name}: held by {holder:?} (waited {})",
        humantime::format_duration(*waited)
    )]
    LeaseHeld {
        namespace: String,
        name: String,
        holder: String,
        waited: Duration,
    },
    #[error(
        "watch deployment {namespace}/{name}: the apiserver was unreachable when the deadline passed ({last_error}); last seen: {last_seen}"
    )]
    Unreachable {
        namespace: String,
        name: String,
        last_error: String,
        last_seen: String,
    },
    /// The apiserver refused a request for want of a permission (403): final, never retried.
    #[error(transparent)]
    Forbidden(Box<Forbidden>),
}

impl ClusterError {
    /// `Read`, or `Forbidden` when the apiserver refused the request (the one place a 403 from a
    /// read becomes a missing permission).
    pub fn read(what: impl Into<String>, e: kube::Error) -> ClusterError {
        match forbidden(&e) {
            Some(f) => ClusterError::Forbidden(Box::new(f)),
            None => ClusterError::Read {
                what: what.into(),
                source: Box::new(e),
            },
        }
    }

    /// `Write`, or `Forbidden` for a 403.
    pub fn write(what: impl Into<String>, e: kube::Error) -> ClusterError {
        match forbidden(&e) {
            Some(f) => ClusterError::Forbidden(Box::new(f)),
            None => ClusterError::Write {
                what: what.into(),
                source: Box::new(e),
            },
        }
    }

    /// `Apply`, or `Forbidden` for a 403.
    pub fn apply(kind: &str, namespace: &str, name: &str, e: kube::Error) -> ClusterError {
        match forbidden(&e) {
            Some(f) => ClusterError::Forbidden(Box::new(f.in_namespace(namespace))),
            None => ClusterError::Apply {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                source: Box::new(e),
            },
        }
    }
}

/// What an apply produced: the generation the rollout must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub image: String,
}

/// How a watched rollout ended.
#[derive(Debug, Clone)]
pub enum RolloutResult {
    /// Complete; `noticed` is when the watch saw it (for the readiness-latency benchmark).
    Complete {
        summary: DeploySummary,
        noticed: std::time::Instant,
    },
    Failed(RolloutFailure),
}

/// One deploy in the state record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    pub image: String,
    pub run_id: String,
    pub sha: String,
    pub strategy: String,
    /// `deployed`, `failed`, `rolled-back`, `rollback-failed`.
    pub outcome: String,
    /// RFC 3339.
    pub at: String,
}

/// What the cluster remembers of an app's deploys (ConfigMap `fm-deploy-state`, key = app name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The last deploy that succeeded: what a rollback returns to.
    pub current: Option<DeployRecord>,
    /// Newest first, at most [`HISTORY`] entries.
    pub history: Vec<DeployRecord>,
}

pub const HISTORY: usize = 20;

impl StateRecord {
    /// Pure: the record after `rec`.
    pub fn with(mut self, rec: DeployRecord) -> StateRecord {
        if rec.outcome == "deployed" {
            self.current = Some(rec.clone());
        }
        self.history.insert(0, rec);
        self.history.truncate(HISTORY);
        self
    }
}

/// Lease timing.
#[derive(Debug, Clone, Copy)]
pub struct LeaseOptions {
    /// A holder that stops renewing loses the Lease after this long.
    pub duration: Duration,
    /// How long a second deploy waits for the holder before giving up.
    pub wait: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            duration: Duration::from_secs(30),
            wait: Duration::from_secs(600),
        }
    }
}

/// How a held Lease stopped being ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseLoss {
    /// Another run holds it now.
    TakenOver { holder: String },
    /// No renewal landed within the Lease's duration (apiserver away): another run may take it
    /// over from now on, so this one must stop acting.
    Expired { unrenewed_for: Duration },
}

impl std::fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseLoss::TakenOver { holder } => {
                write!(f, "{holder:?} took it over during the deploy")
            }
            LeaseLoss::Expired { unrenewed_for } => write!(
                f,
                "no renewal landed for {} (its whole duration); another run may hold it now",
                humantime::format_duration(*unrenewed_for)
            ),
        }
    }
}

/// A held Lease; renewed in the background until [`Cluster::release_lease`] (or drop, after which it
/// expires).
#[derive(Debug)]
pub struct LeaseGuard {
    pub namespace: String,
    pub name: String,
    pub holder: String,
    renew: Option<JoinHandle<()>>,
    /// Set by the renewal when the Lease was taken over or expired unrenewed.
    lost: Arc<Mutex<Option<LeaseLoss>>>,
}

impl LeaseGuard {
    /// How the Lease was lost, if it was (the deploy is then no longer exclusive).
    pub fn lost(&self) -> Option<LeaseLoss> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    /// The holder that took the Lease over, if one did.
    pub fn lost_to(&self) -> Option<String> {
        match self.lost()? {
            LeaseLoss::TakenOver { holder } => Some(holder),
            LeaseLoss::Expired { .. } => None,
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(t) = self.renew.take() {
            t.abort();
        }
    }
}

/// The cluster operations the direct and rolling deploys need.
pub trait Cluster: Send + Sync {
    /// Server-side apply (field manager `fm-deploy`, forced) of the secrets, Service, Deployment
    /// and HPA, in that order; the namespace too when it does not exist yet.
    fn apply_environment(
        &self,
        objs: &EnvironmentObjects,
    ) -> impl Future<Output = Result<Applied, ClusterError>> + Send;
    /// Watches until `next_step` says complete or failed; never returns success from stale status.
    fn wait_rollout(
        &self,
        applied: &Applied,
        plan: &RolloutPlan,
    ) -> impl Future<Output = Result<RolloutResult, ClusterError>> + Send;
    /// The image the Deployment runs now (`None` when it does not exist).
    fn current_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, ClusterError>> + Send;
    fn read_record(
        &self,
        namespace: &str,
        app: &str,
    ) -> impl Future<Output = Result<StateRecord, ClusterError>> + Send;
    /// Appends `rec` (read-modify-write, retried on 409 with a fresh read).
    fn write_record(
        &self,
        namespace: &str,
        app: &str,
        rec: DeployRecord,
    ) -> impl Future<Output = Result<StateRecord, ClusterError>> + Send;
    /// Ensures the namespace exists, then takes Lease `name` for `holder`, waiting up to `opts.wait`.
    fn acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        opts: LeaseOptions,
    ) -> impl Future<Output = Result<LeaseGuard, ClusterError>> + Send;
    fn release_lease(
        &self,
        guard: LeaseGuard,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

/// [`Cluster`] over a kube client.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    writes: WritePolicy,
}

impl KubeCluster {
    pub fn new(client: Client) -> KubeCluster {
        KubeCluster {
            client,
            writes: WritePolicy::DEFAULT,
        }
    }

    /// The same cluster with every write retried under `writes`.
    pub fn with_writes(mut self, writes: WritePolicy) -> KubeCluster {
        self.writes = writes;
        self
    }

    pub fn writes(&self) -> WritePolicy {
        self.writes
    }

    /// From the environment (`KUBECONFIG`, in-cluster) the way kubectl finds it.
    pub async fn infer() -> Result<KubeCluster, ClusterError> {
        let client = Client::try_default()
            .await
            .map_err(|e| ClusterError::read("the kubeconfig", e))?;
        Ok(KubeCluster::new(client))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Server-side apply (field manager `fm-deploy`, forced) of one typed object.
    pub async fn apply_typed<K>(&self, api: Api<K>, ns: &str, obj: &K) -> Result<K, ClusterError>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let kind = K::kind(&()).to_string();
        let what = format!("apply {kind} {ns}/{name}");
        // A forced server-side apply carries no resourceVersion: re-sending it is the re-apply.
        let patch = Patch::Apply(obj);
        retry_write(&what, self.writes, &self.client, |_| {
            api.patch(&name, &pp, &patch)
        })
        .await
        .map(|(v, _)| v)
        .map_err(|e| ClusterError::apply(&kind, ns, &name, e))
    }
}

/// Is this the apiserver's 409 Conflict?
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// How one failed cluster request is treated (the one classification every write goes through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The apiserver is away or overloaded (connection refused or reset, timeout, 5xx, 429): try
    /// again, after `after` when the server said how long (`Retry-After` / `retryAfterSeconds`).
    Transient { after: Option<Duration> },
    /// 409: the object changed since it was read; read again and re-apply.
    Conflict,
    /// Trying again cannot help: 403 (never retried), 404, 422 and other 4xx, an undecodable body.
    Permanent,
}

/// Pure: how a failed request is retried.
pub fn is_retryable(e: &kube::Error) -> RetryClass {
    match e {
        kube::Error::Api(s) => {
            let after = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s)));
            match s.code {
                409 => RetryClass::Conflict,
                429 | 500..=599 => RetryClass::Transient { after },
                _ => RetryClass::Permanent,
            }
        }
        // Transport: refused, reset, TLS handshake cut short, the client's own timeout.
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            RetryClass::Transient { after: None }
        }
        _ => RetryClass::Permanent,
    }
}

/// How long and how often a cluster write is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePolicy {
    /// Give up once this long has passed since the first attempt.
    pub budget: Duration,
    /// The first wait; it doubles up to `max_delay`.
    pub min_delay: Duration,
    /// The longest wait between two attempts, jitter included (a server hint is clamped to it too:
    /// the budget, not the hint, bounds the write).
    pub max_delay: Duration,
    /// 409s answered with a fresh read before giving up (a writer that keeps changing the object).
    pub max_conflicts: u32,
}

impl WritePolicy {
    /// Ordinary writes: a minute, at most a second between attempts.
    pub const DEFAULT: WritePolicy = WritePolicy {
        budget: Duration::from_secs(60),
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
        max_conflicts: 8,
    };

    /// A revert: as long as the run may live, at most 250 ms between attempts so traffic is back
    /// within a fraction of a second of the apiserver answering again.
    pub fn revert(budget: Duration) -> WritePolicy {
        WritePolicy {
            budget,
            max_delay: Duration::from_millis(250),
            max_conflicts: u32::MAX,
            ..WritePolicy::DEFAULT
        }
    }

    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        use backon::BackoffBuilder;
        let max = (self.max_delay / 2).max(self.min_delay);
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay.min(max))
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

impl Default for WritePolicy {
    fn default() -> Self {
        WritePolicy::DEFAULT
    }
}

/// The one retry loop for cluster writes: runs `attempt` (which must read fresh state each time it
/// depends on any) until it lands, retrying transient failures with backoff and 409s with a fresh
/// read, one log line per retry, until `policy.budget` has passed. Returns the value and how many
/// attempts were retried; on giving up, the last error.
pub async fn retry_write<T, F, Fut>(
    what: &str,
    policy: WritePolicy,
    client: &kube::Client,
    mut attempt: F,
) -> Result<(T, u32), kube::Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + policy.budget;
    let mut delays = policy.delays();
    let mut conflicts = 0u32;
    let mut i = 0u32;
    loop {
        let e = match attempt(i).await {
            Ok(v) => return Ok((v, i)),
            Err(e) => e,
        };
        let class = match is_retryable(&e) {
            // A restarted apiserver refuses until its authorizer has read the Roles: a 403 is
            // final only from an apiserver that was reachable lately and says it is ready.
            RetryClass::Permanent
                if forbidden(&e).is_some()
                    && (warming() || !crate::deploy::forbidden::apiserver_ready(client).await) =>
            {
                RetryClass::Transient { after: None }
            }
            RetryClass::Transient { after } => {
                note_unreachable();
                RetryClass::Transient { after }
            }
            other => other,
        };
        let wait = match class {
            RetryClass::Permanent => return Err(e),
            RetryClass::Conflict if conflicts >= policy.max_conflicts => return Err(e),
            RetryClass::Conflict => {
                conflicts += 1;
                policy.min_delay * conflicts.min(4)
            }
            RetryClass::Transient { after } => {
                let backoff = delays.next().unwrap_or(policy.max_delay);
                after.map_or(backoff, |a| a.min(policy.max_delay).max(backoff))
            }
        };
        if Instant::now() + wait > deadline {
            tracing::warn!(what, attempts = i + 1, error = %e, "cluster write gave up at its deadline");
            return Err(e);
        }
        tracing::warn!(what, attempt = i + 1, error = %e, retry_in = ?wait, "cluster write failed; retrying");
        tokio::time::sleep(wait).await;
        i += 1;
    }
}

/// [`retry_write`] under the default policy with at most `attempts` conflicts; a write that still
/// conflicts is [`ClusterError::Conflict`]. Returns the value and how many attempts were retried.
pub async fn retry_on_conflict<T, F, Fut>(
    what: &str,
    attempts: u32,
    client: &kube::Client,
    attempt: F,
) -> Result<(T, u32), ClusterError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let policy = WritePolicy {
        max_conflicts: attempts.saturating_sub(1),
        ..WritePolicy::DEFAULT
    };
    retry_write(what, policy, client, attempt)
        .await
        .map_err(|e| {
            if is_conflict(&e) {
                ClusterError::Conflict {
                    what: what.into(),
                    attempts,
                }
            } else {
                ClusterError::write(what, e)
            }
        })
}

/// Watch retries: quick (200 ms doubling to 2 s) so a restarted apiserver is picked up within
/// seconds; the rollout deadline bounds the whole wait.
pub(crate) struct QuickBackoff {
    next: Duration,
}

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(2));
        Some(d)
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.next = Duration::from_millis(200);
    }
}

pub(crate) fn quick_backoff() -> QuickBackoff {
    QuickBackoff {
        next: Duration::from_millis(200),
    }
}

/// Pure: observed Deployment + pods → summary. Pods count only when they run `image` (the new
/// revision); old pods show in `total`.
pub fn summarize(
    dep: &Deployment,
    pods: &[Pod],
    target_generation: i64,
    image: &str,
) -> DeploySummary {
    let status = dep.status.clone().unwrap_or_default();
    let desired = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let progressing = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| ProgressCondition {
            status: c.status,
            reason: c.reason.unwrap_or_default(),
            message: c.message.unwrap_or_default(),
        });
    let mut pod_summaries: Vec<PodSummary> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.as_deref())
                == Some(image)
        })
        .map(pod_summary)
        .collect();
    pod_summaries.sort_by(|a, b| a.name.cmp(&b.name));
    DeploySummary {
        name: dep.name_any(),
        target_generation,
        observed_generation: status.observed_generation.unwrap_or(0),
        desired,
        total: status.replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        progressing,
        pods: pod_summaries,
    }
}

fn pod_summary(p: &Pod) -> PodSummary {
    let st = p.status.clone().unwrap_or_default();
    let conditions = st.conditions.unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let failing_conditions = conditions
        .iter()
        .filter(|c| c.status != "True")
        .map(|c| {
            let mut s = format!("{}={}", c.type_, c.status);
            let reason = c.reason.clone().unwrap_or_default();
            let msg = c.message.clone().unwrap_or_default();
            if !reason.is_empty() || !msg.is_empty() {
                s.push_str(&format!(" ({reason}: {msg})"));
            }
            s
        })
        .collect();
    let containers = st.container_statuses.unwrap_or_default();
    let restarts = containers
        .iter()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let waiting = containers.iter().find_map(|c| {
        c.state.as_ref().and_then(|s| s.waiting.as_ref()).map(|w| {
            (
                w.reason.clone().unwrap_or_default(),
                w.message.clone().unwrap_or_default(),
            )
        })
    });
    PodSummary {
        name: p.name_any(),
        phase: st.phase.unwrap_or_else(|| "Pending".into()),
        ready,
        restarts,
        waiting,
        failing_conditions,
    }
}

fn lease_holder_and_duration(lease: &Lease) -> (String, Duration) {
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    let secs = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
    (
        holder,
        Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
    )
}

fn lease_body(
    name: &str,
    holder: &str,
    opts: &LeaseOptions,
    resource_version: Option<String>,
) -> Result<Lease, ClusterError> {
    let mut meta = json!({"name": name, "labels": {"app.kubernetes.io/managed-by": "fm-deploy"}});
    if let (Some(rv), Some(m)) = (resource_version, meta.as_object_mut()) {
        m.insert("resourceVersion".into(), json!(rv));
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": opts.duration.as_secs().max(1),
            "acquireTime": crate::deploy::lease::micro_now(),
            "renewTime": crate::deploy::lease::micro_now(),
        },
    }))
    .map_err(|e| ClusterError::Decode {
        what: format!("lease {name}"),
        source: e,
    })
}

impl Cluster for KubeCluster {
    /// The Namespace is applied only when it is missing (the first write answers 404): labelling
    /// an existing one is a cluster-scoped write the Role in `examples/deploy/rbac.yaml` does not
    /// grant.
    async fn apply_environment(&self, o: &EnvironmentObjects) -> Result<Applied, ClusterError> {
        let ns = o.namespace.as_str();
        if let Some(n) = &o.namespace_object {
            self.apply_typed(Api::<Namespace>::all(self.client.clone()), "", n)
                .await?;
        }
        for s in &o.secrets {
            self.apply_typed(Api::<Secret>::namespaced(self.client.clone(), ns), ns, s)
                .await?;
        }
        if let Some(svc) = &o.service {
            self.apply_typed(Api::<Service>::namespaced(self.client.clone(), ns), ns, svc)
                .await?;
        }
        let dep: Deployment = self
            .apply_typed(
                Api::<Deployment>::namespaced(self.client.clone(), ns),
                ns,
                &o.deployment,
            )
            .await?;
        if let Some(hpa) = &o.hpa {
            self.apply_typed(
                Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), ns),
                ns,
                hpa,
            )
            .await?;
        }
        let image = dep
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        Ok(Applied {
            namespace: ns.to_string(),
            name: o.deployment_name.clone(),
            generation: dep.metadata.generation.unwrap_or(0),
            image,
        })
    }
    async fn wait_rollout(
        &self,
        a: &Applied,
        plan: &RolloutPlan,
    ) -> Result<RolloutResult, ClusterError> {
        let started = Instant::now();
        let deadline = started + plan.deadline;
        let deps: Api<Deployment> = Api::namespaced(self.client.clone(), &a.namespace);
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &a.namespace);
        // The pod selector is the Deployment's own; read once (it is immutable). An apiserver that
        // goes away right after the apply is waited for like the watches below: until the
        // deadline, then `Unreachable`.
        let dep0 = loop {
            match deps.get(&a.name).await {
                Ok(d) => break d,
                Err(e @ kube::Error::Api(_)) => {
                    return Err(ClusterError::read(
                        format!("deployment {}/{}", a.namespace, a.name),
                        e,
                    ));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(ClusterError::Unreachable {
                        namespace: a.namespace.clone(),
                        name: a.name.clone(),
                        last_error: e.to_string(),
                        last_seen: "nothing since the apply".into(),
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deployment read failed; retrying until the deadline");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let selector: Vec<String> = dep0
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let dep_stream = watcher::watcher(
            deps,
            watcher::Config::default().fields(&format!("metadata.name={}", a.name)),
        )
        .backoff(quick_backoff());
        let pod_stream = watcher::watcher(
            pods_api,
            watcher::Config::default().labels(&selector.join(",")),
        )
        .backoff(quick_backoff());
        futures::pin_mut!(dep_stream);
        futures::pin_mut!(pod_stream);
        let mut dep: Deployment = dep0;
        let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
        let mut pods_pending: BTreeMap<String, Pod> = BTreeMap::new();
        let mut last_error: Option<String> = None;
        // Complete only once the pods were listed: a rollout judged without its pods would miss a
        // crash loop (and a missing `list pods` permission would go unnoticed).
        let mut pods_listed = false;
        loop {
            let summary = summarize(
                &dep,
                &pods.values().cloned().collect::<Vec<_>>(),
                a.generation,
                &a.image,
            );
            let elapsed = started.elapsed();
            // Our own deadline with the apiserver gone is an infrastructure failure, not a verdict.
            if elapsed >= plan.deadline
                && let Some(err) = &last_error
            {
                return Err(ClusterError::Unreachable {
                    namespace: a.namespace.clone(),
                    name: a.name.clone(),
                    last_error: err.clone(),
                    last_seen: summary.counts(),
                });
            }
            match next_step(plan, &summary, elapsed) {
                RolloutStep::Complete if pods_listed => {
                    return Ok(RolloutResult::Complete {
                        summary,
                        noticed: std::time::Instant::now(),
                    });
                }
                RolloutStep::Fail(f) => return Ok(RolloutResult::Failed(f)),
                RolloutStep::Complete | RolloutStep::Wait => {}
            }
            tokio::select! {
                ev = dep_stream.next() => match ev {
                    Some(Ok(Event::Apply(d) | Event::InitApply(d))) => { dep = d; last_error = None; }
                    Some(Ok(Event::Delete(_))) => {
                        return Err(ClusterError::Deleted { namespace: a.namespace.clone(), name: a.name.clone() });
                    }
                    Some(Ok(Event::Init | Event::InitDone)) => { last_error = None; }
                    Some(Err(e)) => {
                        if let Some(f) = watch_refusal(&e) { return Err(ClusterError::Forbidden(Box::new(f))); }
                        tracing::warn!(error = %e, "deployment watch interrupted; retrying"); last_error = Some(e.to_string());
                    }
                    None => { last_error = Some("deployment watch ended".into()); }
                },
                ev = pod_stream.next() => match ev {
                    Some(Ok(Event::Apply(p))) => { pods.insert(p.name_any(), p); last_error = None; }
                    Some(Ok(Event::Delete(p))) => { pods.remove(&p.name_any()); }
                    Some(Ok(Event::Init)) => pods_pending.clear(),
                    Some(Ok(Event::InitApply(p))) => { pods_pending.insert(p.name_any(), p); }
                    Some(Ok(Event::InitDone)) => { pods = std::mem::take(&mut pods_pending); pods_listed = true; last_error = None; }
                    Some(Err(e)) => {
                        if let Some(f) = watch_refusal(&e) { return Err(ClusterError::Forbidden(Box::new(f))); }
                        tracing::warn!(error = %e, "pod watch interrupted; retrying"); last_error = Some(e.to_string());
                    }
                    None => { last_error = Some("pod watch ended".into()); }
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn current_image(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, ClusterError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let dep = api
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::read(format!("deployment {namespace}/{name}"), e))?;
        Ok(dep
            .and_then(|d| d.spec)
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone())))
    }

    async fn read_record(&self, namespace: &str, app: &str) -> Result<StateRecord, ClusterError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("configmap {namespace}/{STATE_CONFIGMAP}");
        let cm = match api.get_opt(STATE_CONFIGMAP).await {
            Ok(cm) => cm,
            // No namespace yet: nothing was deployed.
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(ClusterError::read(what, e)),
        };
        match cm.and_then(|c| c.data).and_then(|d| d.get(app).cloned()) {
            Some(text) => serde_json::from_str(&text).map_err(|e| ClusterError::Decode {
                what: format!("{what} key {app}"),
                source: e,
            }),
            None => Ok(StateRecord::default()),
        }
    }

    async fn write_record(
        &self,
        namespace: &str,
        app: &str,
        rec: DeployRecord,
    ) -> Result<StateRecord, ClusterError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("configmap {namespace}/{STATE_CONFIGMAP}");
        let (record, _) = retry_on_conflict(&what, 8, &self.client, |_| {
            let api = api.clone();
            let rec = rec.clone();
            async move {
                let existing = api.get_opt(STATE_CONFIGMAP).await?;
                let old: StateRecord = existing
                    .as_ref()
                    .and_then(|c| c.data.as_ref())
                    .and_then(|d| d.get(app))
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                let new = old.with(rec);
                let text = serde_json::to_string(&new).map_err(kube::Error::SerdeError)?;
                match existing {
                    Some(mut cm) => {
                        cm.data.get_or_insert_with(BTreeMap::new).insert(app.to_string(), text);
                        // replace carries the resourceVersion read above: a concurrent write → 409.
                        api.replace(STATE_CONFIGMAP, &PostParams::default(), &cm).await?;
                    }
                    None => {
                        let cm: ConfigMap = serde_json::from_value(json!({
                            "metadata": {"name": STATE_CONFIGMAP, "labels": {"app.kubernetes.io/managed-by": "fm-deploy"}},
                            "data": {app: text},
                        }))
                        .map_err(kube::Error::SerdeError)?;
                        // AlreadyExists (someone created it meanwhile) is a 409 too: read again.
                        api.create(&PostParams::default(), &cm).await?;
                    }
                }
                Ok(new)
            }
        })
        .await?;
        Ok(record)
    }

    async fn acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        opts: LeaseOptions,
    ) -> Result<LeaseGuard, ClusterError> {
        // The Lease lives in the environment's namespace, created on the first deploy (below).
        let ns_body = crate::deploy::manifests::namespace_object(namespace);
        let mut namespace_applied = false;
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("lease {namespace}/{name}");
        let started = Instant::now();
        let mut seen: Option<crate::deploy::lease::Sighting> = None;
        let reads = WritePolicy {
            budget: opts.wait,
            ..self.writes
        };
        loop {
            let current = retry_write(&format!("read {what}"), reads, &self.client, |_| {
                api.get_opt(name)
            })
            .await
            .map(|(l, _)| l)
            .map_err(|e| ClusterError::read(what.clone(), e))?;
            let attempt = match &current {
                None => api
                    .create(
                        &PostParams::default(),
                        &lease_body(name, holder, &opts, None)?,
                    )
                    .await
                    .map(|_| true),
                Some(l) => {
                    let (h, duration) = lease_holder_and_duration(l);
                    let rv = l.metadata.resource_version.clone().unwrap_or_default();
                    let decision = crate::deploy::lease::takeover(
                        &h,
                        &rv,
                        duration,
                        holder,
                        seen.as_ref(),
                        Instant::now(),
                    );
                    match decision {
                        crate::deploy::lease::Takeover::Wait(s) => {
                            seen = Some(s);
                            if started.elapsed() >= opts.wait {
                                return Err(ClusterError::LeaseHeld {
                                    namespace: namespace.into(),
                                    name: name.into(),
                                    holder: h,
                                    waited: started.elapsed(),
                                });
                            }
                            Ok(false)
                        }
                        take => {
                            if let crate::deploy::lease::Takeover::TakeOver { previous } = take {
                                tracing::warn!(lease = %what, %previous, "taking over a lease unrenewed for its whole duration");
                            }
                            let body = lease_body(name, holder, &opts, Some(rv))?;
                            api.replace(name, &PostParams::default(), &body)
                                .await
                                .map(|_| true)
                        }
                    }
                }
            };
            match attempt {
                Ok(true) => break,
                Ok(false) => tokio::time::sleep(Duration::from_millis(500).min(opts.wait)).await,
                // Someone else created or renewed it between our read and write: read again.
                Err(e) if is_conflict(&e) => {}
                // No namespace yet (first deploy): create it, then try again.
                Err(e) if is_not_found(&e) && current.is_none() && !namespace_applied => {
                    namespace_applied = true;
                    self.apply_typed(Api::<Namespace>::all(self.client.clone()), "", &ns_body)
                        .await?;
                }
                // The apiserver went away between the read and the write: read again (the read
                // is retried within the wait).
                Err(e) if matches!(is_retryable(&e), RetryClass::Transient { .. }) => {
                    tracing::warn!(lease = %what, error = %e, "lease write failed; retrying");
                    tokio::time::sleep(self.writes.min_delay).await;
                }
                Err(e) => return Err(ClusterError::write(what, e)),
            }
        }
        let lost = Arc::new(Mutex::new(None));
        let renew = tokio::spawn(crate::deploy::lease::keep(
            api.clone(),
            name.to_string(),
            holder.to_string(),
            opts.duration,
            lost.clone(),
        ));
        Ok(LeaseGuard {
            namespace: namespace.into(),
            name: name.into(),
            holder: holder.into(),
            renew: Some(renew),
            lost,
        })
    }

    async fn release_lease(&self, mut guard: LeaseGuard) -> Result<(), ClusterError> {
        if let Some(t) = guard.renew.take() {
            t.abort();
        }
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &guard.namespace);
        let what = format!("lease {}/{}", guard.namespace, guard.name);
        let Some(l) = api
            .get_opt(&guard.name)
            .await
            .map_err(|e| ClusterError::read(what.clone(), e))?
        else {
            return Ok(());
        };
        let (h, _) = lease_holder_and_duration(&l);
        if h != guard.holder {
            return Ok(());
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: l.metadata.uid.clone(),
                resource_version: l.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&guard.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(()),
            Err(e) => Err(ClusterError::write(what, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(json: serde_json::Value) -> Deployment {
        serde_json::from_value(json).unwrap_or_default()
    }

    /// Protects the summary of a real 1.20 status object: counts, the Progressing condition, and only
    /// pods of the new image with their failing conditions.
    #[test]
    fn summarizes_status_and_new_pods() -> anyhow::Result<()> {
        let d = dep(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
                       "availableReplicas": 2,
                       "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                       "message": "ReplicaSet \"web-5d\" has timed out progressing."}]}
        }));
        let new_pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-5d-a"},
            "spec": {"containers": [{"name": "app", "image": "app:v2"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]"}],
                "containerStatuses": [{"name": "app", "image": "app:v2", "imageID": "", "ready": false, "restartCount": 0,
                                       "state": {"running": {}}}]}
        }))?;
        let old_pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-4c-a"}, "spec": {"containers": [{"name": "app", "image": "app:v1"}]},
        }))?;
        let s = summarize(&d, &[new_pod, old_pod], 3, "app:v2");
        assert_eq!(
            (s.desired, s.total, s.updated, s.ready, s.available),
            (2, 3, 1, 2, 2)
        );
        assert_eq!(s.pods.len(), 1);
        assert_eq!(
            s.pods[0].failing_conditions,
            vec!["Ready=False (ContainersNotReady: containers with unready status: [app])"]
        );
        assert_eq!(
            s.progressing.as_ref().map(|c| c.reason.as_str()),
            Some("ProgressDeadlineExceeded")
        );
        Ok(())
    }

    /// Protects the state record: a failure is history, not the rollback target; history is bounded.
    #[test]
    fn state_record_keeps_last_success_as_current() {
        let r = |img: &str, outcome: &str| DeployRecord {
            image: img.into(),
            run_id: "1".into(),
            sha: "abc".into(),
            strategy: "rolling".into(),
            outcome: outcome.into(),
            at: "2026-01-01T00:00:00Z".into(),
        };
        let mut s = StateRecord::default()
            .with(r("v1", "deployed"))
            .with(r("v2", "rolled-back"));
        assert_eq!(s.current.as_ref().map(|c| c.image.as_str()), Some("v1"));
        for _ in 0..30 {
            s = s.with(r("v3", "failed"));
        }
        assert_eq!(s.history.len(), HISTORY);
    }
}
