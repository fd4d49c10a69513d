//! The one builder of the Kubernetes objects a release applies, for every strategy, from the
//! validated policy.
//!
//! Owns: names, `app.kubernetes.io/*` labels, the typed Namespace / Secret / Service / Deployment /
//! HPA of an environment, the blue-green colour variants of the Deployment and the Services, and
//! running the policy's user patches over each. Must not touch: the network. Nothing newer than
//! Kubernetes 1.20 is set (the HPA is `autoscaling/v1`, served by every version), and every
//! Service port says `protocol: TCP` (1.20 rejects an apply without it).

use super::labels::label_value;
use crate::deploy::patches::{self, PatchError};
use crate::policy::model::{
    AppSpec, EnvironmentSpec, PatchSpec, ProbeSpec, StrategyKind, WorkloadSpec,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v1::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, LocalObjectReference, Namespace, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretEnvSource,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "fm-deploy";
/// The ConfigMap holding the deploy state record of each app in the namespace.
pub const STATE_CONFIGMAP: &str = "fm-deploy-state";
/// Pod template annotation: sha256 of the app and TLS Secrets, so a changed secret rolls the pods.
pub const SECRET_CHECKSUM: &str = "fm-deploy.io/secret-checksum";

/// The app's own Secret (`secrets:` inputs, read by the pods with `envFrom`): one per app, so two
/// apps in one namespace keep their own keys.
pub fn app_secret_name(app: &str) -> String {
    format!("{app}-secrets")
}

/// What one deploy puts into the environment, besides the policy.
#[derive(Debug, Clone, Default)]
pub struct DeployInputs {
    /// Full image reference, e.g. `ghcr.io/org/app:sha-abc123`.
    pub image: String,
    /// `GITHUB_RUN_ID` (and attempt), recorded in the state record and as the Lease holder.
    pub run_id: String,
    pub sha: String,
    /// Key of the app Secret (`DATABASE_URL`, …) → value. Values never appear in messages.
    pub secrets: BTreeMap<String, String>,
    /// PEM certificate and key for `tls_secret`, when the policy names one.
    pub tls: Option<(String, String)>,
    /// Leave the Secrets as the last deploy wrote them: `secrets` and `tls` are ignored and no
    /// Secret is applied. A manual rollback re-deploys an earlier image without being given the
    /// values (its workflow has no database or TLS inputs); applying what it has would strip the
    /// keys the deploy wrote. The pod template then carries no secret checksum.
    pub keep_secrets: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("build {kind}/{name}: a patch left it unreadable as a {kind}")]
    Shape {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The objects of one environment, ready for server-side apply. Direct and rolling apply them as
/// they are; blue-green applies the colour variants ([`EnvironmentObjects::color_deployment`],
/// [`EnvironmentObjects::service`]) of the same Deployment and the same Secrets and HPA.
#[derive(Debug, Clone)]
pub struct EnvironmentObjects {
    pub namespace: String,
    /// The app's name: the Deployment of direct / rolling, the prefix of the colours, the HPA.
    pub deployment_name: String,
    /// Only with `create_namespace: true`.
    pub namespace_object: Option<Namespace>,
    pub secrets: Vec<Secret>,
    /// The Service of direct / rolling (blue-green builds its Services per selector).
    pub service: Option<Service>,
    pub deployment: Deployment,
    /// Targets `deployment_name`; blue-green retargets it at the live colour.
    pub hpa: Option<HorizontalPodAutoscaler>,
    patches: Vec<PatchSpec>,
    labels: BTreeMap<String, String>,
}

/// `app.kubernetes.io/*` labels of everything fm-deploy manages for `app` in `env`.
pub fn labels(app: &AppSpec, env: &EnvironmentSpec) -> BTreeMap<String, String> {
    let mut l = selector_labels(app, env);
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l.insert("app.kubernetes.io/part-of".into(), app.name.clone());
    l.insert("app.kubernetes.io/component".into(), "server".into());
    l.insert("fm-deploy/environment".into(), env.name.clone());
    l
}

/// The immutable selector of the direct / rolling Deployment and its Service.
pub fn selector_labels(app: &AppSpec, env: &EnvironmentSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.name.clone()),
        (
            "app.kubernetes.io/instance".to_string(),
            label_value(&format!("{}-{}", app.name, env.name)),
        ),
    ])
}

