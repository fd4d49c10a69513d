//! The cluster side of blue-green: colour Deployments, the live / preview Services, the NGINX canary
//! Ingress, the state record (an annotation on the live Service) and the environment's Lease.
//!
//! Owns: every Kubernetes request a blue-green release makes. Must not decide anything: which colour,
//! when to switch or revert is `bluegreen.rs`'s business; this file only does what it is told.

use crate::deploy::bluegreen::{BgState, Color};
use crate::deploy::cluster::{
    Cluster, KubeCluster, LeaseGuard, LeaseOptions, WritePolicy, retry_write,
};
use crate::deploy::forbidden::{forbidden, watch_refusal};
use crate::deploy::manifests::{EnvironmentObjects, color_selector};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

pub use crate::deploy::manifests::FIELD_MANAGER;
/// Annotation on the live Service holding the JSON state record.
pub const STATE_ANNOTATION: &str = "fm-deploy.io/blue-green-state";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what} {namespace}/{name}")]
    Api {
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("wait for deployment {namespace}/{name} to be ready within {deadline:?}: {detail}")]
    NotReady {
        namespace: String,
        name: String,
        deadline: Duration,
        detail: String,
    },
    #[error("read the blue-green state on service {namespace}/{name}")]
    State {
        namespace: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("take lease {namespace}/{name}: held by {holder} (waited {waited:?})")]
    LeaseHeld {
        namespace: String,
        name: String,
        holder: String,
        waited: Duration,
    },
    #[error("build the {what} object for {name}")]
    Build {
        what: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// The apiserver refused a request for want of a permission (403): final, never retried.
    #[error(transparent)]
    Forbidden(Box<crate::deploy::forbidden::Forbidden>),
    #[error(transparent)]
    Objects(Box<crate::deploy::manifests::BuildError>),
    /// The environment's Lease, through the shared implementation in `deploy::cluster`.
    #[error(transparent)]
    Lease(Box<crate::deploy::cluster::ClusterError>),
}

impl From<crate::deploy::cluster::ClusterError> for ClusterError {
    fn from(e: crate::deploy::cluster::ClusterError) -> Self {
        match e {
            crate::deploy::cluster::ClusterError::LeaseHeld {
                namespace,
                name,
                holder,
                waited,
            } => ClusterError::LeaseHeld {
                namespace,
                name,
                holder,
                waited,
            },
            crate::deploy::cluster::ClusterError::Forbidden(f) => ClusterError::Forbidden(f),
            other => ClusterError::Lease(Box::new(other)),
        }
    }
}

/// What the colour objects look like.
#[derive(Debug, Clone)]
pub struct ColorsSpec {
    pub namespace: String,
    /// `app.name`; Deployments are `<app>-blue` / `<app>-green`.
    pub app: String,
    pub port: u16,
    /// The live Service (`blue_green.service`).
    pub service: String,
    /// Service that selects the idle colour (checks before the switch, canary backend).
    pub preview_service: String,
    /// NGINX canary Ingress to weight, when the policy uses one (the stable Ingress is the user's).
    pub canary_ingress: Option<String>,
    /// Host of the canary Ingress rule.
    pub ingress_host: Option<String>,
}

impl ColorsSpec {
    pub fn deployment_name(&self, color: Color) -> String {
        format!("{}-{}", self.app, color)
    }
    /// A Service per colour (`<service>-<color>`), so each colour is reachable on its own.
    pub fn color_service(&self, color: Color) -> String {
        color_service_name(&self.service, color)
    }
}

/// The Service of one colour: `<service>-<color>`.
pub fn color_service_name(service: &str, color: Color) -> String {
    format!("{service}-{color}")
}

/// Which colours the live Service sends traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Only(Color),
    /// Both colours (replica-ratio shift).
    Both,
}

