//! Direct and rolling deploys against the real kube-apiserver testbed (stand-in kubelet, sample app
//! processes, router following the Service's EndpointSlices).

mod support_k8s;

use fm_deploy::deploy::cluster::{Cluster, ClusterError, KubeCluster, LeaseOptions};
use fm_deploy::deploy::health::HttpProber;
use fm_deploy::deploy::manifests::{DeployInputs, example_environment};
use fm_deploy::deploy::run::{
    DeployError, DeployOptions, PostDeployResult, PostDeployTests, deploy_direct, deploy_rolling,
};
use fm_deploy::deploy::strategy::{DeployOutcome, Stage};
use fm_deploy::policy::model::{Autoscaling, EnvironmentSpec, StrategyKind};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::time::Duration;
use support_k8s::deployer::{Access, role_rules};
use support_k8s::{Fixture, sample_app_spec, wait_until};

fn inputs(image: &str, run: &str) -> DeployInputs {
    DeployInputs {
        image: image.into(),
        run_id: run.into(),
        sha: "0123abc".into(),
        ..DeployInputs::default()
    }
}

fn env(ns: &str, strategy: StrategyKind, deadline: Duration) -> EnvironmentSpec {
    let mut e = example_environment("dev", ns, strategy);
    e.progress_deadline = deadline;
    e.smoke.deadline = Duration::from_secs(20);
    e
}

fn opts(url: Option<String>) -> DeployOptions {
    DeployOptions {
        lease: LeaseOptions {
            duration: Duration::from_secs(15),
            wait: Duration::from_secs(30),
        },
        crashloop_restarts: 3,
        deadline_grace: Duration::from_secs(2),
        url_override: url,
    }
}

async fn image_of(admin: &kube::Client, ns: &str) -> anyhow::Result<Option<String>> {
    let d = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get("web")
        .await?;
    Ok(d.spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone())))
}

/// Protects the development deploy: a fresh namespace becomes Ready and passes its smoke test through
/// the Service; an image update rolls out and traffic moves to the new version.
#[tokio::test]
async fn direct_fresh_then_update() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-direct").await?;
    let v1 = fx
        .serve_image("example/web:v1", "v1", "127.0.0.2")
        .await?
        .addr;
    let v2 = fx
        .serve_image("example/web:v2", "v2", "127.0.0.3")
        .await?
        .addr;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let (app, e) = (
        sample_app_spec(),
        env(&fx.ns, StrategyKind::Direct, Duration::from_secs(60)),
    );
    let o = opts(Some(router.url()));

    let r1 = deploy_direct(
        &cluster,
        &prober,
        &app,
        &e,
        &inputs("example/web:v1", "run-1"),
        &o,
    )
    .await?;
    assert_eq!(
        r1.outcome,
        DeployOutcome::Deployed {
            image: "example/web:v1".into()
        },
        "{:#?}",
        r1.steps
    );
    assert_eq!(r1.exit_code(), 0);
    assert_eq!(router.backends(), vec![v1, v1]);

    let r2 = deploy_direct(
        &cluster,
        &prober,
        &app,
        &e,
        &inputs("example/web:v2", "run-2"),
        &o,
    )
    .await?;
    assert_eq!(
        r2.outcome,
        DeployOutcome::Deployed {
            image: "example/web:v2".into()
        },
        "{:#?}",
        r2.steps
    );
    wait_until(Duration::from_secs(10), "router on v2 only", || async {
        (router.backends() == vec![v2, v2]).then_some(())
    })
    .await?;
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await?.as_deref(),
        Some("example/web:v2")
    );
    let rec = cluster.read_record(&fx.ns, "web").await?;
    assert_eq!(
        rec.current.map(|c| (c.image, c.run_id)),
        Some(("example/web:v2".into(), "run-2".into()))
    );
    assert_eq!(rec.history.len(), 2);
    drop(router);
    fx.finish().await
}

