//! The cluster side of blue-green: colour Deployments, the live / preview Services, the NGINX canary
//! Ingress, the state record (an annotation on the live Service) and the environment's Lease.
//!
//! Owns: every Kubernetes request a blue-green release makes. Must not decide anything: which colour,
//! when to switch or revert is `bluegreen.rs`'s business; this file only does what it is told.

use crate::deploy::bluegreen::{BgState, Color};
use crate::deploy::cluster::{Cluster, KubeCluster, LeaseGuard, LeaseOptions};
use crate::deploy::manifests::{EnvironmentObjects, color_selector};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
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
        format!("{}-{}", self.service, color)
    }
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
    /// The preview Service selects `color`; per-colour Services exist.
    fn preview(&self, color: Color) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// The canary Ingress sends `weight`% to the preview Service.
    fn canary_weight(&self, weight: u8) -> impl Future<Output = Result<(), ClusterError>> + Send;
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
        move |source| ClusterError::Api {
            what,
            namespace: namespace.clone(),
            name: name.clone(),
            source: Box::new(source),
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
        let name = obj.meta().name.clone().unwrap_or_default();
        Api::<K>::namespaced(self.client.clone(), &self.spec.namespace)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
            .map_err(self.err(what, &name))?;
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
        let svc = self
            .services()
            .get_opt(name)
            .await
            .map_err(self.err("read service", name))?;
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
        let patch = json!({"metadata": {"annotations": { STATE_ANNOTATION: text }}});
        match self
            .services()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            // Before the first switch the Service does not exist yet: the switch creates it with
            // the record.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(self.err("write the state on service", name)(e)),
        }
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

    async fn wait_ready(&self, color: Color, deadline: Duration) -> Result<(), ClusterError> {
        let name = self.spec.deployment_name(color);
        let api = self.deployments();
        let waited = tokio::time::timeout(
            deadline,
            await_condition(api.clone(), &name, deployment_complete),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ClusterError::NotReady {
                namespace: self.spec.namespace.clone(),
                name,
                deadline,
                detail: e.to_string(),
            }),
            Err(_) => {
                let last = api.get_opt(&name).await.ok().flatten();
                Err(ClusterError::NotReady {
                    namespace: self.spec.namespace.clone(),
                    name,
                    deadline,
                    detail: deployment_detail(last.as_ref()),
                })
            }
        }
    }

    async fn scale(&self, color: Color, replicas: u32) -> Result<(), ClusterError> {
        let name = self.spec.deployment_name(color);
        let patch = json!({"spec": {"replicas": replicas}});
        match self
            .deployments()
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 && replicas == 0 => Ok(()),
            Err(e) => Err(self.err("scale deployment", &name)(e)),
        }
    }

    async fn switch(&self, selector: Selector, state: &BgState) -> Result<(), ClusterError> {
        let name = self.spec.service.clone();
        let body = self.service_body(&name, selector, Some(state))?;
        self.services()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(self.err("switch the selector of service", &name))?;
        // The HPA scales the live colour only; a revert moves it back with the selector.
        if let Selector::Only(live) = selector
            && let Some(hpa) = self.objects.hpa_targeting(&self.spec.deployment_name(live))
        {
            self.apply(&hpa, "aim the autoscaler").await?;
        }
        Ok(())
    }

    async fn preview(&self, color: Color) -> Result<(), ClusterError> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let mut bodies = vec![(self.spec.preview_service.clone(), Selector::Only(color))];
        for c in [Color::Blue, Color::Green] {
            bodies.push((self.spec.color_service(c), Selector::Only(c)));
        }
        for (name, sel) in bodies {
            let body = self.service_body(&name, sel, None)?;
            self.services()
                .patch(&name, &pp, &Patch::Apply(&body))
                .await
                .map_err(self.err("apply service", &name))?;
        }
        Ok(())
    }

    async fn canary_weight(&self, weight: u8) -> Result<(), ClusterError> {
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
        self.apply(&body, "set the canary weight of ingress").await
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

    /// The guard renews in the background; this reports a Lease that was lost meanwhile (another
    /// run took it over after it expired), so the release stops rather than race that run.
    async fn renew_lease(&self, holder: &str) -> Result<(), ClusterError> {
        let lost = self
            .guard
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(LeaseGuard::lost_to));
        match lost {
            Some(other) => Err(ClusterError::LeaseHeld {
                namespace: self.spec.namespace.clone(),
                name: self.lease.clone(),
                holder: other,
                waited: Duration::ZERO,
            }),
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
