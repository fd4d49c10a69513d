//! The Role of `examples/deploy/rbac.yaml` is what the deploy needs, and no more: a deploy as its
//! ServiceAccount succeeds (every other testbed test runs that way too), taking any one rule away
//! makes it fail, and a missing permission fails at once with an error naming the verb, resource
//! and namespace (never retried).

mod support_k8s;
use fm_deploy::deploy::cluster::{ClusterError, KubeCluster, LeaseOptions};
use fm_deploy::deploy::colors::{
    BgCluster, ClusterError as BgClusterError, ColorsSpec, KubeColors,
};
use fm_deploy::deploy::health::HttpProber;
use fm_deploy::deploy::manifests::{DeployInputs, environment_objects, example_environment};
use fm_deploy::deploy::run::{DeployError, DeployOptions, deploy_direct};
use fm_deploy::policy::model::{Autoscaling, EnvironmentSpec, StrategyKind};
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use support_k8s::deployer::{Access, role_rules};
use support_k8s::{Fixture, sample_app_spec};

/// A direct deploy touching every namespaced kind the Role covers for direct / rolling:
/// Lease, state ConfigMap, `web-secrets`, Service, Deployment, pods, HPA.
fn environment(ns: &str) -> EnvironmentSpec {
    let mut e = example_environment("dev", ns, StrategyKind::Direct);
    e.progress_deadline = Duration::from_secs(60);
    e.smoke.deadline = Duration::from_secs(20);
    e.autoscaling = Some(Autoscaling {
        min: 2,
        max: 4,
        cpu_target_percent: 70,
    });
    e
}

fn inputs(run: &str) -> DeployInputs {
    let mut i = DeployInputs {
        image: "example/web:v1".into(),
        run_id: run.into(),
        ..DeployInputs::default()
    };
    i.secrets
        .insert("DATABASE_URL".into(), "postgres://db/app".into());
    i
}

fn opts(url: String) -> DeployOptions {
    DeployOptions {
        lease: LeaseOptions {
            duration: Duration::from_secs(15),
            wait: Duration::from_secs(5),
        },
        crashloop_restarts: 3,
        deadline_grace: Duration::from_secs(2),
        url_override: Some(url),
    }
}

/// The first verb of a rule as an access probe (its first name, when it names objects).
fn probe(rule: &Value) -> Access<'_> {
    let first = |k: &str| rule[k][0].as_str().unwrap_or_default();
    Access {
        verb: first("verbs"),
        group: first("apiGroups"),
        resource: first("resources"),
        name: rule["resourceNames"][0].as_str(),
    }
}

/// Protects minimality at rule granularity: with any one rule of the Role left out, the direct
/// deploy fails with `Forbidden` naming that rule's resource (the Ingress rule is blue-green's
/// canary: `canary_weight_needs_the_ingress_rule`; the service proxy rule its health check without
/// a preview URL, in bluegreen_cli); with all rules it succeeds.
#[tokio::test]
async fn every_rule_is_needed_and_enough() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-rbac-rules").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let app = sample_app_spec();
    let e = environment(&fx.ns);
    let url = router.url();
    let deploy = |run: String| {
        let (cluster, prober, app, e, url) = (&cluster, &prober, &app, &e, url.clone());
        async move { deploy_direct(cluster, prober, app, e, &inputs(&run), &opts(url)).await }
    };
    let all = role_rules()?;
    for (i, rule) in all.iter().enumerate() {
        // Blue-green only: the canary Ingress (`canary_weight_needs_the_ingress_rule`) and the
        // service proxy (bluegreen_cli's `…without_a_preview_url…`).
        if rule["apiGroups"][0] == "networking.k8s.io" || rule["resources"][0] == "services/proxy" {
            continue;
        }
        let rest: Vec<Value> = all
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, r)| r.clone())
            .collect();
        fx.deploy
            .set_rules(&fx.admin, rest, probe(rule), false)
            .await?;
        let r = deploy(format!("without rule {i}")).await;
        let resource = rule["resources"][0].as_str().unwrap_or_default();
        match r {
            Err(DeployError::Cluster(ClusterError::Forbidden(f))) => {
                assert_eq!(f.resource, resource, "rule {i} {rule}: {f}");
                assert_eq!(f.namespace.as_deref(), Some(fx.ns.as_str()), "{f}");
            }
            other => panic!("without rule {i} ({rule}) the deploy must be refused, got {other:?}"),
        }
    }
    fx.deploy
        .set_rules(&fx.admin, all.clone(), probe(&all[0]), true)
        .await?;
    let r = deploy("all rules".into()).await?;
    assert_eq!(r.exit_code(), 0, "{:#?}", r.steps);
    drop(router);
    fx.finish().await
}

