//! `pipeline` for a development branch through the action's image, run as GitHub's runner runs it
//! (`support_image`), deploying on the real kube-apiserver testbed (on 127.0.0.1:6443, reached over
//! the host network) with the kubeconfig passed as the `kubeconfig` input, as a workflow passes a
//! secret; the stand-in kubelet and router of `support_k8s` make the pods Ready and serve them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_image;
mod support_k8s;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::Value;
use std::path::PathBuf;
use support_image::Job;
use support_k8s::Fixture;

fn policy(ns: &str, url: &str) -> String {
    format!(
        r#"version: 1
app: {{name: web, image: example/web, port: 8080, health_path: /health, endpoints: [/api/solve]}}
branches:
  development: {{environment: dev, tier: basic}}
tiers:
  basic: [noop]
gates:
  noop: {{run: ["true"], parser: exit-code}}
environments:
  dev:
    namespace: {ns}
    url: {url}
    strategy: direct
    replicas: 1
    progress_deadline: 60s
    smoke: {{deadline: 20s}}
"#
    )
}

/// The image deploys: gates allow, the direct deploy is applied with the tag from the
/// `image-tag` input, watched Ready and smoke-tested; the outputs reach GITHUB_OUTPUT and the
/// kubeconfig (a secret input) is masked before anything else is printed.
#[tokio::test]
async fn pipeline_deploys_development_through_the_image() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-image-direct").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.7").await?;
    let router = fx.router("web").await?;
    // The deploy identity of examples/deploy/rbac.yaml, as a user would configure it.
    let kubeconfig = std::fs::read_to_string(fx.deployer_kubeconfig())?;

    let mut payload: Value = serde_json::from_slice(&std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events/push.branch.json"),
    )?)?;
    payload["ref"] = Value::String("refs/heads/development".into());
    payload["after"] = Value::String("d".repeat(40));
    let mut job = Job::new("push", &payload);
    std::fs::create_dir_all(job.workspace.join(".github"))?;
    std::fs::write(
        job.workspace.join(".github/fm-deploy.yml"),
        policy(&fx.ns, &router.url()),
    )?;
    job.input("command", "pipeline")
        .input("kubeconfig", &kubeconfig)
        .input("image-tag", "v1");
    let out = job.run().await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deployed example/web:v1"), "{stdout}");
    let outputs = job.outputs();
    assert_eq!(outputs.get("decision").map(String::as_str), Some("allow"));
    assert_eq!(
        outputs.get("rolled-back").map(String::as_str),
        Some("false")
    );
    let token_line = kubeconfig
        .lines()
        .find(|l| l.contains("token"))
        .expect("the deployer kubeconfig carries a token");
    assert!(
        !stdout
            .lines()
            .any(|l| !l.starts_with("::add-mask::") && l.contains(token_line.trim())),
        "the kubeconfig is a secret"
    );
    let d = Api::<Deployment>::namespaced(fx.admin.clone(), &fx.ns)
        .get("web")
        .await?;
    let image = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
    assert_eq!(image.as_deref(), Some("example/web:v1"));
    fx.finish().await
}