/// Protects never-Ready detection: the rollout fails at the (short) progress deadline with the
/// pods' failing conditions in the reason, exit 1, and the old version keeps serving.
#[tokio::test]
async fn direct_never_ready_fails_at_deadline_with_conditions() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-never").await?;
    let v1 = fx
        .serve_image("example/web:v1", "v1", "127.0.0.2")
        .await?
        .addr;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let (app, e) = (
        sample_app_spec(),
        env(&fx.ns, StrategyKind::Direct, Duration::from_secs(4)),
    );
    let o = opts(Some(router.url()));
    let r1 = deploy_direct(
        &cluster,
        &prober,
        &app,
        &e,
        &inputs("example/web:v1", "run-1"),
        &o,
    )
    .await?;
    assert_eq!(r1.exit_code(), 0, "{:#?}", r1.steps);

    let r = deploy_direct(
        &cluster,
        &prober,
        &app,
        &e,
        &inputs("example/web:never-ready", "run-2"),
        &o,
    )
    .await?;
    match &r.outcome {
        DeployOutcome::Failed {
            stage: Stage::Rollout,
            reason,
            ..
        } => {
            eprintln!("never-ready reason: {reason}");
            assert!(
                reason.contains("ProgressDeadlineExceeded")
                    || reason.contains("watch deadline reached"),
                "{reason}"
            );
            assert!(
                reason.contains(
                    "Ready=False (ContainersNotReady: containers with unready status: [app])"
                ),
                "{reason}"
            );
        }
        other => panic!("expected a rollout failure, got {other:?}"),
    }
    assert_eq!(r.exit_code(), 1);
    assert!(router.backends().contains(&v1), "the old pods keep serving");
    let rec = cluster.read_record(&fx.ns, "web").await?;
    assert_eq!(rec.current.map(|c| c.image), Some("example/web:v1".into()));
    assert_eq!(
        rec.history.first().map(|h| h.outcome.as_str()),
        Some("failed")
    );
    drop(router);
    fx.finish().await
}

/// Protects crash-loop detection: a restarting container fails the deploy long before the deadline,
/// naming the pod, its restarts and CrashLoopBackOff.
#[tokio::test]
async fn direct_crash_loop_detected() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-crash").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    // A deadline far beyond the test: only crash-loop detection can end this deploy in time.
    let (app, e) = (
        sample_app_spec(),
        env(&fx.ns, StrategyKind::Direct, Duration::from_secs(600)),
    );
    let r = deploy_direct(
        &cluster,
        &prober,
        &app,
        &e,
        &inputs("example/web:crashloop", "run-1"),
        &opts(None),
    )
    .await?;
    match &r.outcome {
        DeployOutcome::Failed {
            stage: Stage::Rollout,
            reason,
            ..
        } => {
            eprintln!("crash-loop reason: {reason}");
            assert!(reason.contains("crash-looping"), "{reason}");
            assert!(reason.contains("CrashLoopBackOff"), "{reason}");
        }
        other => panic!("expected a crash loop, got {other:?}"),
    }
    assert_eq!(r.exit_code(), 1);
    fx.finish().await
}

/// The staging post-deploy test: `GET {DEPLOY_URL}/api/solve` twenty times, all must be 2xx.
struct ApiCheck {
    http: reqwest::Client,
}

impl PostDeployTests for ApiCheck {
    async fn run_gate(&self, gate: &str, deploy_url: &str) -> PostDeployResult {
        for i in 0..20 {
            match self
                .http
                .get(format!("{deploy_url}/api/solve"))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    return PostDeployResult::Failed {
                        reason: format!("{gate}: request {i} got HTTP {}", r.status()),
                    };
                }
                Err(e) => {
                    return PostDeployResult::Failed {
                        reason: format!("{gate}: request {i}: {e}"),
                    };
                }
            }
        }
        PostDeployResult::Passed
    }
}