/// The selector of a blue-green colour: `app` and `version` (what the live Service switches on,
/// and the labels the example's Prometheus queries filter by).
pub fn color_selector(app: &str, color: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([("app".to_string(), app.to_string())]);
    if let Some(c) = color {
        l.insert("version".into(), c.to_string());
    }
    l
}
/// The tag (or digest) of an image reference, for the `app.kubernetes.io/version` label (≤ 63 chars).
pub fn image_version(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let v = if let Some((_, d)) = last.split_once('@') {
        d.trim_start_matches("sha256:").chars().take(12).collect()
    } else if let Some((_, t)) = last.split_once(':') {
        t.to_string()
    } else {
        "latest".to_string()
    };
    label_value(&v)
}

/// Everything the environment needs for this deploy, user patches applied.
pub fn environment_objects(
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
) -> Result<EnvironmentObjects, BuildError> {
    let labels = labels(app, env);
    let ns = env.namespace.clone();
    let w = &env.workload;
    let mut secrets = Vec::new();
    // The Secrets exist whenever the policy names them, whichever values this run was given (a
    // missing input leaves its key out): what a release applies never depends on the values.
    if !env.secrets.is_empty() && !inputs.keep_secrets {
        secrets.push(secret(
            &app_secret_name(&app.name),
            &ns,
            &labels,
            "Opaque",
            &inputs.secrets,
        ));
    }
    if let Some(name) = env.tls_secret.as_ref().filter(|_| !inputs.keep_secrets) {
        let data = match &inputs.tls {
            Some((cert, key)) => BTreeMap::from([
                ("tls.crt".to_string(), cert.clone()),
                ("tls.key".to_string(), key.clone()),
            ]),
            None => BTreeMap::new(),
        };
        secrets.push(secret(name, &ns, &labels, "kubernetes.io/tls", &data));
    }
    let checksum = (!secrets.is_empty()).then(|| secrets_checksum(&secrets));
    let deployment = deployment(app, env, inputs, &labels, checksum);
    let service = (env.strategy != StrategyKind::BlueGreen).then(|| {
        service_object(
            &app.name,
            &ns,
            &labels,
            selector_labels(app, env),
            80,
            app.port,
        )
    });
    let namespace_object = w.create_namespace.then(|| namespace_object(&ns));
    let hpa = env.autoscaling.as_ref().map(|a| HorizontalPodAutoscaler {
        metadata: meta(&app.name, &ns, &labels),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: app.name.clone(),
            },
            min_replicas: Some(a.min as i32),
            max_replicas: a.max as i32,
            target_cpu_utilization_percentage: Some(a.cpu_target_percent as i32),
        }),
        status: None,
    });
    let mut o = EnvironmentObjects {
        namespace: ns,
        deployment_name: app.name.clone(),
        namespace_object: None,
        secrets: Vec::new(),
        service: None,
        deployment,
        hpa: None,
        patches: w.patches.clone(),
        labels,
    };
    o.namespace_object = namespace_object
        .map(|n| o.patched("Namespace", n))
        .transpose()?;
    o.secrets = secrets
        .into_iter()
        .map(|s| o.patched("Secret", s))
        .collect::<Result<_, _>>()?;
    o.service = service.map(|s| o.patched("Service", s)).transpose()?;
    o.deployment = o.patched("Deployment", o.deployment.clone())?;
    o.hpa = hpa
        .map(|h| o.patched("HorizontalPodAutoscaler", h))
        .transpose()?;
    Ok(o)
}

impl EnvironmentObjects {
    /// `obj` with the user patches for its kind and name applied.
    fn patched<K>(&self, kind: &'static str, obj: K) -> Result<K, BuildError>
    where
        K: Serialize + DeserializeOwned + kube::Resource,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        if !self.patches.iter().any(|p| p.kind == kind) {
            return Ok(obj);
        }
        let shape = |source| BuildError::Shape {
            kind,
            name: name.clone(),
            source,
        };
        let mut doc = serde_json::to_value(&obj).map_err(shape)?;
        patches::apply(&self.patches, kind, &name, &mut doc)?;
        serde_json::from_value(doc).map_err(shape)
    }

