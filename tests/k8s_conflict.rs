//! Optimistic concurrency against the real apiserver: 409 Conflict is retried with a fresh read.

mod support_k8s;

use fm_deploy::deploy::cluster::{Cluster, DeployRecord, KubeCluster, retry_on_conflict};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use support_k8s::Fixture;

/// The one ConfigMap the deploy's Role lets it update (examples/deploy/rbac.yaml).
const RACE: &str = fm_deploy::deploy::manifests::STATE_CONFIGMAP;

/// Protects the retry rule: a replace that meets a real 409 (another writer changed the object after
/// our read) reads again and succeeds, keeping the other writer's change.
#[tokio::test]
async fn conflict_is_retried_with_a_fresh_read() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-conflict").await?;
    let admin: Api<ConfigMap> = Api::namespaced(fx.admin.clone(), &fx.ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": RACE}, "data": {"a": "1"}}))?;
    admin.create(&PostParams::default(), &cm).await?;
    let deployer = fx.deployer(None).await?;
    let ours: Api<ConfigMap> = Api::namespaced(deployer.clone(), &fx.ns);
    let (_, retries) = retry_on_conflict("configmap fm-deploy-state", 5, &deployer, |attempt| {
        let (ours, admin) = (ours.clone(), admin.clone());
        async move {
            let mut cm = ours.get(RACE).await?;
            if attempt == 0 {
                // Another writer gets in between our read and our write.
                admin
                    .patch(
                        RACE,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"data": {"b": "2"}})),
                    )
                    .await?;
            }
            cm.data
                .get_or_insert_default()
                .insert("c".into(), "3".into());
            ours.replace(RACE, &PostParams::default(), &cm).await
        }
    })
    .await?;
    assert_eq!(retries, 1, "exactly one conflict retried");
    let data = admin.get(RACE).await?.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert_eq!(
        data.get("b").map(String::as_str),
        Some("2"),
        "the other writer's change survives"
    );
    assert_eq!(data.get("c").map(String::as_str), Some("3"));
    fx.finish().await
}

/// Protects the state record under concurrent writers: every record lands, none is lost to a 409.
#[tokio::test]
async fn concurrent_state_record_writes_lose_nothing() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-record").await?;
    let mut writers = Vec::new();
    for i in 0..6 {
        let cluster = KubeCluster::new(fx.deployer(None).await?);
        let ns = fx.ns.clone();
        writers.push(tokio::spawn(async move {
            let rec = DeployRecord {
                image: format!("example/web:v{i}"),
                run_id: format!("run-{i}"),
                sha: "abc".into(),
                strategy: "direct".into(),
                outcome: "deployed".into(),
                at: "2026-01-01T00:00:00Z".into(),
            };
            cluster.write_record(&ns, "web", rec).await
        }));
    }
    for w in writers {
        w.await??;
    }
    let cluster = KubeCluster::new(fx.deployer(None).await?);
    let rec = cluster.read_record(&fx.ns, "web").await?;
    let mut runs: Vec<String> = rec.history.iter().map(|h| h.run_id.clone()).collect();
    runs.sort();
    assert_eq!(runs, (0..6).map(|i| format!("run-{i}")).collect::<Vec<_>>());
    fx.finish().await
}