/// Protects the staging rollback: the new version is Ready and healthy but fails its post-deploy
/// tests → the previous image is applied again, Ready, serving all traffic; exit 1 naming both.
#[tokio::test]
async fn rolling_post_deploy_failure_rolls_back() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-rolling").await?;
    let v1 = fx
        .serve_image("example/web:v1", "v1", "127.0.0.2")
        .await?
        .addr;
    let broken = fx.serve_image("example/web:v2", "v2", "127.0.0.3").await?;
    broken.set_knobs(&[("error_rate", "1.0")]).await?;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let mut e = env(&fx.ns, StrategyKind::Rolling, Duration::from_secs(60));
    e.name = "staging".into();
    e.post_deploy = vec!["e2e".into()];
    let app = sample_app_spec();
    // The smoke test only probes /health here; the post-deploy gate exercises the API.
    let mut app_health_only = app.clone();
    app_health_only.endpoints.clear();
    let tests = ApiCheck {
        http: reqwest::Client::new(),
    };
    let o = opts(Some(router.url()));

    let r1 = deploy_rolling(
        &cluster,
        &prober,
        &tests,
        &app_health_only,
        &e,
        &inputs("example/web:v1", "run-1"),
        &o,
    )
    .await?;
    assert_eq!(r1.exit_code(), 0, "{:#?}", r1.steps);
    let r2 = deploy_rolling(
        &cluster,
        &prober,
        &tests,
        &app_health_only,
        &e,
        &inputs("example/web:v2", "run-2"),
        &o,
    )
    .await?;
    match &r2.outcome {
        DeployOutcome::RolledBack {
            stage: Stage::PostDeploy,
            reason,
            restored,
            image,
        } => {
            assert_eq!(restored, "example/web:v1");
            assert_eq!(image, "example/web:v2");
            assert!(reason.contains("e2e") && reason.contains("500"), "{reason}");
        }
        other => panic!("expected a rollback, got {other:?}\n{:#?}", r2.steps),
    }
    assert_eq!(r2.exit_code(), 1);
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await?.as_deref(),
        Some("example/web:v1")
    );
    let d = Api::<Deployment>::namespaced(fx.admin.clone(), &fx.ns)
        .get("web")
        .await?;
    let st = d.status.unwrap_or_default();
    assert_eq!(
        (st.ready_replicas, st.updated_replicas, st.replicas),
        (Some(2), Some(2), Some(2))
    );
    wait_until(Duration::from_secs(10), "all traffic on v1", || async {
        (router.backends() == vec![v1, v1]).then_some(())
    })
    .await?;
    let resp = reqwest::get(format!("{}/api/solve", router.url())).await?;
    assert!(resp.status().is_success());
    let rec = cluster.read_record(&fx.ns, "web").await?;
    assert_eq!(rec.current.map(|c| c.image), Some("example/web:v1".into()));
    drop(router);
    fx.finish().await
}

/// Protects the per-environment Lease: two deploys started together — exactly one proceeds, the
/// other gives up (exit 2) naming the holder.
#[tokio::test]
async fn lease_lets_exactly_one_of_two_deploys_proceed() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-lease").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    fx.serve_image("example/web:v2", "v2", "127.0.0.3").await?;
    let router = fx.router("web").await?;
    let c1 = KubeCluster::new(fx.deployer(None).await?);
    let c2 = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let (app, e) = (
        sample_app_spec(),
        env(&fx.ns, StrategyKind::Direct, Duration::from_secs(60)),
    );
    let mut o = opts(Some(router.url()));
    o.lease.wait = Duration::ZERO;
    let (ia, ib) = (
        inputs("example/web:v1", "run-A"),
        inputs("example/web:v2", "run-B"),
    );
    let (a, b) = tokio::join!(
        deploy_direct(&c1, &prober, &app, &e, &ia, &o),
        deploy_direct(&c2, &prober, &app, &e, &ib, &o),
    );
    let (winner, loser) = match (a, b) {
        (Ok(w), Err(l)) => (w, (l, "run-A")),
        (Err(l), Ok(w)) => (w, (l, "run-B")),
        other => panic!("expected exactly one deploy to proceed, got {other:?}"),
    };
    assert_eq!(winner.exit_code(), 0, "{:#?}", winner.steps);
    match &loser.0 {
        DeployError::Cluster(ClusterError::LeaseHeld { holder, .. }) => assert_eq!(holder, loser.1),
        other => panic!("expected LeaseHeld, got {other}"),
    }
    assert_eq!(loser.0.exit_code(), 2);
    assert!(loser.0.to_string().contains(loser.1), "{}", loser.0);
    let rec = c1.read_record(&fx.ns, "web").await?;
    assert_eq!(rec.history.len(), 1, "only one deploy ran");
    drop(router);
    fx.finish().await
}