    /// The blue-green colour of the (patched) Deployment: named `<app>-<color>`, selected by
    /// `app` + `version`, running `image` with `replicas`. Everything else is the same object
    /// direct and rolling apply.
    pub fn color_deployment(&self, color: &str, image: &str, replicas: u32) -> Deployment {
        let mut d = self.deployment.clone();
        let name = format!("{}-{color}", self.deployment_name);
        let selector = color_selector(&self.deployment_name, Some(color));
        let version = image_version(image);
        d.metadata.name = Some(name);
        let dl = d.metadata.labels.get_or_insert_with(BTreeMap::new);
        dl.extend(selector.clone());
        dl.insert("app.kubernetes.io/version".into(), version.clone());
        if let Some(spec) = d.spec.as_mut() {
            spec.replicas = Some(replicas as i32);
            spec.selector = LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            };
            let tl = spec
                .template
                .metadata
                .get_or_insert_with(ObjectMeta::default);
            let tl = tl.labels.get_or_insert_with(BTreeMap::new);
            tl.extend(selector);
            tl.insert("app.kubernetes.io/version".into(), version);
            if let Some(pod) = spec.template.spec.as_mut()
                && let Some(c) = pod.containers.iter_mut().find(|c| c.name == "app")
            {
                c.image = Some(image.to_string());
            }
        }
        d
    }

    /// A blue-green Service `name` selecting `selector` on `port`, with `annotations`, patched.
    pub fn service(
        &self,
        name: &str,
        port: u16,
        selector: BTreeMap<String, String>,
        annotations: Option<BTreeMap<String, String>>,
    ) -> Result<Service, BuildError> {
        let mut s = service_object(name, &self.namespace, &self.labels, selector, port, port);
        s.metadata.annotations = annotations;
        self.patched("Service", s)
    }

    /// The NGINX canary Ingress sending `weight`% of `host` to `backend` (the preview Service).
    pub fn canary_ingress(
        &self,
        name: &str,
        host: Option<&str>,
        backend: &str,
        port: u16,
        weight: u8,
    ) -> Ingress {
        let mut metadata = meta(name, &self.namespace, &self.labels);
        metadata.annotations = Some(BTreeMap::from([
            ("kubernetes.io/ingress.class".into(), "nginx".into()),
            ("nginx.ingress.kubernetes.io/canary".into(), "true".into()),
            (
                "nginx.ingress.kubernetes.io/canary-weight".into(),
                weight.to_string(),
            ),
        ]));
        let path = HTTPIngressPath {
            path: Some("/".into()),
            path_type: "Prefix".into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: backend.to_string(),
                    port: Some(ServiceBackendPort {
                        number: Some(i32::from(port)),
                        name: None,
                    }),
                }),
                resource: None,
            },
        };
        Ingress {
            metadata,
            spec: Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: host.map(str::to_string),
                    http: Some(HTTPIngressRuleValue { paths: vec![path] }),
                }]),
                ..IngressSpec::default()
            }),
            status: None,
        }
    }

    /// The HPA aimed at `deployment` (the live colour); `None` without autoscaling.
    pub fn hpa_targeting(&self, deployment: &str) -> Option<HorizontalPodAutoscaler> {
        let mut h = self.hpa.clone()?;
        if let Some(s) = h.spec.as_mut() {
            s.scale_target_ref.name = deployment.to_string();
        }
        Some(h)
    }

    /// `Kind/name` of every object, in apply order, for the plan.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.namespace_object.is_some() {
            out.push(format!("Namespace/{}", self.namespace));
        }
        for s in &self.secrets {
            out.push(format!(
                "Secret/{}",
                s.metadata.name.clone().unwrap_or_default()
            ));
        }
        if let Some(s) = &self.service {
            out.push(format!(
                "Service/{}",
                s.metadata.name.clone().unwrap_or_default()
            ));
        }
        out.push(format!(
            "Deployment/{}",
            self.deployment.metadata.name.clone().unwrap_or_default()
        ));
        if self.hpa.is_some() {
            out.push(format!("HorizontalPodAutoscaler/{}", self.deployment_name));
        }
        out
    }
}

fn meta(name: &str, ns: &str, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    }
}

/// The Namespace, with Pod Security admission labels (restricted; enforced from 1.23, inert on
/// older apiservers).
pub fn namespace_object(ns: &str) -> Namespace {
    let mut labels = BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_string(),
        FIELD_MANAGER.to_string(),
    )]);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(ns.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

fn service_object(
    name: &str,
    ns: &str,
    labels: &BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    port: u16,
    target: u16,
) -> Service {
    Service {
        metadata: meta(name, ns, labels),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(port),
                target_port: Some(IntOrString::Int(i32::from(target))),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn secrets_checksum(secrets: &[Secret]) -> String {
    let mut h = Sha256::new();
    for s in secrets {
        h.update(s.metadata.name.clone().unwrap_or_default());
        for (k, v) in s.data.iter().flatten() {
            h.update([0]);
            h.update(k);
            h.update([0]);
            h.update(&v.0);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn http_probe(path: &str, port: u16, period: u64, failures: u32, delay: u64) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(port)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period.max(1) as i32),
        failure_threshold: Some(failures as i32),
        initial_delay_seconds: (delay > 0).then_some(delay as i32),
        ..Probe::default()
    }
}

fn policy_probe(p: &ProbeSpec, port: u16) -> Probe {
    http_probe(
        &p.path,
        port,
        p.period.as_secs(),
        p.failure_threshold,
        p.initial_delay.as_secs(),
    )
}

fn quantities(q: &crate::policy::model::Quantities) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(q.cpu.clone())),
        ("memory".to_string(), Quantity(q.memory.clone())),
    ])
}

