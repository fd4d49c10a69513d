//! Measurements for BENCHMARKS.md `## Kubernetes`, run on the local testbed (they also run, and
//! check their own sanity, in the normal suite). Figures are printed; run with
//! `cargo nextest run --test k8s_bench --no-capture`.

mod support_k8s;

use fm_deploy::deploy::cluster::{Cluster, KubeCluster, LeaseOptions, RolloutResult};
use fm_deploy::deploy::health::HttpProber;
use fm_deploy::deploy::manifests::{DeployInputs, environment_objects, example_environment};
use fm_deploy::deploy::run::{DeployOptions, deploy_direct};
use fm_deploy::deploy::strategy::RolloutPlan;
use fm_deploy::policy::model::StrategyKind;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support_k8s::{Fixture, sample_app_spec};

fn audit_len(path: &str) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

/// Requests by `user` (the deploy's ServiceAccount) on `ns` (or on the Namespace object itself)
/// logged after `from`: (distinct requests, by verb + resource[/subresource]).
fn audit_requests(
    path: &str,
    from: u64,
    ns: &str,
    user: &str,
) -> anyhow::Result<(usize, BTreeMap<String, usize>)> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let mut seen = BTreeSet::new();
    let mut by = BTreeMap::new();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if ev["user"]["username"] != user {
            continue;
        }
        let o = &ev["objectRef"];
        let ours = o["namespace"] == ns || (o["resource"] == "namespaces" && o["name"] == ns);
        if !ours || !seen.insert(ev["auditID"].as_str().unwrap_or_default().to_string()) {
            continue;
        }
        let sub = o["subresource"]
            .as_str()
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        let key = format!(
            "{} {}{sub}",
            ev["verb"].as_str().unwrap_or("?"),
            o["resource"].as_str().unwrap_or("?")
        );
        *by.entry(key).or_insert(0) += 1;
    }
    Ok((seen.len(), by))
}

