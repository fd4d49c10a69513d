//! One object builder for every strategy, on the real testbed: what lands on the apiserver carries
//! the policy's resources, probes, secret reference, pull secrets, security context and a user
//! patch; the HPA follows the live colour; a changed secret rolls the pods; two apps in one
//! namespace keep their own keys; and what `plan` lists is exactly what a release writes (audit log).

mod support_bluegreen;
mod support_k8s;

use fm_deploy::deploy::bluegreen::{Color, Outcome};
use fm_deploy::deploy::bluegreen_run::{
    NoProgress, RunEnd, deploy_blue_green, rollback_blue_green,
};
use fm_deploy::deploy::cluster::KubeCluster;
use fm_deploy::deploy::health::HttpProber;
use fm_deploy::deploy::manifests::{DeployInputs, example_environment};
use fm_deploy::deploy::release::{PlannedObject, release_objects};
use fm_deploy::deploy::run::{DeployOptions, deploy_direct, deploy_rolling};
use fm_deploy::policy::model::{
    Autoscaling, BlueGreenSpec, EnvironmentSpec, NoDataPolicy, PatchKind, PatchSpec, ProbeSpec,
    Quantities, Resources, ShiftMode, ShiftSpec, StrategyKind,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use support_bluegreen::flow::never_cancel;
use support_bluegreen::scenario::{Scenario, V1, V2};
use support_k8s::{Fixture, sample_app_spec, wait_until};

/// The policy under test: separate requests / limits, a liveness probe, a pull secret, the
/// restricted security context (default) and a strategic patch adding an env var and an
/// annotation.
fn complete(e: &mut EnvironmentSpec) {
    e.resources = Resources {
        requests: Quantities {
            cpu: "100m".into(),
            memory: "64Mi".into(),
        },
        limits: Quantities {
            cpu: "500m".into(),
            memory: "256Mi".into(),
        },
    };
    e.workload.liveness = Some(ProbeSpec {
        path: "/health".into(),
        period: Duration::from_secs(15),
        failure_threshold: 4,
        initial_delay: Duration::ZERO,
    });
    e.workload.image_pull_secrets = vec!["registry-cred".into()];
    e.workload.patches = vec![PatchSpec {
        kind: "Deployment".into(),
        name: None,
        patch: PatchKind::Strategic(json!({"spec": {"template": {
            "metadata": {"annotations": {"example.com/patched": "yes"}},
            "spec": {"containers": [{"name": "app", "env": [{"name": "FEATURE_X", "value": "on"}]}]}
        }}})),
        at: "environments.x.patches[0]".into(),
    }];
}

fn inputs(image: &str, db: &str) -> DeployInputs {
    DeployInputs {
        image: image.into(),
        run_id: format!("run {image}"),
        secrets: [("DATABASE_URL".to_string(), db.to_string())].into(),
        ..DeployInputs::default()
    }
}

/// Asserts the live Deployment `name` carries everything the policy asked for.
async fn assert_complete(admin: &kube::Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let d = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get(name)
        .await?;
    let v = serde_json::to_value(&d)?;
    let tpl = &v["spec"]["template"];
    let pod = &tpl["spec"];
    let c = &pod["containers"][0];
    let checks = [
        (&c["resources"]["requests"]["cpu"], json!("100m")),
        (&c["resources"]["limits"]["memory"], json!("256Mi")),
        (&c["readinessProbe"]["httpGet"]["path"], json!("/health")),
        (&c["livenessProbe"]["periodSeconds"], json!(15)),
        (&c["envFrom"][0]["secretRef"]["name"], json!("web-secrets")),
        (&c["env"][0]["name"], json!("FEATURE_X")),
        (
            &c["securityContext"]["allowPrivilegeEscalation"],
            json!(false),
        ),
        (
            &c["securityContext"]["capabilities"]["drop"][0],
            json!("ALL"),
        ),
        (
            &c["lifecycle"]["preStop"]["exec"]["command"][0],
            json!("sleep"),
        ),
        (&pod["imagePullSecrets"][0]["name"], json!("registry-cred")),
        (&pod["securityContext"]["runAsNonRoot"], json!(true)),
        (
            &pod["securityContext"]["seccompProfile"]["type"],
            json!("RuntimeDefault"),
        ),
        (&pod["terminationGracePeriodSeconds"], json!(30)),
        (
            &tpl["metadata"]["annotations"]["example.com/patched"],
            json!("yes"),
        ),
        (
            &v["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            json!("fm-deploy"),
        ),
    ];
    for (got, want) in checks {
        anyhow::ensure!(*got == want, "{name}: want {want}, got {got} in {tpl}");
    }
    Ok(())
}

fn audit_len(path: &str) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

/// `Kind/name` of every object the deploy identity (the ServiceAccount of `examples/deploy/rbac.yaml`
/// in `ns`) wrote (create, patch, update) in `ns` after `from`.
fn written(path: &str, from: u64, ns: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let mut out = BTreeSet::new();
    let deployer = format!("system:serviceaccount:{ns}:fm-deploy");
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let o = &ev["objectRef"];
        let verb = ev["verb"].as_str().unwrap_or_default();
        if ev["user"]["username"] != deployer.as_str()
            || !["create", "patch", "update"].contains(&verb)
            || !(o["namespace"] == ns || (o["resource"] == "namespaces" && o["name"] == ns))
        {
            continue;
        }
        let kind = match o["resource"].as_str().unwrap_or_default() {
            "deployments" => "Deployment",
            "services" => "Service",
            "secrets" => "Secret",
            "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
            "leases" => "Lease",
            "configmaps" => "ConfigMap",
            "namespaces" => "Namespace",
            "ingresses" => "Ingress",
            other => other,
        };
        out.insert(format!("{kind}/{}", o["name"].as_str().unwrap_or_default()));
    }
    Ok(out)
}

/// Every planned object that outlives the release exists on the apiserver, and nothing was written that the plan does not
/// list (the audit log is written asynchronously: waited for with a deadline).
async fn plan_is_what_ran(
    fx_admin: &kube::Client,
    ns: &str,
    audit: &str,
    from: u64,
    plan: &[PlannedObject],
) -> anyhow::Result<()> {
    let planned: BTreeSet<String> = plan.iter().map(PlannedObject::id).collect();
    for p in plan.iter().filter(|p| p.kept) {
        let (group, version, plural) = match p.kind.as_str() {
            "Deployment" => ("apps", "v1", "deployments"),
            "HorizontalPodAutoscaler" => ("autoscaling", "v1", "horizontalpodautoscalers"),
            "Lease" => ("coordination.k8s.io", "v1", "leases"),
            "Ingress" => ("networking.k8s.io", "v1", "ingresses"),
            "Service" => ("", "v1", "services"),
            "Secret" => ("", "v1", "secrets"),
            "ConfigMap" => ("", "v1", "configmaps"),
            other => anyhow::bail!("unexpected planned kind {other}"),
        };
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: p.kind.clone(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(fx_admin.clone(), ns, &ar);
        anyhow::ensure!(
            api.get_opt(&p.name).await?.is_some(),
            "{} is planned but absent",
            p.id()
        );
    }
    let all_planned_seen = wait_until(Duration::from_secs(20), "the audit log", || {
        let planned = planned.clone();
        async move {
            let w = written(audit, from, ns).ok()?;
            planned.iter().all(|p| w.contains(p)).then_some(w)
        }
    })
    .await?;
    let extra: Vec<&String> = all_planned_seen.difference(&planned).collect();
    anyhow::ensure!(extra.is_empty(), "written but not planned: {extra:?}");
    Ok(())
}

async fn hpa_target(admin: &kube::Client, ns: &str) -> anyhow::Result<String> {
    let h = Api::<HorizontalPodAutoscaler>::namespaced(admin.clone(), ns)
        .get("web")
        .await?;
    Ok(h.spec.map(|s| s.scale_target_ref.name).unwrap_or_default())
}

async fn secret_value(admin: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    let s = Api::<Secret>::namespaced(admin.clone(), ns)
        .get(name)
        .await?;
    Ok(s.data
        .unwrap_or_default()
        .get("DATABASE_URL")
        .map(|b| b.0.clone())
        .unwrap_or_default())
}

/// Protects direct and rolling: the live Deployment is complete, the plan equals what was written,
/// a changed secret (same image) rolls the pods, and a second app in the namespace keeps its own
/// Secret.
#[tokio::test]
async fn direct_and_rolling_apply_complete_objects_and_the_plan() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-release").await?;
    anyhow::ensure!(fx.tb.is_local(), "needs the local testbed's audit log");
    let audit = fx.tb.var("FM_TESTBED_AUDIT_LOG")?.to_string();
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let app = sample_app_spec();
    let o = DeployOptions {
        url_override: Some(router.url()),
        ..DeployOptions::default()
    };
    for strategy in [StrategyKind::Direct, StrategyKind::Rolling] {
        let mut e = example_environment("dev", &fx.ns, strategy);
        complete(&mut e);
        let i = inputs("example/web:v1", "postgres://one");
        let from = audit_len(&audit)?;
        let r = match strategy {
            StrategyKind::Direct => deploy_direct(&cluster, &prober, &app, &e, &i, &o).await?,
            _ => {
                let tests = fm_deploy::deploy::run::NoPostDeployTests;
                deploy_rolling(&cluster, &prober, &tests, &app, &e, &i, &o).await?
            }
        };
        anyhow::ensure!(r.exit_code() == 0, "{strategy:?}: {:#?}", r.steps);
        assert_complete(&fx.admin, &fx.ns, "web").await?;
        let plan = release_objects(&app, &e, &i, Color::Blue)?;
        plan_is_what_ran(&fx.admin, &fx.ns, &audit, from, &plan).await?;
    }

    // A changed secret with the same image rolls the pods (new template → new generation).
    let e = {
        let mut e = example_environment("dev", &fx.ns, StrategyKind::Direct);
        complete(&mut e);
        e
    };
    let deps = Api::<Deployment>::namespaced(fx.admin.clone(), &fx.ns);
    let before = deps.get("web").await?.metadata.generation;
    let i = inputs("example/web:v1", "postgres://two");
    let r = deploy_direct(&cluster, &prober, &app, &e, &i, &o).await?;
    anyhow::ensure!(r.exit_code() == 0, "{:#?}", r.steps);
    let after = deps.get("web").await?.metadata.generation;
    assert!(after > before, "generation {before:?} → {after:?}");
    assert_eq!(
        secret_value(&fx.admin, &fx.ns, "web-secrets").await?,
        b"postgres://two"
    );

    // A second app in the namespace: its own Secret; the first app's keys are untouched. Its
    // Secret is added to the Role, as examples/deploy/rbac.yaml says for each app.
    fx.deploy.allow_secret(&fx.admin, "api-secrets").await?;
    fx.serve_image("example/api:v1", "api", "127.0.0.3").await?;
    let api_router = fx.router("api").await?;
    let mut api_app = sample_app_spec();
    api_app.name = "api".into();
    let o2 = DeployOptions {
        url_override: Some(api_router.url()),
        ..DeployOptions::default()
    };
    let r = deploy_direct(
        &cluster,
        &prober,
        &api_app,
        &e,
        &inputs("example/api:v1", "postgres://api"),
        &o2,
    )
    .await?;
    anyhow::ensure!(r.exit_code() == 0, "{:#?}", r.steps);
    assert_eq!(
        secret_value(&fx.admin, &fx.ns, "api-secrets").await?,
        b"postgres://api"
    );
    assert_eq!(
        secret_value(&fx.admin, &fx.ns, "web-secrets").await?,
        b"postgres://two"
    );
    drop((router, api_router));
    fx.finish().await
}

fn blue_green(e: &mut EnvironmentSpec) {
    complete(e);
    e.autoscaling = Some(Autoscaling {
        min: 2,
        max: 4,
        cpu_target_percent: 70,
    });
    e.blue_green = Some(BlueGreenSpec {
        service: "web".into(),
        preview_service: Some("web-preview".into()),
        preview_url: None,
        shift: ShiftSpec {
            mode: ShiftMode::None,
            steps: vec![100],
            pause: Duration::ZERO,
        },
        monitor: Duration::from_secs(2),
        keep_previous: Duration::from_secs(86_400),
        manual_promote: false,
        keep_failed: false,
    });
}

/// Protects blue-green: both colours are the complete Deployment (same as direct), the HPA
/// follows the live colour across a release and a rollback, and each release writes exactly the
/// objects `plan` lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_applies_complete_objects_and_the_hpa_follows_the_live_colour()
-> anyhow::Result<()> {
    let i = inputs(V1, "postgres://bg");
    let s = Scenario::start_env("fm-release-bg", &[V1, V2], false, blue_green, &i, None).await?;
    anyhow::ensure!(s.tb.is_local(), "needs the local testbed's audit log");
    let audit = s.tb.var("FM_TESTBED_AUDIT_LOG")?.to_string();
    let ns = s.ns.name.clone();
    let mut env = example_environment("production", &ns, StrategyKind::BlueGreen);
    blue_green(&mut env);
    let app = sample_app_spec();
    let cfg = s.config(Duration::from_secs(2), NoDataPolicy::Hold, vec![]);

    for (image, idle) in [(V1, Color::Blue), (V2, Color::Green)] {
        let from = audit_len(&audit)?;
        let r = deploy_blue_green(
            &s.cluster,
            &s.metrics,
            &NoProgress,
            &cfg,
            image,
            never_cancel(),
        )
        .await?;
        anyhow::ensure!(
            r.end == RunEnd::Finished(Outcome::Succeeded),
            "{image}: {r:#?}"
        );
        assert_complete(&s.client, &ns, &format!("web-{idle}")).await?;
        assert_eq!(hpa_target(&s.client, &ns).await?, format!("web-{idle}"));
        let plan = release_objects(&app, &env, &inputs(image, "postgres://bg"), idle)?;
        plan_is_what_ran(&s.client, &ns, &audit, from, &plan).await?;
    }
    let r = rollback_blue_green(&s.cluster, &s.metrics, &NoProgress, &cfg, never_cancel()).await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded), "{r:#?}");
    assert_eq!(hpa_target(&s.client, &ns).await?, "web-blue");
    assert_eq!(
        secret_value(&s.client, &ns, "web-secrets").await?,
        b"postgres://bg"
    );
    s.cleanup().await
}