/// The Kubernetes operations of a blue-green release.
pub trait BgCluster: Send + Sync {
    fn read_state(&self) -> impl Future<Output = Result<BgState, ClusterError>> + Send;
    /// Persists the record (merge patch of one annotation on the live Service, when it exists).
    fn write_state(&self, state: &BgState)
    -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Server-side apply of `<app>-<color>` with this image and replica count.
    fn apply_color(
        &self,
        color: Color,
        image: &str,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Watch `<app>-<color>` until the rollout is complete (generation observed, all replicas
    /// updated and available), or fail at `deadline`.
    fn wait_ready(
        &self,
        color: Color,
        deadline: Duration,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    fn scale(
        &self,
        color: Color,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Point the live Service at `selector` and store `state` with it — one request.
    fn switch(
        &self,
        selector: Selector,
        state: &BgState,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Traffic back on `selector` (canary weight to 0 first when `reset_canary`) with `state` in
    /// the same PATCH, retried for up to `within` — a revert outranks everything, so it is tried
    /// for as long as the run may live, with short waits between attempts.
    fn revert(
        &self,
        selector: Selector,
        state: &BgState,
        reset_canary: bool,
        within: Duration,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send {
        let _ = within;
        async move {
            if reset_canary {
                self.canary_weight(0).await?;
            }
            self.switch(selector, state).await
        }
    }
    /// The preview Service selects `color`; per-colour Services exist.
    fn preview(&self, color: Color) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// The canary Ingress sends `weight`% to the preview Service.
    fn canary_weight(&self, weight: u8) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// `GET path` on Service `service` through the apiserver's service proxy
    /// (`…/services/<service>:http/proxy<path>`, the port the object builder names; RBAC sees verb
    /// `get` on `services/proxy` named `<service>:http`): the status the app answered, or why none
    /// came. How a runner outside the cluster network reaches a colour.
    fn proxy_get(
        &self,
        service: &str,
        path: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<u16, String>> + Send;
    /// Take the environment's Lease for `holder`, waiting up to `wait`.
    fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    fn renew_lease(&self, holder: &str) -> impl Future<Output = Result<(), ClusterError>> + Send;
    fn release_lease(&self, holder: &str) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

/// `BgCluster` on a real apiserver. The Lease is the one every deploy of the environment takes
/// (`KubeCluster::acquire_lease`, renewed in the background while held); this adapter only keeps
/// its guard.
pub struct KubeColors {
    client: Client,
    spec: ColorsSpec,
    /// The environment's objects from the one builder; the colours are variants of its Deployment.
    objects: EnvironmentObjects,
    lease: String,
    leases: KubeCluster,
    guard: std::sync::Mutex<Option<LeaseGuard>>,
}

impl KubeColors {
    /// `environment` names the Lease (`fm-deploy-<environment>`); `objects` are what
    /// `manifests::environment_objects` built for this release.
    pub fn new(
        client: Client,
        spec: ColorsSpec,
        objects: EnvironmentObjects,
        environment: &str,
    ) -> Self {
        Self {
            leases: KubeCluster::new(client.clone()),
            client,
            spec,
            objects,
            lease: format!("fm-deploy-{environment}"),
            guard: std::sync::Mutex::new(None),
        }
    }

    /// The same adapter with every write retried under `writes` (the Lease's writes included).
    pub fn with_writes(mut self, writes: WritePolicy) -> Self {
        self.leases = self.leases.with_writes(writes);
        self
    }

    /// Runs one request under the retry layer; gives up with the last error as `what` on `name`.
    async fn retried<T, F, Fut>(
        &self,
        what: &'static str,
        name: &str,
        policy: WritePolicy,
        attempt: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let label = format!("{what} {}/{name}", self.spec.namespace);
        retry_write(&label, policy, &self.client, attempt)
            .await
            .map(|(v, _)| v)
            .map_err(self.err(what, name))
    }

    /// The live Service's selector and record: one server-side apply under `policy`.
    async fn switch_with(
        &self,
        selector: Selector,
        state: &BgState,
        policy: WritePolicy,
    ) -> Result<(), ClusterError> {
        let name = self.spec.service.clone();
        let body = Patch::Apply(self.service_body(&name, selector, Some(state))?);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let svc = self.services();
        self.retried("switch the selector of service", &name, policy, |_| {
            svc.patch(&name, &pp, &body)
        })
        .await?;
        // The HPA scales the live colour only; a revert moves it back with the selector. Traffic
        // is what the switch is for: once the selector has landed, an autoscaler that cannot be
        // re-aimed (ordinary retries, not the revert's) is a warning, never a failed switch.
        if let Selector::Only(live) = selector
            && let Some(hpa) = self.objects.hpa_targeting(&self.spec.deployment_name(live))
            && let Err(e) = self
                .apply_with(&hpa, "aim the autoscaler", self.leases.writes())
                .await
        {
            tracing::warn!(error = %e, live = %live, "the selector switched, but the autoscaler still targets the other colour");
        }
        Ok(())
    }

    async fn canary_weight_with(
        &self,
        weight: u8,
        policy: WritePolicy,
    ) -> Result<(), ClusterError> {
        let Some(name) = self.spec.canary_ingress.clone() else {
            return Ok(());
        };
        let body = self.objects.canary_ingress(
            &name,
            self.spec.ingress_host.as_deref(),
            &self.spec.preview_service,
            self.spec.port,
            weight,
        );
        self.apply_with(&body, "set the canary weight of ingress", policy)
            .await
    }

    fn take_guard(&self) -> Option<LeaseGuard> {
        self.guard.lock().ok().and_then(|mut g| g.take())
    }
    pub fn spec(&self) -> &ColorsSpec {
        &self.spec
    }
    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.spec.namespace)
    }
    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.spec.namespace)
    }
    fn err(&self, what: &'static str, name: &str) -> impl Fn(kube::Error) -> ClusterError {
        let (namespace, name) = (self.spec.namespace.clone(), name.to_string());
        move |source| match forbidden(&source) {
            Some(f) => ClusterError::Forbidden(Box::new(f.in_namespace(&namespace))),
            None => ClusterError::Api {
                what,
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(source),
            },
        }
    }
    fn service_body(
        &self,
        name: &str,
        selector: Selector,
        state: Option<&BgState>,
    ) -> Result<Service, ClusterError> {
        let sel = match selector {
            Selector::Only(c) => color_selector(&self.spec.app, Some(c.as_str())),
            Selector::Both => color_selector(&self.spec.app, None),
        };
        let annotations = match state {
            Some(s) => {
                let text = serde_json::to_string(s).map_err(|source| ClusterError::Build {
                    what: "state",
                    name: name.into(),
                    source,
                })?;
                Some(BTreeMap::from([(STATE_ANNOTATION.to_string(), text)]))
            }
            None => None,
        };
        self.objects
            .service(name, self.spec.port, sel, annotations)
            .map_err(|e| ClusterError::Objects(Box::new(e)))
    }

    async fn apply<K>(&self, obj: &K, what: &'static str) -> Result<(), ClusterError>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.apply_with(obj, what, self.leases.writes()).await
    }

    /// One server-side apply (forced, field manager `fm-deploy`) under the retry layer.
    async fn apply_with<K>(
        &self,
        obj: &K,
        what: &'static str,
        policy: WritePolicy,
    ) -> Result<(), ClusterError>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let api = Api::<K>::namespaced(self.client.clone(), &self.spec.namespace);
        let (pp, patch) = (PatchParams::apply(FIELD_MANAGER).force(), Patch::Apply(obj));
        self.retried(what, &name, policy, |_| api.patch(&name, &pp, &patch))
            .await?;
        Ok(())
    }
}

/// `MicroTime` on the wire.
fn deployment_complete(d: Option<&Deployment>) -> bool {
    let Some(d) = d else { return false };
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
}

fn deployment_detail(d: Option<&Deployment>) -> String {
    let Some(status) = d.and_then(|d| d.status.as_ref()) else {
        return "no status yet".into();
    };
    let mut parts = vec![format!(
        "updated {}/available {}/ready {}",
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.ready_replicas.unwrap_or(0)
    )];
    for c in status.conditions.iter().flatten() {
        if c.status != "True" || c.type_ == "Progressing" {
            parts.push(format!(
                "{}={} ({})",
                c.type_,
                c.status,
                c.message.clone().unwrap_or_default()
            ));
        }
    }
    parts.join("; ")
}

impl BgCluster for KubeColors {
    async fn read_state(&self) -> Result<BgState, ClusterError> {
        let name = &self.spec.service;
        let api = self.services();
        let svc = self
            .retried("read service", name, self.leases.writes(), |_| {
                api.get_opt(name)
            })
            .await?;
        let text = svc
            .and_then(|s| s.metadata.annotations)
            .and_then(|mut a| a.remove(STATE_ANNOTATION));
        match text {
            None => Ok(BgState::default()),
            Some(t) => serde_json::from_str(&t).map_err(|source| ClusterError::State {
                namespace: self.spec.namespace.clone(),
                name: name.clone(),
                source,
            }),
        }
    }

    async fn write_state(&self, state: &BgState) -> Result<(), ClusterError> {
        let name = &self.spec.service;
        let text = serde_json::to_string(state).map_err(|source| ClusterError::Build {
            what: "state",
            name: name.clone(),
            source,
        })?;
        let patch = Patch::Merge(json!({"metadata": {"annotations": { STATE_ANNOTATION: text }}}));
        let (api, pp) = (self.services(), PatchParams::default());
        // Before the first switch the Service does not exist yet: the switch creates it with the
        // record (a 404 here is "nothing to annotate", not a failure).
        self.retried(
            "write the state on service",
            name,
            self.leases.writes(),
            |_| {
                let (api, pp, patch) = (api.clone(), pp.clone(), patch.clone());
                async move {
                    match api.patch(name, &pp, &patch).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            },
        )
        .await
    }

    async fn apply_color(
        &self,
        color: Color,
        image: &str,
        replicas: u32,
    ) -> Result<(), ClusterError> {
        // The Secrets the pods read come first, so a new pod never starts without them.
        if let Some(n) = &self.objects.namespace_object {
            self.leases
                .apply_typed(Api::<Namespace>::all(self.client.clone()), "", n)
                .await?;
        }
        for secret in &self.objects.secrets {
            self.apply(secret, "apply secret").await?;
        }
        let body = self
            .objects
            .color_deployment(color.as_str(), image, replicas);
        self.apply(&body, "apply deployment").await
    }

    /// Watches the Deployment through apiserver restarts (the watch re-lists with a short backoff)
    /// until it is complete or `deadline` passes.
    async fn wait_ready(&self, color: Color, deadline: Duration) -> Result<(), ClusterError> {
        let name = self.spec.deployment_name(color);
        let stream = kube::runtime::watcher::watch_object(self.deployments(), &name)
            .backoff(crate::deploy::cluster::quick_backoff());
        futures::pin_mut!(stream);
        let until = tokio::time::Instant::now() + deadline;
        let mut last: Option<Deployment> = None;
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(d)) => {
                        last_error = None;
                        if deployment_complete(d.as_ref()) {
                            return Ok(());
                        }
                        last = d;
                    }
                    Some(Err(e)) => {
                        if let Some(f) = watch_refusal(&e) {
                            return Err(ClusterError::Forbidden(Box::new(f)));
                        }
                        tracing::warn!(deployment = %name, error = %e, "deployment watch interrupted; retrying");
                        last_error = Some(e.to_string());
                    }
                    None => {
                        last_error = Some("the watch ended".into());
                        tokio::time::sleep_until(until).await;
                    }
                },
                () = tokio::time::sleep_until(until) => {
                    let mut detail = deployment_detail(last.as_ref());
                    if let Some(e) = last_error {
                        detail.push_str(&format!("; the apiserver was unreachable at the deadline ({e})"));
                    }
                    return Err(ClusterError::NotReady {
                        namespace: self.spec.namespace.clone(),
                        name,
                        deadline,
                        detail,
                    });
                }
            }
        }
    }