/// Protects the API budget of a direct deploy and produces its figure: requests counted from the
/// apiserver's audit log (fresh namespace, then an image update).
#[tokio::test]
async fn api_requests_per_direct_deploy() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-bench-api").await?;
    anyhow::ensure!(fx.tb.is_local(), "needs the local testbed's audit log");
    let audit = fx.tb.var("FM_TESTBED_AUDIT_LOG")?.to_string();
    fx.serve_image("example/web:v1", "v1", "127.0.0.2").await?;
    fx.serve_image("example/web:v2", "v2", "127.0.0.3").await?;
    let router = fx.router("web").await?;
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let prober = HttpProber::new()?;
    let app = sample_app_spec();
    let e = example_environment("dev", &fx.ns, StrategyKind::Direct);
    let o = DeployOptions {
        url_override: Some(router.url()),
        ..DeployOptions::default()
    };
    for (what, image) in [
        ("fresh namespace", "example/web:v1"),
        ("image update", "example/web:v2"),
    ] {
        let from = audit_len(&audit)?;
        let inputs = DeployInputs {
            image: image.into(),
            run_id: format!("bench {image}"),
            ..DeployInputs::default()
        };
        let r = deploy_direct(&cluster, &prober, &app, &e, &inputs, &o).await?;
        anyhow::ensure!(r.exit_code() == 0, "deploy failed: {:#?}", r.steps);
        let (n, by) = audit_requests(&audit, from, &fx.ns, &fx.deploy.user)?;
        eprintln!("BENCH api-requests direct deploy ({what}): {n} requests: {by:?}");
        assert!(
            n >= 5,
            "at least service, deployment, lease and record calls: {by:?}"
        );
    }
    drop(router);
    fx.finish().await
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Produces the readiness-notice figure: on the same rollouts, the time from the last pod reported
/// Ready to (a) `wait_rollout` returning and (b) `kubectl rollout status` (a watch) exiting.
#[tokio::test]
async fn readiness_notice_vs_kubectl_rollout_status() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-bench-ready").await?;
    anyhow::ensure!(fx.tb.is_local(), "needs the testbed's kubectl");
    let kubectl = fx.tb.var("FM_TESTBED_KUBECTL")?.to_string();
    let kubeconfig = fx.deployer_kubeconfig().display().to_string();
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let app = sample_app_spec();
    let mut e = example_environment("dev", &fx.ns, StrategyKind::Direct);
    e.replicas = 2;
    let plan = RolloutPlan {
        progress_deadline: Duration::from_secs(60),
        deadline: Duration::from_secs(60),
        crashloop_restarts: 3,
    };
    let lease = cluster
        .acquire_lease(&fx.ns, "fm-deploy-dev", "bench", LeaseOptions::default())
        .await?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    // FM_BENCH_ROUNDS for the published figure; a few rounds keep the normal suite quick.
    let rounds: usize = std::env::var("FM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for i in 0..rounds {
        // slow-ready: pods turn Ready 2 s after binding, so both watchers are surely established.
        let image = format!("example/web:r{i}-slow-ready");
        let objs = environment_objects(
            &app,
            &e,
            &DeployInputs {
                image: image.clone(),
                ..DeployInputs::default()
            },
        )?;
        let applied = cluster.apply_environment(&objs).await?;
        let applied_at = Instant::now();
        let mut child = tokio::process::Command::new(&kubectl)
            .args([
                "--kubeconfig",
                &kubeconfig,
                "-n",
                &fx.ns,
                "rollout",
                "status",
                "deployment/web",
                "--watch=true",
                "--timeout=60s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let (result, kubectl_done) = tokio::join!(cluster.wait_rollout(&applied, &plan), async {
            let status = child.wait().await;
            (status, Instant::now())
        });
        let noticed = match result? {
            RolloutResult::Complete { noticed, .. } => noticed,
            RolloutResult::Failed(f) => anyhow::bail!("rollout {i} failed: {f}"),
        };
        anyhow::ensure!(
            kubectl_done.0?.success(),
            "kubectl rollout status failed on rollout {i}"
        );
        let last_ready = fx
            .book
            .ready_log()
            .into_iter()
            .filter(|(_, t)| *t > applied_at)
            .map(|(_, t)| t)
            .max()
            .ok_or_else(|| anyhow::anyhow!("no pod reported Ready in rollout {i}"))?;
        ours.push(noticed.saturating_duration_since(last_ready));
        theirs.push(kubectl_done.1.saturating_duration_since(last_ready));
    }
    cluster.release_lease(lease).await?;
    // Paired per rollout: how much later kubectl noticed than fm-deploy (negative: earlier).
    let mut paired: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| (t.as_secs_f64() - o.as_secs_f64()) * 1000.0)
        .collect();
    paired.sort_by(f64::total_cmp);
    let first = ours.iter().zip(&theirs).filter(|(o, t)| o <= t).count();
    eprintln!(
        "BENCH ready-notice paired: kubectl minus fm-deploy median {:.1} ms (min {:.1}, max {:.1}); fm-deploy first in {first}/{rounds}",
        paired[paired.len() / 2],
        paired[0],
        paired[paired.len() - 1]
    );
    let (m_ours, m_theirs) = (median(&mut ours), median(&mut theirs));
    eprintln!(
        "BENCH ready-notice over {rounds} rollouts (2 replicas): fm-deploy median {:?} max {:?}; kubectl rollout status median {:?} max {:?}; ratio kubectl/fm-deploy {:.2}",
        m_ours,
        ours.last().copied().unwrap_or_default(),
        m_theirs,
        theirs.last().copied().unwrap_or_default(),
        m_theirs.as_secs_f64() / m_ours.as_secs_f64().max(1e-6)
    );
    eprintln!("BENCH ready-notice samples fm-deploy {ours:?} kubectl {theirs:?}");
    fx.finish().await
}
