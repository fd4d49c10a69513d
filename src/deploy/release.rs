//! The objects one release applies, per strategy, as `plan` shows them and `deploy` sends them.
//!
//! Owns: the ordered list of (kind, name, object) a release writes, built from the same
//! `manifests` builder and the same blue-green cluster spec the runners use. Must not touch: the
//! network. Secret values never appear: a planned Secret lists its keys only.

use crate::deploy::bluegreen::Color;
use crate::deploy::manifests::{
    BuildError, DeployInputs, EnvironmentObjects, STATE_CONFIGMAP, color_selector,
    environment_objects,
};
use crate::policy::model::{AppSpec, EnvironmentSpec, StrategyKind};
use serde::Serialize;

/// One object a release writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedObject {
    pub kind: String,
    pub name: String,
    /// The body sent (server-side apply), Secret values replaced by `(secret)`; `None` for the
    /// objects the runner writes by read-modify-write (Lease, state record).
    pub object: Option<serde_json::Value>,
    /// Still there after the release (the Lease is released at the end).
    pub kept: bool,
}

impl PlannedObject {
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// `Kind/name` and the few fields a reader checks first, for the text plan.
    pub fn describe(&self) -> String {
        let Some(o) = &self.object else {
            let how = if self.kept {
                "read-modify-write"
            } else {
                "taken for the release, released at the end"
            };
            return format!("{} ({how})", self.id());
        };
        let detail = match self.kind.as_str() {
            "Deployment" => {
                let c = &o["spec"]["template"]["spec"]["containers"][0];
                let r = &c["resources"];
                let replicas = o["spec"]["replicas"]
                    .as_i64()
                    .map_or("autoscaled".to_string(), |n| format!("{n} replicas"));
                format!(
                    "{replicas}, requests cpu {} memory {}, limits cpu {} memory {}",
                    text(&r["requests"]["cpu"]),
                    text(&r["requests"]["memory"]),
                    text(&r["limits"]["cpu"]),
                    text(&r["limits"]["memory"])
                )
            }
            "Secret" => {
                let keys: Vec<&String> = o["data"]
                    .as_object()
                    .map(|m| m.keys().collect())
                    .unwrap_or_default();
                format!(
                    "{}, keys: {}",
                    text(&o["type"]),
                    keys.iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            "Service" => format!("selector {}", o["spec"]["selector"]),
            "HorizontalPodAutoscaler" => format!(
                "{} {}–{} replicas at {}% CPU",
                text(&o["spec"]["scaleTargetRef"]["name"]),
                o["spec"]["minReplicas"],
                o["spec"]["maxReplicas"],
                o["spec"]["targetCPUUtilizationPercentage"]
            ),
            _ => return self.id(),
        };
        format!("{} ({detail})", self.id())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("plan the blue-green objects: {0}")]
    BlueGreen(String),
    #[error("render {what} for the plan")]
    Render {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn planned<T: Serialize>(kind: &str, obj: &T) -> Result<PlannedObject, ReleaseError> {
    let mut v = serde_json::to_value(obj).map_err(|source| ReleaseError::Render {
        what: kind.to_string(),
        source,
    })?;
    if let Some(data) = v.get_mut("data").and_then(|d| d.as_object_mut())
        && kind == "Secret"
    {
        for val in data.values_mut() {
            *val = serde_json::Value::String("(secret)".into());
        }
    }
    let name = v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(PlannedObject {
        kind: kind.into(),
        name,
        object: Some(v),
        kept: true,
    })
}

fn common(o: &EnvironmentObjects, out: &mut Vec<PlannedObject>) -> Result<(), ReleaseError> {
    if let Some(n) = &o.namespace_object {
        out.push(planned("Namespace", n)?);
    }
    for s in &o.secrets {
        out.push(planned("Secret", s)?);
    }
    Ok(())
}

/// Every object a release of `inputs.image` writes, in order. For blue-green, `idle` is the colour
/// the release deploys (blue on a first release, else the one not live).
pub fn release_objects(
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    idle: Color,
) -> Result<Vec<PlannedObject>, ReleaseError> {
    let o = environment_objects(app, env, inputs)?;
    let mut out = Vec::new();
    common(&o, &mut out)?;
    let lease = PlannedObject {
        kind: "Lease".into(),
        name: crate::deploy::run::lease_name(env),
        object: None,
        kept: false,
    };
    match env.strategy {
        StrategyKind::Direct | StrategyKind::Rolling => {
            if let Some(s) = &o.service {
                out.push(planned("Service", s)?);
            }
            out.push(planned("Deployment", &o.deployment)?);
            if let Some(h) = &o.hpa {
                out.push(planned("HorizontalPodAutoscaler", h)?);
            }
            out.push(PlannedObject {
                kind: "ConfigMap".into(),
                name: STATE_CONFIGMAP.into(),
                object: None,
                kept: true,
            });
        }
        StrategyKind::BlueGreen => {
            let (cfg, spec) = crate::deploy::bluegreen_run::from_policy(app, env, "plan")
                .map_err(|e| ReleaseError::BlueGreen(e.to_string()))?;
            out.push(planned(
                "Deployment",
                &o.color_deployment(idle.as_str(), &inputs.image, cfg.bg.replicas),
            )?);
            let mut services = vec![(spec.preview_service.clone(), Some(idle))];
            for c in [Color::Blue, Color::Green] {
                services.push((spec.color_service(c), Some(c)));
            }
            for (name, c) in services {
                let sel = color_selector(&spec.app, c.map(Color::as_str));
                out.push(planned(
                    "Service",
                    &o.service(&name, spec.port, sel, None)?,
                )?);
            }
            if let Some(ing) = &spec.canary_ingress {
                let body = o.canary_ingress(
                    ing,
                    spec.ingress_host.as_deref(),
                    &spec.preview_service,
                    spec.port,
                    0,
                );
                out.push(planned("Ingress", &body)?);
            }
            // The switch: the live Service (carrying the state record as an annotation), then
            // the autoscaler follows the new live colour.
            let sel = color_selector(&spec.app, Some(idle.as_str()));
            out.push(planned(
                "Service",
                &o.service(&spec.service, spec.port, sel, None)?,
            )?);
            if let Some(h) = o.hpa_targeting(&spec.deployment_name(idle)) {
                out.push(planned("HorizontalPodAutoscaler", &h)?);
            }
        }
    }
    out.push(lease);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifests::example_environment;
    use crate::policy::model::{Autoscaling, BlueGreenSpec, ShiftMode, ShiftSpec};
    use std::time::Duration;

    fn app() -> AppSpec {
        AppSpec {
            name: "web".into(),
            image: "ghcr.io/org/web".into(),
            port: 8080,
            health_path: "/health".into(),
            endpoints: vec![],
        }
    }

    /// Protects the plan's object list: blue-green lists the colour, its Services, the live
    /// Service, the HPA on the new live colour and the Lease (no state ConfigMap); direct lists
    /// the state ConfigMap; Secret values never appear.
    #[test]
    fn objects_per_strategy() {
        let mut env = example_environment("production", "web-prod", StrategyKind::BlueGreen);
        env.autoscaling = Some(Autoscaling {
            min: 2,
            max: 5,
            cpu_target_percent: 70,
        });
        env.blue_green = Some(BlueGreenSpec {
            service: "web-svc".into(),
            preview_service: None,
            preview_url: None,
            shift: ShiftSpec {
                mode: ShiftMode::None,
                steps: vec![100],
                pause: Duration::ZERO,
            },
            monitor: Duration::from_secs(60),
            keep_previous: Duration::from_secs(60),
            manual_promote: false,
            keep_failed: false,
        });
        let mut inputs = DeployInputs {
            image: "ghcr.io/org/web:v2".into(),
            ..DeployInputs::default()
        };
        inputs
            .secrets
            .insert("DATABASE_URL".into(), "postgres://hunter2".into());
        let objs = release_objects(&app(), &env, &inputs, Color::Green).unwrap();
        let ids: Vec<String> = objs.iter().map(PlannedObject::id).collect();
        assert_eq!(
            ids,
            [
                "Secret/web-secrets",
                "Deployment/web-green",
                "Service/web-svc-preview",
                "Service/web-svc-blue",
                "Service/web-svc-green",
                "Service/web-svc",
                "HorizontalPodAutoscaler/web",
                "Lease/fm-deploy-production",
            ]
        );
        let text = serde_json::to_string(&objs).unwrap();
        assert!(!text.contains("hunter2") && text.contains("(secret)"));
        assert_eq!(
            objs[6].object.as_ref().unwrap()["spec"]["scaleTargetRef"]["name"],
            "web-green"
        );
        env.strategy = StrategyKind::Direct;
        env.blue_green = None;
        let ids: Vec<String> = release_objects(&app(), &env, &inputs, Color::Blue)
            .unwrap()
            .iter()
            .map(PlannedObject::id)
            .collect();
        assert_eq!(
            ids,
            [
                "Secret/web-secrets",
                "Service/web",
                "Deployment/web",
                "HorizontalPodAutoscaler/web",
                "ConfigMap/fm-deploy-state",
                "Lease/fm-deploy-production",
            ]
        );
    }
}