fn container(app: &AppSpec, env: &EnvironmentSpec, inputs: &DeployInputs) -> Container {
    let w = &env.workload;
    let sec = &w.security;
    let mut c = Container {
        name: "app".into(),
        image: Some(inputs.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(app.port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&env.resources.requests)),
            limits: Some(quantities(&env.resources.limits)),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(http_probe(&app.health_path, app.port, 5, 3, 0)),
        liveness_probe: w.liveness.as_ref().map(|p| policy_probe(p, app.port)),
        startup_probe: w.startup.as_ref().map(|p| policy_probe(p, app.port)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(sec.allow_privilege_escalation),
            read_only_root_filesystem: Some(sec.read_only_root_filesystem),
            run_as_non_root: Some(sec.run_as_non_root),
            capabilities: sec.drop_all_capabilities.then(|| Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    if !env.secrets.is_empty() {
        c.env_from = Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: app_secret_name(&app.name),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]);
    }
    if env.tls_secret.is_some() {
        c.volume_mounts = Some(vec![VolumeMount {
            name: "tls".into(),
            mount_path: w.tls_mount.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]);
    }
    if !w.pre_stop.is_zero() {
        // A selector switch or a scale-down removes the pod from the endpoints asynchronously: the
        // pause lets in-flight connections drain before SIGTERM.
        c.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "sleep".into(),
                        w.pre_stop.as_secs().max(1).to_string(),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        });
    }
    c
}

