//! The Kubernetes adapter: server-side apply of an environment, watching a rollout to readiness,
//! the deploy state record, and the per-environment Lease.
//!
//! Owns: every Kubernetes API call of the direct and rolling deploys ([`Cluster`] / [`KubeCluster`]),
//! and the pure reduction of observed objects to a [`DeploySummary`] ([`summarize`]). Must not
//! decide: whether a rollout is done is `strategy::next_step`'s call; what to do next is the
//! strategy machine's.

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
    #[error("keep lease {namespace}/{name}: {holder:?} took it over during the deploy")]
    LeaseLost {
        namespace: String,
        name: String,
        holder: String,
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

/// A held Lease; renewed in the background until [`Cluster::release_lease`] (or drop, after which it
/// expires).
#[derive(Debug)]
pub struct LeaseGuard {
    pub namespace: String,
    pub name: String,
    pub holder: String,
    renew: Option<JoinHandle<()>>,
    /// Set by the renewal when another holder took the Lease over (ours had expired).
    lost_to: Arc<Mutex<Option<String>>>,
}

impl LeaseGuard {
    /// The holder that took the Lease over, if it was lost (the deploy is then no longer exclusive).
    pub fn lost_to(&self) -> Option<String> {
        self.lost_to.lock().ok().and_then(|l| l.clone())
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
    /// Server-side apply (field manager `fm-deploy`, forced) of the namespace, secrets, Service,
    /// Deployment and HPA, in that order.
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
}

impl KubeCluster {
    pub fn new(client: Client) -> KubeCluster {
        KubeCluster { client }
    }

    /// From the environment (`KUBECONFIG`, in-cluster) the way kubectl finds it.
    pub async fn infer() -> Result<KubeCluster, ClusterError> {
        let client = Client::try_default()
            .await
            .map_err(|e| ClusterError::Read {
                what: "the kubeconfig".into(),
                source: Box::new(e),
            })?;
        Ok(KubeCluster { client })
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
        api.patch(&name, &pp, &Patch::Apply(obj))
            .await
            .map_err(|e| ClusterError::Apply {
                kind: K::kind(&()).to_string(),
                namespace: ns.into(),
                name: name.clone(),
                source: Box::new(e),
            })
    }
}

/// Is this the apiserver's 409 Conflict?
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Runs `attempt` (which must read fresh state each time) until it does not end in 409 Conflict,
/// at most `attempts` times. Returns the value and how many conflicts were retried.
pub async fn retry_on_conflict<T, F, Fut>(
    what: &str,
    attempts: u32,
    mut attempt: F,
) -> Result<(T, u32), ClusterError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    for i in 0..attempts {
        match attempt(i).await {
            Ok(v) => return Ok((v, i)),
            Err(e) if is_conflict(&e) => {
                tracing::debug!(
                    what,
                    attempt = i,
                    "409 conflict, retrying with a fresh read"
                );
                tokio::time::sleep(Duration::from_millis(20 * u64::from(i + 1))).await;
            }
            Err(e) => {
                return Err(ClusterError::Write {
                    what: what.into(),
                    source: Box::new(e),
                });
            }
        }
    }
    Err(ClusterError::Conflict {
        what: what.into(),
        attempts,
    })
}

/// Watch retries: quick (200 ms doubling to 2 s) so a restarted apiserver is picked up within
/// seconds; the rollout deadline bounds the whole wait.
struct QuickBackoff {
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

fn quick_backoff() -> QuickBackoff {
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

fn lease_holder_and_expiry(lease: &Lease) -> (String, Option<chrono::DateTime<chrono::Utc>>) {
    let v = serde_json::to_value(&lease.spec).unwrap_or_default();
    let holder = v
        .get("holderIdentity")
        .and_then(|h| h.as_str())
        .unwrap_or("")
        .to_string();
    let duration = v
        .get("leaseDurationSeconds")
        .and_then(|d| d.as_i64())
        .unwrap_or(0);
    let renew = v
        .get("renewTime")
        .or_else(|| v.get("acquireTime"))
        .and_then(|t| t.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc) + chrono::Duration::seconds(duration));
    (holder, renew)
}

fn micro_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
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
            "acquireTime": micro_now(),
            "renewTime": micro_now(),
        },
    }))
    .map_err(|e| ClusterError::Decode {
        what: format!("lease {name}"),
        source: e,
    })
}

