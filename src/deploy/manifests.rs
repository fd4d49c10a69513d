//! Pure builders of the Kubernetes objects one environment needs, from the validated policy.
//!
//! Owns: names, `app.kubernetes.io/*` labels, the Deployment / Service / Secret / HPA bodies sent by
//! server-side apply. Must not touch: the network. Everything here is JSON for server-side apply:
//! only the fields we own are present, nothing newer than Kubernetes 1.20 is set, and every Service
//! port says `protocol: TCP` (1.20 rejects an apply without it).

use super::labels::label_value;
use crate::policy::model::{AppSpec, EnvironmentSpec, StrategyKind};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "fm-deploy";
/// The Secret `secrets:` inputs land in; the pods read it with `envFrom`.
pub const APP_SECRETS: &str = "app-secrets";
/// The ConfigMap holding the deploy state record of each app in the namespace.
pub const STATE_CONFIGMAP: &str = "fm-deploy-state";

/// What one deploy puts into the environment, besides the policy.
#[derive(Debug, Clone, Default)]
pub struct DeployInputs {
    /// Full image reference, e.g. `ghcr.io/org/app:sha-abc123`.
    pub image: String,
    /// `GITHUB_RUN_ID` (and attempt), recorded in the state record and as the Lease holder.
    pub run_id: String,
    pub sha: String,
    /// Key of `app-secrets` (`DATABASE_URL`, …) → value. Values never appear in messages.
    pub secrets: BTreeMap<String, String>,
    /// PEM certificate and key for `tls_secret`, when the policy names one.
    pub tls: Option<(String, String)>,
}

/// The objects of one environment, ready for server-side apply.
#[derive(Debug, Clone)]
pub struct EnvironmentObjects {
    pub namespace: String,
    pub deployment_name: String,
    pub namespace_object: Value,
    pub deployment: Value,
    pub service: Value,
    pub secrets: Vec<Value>,
    /// `spec` of a HorizontalPodAutoscaler (same in `autoscaling/v2` and `v2beta2`); the adapter picks
    /// the served version by discovery.
    pub hpa: Option<Value>,
}

/// `app.kubernetes.io/*` labels of everything fm-deploy manages for `app` in `env`.
pub fn labels(app: &AppSpec, env: &EnvironmentSpec) -> BTreeMap<String, String> {
    let mut l = selector_labels(app, env);
    l.insert("app.kubernetes.io/managed-by".into(), "fm-deploy".into());
    l.insert("app.kubernetes.io/part-of".into(), app.name.clone());
    l.insert("fm-deploy/environment".into(), env.name.clone());
    l
}

/// The immutable selector of the Deployment and the Service.
pub fn selector_labels(app: &AppSpec, env: &EnvironmentSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.name.clone()),
        (
            "app.kubernetes.io/instance".to_string(),
            label_value(&format!("{}-{}", app.name, env.name)),
        ),
    ])
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

/// Everything the environment needs for this deploy.
pub fn environment_objects(
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
) -> EnvironmentObjects {
    let labels = labels(app, env);
    let selector = selector_labels(app, env);
    let mut pod_labels = labels.clone();
    pod_labels.insert(
        "app.kubernetes.io/version".into(),
        image_version(&inputs.image),
    );
    let mut dep_labels = labels.clone();
    dep_labels.insert(
        "app.kubernetes.io/version".into(),
        image_version(&inputs.image),
    );

    let strategy = match env.strategy {
        // Staging keeps every old pod until a new one is Ready: a stalled rollout keeps serving.
        StrategyKind::Rolling | StrategyKind::BlueGreen => {
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}})
        }
        StrategyKind::Direct => {
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        }
    };
    let mut container = json!({
        "name": "app",
        "image": inputs.image,
        "ports": [{"name": "http", "containerPort": app.port, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": env.resources.cpu, "memory": env.resources.memory},
            "limits": {"cpu": env.resources.cpu, "memory": env.resources.memory},
        },
        "readinessProbe": {
            "httpGet": {"path": app.health_path, "port": app.port},
            "periodSeconds": 5, "failureThreshold": 3,
        },
    });
    if !inputs.secrets.is_empty()
        && let Some(c) = container.as_object_mut()
    {
        c.insert(
            "envFrom".into(),
            json!([{"secretRef": {"name": APP_SECRETS}}]),
        );
    }
    let mut spec = json!({
        "selector": {"matchLabels": selector},
        "progressDeadlineSeconds": env.progress_deadline.as_secs().max(1),
        "revisionHistoryLimit": 10,
        "strategy": strategy,
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {"containers": [container]},
        },
    });
    // With an HPA the replica count is the autoscaler's: applying it would fight every scale.
    if env.autoscaling.is_none()
        && let Some(s) = spec.as_object_mut()
    {
        s.insert("replicas".into(), json!(env.replicas));
    }
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app.name, "namespace": env.namespace, "labels": dep_labels},
        "spec": spec,
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": app.name, "namespace": env.namespace, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": app.port, "protocol": "TCP"}],
        },
    });
    let mut secrets = Vec::new();
    if !inputs.secrets.is_empty() {
        secrets.push(secret(
            APP_SECRETS,
            &env.namespace,
            &labels,
            "Opaque",
            &inputs.secrets,
        ));
    }
    if let (Some(name), Some((cert, key))) = (&env.tls_secret, &inputs.tls) {
        let data = BTreeMap::from([
            ("tls.crt".to_string(), cert.clone()),
            ("tls.key".to_string(), key.clone()),
        ]);
        secrets.push(secret(
            name,
            &env.namespace,
            &labels,
            "kubernetes.io/tls",
            &data,
        ));
    }
    let hpa = env.autoscaling.as_ref().map(|a| {
        json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app.name},
            "minReplicas": a.min,
            "maxReplicas": a.max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": a.cpu_target_percent}}}],
        })
    });
    EnvironmentObjects {
        namespace: env.namespace.clone(),
        deployment_name: app.name.clone(),
        namespace_object: json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": env.namespace, "labels": {"app.kubernetes.io/managed-by": "fm-deploy"}},
        }),
        deployment,
        service,
        secrets,
        hpa,
    }
}