fn pod_spec(app: &AppSpec, env: &EnvironmentSpec, inputs: &DeployInputs) -> PodSpec {
    let w: &WorkloadSpec = &env.workload;
    let sec = &w.security;
    PodSpec {
        containers: vec![container(app, env, inputs)],
        volumes: env.tls_secret.as_ref().map(|name| {
            vec![Volume {
                name: "tls".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(name.clone()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }]
        }),
        image_pull_secrets: (!w.image_pull_secrets.is_empty()).then(|| {
            w.image_pull_secrets
                .iter()
                .map(|n| LocalObjectReference { name: n.clone() })
                .collect()
        }),
        service_account_name: w.service_account.clone(),
        termination_grace_period_seconds: Some(w.termination_grace.as_secs() as i64),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(sec.run_as_non_root),
            run_as_user: sec.run_as_user,
            seccomp_profile: sec.seccomp_runtime_default.then(|| SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

fn deployment(
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    labels: &BTreeMap<String, String>,
    checksum: Option<String>,
) -> Deployment {
    let version = image_version(&inputs.image);
    let mut pod_labels = labels.clone();
    // `app` is what the blue-green selectors and the example's Prometheus queries read.
    pod_labels.insert("app".into(), app.name.clone());
    pod_labels.insert("app.kubernetes.io/version".into(), version.clone());
    let mut dep_labels = labels.clone();
    dep_labels.insert("app.kubernetes.io/version".into(), version);
    let max_unavailable = match env.strategy {
        // Staging keeps every old pod until a new one is Ready: a stalled rollout keeps serving.
        StrategyKind::Rolling | StrategyKind::BlueGreen => IntOrString::Int(0),
        StrategyKind::Direct => IntOrString::String("25%".into()),
    };
    Deployment {
        metadata: meta(&app.name, &env.namespace, &dep_labels),
        spec: Some(DeploymentSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels(app, env)),
                match_expressions: None,
            },
            // With an HPA the replica count is the autoscaler's: applying it would fight every
            // scale (blue-green colours set theirs: the idle one is not autoscaled).
            replicas: env.autoscaling.is_none().then_some(env.replicas as i32),
            progress_deadline_seconds: Some(env.progress_deadline.as_secs().max(1) as i32),
            revision_history_limit: Some(10),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(max_unavailable),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: checksum.map(|c| BTreeMap::from([(SECRET_CHECKSUM.into(), c)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(app, env, inputs)),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn secret(
    name: &str,
    ns: &str,
    labels: &BTreeMap<String, String>,
    kind: &str,
    data: &BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: meta(name, ns, labels),
        type_: Some(kind.into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// A deploy policy for tests and examples: the given strategy, 2 replicas, no autoscaling.
pub fn example_environment(name: &str, namespace: &str, strategy: StrategyKind) -> EnvironmentSpec {
    use crate::policy::model::*;
    use std::time::Duration;
    EnvironmentSpec {
        name: name.into(),
        namespace: namespace.into(),
        url: "http://127.0.0.1".into(),
        strategy,
        replicas: 2,
        resources: Resources::same("100m", "128Mi"),
        workload: WorkloadSpec::default(),
        autoscaling: None,
        progress_deadline: Duration::from_secs(600),
        pre_deploy: PreDeploy {
            checks_green: false,
            healthy: vec![],
            incident_label: None,
        },
        protection: Protection {
            reviewers: vec![],
            wait_timer: Duration::ZERO,
            protected_branches_only: false,
            prevent_self_review: false,
        },
        smoke: SmokeSpec {
            endpoints: vec!["/health".into()],
            deadline: Duration::from_secs(30),
        },
        post_deploy: vec![],
        coverage_min: None,
        // The loader's default when `secrets:` is absent.
        secrets: BTreeMap::from([
            ("DATABASE_URL".to_string(), "database-url".to_string()),
            ("REDIS_URL".to_string(), "redis-url".to_string()),
        ]),
        tls_secret: None,
        blue_green: None,
        rollback: RollbackSpec {
            sample_every: Duration::from_secs(10),
            on_no_data: NoDataPolicy::Hold,
            min_data: crate::policy::model::DEFAULT_MIN_DATA,
            on_inconclusive: crate::policy::model::InconclusivePolicy::Rollback,
            triggers: vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Autoscaling, PatchKind, Quantities, Resources};
    use serde_json::json;

    fn app() -> AppSpec {
        AppSpec {
            name: "web".into(),
            image: "ghcr.io/org/web".into(),
            port: 8080,
            health_path: "/health".into(),
            endpoints: vec![],
        }
    }

    fn json_of<T: Serialize>(t: &T) -> serde_json::Value {
        serde_json::to_value(t).unwrap()
    }

    /// Protects the 1.20 Service quirk and the immutable selector: every port says TCP and the
    /// selector never carries the version label.
    #[test]
    fn service_ports_are_tcp_and_selector_is_stable() {
        let env = example_environment("staging", "web-staging", StrategyKind::Rolling);
        let o = environment_objects(
            &app(),
            &env,
            &DeployInputs {
                image: "ghcr.io/org/web:v2".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let svc = json_of(o.service.as_ref().unwrap());
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            assert_eq!(p["protocol"], "TCP");
        }
        let d = json_of(&o.deployment);
        assert_eq!(d["apiVersion"], "apps/v1");
        let sel = &d["spec"]["selector"]["matchLabels"];
        assert!(sel.get("app.kubernetes.io/version").is_none());
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
            "v2"
        );
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
        assert_eq!(d["spec"]["replicas"], 2);
        assert!(o.namespace_object.is_none(), "namespace only on request");
    }

    /// Protects the complete pod template: resources (separate requests / limits), readiness on
    /// health_path, restricted security context, drain hook and grace period, pull secrets and
    /// service account, TLS mount.
    #[test]
    fn pod_template_is_complete() {
        let mut env = example_environment("production", "web-prod", StrategyKind::BlueGreen);
        env.resources = Resources {
            requests: Quantities {
                cpu: "250m".into(),
                memory: "256Mi".into(),
            },
            limits: Quantities {
                cpu: "1".into(),
                memory: "1Gi".into(),
            },
        };
        env.workload.image_pull_secrets = vec!["ghcr".into()];
        env.workload.service_account = Some("web".into());
        env.workload.create_namespace = true;
        env.tls_secret = Some("web-tls".into());
        let o = environment_objects(&app(), &env, &DeployInputs::default()).unwrap();
        let d = json_of(&o.color_deployment("green", "ghcr.io/org/web:v3", 3));
        assert_eq!(d["metadata"]["name"], "web-green");
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            json!({"app": "web", "version": "green"})
        );
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "ghcr.io/org/web:v3");
        assert_eq!(c["resources"]["requests"]["cpu"], "250m");
        assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["lifecycle"]["preStop"]["exec"]["command"][1], "5");
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/tls");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["imagePullSecrets"][0]["name"], "ghcr");
        assert_eq!(pod["serviceAccountName"], "web");
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "web-tls");
        let ns = json_of(o.namespace_object.as_ref().unwrap());
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "restricted"
        );
        assert!(
            o.service.is_none(),
            "blue-green builds its Services per selector"
        );
    }

    /// Protects secrets and autoscaling: values land in the app's own Secret, pods read it, a
    /// checksum of the values rolls the pods, and the HPA (autoscaling/v1, served by 1.20) moves
    /// to whichever Deployment it is aimed at.
    #[test]
    fn secrets_and_hpa() {
        let mut env = example_environment("production", "web-prod", StrategyKind::BlueGreen);
        env.autoscaling = Some(Autoscaling {
            min: 3,
            max: 10,
            cpu_target_percent: 70,
        });
        env.tls_secret = Some("web-tls".into());
        let mut inputs = DeployInputs {
            image: "ghcr.io/org/web@sha256:0123456789abcdef0123".into(),
            secrets: BTreeMap::from([("DATABASE_URL".into(), "postgres://u:p@db/x".into())]),
            tls: Some(("CERT".into(), "KEY".into())),
            ..Default::default()
        };
        let o = environment_objects(&app(), &env, &inputs).unwrap();
        let d = json_of(&o.deployment);
        assert!(d["spec"].get("replicas").is_none());
        let hpa = json_of(&o.hpa_targeting("web-blue").unwrap());
        assert_eq!(hpa["apiVersion"], "autoscaling/v1");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "web-blue");
        assert_eq!(hpa["spec"]["minReplicas"], 3);
        assert_eq!(o.secrets.len(), 2);
        let s = json_of(&o.secrets[0]);
        assert_eq!(s["metadata"]["name"], "web-secrets");
        assert_eq!(s["data"]["DATABASE_URL"], "cG9zdGdyZXM6Ly91OnBAZGIveA==");
        assert_eq!(json_of(&o.secrets[1])["type"], "kubernetes.io/tls");
        let tpl = &d["spec"]["template"];
        assert_eq!(
            tpl["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
            "web-secrets"
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/version"],
            "0123456789ab"
        );
        let before = tpl["metadata"]["annotations"][SECRET_CHECKSUM].clone();
        inputs
            .secrets
            .insert("DATABASE_URL".into(), "postgres://other".into());
        let o2 = environment_objects(&app(), &env, &inputs).unwrap();
        let after = json_of(&o2.deployment)["spec"]["template"]["metadata"]["annotations"]
            [SECRET_CHECKSUM]
            .clone();
        assert!(before.is_string() && before != after, "{before} vs {after}");
    }

    /// Protects user patches: a strategic patch adds a sidecar and an env var to the app
    /// container on direct and on every colour; a patch that breaks the object is an error.
    #[test]
    fn user_patches_apply_to_every_strategy() {
        let mut env = example_environment("production", "web-prod", StrategyKind::BlueGreen);
        env.workload.patches = vec![PatchSpec {
            kind: "Deployment".into(),
            name: None,
            patch: PatchKind::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "FEATURE", "value": "on"}]},
                {"name": "proxy", "image": "envoy:1"}
            ]}}}})),
            at: "environments.production.patches[0]".into(),
        }];
        let o = environment_objects(&app(), &env, &DeployInputs::default()).unwrap();
        let d = json_of(&o.color_deployment("blue", "web:1", 2));
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["env"][0]["value"], "on");
        assert_eq!(cs[0]["image"], "web:1");
        assert_eq!(cs[1]["name"], "proxy");
        env.strategy = StrategyKind::Direct;
        let o = environment_objects(&app(), &env, &DeployInputs::default()).unwrap();
        assert_eq!(
            json_of(&o.deployment)["spec"]["template"]["spec"]["containers"][1]["image"],
            "envoy:1"
        );
        env.workload.patches[0].patch = PatchKind::Merge(json!({"spec": {"replicas": "many"}}));
        let e = environment_objects(&app(), &env, &DeployInputs::default()).unwrap_err();
        assert!(e.to_string().contains("Deployment/web"), "{e}");
    }

    /// Protects the version label: always a valid label value.
    #[test]
    fn image_versions() {
        assert_eq!(image_version("nginx"), "latest");
        assert_eq!(image_version("localhost:5000/app:1.2+b"), "1.2-b");
        assert_eq!(image_version("x/app:never-ready"), "never-ready");
    }
}