/// Protects recovery from a crashed holder: a Lease that is no longer renewed expires and the next
/// deploy takes it over; a live holder is waited for.
#[tokio::test]
async fn crashed_holders_lease_expires() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-expire").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let short = LeaseOptions {
        duration: Duration::from_secs(2),
        wait: Duration::from_secs(20),
    };
    let crashed = cluster
        .acquire_lease(&fx.ns, "fm-deploy-dev", "run-crashed", short)
        .await?;
    // The "crash": renewals stop, the Lease is never released.
    drop(crashed);
    let taken = cluster
        .acquire_lease(&fx.ns, "fm-deploy-dev", "run-next", short)
        .await?;
    assert_eq!(taken.holder, "run-next");
    // While run-next is alive (renewing), a third waits and gives up naming it.
    let impatient = LeaseOptions {
        duration: Duration::from_secs(2),
        wait: Duration::from_secs(3),
    };
    match cluster
        .acquire_lease(&fx.ns, "fm-deploy-dev", "run-third", impatient)
        .await
    {
        Err(ClusterError::LeaseHeld { holder, .. }) => assert_eq!(holder, "run-next"),
        other => panic!("expected LeaseHeld by run-next, got {other:?}"),
    }
    cluster.release_lease(taken).await?;
    let after = cluster
        .acquire_lease(&fx.ns, "fm-deploy-dev", "run-third", impatient)
        .await?;
    cluster.release_lease(after).await?;
    fx.finish().await
}

/// Protects the environment objects on a real 1.20 server: the HPA (autoscaling/v1) targets the
/// Deployment, the app's own Secret `web-secrets` and the TLS secret are applied, and no secret
/// value appears in the deploy's report.
#[tokio::test]
async fn applies_hpa_and_secrets_without_printing_them() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-objects").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let mut e = env(&fx.ns, StrategyKind::Direct, Duration::from_secs(60));
    e.autoscaling = Some(Autoscaling {
        min: 2,
        max: 4,
        cpu_target_percent: 70,
    });
    e.tls_secret = Some("web-tls".into());
    // The TLS Secret's name is the environment's own: it joins the Role as rbac.yaml says.
    let mut rules = role_rules()?;
    rules.push(
        serde_json::json!({"apiGroups": [""], "resources": ["secrets"],
        "resourceNames": ["web-tls"], "verbs": ["create", "patch"]}),
    );
    let probe = Access {
        verb: "create",
        group: "",
        resource: "secrets",
        name: Some("web-tls"),
    };
    fx.deploy.set_rules(&fx.admin, rules, probe, true).await?;
    let secret_value = "postgres://user:hunter2-secret@db:5432/app";
    let mut i = inputs("example/web:v1", "run-1");
    i.secrets.insert("DATABASE_URL".into(), secret_value.into());
    i.tls = Some((
        "-----BEGIN CERTIFICATE-----".into(),
        "-----BEGIN PRIVATE KEY-----".into(),
    ));
    let r = deploy_direct(
        &cluster,
        &prober,
        &sample_app_spec(),
        &e,
        &i,
        &opts(Some(router.url())),
    )
    .await?;
    assert_eq!(r.exit_code(), 0, "{:#?}", r.steps);
    assert!(
        !format!("{r:?}").contains("hunter2"),
        "a secret value leaked into the report"
    );

    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(fx.admin.clone(), &fx.ns)
        .get("web")
        .await?
        .spec
        .unwrap_or_default();
    assert_eq!(hpa.min_replicas, Some(2));
    assert_eq!(hpa.max_replicas, 4);
    assert_eq!(hpa.scale_target_ref.name, "web");
    let secrets: Api<Secret> = Api::namespaced(fx.admin.clone(), &fx.ns);
    let s = secrets.get("web-secrets").await?;
    let got = s
        .data
        .unwrap_or_default()
        .get("DATABASE_URL")
        .map(|b| b.0.clone())
        .unwrap_or_default();
    assert_eq!(got, secret_value.as_bytes());
    let tls = secrets.get("web-tls").await?;
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    // The autoscaler owns the replica count: our apply leaves it alone.
    let d = Api::<Deployment>::namespaced(fx.admin.clone(), &fx.ns)
        .get("web")
        .await?;
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"fm-deploy".to_string()), "{managers:?}");
    drop(router);
    fx.finish().await
}