/// Protects the message and fail-fast of a missing permission: without `patch services` the
/// deploy fails naming verb, resource, namespace and the ServiceAccount, pointing at the Role,
/// after exactly one refused request (a 403 is never retried).
#[tokio::test]
async fn missing_patch_services_fails_with_a_clear_error() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-rbac-svc").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    let router = fx.router("web").await?;
    let mut rules = role_rules()?;
    for r in &mut rules {
        if r["resources"][0] == "services"
            && let Some(verbs) = r["verbs"].as_array_mut()
        {
            verbs.retain(|v| v != "patch");
        }
    }
    let patch_services = Access {
        verb: "patch",
        group: "",
        resource: "services",
        name: None,
    };
    fx.deploy
        .set_rules(&fx.admin, rules, patch_services, false)
        .await?;
    let audit = fx.tb.var("FM_TESTBED_AUDIT_LOG").ok().map(str::to_string);
    let from = match &audit {
        Some(p) => std::fs::metadata(p)?.len(),
        None => 0,
    };
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let r = deploy_direct(
        &cluster,
        &HttpProber::new()?,
        &sample_app_spec(),
        &environment(&fx.ns),
        &inputs("no patch services"),
        &opts(router.url()),
    )
    .await;
    let Err(e) = r else {
        panic!("the deploy must fail without patch services");
    };
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "patch services in namespace {}: forbidden for {} (add it to the Role, see examples/deploy/rbac.yaml)",
            fx.ns, fx.deploy.user
        )),
        "{text}"
    );
    if let Some(path) = audit {
        // Audit events are written synchronously (blocking mode) before the answer is sent.
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(from))?;
        let mut log = String::new();
        f.read_to_string(&mut log)?;
        let refused = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|ev| {
                ev["user"]["username"] == fx.deploy.user.as_str()
                    && ev["verb"] == "patch"
                    && ev["objectRef"]["resource"] == "services"
                    && ev["responseStatus"]["code"] == 403
            })
            .count();
        assert_eq!(refused, 1, "one refused request, not retried");
    }
    drop(router);
    fx.finish().await
}

/// Protects the blue-green side of the Role: the canary Ingress is applied with the Ingress rule,
/// and without it the weight change fails with `Forbidden` naming `ingresses.networking.k8s.io`
/// in the namespace (the blue-green adapter maps a 403 the same way).
#[tokio::test]
async fn canary_weight_needs_the_ingress_rule() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-rbac-ingress").await?;
    let spec = ColorsSpec {
        namespace: fx.ns.clone(),
        app: "web".into(),
        port: 8080,
        service: "web".into(),
        preview_service: "web-preview".into(),
        canary_ingress: Some("web-canary".into()),
        ingress_host: Some("web.example.test".into()),
    };
    let env = example_environment("production", &fx.ns, StrategyKind::BlueGreen);
    let objects = environment_objects(&sample_app_spec(), &env, &DeployInputs::default())?;
    let colors = KubeColors::new(fx.deployer(None).await?, spec, objects, "production");
    let all = role_rules()?;
    let (ingress, rest): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|r| r["apiGroups"][0] == "networking.k8s.io");
    let rule = ingress
        .first()
        .ok_or_else(|| anyhow::anyhow!("rbac.yaml has an Ingress rule"))?;
    fx.deploy
        .set_rules(&fx.admin, rest.clone(), probe(rule), false)
        .await?;
    match colors.canary_weight(10).await {
        Err(BgClusterError::Forbidden(f)) => {
            assert_eq!(
                (f.resource.as_str(), f.namespace.as_deref()),
                ("ingresses", Some(fx.ns.as_str())),
                "{f}"
            );
            assert!(f.to_string().contains("ingresses.networking.k8s.io"), "{f}");
        }
        other => panic!("without the Ingress rule the canary must be refused, got {other:?}"),
    }
    let mut all = rest;
    all.push(rule.clone());
    fx.deploy
        .set_rules(&fx.admin, all, probe(rule), true)
        .await?;
    colors.canary_weight(10).await?;
    fx.finish().await
}