impl Cluster for KubeCluster {
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
                    return Err(ClusterError::Read {
                        what: format!("deployment {}/{}", a.namespace, a.name),
                        source: Box::new(e),
                    });
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
                RolloutStep::Complete => {
                    return Ok(RolloutResult::Complete {
                        summary,
                        noticed: std::time::Instant::now(),
                    });
                }
                RolloutStep::Fail(f) => return Ok(RolloutResult::Failed(f)),
                RolloutStep::Wait => {}
            }
            tokio::select! {
                ev = dep_stream.next() => match ev {
                    Some(Ok(Event::Apply(d) | Event::InitApply(d))) => { dep = d; last_error = None; }
                    Some(Ok(Event::Delete(_))) => {
                        return Err(ClusterError::Deleted { namespace: a.namespace.clone(), name: a.name.clone() });
                    }
                    Some(Ok(Event::Init | Event::InitDone)) => { last_error = None; }
                    Some(Err(e)) => { tracing::warn!(error = %e, "deployment watch interrupted; retrying"); last_error = Some(e.to_string()); }
                    None => { last_error = Some("deployment watch ended".into()); }
                },
                ev = pod_stream.next() => match ev {
                    Some(Ok(Event::Apply(p))) => { pods.insert(p.name_any(), p); last_error = None; }
                    Some(Ok(Event::Delete(p))) => { pods.remove(&p.name_any()); }
                    Some(Ok(Event::Init)) => pods_pending.clear(),
                    Some(Ok(Event::InitApply(p))) => { pods_pending.insert(p.name_any(), p); }
                    Some(Ok(Event::InitDone)) => { pods = std::mem::take(&mut pods_pending); last_error = None; }
                    Some(Err(e)) => { tracing::warn!(error = %e, "pod watch interrupted; retrying"); last_error = Some(e.to_string()); }
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
        let dep = api.get_opt(name).await.map_err(|e| ClusterError::Read {
            what: format!("deployment {namespace}/{name}"),
            source: Box::new(e),
        })?;
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
            Err(e) => {
                return Err(ClusterError::Read {
                    what,
                    source: Box::new(e),
                });
            }
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
        let (record, _) = retry_on_conflict(&what, 8, |_| {
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
        loop {
            let current = api.get_opt(name).await.map_err(|e| ClusterError::Read {
                what: what.clone(),
                source: Box::new(e),
            })?;
            let attempt = match &current {
                None => api
                    .create(
                        &PostParams::default(),
                        &lease_body(name, holder, &opts, None)?,
                    )
                    .await
                    .map(|_| true),
                Some(l) => {
                    let (h, expires) = lease_holder_and_expiry(l);
                    let free = h.is_empty()
                        || h == holder
                        || expires.is_none_or(|t| t < chrono::Utc::now());
                    if free {
                        if !h.is_empty() && h != holder {
                            tracing::warn!(lease = %what, previous = %h, "taking over an expired lease");
                        }
                        let body =
                            lease_body(name, holder, &opts, l.metadata.resource_version.clone())?;
                        api.replace(name, &PostParams::default(), &body)
                            .await
                            .map(|_| true)
                    } else {
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
                Err(e) => {
                    return Err(ClusterError::Write {
                        what,
                        source: Box::new(e),
                    });
                }
            }
        }
        let lost_to = Arc::new(Mutex::new(None));
        let renew = {
            let (api, lost) = (api.clone(), lost_to.clone());
            let (name, me) = (name.to_string(), holder.to_string());
            let every = (opts.duration / 3).max(Duration::from_millis(200));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    // Renew only our own Lease: read, check the holder, replace with its
                    // resourceVersion (a 409 means it changed meanwhile: check again next time).
                    let current = match api.get(&name).await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(lease = %name, error = %e, "failed to read the deploy lease for renewal");
                            continue;
                        }
                    };
                    let (h, _) = lease_holder_and_expiry(&current);
                    if h != me {
                        tracing::error!(lease = %name, holder = %h, "lost the deploy lease");
                        if let Ok(mut l) = lost.lock() {
                            *l = Some(h);
                        }
                        return;
                    }
                    let mut renewed = current;
                    if let Some(spec) = renewed.spec.as_mut()
                        && let Ok(t) = serde_json::from_value(json!(micro_now()))
                    {
                        spec.renew_time = Some(t);
                    }
                    if let Err(e) = api.replace(&name, &PostParams::default(), &renewed).await {
                        tracing::warn!(lease = %name, error = %e, "failed to renew the deploy lease");
                    }
                }
            })
        };
        Ok(LeaseGuard {
            namespace: namespace.into(),
            name: name.into(),
            holder: holder.into(),
            renew: Some(renew),
            lost_to,
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
            .map_err(|e| ClusterError::Read {
                what: what.clone(),
                source: Box::new(e),
            })?
        else {
            return Ok(());
        };
        let (h, _) = lease_holder_and_expiry(&l);
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
            Err(e) => Err(ClusterError::Write {
                what,
                source: Box::new(e),
            }),
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
