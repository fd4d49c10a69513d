//! The `fm-deploy` binary doing production blue-green on the real testbed: `pipeline` releases,
//! then the manual `rollback` and a scheduled `cleanup`, with outputs and the Service selector
//! checked after each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_bluegreen;
mod support_k8s;

use std::path::{Path, PathBuf};
use std::process::Output;
use support_bluegreen::scenario::{Scenario, V1, V2};
use support_k8s::router::TestRouter;

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

fn policy(ns: &str, live: &str, preview: &str) -> String {
    policy_with(ns, live, preview, false)
}

fn policy_with(ns: &str, live: &str, preview: &str, manual_promote: bool) -> String {
    format!(
        r#"version: 1
app: {{name: web, image: example/web, port: 8080, health_path: /health, endpoints: [/api/solve]}}
branches:
  main: {{environment: production, tier: basic}}
tiers:
  basic: [noop]
gates:
  noop: {{run: ["true"], parser: exit-code}}
environments:
  production:
    namespace: {ns}
    url: {live}
    strategy: blue-green
    replicas: 2
    progress_deadline: 30s
    smoke: {{deadline: 10s}}
    blue_green:
      service: web
      preview_service: web-preview
      preview_url: {preview}
      monitor: 6s
      keep_previous: 1s
      manual_promote: {manual_promote}
    rollback:
      sample_every: 1s
      on_no_data: hold
      triggers:
        - {{name: health, probe: health_path, failures_above: 50%, for: 3s}}
"#
    )
}

async fn run(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (Output, String) {
    let outputs = dir.join(format!(
        "outputs-{}",
        args.join("-").replace(['/', ' '], "_")
    ));
    let _ = std::fs::remove_file(&outputs);
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .args(["--branch", "main", "--sha", "0123abc"])
        .arg("--config")
        .arg(dir.join("policy.yml"))
        .arg("--workspace")
        .arg(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--summary")
        .arg(dir.join("report.md"))
        .arg("--output")
        .arg(&outputs)
        .output()
        .await
        .unwrap();
    (out, std::fs::read_to_string(&outputs).unwrap_or_default())
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// First release lands on blue; the second goes green through checks and monitoring; `rollback`
/// puts blue back live; `cleanup` after the keep window scales the idle colour down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_blue_green_release_rollback_cleanup() -> anyhow::Result<()> {
    let s = Scenario::start("bg-cli", &[V1, V2], false).await?;
    let preview = TestRouter::start(&s.client, &s.ns.name, "web-preview", s.book.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("policy.yml"),
        policy(&s.ns.name, &s.live.url(), &preview.url()),
    )?;
    let kc: PathBuf = s.deploy.kubeconfig.clone();

    let (o, out) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v1"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("active-color=blue"), "{out}");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));

    let (o, out) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v2"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out.contains("active-color=green") && out.contains("rolled-back=false"),
        "{out}"
    );
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.wait_live_on(V2).await?;
    let report = std::fs::read_to_string(dir.path().join("report.md"))?;
    assert!(
        report.contains("mermaid"),
        "the summary carries the timeline: {report}"
    );

    let (o, out) = run(dir.path(), &kc, &["rollback"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("active-color=blue"), "{out}");
    assert_eq!(s.selector().await.as_deref(), Some("blue"));
    s.wait_live_on(V1).await?;

    let (o, _) = run(dir.path(), &kc, &["cleanup"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        s.selector().await.as_deref(),
        Some("blue"),
        "cleanup never moves traffic"
    );
    Ok(())
}

/// With `manual_promote`, a release stops before the switch (traffic stays on blue, exit 0) and a
/// `promote` run continues it to green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_manual_promote() -> anyhow::Result<()> {
    let s = Scenario::start("bg-cli-promote", &[V1, V2], false).await?;
    let preview = TestRouter::start(&s.client, &s.ns.name, "web-preview", s.book.clone()).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("policy.yml"),
        policy_with(&s.ns.name, &s.live.url(), &preview.url(), true),
    )?;
    let kc: PathBuf = s.deploy.kubeconfig.clone();

    let (o, _) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v1"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s.selector().await.as_deref(), Some("blue"));

    let (o, _) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v2"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        s.selector().await.as_deref(),
        Some("blue"),
        "paused before the switch"
    );

    let (o, out) = run(dir.path(), &kc, &["promote"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("active-color=green"), "{out}");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    s.wait_live_on(V2).await?;
    Ok(())
}

/// A production release as a hosted runner makes it, outside the cluster network and with no
/// `preview_url`: each colour is health-checked through the apiserver's service proxy to its own
/// Service, with the deploy identity's kubeconfig (the stand-in pods answer on their pod IPs, as
/// testbed/up.sh routes the pod range locally). Without rbac.yaml's `services/proxy` rule the
/// check fails closed saying which permission is missing and traffic never moves; with it the
/// release lands, and the audit log shows the proxied health checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_blue_green_without_a_preview_url_checks_through_the_apiserver() -> anyhow::Result<()>
{
    assert!(
        support_k8s::kubelet::pod_range_is_local().await,
        "the pod range 10.244.0.0/16 is not local here: run testbed/up.sh as root"
    );
    let s = Scenario::start("bg-proxy", &[V1, V2], false).await?;
    let dir = tempfile::tempdir()?;
    let text_policy = policy(&s.ns.name, &s.live.url(), "").replace("      preview_url: \n", "");
    assert!(!text_policy.contains("preview_url"), "{text_policy}");
    std::fs::write(dir.path().join("policy.yml"), &text_policy)?;
    let kc: PathBuf = s.deploy.kubeconfig.clone();

    let all = support_k8s::deployer::role_rules()?;
    let without: Vec<serde_json::Value> = all
        .iter()
        .filter(|r| r["resources"][0] != "services/proxy")
        .cloned()
        .collect();
    assert_eq!(without.len() + 1, all.len(), "rbac.yaml has the rule");
    let proxy = support_k8s::deployer::Access {
        verb: "get",
        group: "",
        resource: "services/proxy",
        name: Some("web-blue:http"),
    };
    s.deploy.set_rules(&s.client, without, proxy, false).await?;
    let (o, _) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v1"]).await;
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("needs `get` on `services/proxy` named `web-blue:http`"),
        "{}",
        text(&o)
    );
    assert_eq!(s.selector().await, None, "no traffic moved: {}", text(&o));

    s.deploy.set_rules(&s.client, all, proxy, true).await?;
    let audit = s.tb.var("FM_TESTBED_AUDIT_LOG")?.to_string();
    let from = std::fs::metadata(&audit)?.len();
    let (o, out) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v1"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("active-color=blue"), "{out}");
    let (o, out) = run(dir.path(), &kc, &["pipeline", "--image-tag", "v2"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("active-color=green"), "{out}");
    assert_eq!(s.selector().await.as_deref(), Some("green"));
    let log = std::fs::read(&audit)?;
    let log = String::from_utf8_lossy(&log[usize::try_from(from)?..]);
    for color in ["blue", "green"] {
        let path = format!(
            "/api/v1/namespaces/{}/services/web-{color}:http/proxy/health",
            s.ns.name
        );
        assert!(
            log.lines()
                .any(|l| l.contains(&path) && l.contains("\"code\":200")),
            "the {color} health check went through the apiserver ({path})"
        );
    }
    Ok(())
}
