//! The apiserver process killed in the middle of a rollout (etcd keeps the state): the deploy either
//! completes truthfully or fails with a clear message — it never hangs and never reports a false
//! success. The deploy talks to an apiserver of its own (`apiserver.sh <port>` over the testbed's
//! etcd), so killing it leaves the harness's apiserver and other tests alone.

mod support_k8s;

use fm_deploy::deploy::cluster::{ClusterError, KubeCluster, LeaseOptions};
use fm_deploy::deploy::health::HttpProber;
use fm_deploy::deploy::manifests::{DeployInputs, example_environment};
use fm_deploy::deploy::run::{DeployError, DeployOptions, deploy_direct};
use fm_deploy::deploy::strategy::DeployOutcome;
use fm_deploy::policy::model::{EnvironmentSpec, StrategyKind};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use std::time::Duration;
use support_k8s::apiserver::{PrivateApiserver as ExtraApiserver, free_port};
use support_k8s::{Fixture, sample_app_spec, wait_until};

fn env(ns: &str, deadline: Duration) -> EnvironmentSpec {
    let mut e = example_environment("dev", ns, StrategyKind::Direct);
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

fn inputs(image: &str, run: &str) -> DeployInputs {
    DeployInputs {
        image: image.into(),
        run_id: run.into(),
        sha: "abc".into(),
        ..DeployInputs::default()
    }
}

/// Waits (via the harness's own apiserver) until the Deployment runs `image`: the deploy has applied.
async fn wait_applied(admin: &Client, ns: &str, image: &str) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    wait_until(
        Duration::from_secs(30),
        "the new image to be applied",
        || {
            let api = api.clone();
            async move {
                let d = api.get_opt("web").await.ok()??;
                let img = d.spec?.template.spec?.containers.first()?.image.clone()?;
                (img == image).then_some(())
            }
        },
    )
    .await
}

/// Protects the watch across a restart: the apiserver dies mid-rollout, the rollout finishes while it
/// is down, it comes back; the deploy reconnects and reports success that is true.
#[tokio::test]
async fn apiserver_restart_mid_rollout_completes() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-restart").await?;
    anyhow::ensure!(
        fx.tb.is_local(),
        "needs the local testbed (it starts and kills an apiserver)"
    );
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    let v2 = fx
        .serve_image("example/web:v2-slow-ready", "v2", "127.0.0.3")
        .await?
        .addr;
    let router = fx.router("web").await?;
    let port = free_port()?;
    let server = ExtraApiserver::start(&fx.tb, port).await?;
    let cluster = KubeCluster::new(fx.deployer(Some(&server.url())).await?);
    let prober = HttpProber::new()?;
    let (app, e, o) = (
        sample_app_spec(),
        env(&fx.ns, Duration::from_secs(60)),
        opts(Some(router.url())),
    );
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

    let task = {
        let (cluster, prober, app, e, o) = (
            cluster.clone(),
            prober.clone(),
            app.clone(),
            e.clone(),
            o.clone(),
        );
        tokio::spawn(async move {
            deploy_direct(
                &cluster,
                &prober,
                &app,
                &e,
                &inputs("example/web:v2-slow-ready", "run-2"),
                &o,
            )
            .await
        })
    };
    wait_applied(&fx.admin, &fx.ns, "example/web:v2-slow-ready").await?;
    server.kill().await?;
    // The rollout completes in the cluster while the deploy's apiserver is gone.
    let deps: Api<Deployment> = Api::namespaced(fx.admin.clone(), &fx.ns);
    wait_until(
        Duration::from_secs(30),
        "the rollout to complete in the cluster",
        || {
            let deps = deps.clone();
            async move {
                let s = deps.get("web").await.ok()?.status?;
                (s.updated_replicas == Some(2)
                    && s.ready_replicas == Some(2)
                    && s.replicas == Some(2))
                .then_some(())
            }
        },
    )
    .await?;
    let restarted = ExtraApiserver::start(&fx.tb, port).await?;
    let report = tokio::time::timeout(Duration::from_secs(60), task).await???;
    assert_eq!(
        report.outcome,
        DeployOutcome::Deployed {
            image: "example/web:v2-slow-ready".into()
        },
        "{:#?}",
        report.steps
    );
    wait_until(Duration::from_secs(10), "traffic on v2", || async {
        (router.backends() == vec![v2, v2]).then_some(())
    })
    .await?;
    restarted.kill().await?;
    drop(router);
    fx.finish().await
}

/// Protects against hanging and false success: the apiserver dies mid-rollout and stays down; the
/// deploy ends at its deadline with an error naming the unreachable apiserver (exit 2).
#[tokio::test]
async fn apiserver_gone_mid_rollout_fails_cleanly() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-gone").await?;
    anyhow::ensure!(
        fx.tb.is_local(),
        "needs the local testbed (it starts and kills an apiserver)"
    );
    fx.serve_image("example/web:v2-slow-ready", "v2", "127.0.0.3")
        .await?;
    let server = ExtraApiserver::start(&fx.tb, free_port()?).await?;
    let cluster = KubeCluster::new(fx.deployer(Some(&server.url())).await?);
    let prober = HttpProber::new()?;
    let (app, e, o) = (
        sample_app_spec(),
        env(&fx.ns, Duration::from_secs(4)),
        opts(None),
    );
    let task = tokio::spawn(async move {
        deploy_direct(
            &cluster,
            &prober,
            &app,
            &e,
            &inputs("example/web:v2-slow-ready", "run-1"),
            &o,
        )
        .await
    });
    wait_applied(&fx.admin, &fx.ns, "example/web:v2-slow-ready").await?;
    server.kill().await?;
    // Deadline 4 s + 2 s grace: anything near a minute would be a hang.
    let result = tokio::time::timeout(Duration::from_secs(60), task).await??;
    match result {
        Err(err @ DeployError::Cluster(ClusterError::Unreachable { .. })) => {
            let msg = err.to_string();
            assert!(msg.contains("unreachable"), "{msg}");
            assert_eq!(err.exit_code(), 2);
        }
        other => panic!("expected a clean unreachable failure, got {other:?}"),
    }
    fx.finish().await
}