fn secret(
    name: &str,
    ns: &str,
    labels: &BTreeMap<String, String>,
    kind: &str,
    data: &BTreeMap<String, String>,
) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: BTreeMap<&String, String> = data.iter().map(|(k, v)| (k, b64.encode(v))).collect();
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": kind,
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": data,
    })
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
        resources: Resources {
            cpu: "100m".into(),
            memory: "128Mi".into(),
        },
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
        secrets: BTreeMap::new(),
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
    use crate::policy::model::Autoscaling;

    fn app() -> AppSpec {
        AppSpec {
            name: "web".into(),
            image: "ghcr.io/org/web".into(),
            port: 8080,
            health_path: "/health".into(),
            endpoints: vec![],
        }
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
        );
        for p in o.service["spec"]["ports"].as_array().into_iter().flatten() {
            assert_eq!(p["protocol"], "TCP");
        }
        let sel = &o.deployment["spec"]["selector"]["matchLabels"];
        assert!(sel.get("app.kubernetes.io/version").is_none());
        assert_eq!(
            o.deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
            "v2"
        );
        assert_eq!(
            o.deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            0
        );
        assert_eq!(o.deployment["spec"]["replicas"], 2);
    }

    /// Protects secrets and autoscaling: values are base64 in `app-secrets`, pods read it, and with an
    /// HPA the Deployment leaves `replicas` to the autoscaler.
    #[test]
    fn secrets_and_hpa() {
        let mut env = example_environment("production", "web-prod", StrategyKind::BlueGreen);
        env.autoscaling = Some(Autoscaling {
            min: 3,
            max: 10,
            cpu_target_percent: 70,
        });
        env.tls_secret = Some("web-tls".into());
        let inputs = DeployInputs {
            image: "ghcr.io/org/web@sha256:0123456789abcdef0123".into(),
            secrets: BTreeMap::from([("DATABASE_URL".into(), "postgres://u:p@db/x".into())]),
            tls: Some(("CERT".into(), "KEY".into())),
            ..Default::default()
        };
        let o = environment_objects(&app(), &env, &inputs);
        assert!(o.deployment["spec"].get("replicas").is_none());
        assert_eq!(
            o.hpa.as_ref().map(|h| h["minReplicas"].clone()),
            Some(json!(3))
        );
        assert_eq!(o.secrets.len(), 2);
        assert_eq!(
            o.secrets[0]["data"]["DATABASE_URL"],
            "cG9zdGdyZXM6Ly91OnBAZGIveA=="
        );
        assert_eq!(o.secrets[1]["type"], "kubernetes.io/tls");
        assert_eq!(
            o.deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
            APP_SECRETS
        );
        assert_eq!(
            o.deployment["metadata"]["labels"]["app.kubernetes.io/version"],
            "0123456789ab"
        );
    }

    /// Protects the version label: always a valid label value.
    #[test]
    fn image_versions() {
        assert_eq!(image_version("nginx"), "latest");
        assert_eq!(image_version("localhost:5000/app:1.2+b"), "1.2-b");
        assert_eq!(image_version("x/app:never-ready"), "never-ready");
    }
}