/// Protects staging when the new image never gets Ready: the stalled rollout is rolled back to the
/// previous image, which is Ready and serving again; exit 1 naming both.
#[tokio::test]
async fn rolling_never_ready_rolls_back() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-stall").await?;
    let v1 = fx
        .serve_image("example/web:v1", "v1", "127.0.0.2")
        .await?
        .addr;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let mut e = env(&fx.ns, StrategyKind::Rolling, Duration::from_secs(4));
    e.name = "staging".into();
    let app = sample_app_spec();
    let tests = ApiCheck {
        http: reqwest::Client::new(),
    };
    let o = opts(Some(router.url()));
    let r1 = deploy_rolling(
        &cluster,
        &prober,
        &tests,
        &app,
        &e,
        &inputs("example/web:v1", "run-1"),
        &o,
    )
    .await?;
    assert_eq!(r1.exit_code(), 0, "{:#?}", r1.steps);
    let r2 = deploy_rolling(
        &cluster,
        &prober,
        &tests,
        &app,
        &e,
        &inputs("example/web:v2-never-ready", "run-2"),
        &o,
    )
    .await?;
    match &r2.outcome {
        DeployOutcome::RolledBack {
            stage: Stage::Rollout,
            reason,
            restored,
            ..
        } => {
            assert_eq!(restored, "example/web:v1");
            assert!(reason.contains("ContainersNotReady"), "{reason}");
        }
        other => panic!("expected a rollback, got {other:?}\n{:#?}", r2.steps),
    }
    assert_eq!(r2.exit_code(), 1);
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await?.as_deref(),
        Some("example/web:v1")
    );
    wait_until(Duration::from_secs(10), "all traffic on v1", || async {
        (router.backends() == vec![v1, v1]).then_some(())
    })
    .await?;
    drop(router);
    fx.finish().await
}

/// Protects the development smoke test: pods Ready but `/health` answering 503 fails the deploy at
/// the smoke deadline with the URL and status in the reason; exit 1.
#[tokio::test]
async fn direct_smoke_failure_fails_the_deploy() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-smoke").await?;
    let sick = fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    sick.set_knobs(&[("healthy", "0")]).await?;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let mut e = env(&fx.ns, StrategyKind::Direct, Duration::from_secs(60));
    e.smoke.deadline = Duration::from_secs(2);
    let r = deploy_direct(
        &cluster,
        &prober,
        &sample_app_spec(),
        &e,
        &inputs("example/web:v1", "run-1"),
        &opts(Some(router.url())),
    )
    .await?;
    match &r.outcome {
        DeployOutcome::Failed {
            stage: Stage::Smoke,
            reason,
            ..
        } => {
            assert!(
                reason.contains("/health") && reason.contains("503"),
                "{reason}"
            );
        }
        other => panic!("expected a smoke failure, got {other:?}\n{:#?}", r.steps),
    }
    assert_eq!(r.exit_code(), 1);
    drop(router);
    fx.finish().await
}

/// Protects exclusivity after a stall: when another deploy takes the Lease over, renewals stop
/// touching it (they never extend someone else's Lease) and the guard reports who took it.
#[tokio::test]
async fn lease_taken_over_is_reported_not_renewed() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-lost").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let opts = LeaseOptions {
        duration: Duration::from_secs(3),
        wait: Duration::from_secs(5),
    };
    let guard = cluster
        .acquire_lease(&fx.ns, "fm-deploy-dev", "run-a", opts)
        .await?;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(fx.admin.clone(), &fx.ns);
    let patch = serde_json::json!({"spec": {"holderIdentity": "run-b"}});
    leases
        .patch(
            "fm-deploy-dev",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    let lost = wait_until(Duration::from_secs(10), "the guard to notice", || async {
        guard.lost_to()
    })
    .await?;
    assert_eq!(lost, "run-b");
    let holder = leases
        .get("fm-deploy-dev")
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("run-b"));
    cluster.release_lease(guard).await?;
    assert!(
        leases.get_opt("fm-deploy-dev").await?.is_some(),
        "release must not delete another holder's lease"
    );
    fx.finish().await
}