    async fn scale(&self, color: Color, replicas: u32) -> Result<(), ClusterError> {
        let name = self.spec.deployment_name(color);
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let (api, pp) = (self.deployments(), PatchParams::default());
        self.retried("scale deployment", &name, self.leases.writes(), |_| {
            let (api, pp, patch, name) = (api.clone(), pp.clone(), patch.clone(), name.clone());
            async move {
                match api.patch(&name, &pp, &patch).await {
                    Ok(_) => Ok(()),
                    // Nothing to scale down.
                    Err(kube::Error::Api(e)) if e.code == 404 && replicas == 0 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    async fn switch(&self, selector: Selector, state: &BgState) -> Result<(), ClusterError> {
        self.switch_with(selector, state, self.leases.writes())
            .await
    }

    async fn revert(
        &self,
        selector: Selector,
        state: &BgState,
        reset_canary: bool,
        within: Duration,
    ) -> Result<(), ClusterError> {
        let policy = WritePolicy::revert(within);
        if reset_canary {
            self.canary_weight_with(0, policy).await?;
        }
        self.switch_with(selector, state, policy).await
    }

    async fn preview(&self, color: Color) -> Result<(), ClusterError> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let mut bodies = vec![(self.spec.preview_service.clone(), Selector::Only(color))];
        for c in [Color::Blue, Color::Green] {
            bodies.push((self.spec.color_service(c), Selector::Only(c)));
        }
        for (name, sel) in bodies {
            let body = Patch::Apply(self.service_body(&name, sel, None)?);
            let api = self.services();
            self.retried("apply service", &name, self.leases.writes(), |_| {
                api.patch(&name, &pp, &body)
            })
            .await?;
        }
        Ok(())
    }

    async fn canary_weight(&self, weight: u8) -> Result<(), ClusterError> {
        self.canary_weight_with(weight, self.leases.writes()).await
    }

    async fn proxy_get(&self, service: &str, path: &str, timeout: Duration) -> Result<u16, String> {
        let uri = format!(
            "/api/v1/namespaces/{}/services/{service}:http/proxy{path}",
            self.spec.namespace
        );
        let request = http::Request::get(uri.as_str())
            .body(kube::client::Body::empty())
            .map_err(|e| format!("build GET {uri}: {e}"))?;
        let response = tokio::time::timeout(timeout, self.client.send(request))
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        if status == 403 {
            // The apiserver's own refusal is a Status object; an app's 403 is passed through.
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let refused = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v["kind"] == "Status" && v["reason"] == "Forbidden");
            if refused {
                return Err(format!(
                    "the apiserver refused the service proxy: the deploy identity needs `get` on `services/proxy` named `{service}:http` in {} (examples/deploy/rbac.yaml), or set blue_green.preview_url",
                    self.spec.namespace
                ));
            }
        }
        Ok(status)
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<(), ClusterError> {
        let opts = LeaseOptions {
            duration: ttl,
            wait,
        };
        let guard = self
            .leases
            .acquire_lease(&self.spec.namespace, &self.lease, holder, opts)
            .await?;
        if let Ok(mut g) = self.guard.lock() {
            *g = Some(guard);
        }
        Ok(())
    }

    /// The guard renews in the background (each renewal retried within the Lease's duration);
    /// this reports a Lease that was lost meanwhile — taken over, or unrenewed for its whole
    /// duration — so the release stops acting rather than race another run.
    async fn renew_lease(&self, holder: &str) -> Result<(), ClusterError> {
        let lost = self
            .guard
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(LeaseGuard::lost));
        match lost {
            Some(loss) => Err(ClusterError::Lease(Box::new(
                crate::deploy::cluster::ClusterError::LeaseLost {
                    namespace: self.spec.namespace.clone(),
                    name: self.lease.clone(),
                    loss,
                },
            ))),
            None => {
                tracing::debug!(lease = %self.lease, holder, "lease held");
                Ok(())
            }
        }
    }

    async fn release_lease(&self, _holder: &str) -> Result<(), ClusterError> {
        match self.take_guard() {
            Some(guard) => Ok(self.leases.release_lease(guard).await?),
            None => Ok(()),
        }
    }
}
