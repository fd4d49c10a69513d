//! The `fm-deploy` binary deploying on the real kube-apiserver testbed: policy file, kubeconfig,
//! gates, pre-deploy, the strategy and the outputs wired together as a workflow runs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_k8s;
mod support_slack;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use support_k8s::Fixture;

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

fn policy(ns: &str, url: &str, strategy: &str, post_deploy_fails: bool) -> String {
    let post = if strategy == "rolling" {
        "    post_deploy: [smoke-tests]\n"
    } else {
        ""
    };
    let exit = if post_deploy_fails { 1 } else { 0 };
    format!(
        r#"version: 1
app: {{name: web, image: example/web, port: 8080, health_path: /health, endpoints: [/api/solve]}}
branches:
  development: {{environment: dev, tier: basic}}
tiers:
  basic: [noop]
gates:
  noop: {{run: ["true"], parser: exit-code}}
  smoke-tests:
    run: [python3, -c, "import os, sys; print(os.environ['DEPLOY_URL']); sys.exit({exit})", "{{deploy_url}}"]
    parser: exit-code
    phase: post-deploy
environments:
  dev:
    namespace: {ns}
    url: {url}
    strategy: {strategy}
    replicas: 1
    progress_deadline: 60s
    smoke: {{deadline: 20s}}
{post}"#
    )
}

/// Runs the binary without blocking the runtime the stand-in kubelet and router live on.
async fn deploy(dir: &Path, kubeconfig: &Path, tag: &str) -> (Output, String) {
    deploy_with(dir, kubeconfig, tag, &[]).await
}

async fn deploy_with(
    dir: &Path,
    kubeconfig: &Path,
    tag: &str,
    env: &[(&str, &str)],
) -> (Output, String) {
    let outputs = dir.join(format!("outputs-{tag}"));
    let out = command(
        dir,
        kubeconfig,
        &[
            "pipeline",
            "--branch",
            "development",
            "--sha",
            "0123abc",
            "--image-tag",
            tag,
        ],
    )
    .arg("--output")
    .arg(&outputs)
    .envs(env.iter().copied())
    .output()
    .await
    .unwrap();
    (out, std::fs::read_to_string(&outputs).unwrap_or_default())
}

/// `fm-deploy <args>` on `dir`'s policy.yml and workspace, with `kubeconfig` and a summary file.
fn command(dir: &Path, kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(dir.join("policy.yml"))
        .arg("--workspace")
        .arg(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--summary")
        .arg(dir.join("report.md"));
    c
}

async fn image_of(admin: &kube::Client, ns: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get("web")
        .await
        .ok()?;
    d.spec?.template.spec?.containers.first()?.image.clone()
}

/// One request a vendor stand-in received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// `DD-API-KEY` or `Authorization`, whichever came.
    auth: String,
    body: serde_json::Value,
}

/// A Datadog / Sentry API stand-in on loopback: records every POST and answers `status`.
async fn vendor_stand_in(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            let path = req.uri().path().to_string();
            let h = req.headers();
            let auth = h
                .get("dd-api-key")
                .or_else(|| h.get("authorization"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            seen.lock().unwrap().push(Received { path, auth, body });
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

/// The binary's Datadog and Sentry settings, pointed at the stand-ins.
fn vendor_env<'a>(dd: &'a str, sentry: &'a str) -> [(&'static str, &'a str); 6] {
    [
        ("FM_DEPLOY_DATADOG_API_KEY", "dd-key-123"),
        ("FM_DEPLOY_DATADOG_SITE", dd),
        ("FM_DEPLOY_SENTRY_URL", sentry),
        ("FM_DEPLOY_SENTRY_AUTH_TOKEN", "sntrys-token-456"),
        ("FM_DEPLOY_SENTRY_ORG", "org"),
        ("FM_DEPLOY_SENTRY_PROJECT", "web-app"),
    ]
}

/// `pipeline` on a development branch: gates pass, the direct deploy applies, waits Ready and
/// smoke-tests through the Service; a second run with a new tag rolls the image forward.
#[tokio::test]
async fn binary_direct_deploy() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-cli-direct").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.5").await?;
    fx.serve_image("example/web:v2", "v2", "127.0.0.6").await?;
    let router = fx.router("web").await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("policy.yml"),
        policy(&fx.ns, &router.url(), "direct", false),
    )?;
    let kc = fx.deployer_kubeconfig();

    let (out, outputs) = deploy(dir.path(), &kc, "v1").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deployed example/web:v1"), "{stdout}");
    assert!(outputs.contains("decision=allow"), "{outputs}");
    assert!(outputs.contains("rolled-back=false"), "{outputs}");
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await.as_deref(),
        Some("example/web:v1")
    );

    let (hook, posts) = support_slack::stand_in("/services/T000/B000/XXXX").await;
    let (dd, dd_got) = vendor_stand_in(202).await;
    let (sentry, sentry_got) = vendor_stand_in(201).await;
    let mut vendors = vendor_env(&dd, &sentry).to_vec();
    vendors.push(("FM_DEPLOY_SLACK_WEBHOOK", hook.as_str()));
    let (out, _) = deploy_with(dir.path(), &kc, "v2", &vendors).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await.as_deref(),
        Some("example/web:v2")
    );
    let posts = posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "one notification per deploy: {posts:?}");
    assert!(
        posts[0].contains("deployed in *dev*: example/web:v2"),
        "{}",
        posts[0]
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&hook),
        "the webhook URL is a secret"
    );
    let report = std::fs::read_to_string(dir.path().join("report.md"))?;
    assert!(
        report.contains("## Deploy to `dev`: deployed example/web:v2"),
        "{report}"
    );
    // Datadog: one v1 event as the deploy starts and one as it succeeds, keyed by DD-API-KEY.
    let dd_got = dd_got.lock().unwrap().clone();
    assert_eq!(dd_got.len(), 2, "{dd_got:#?}");
    for (r, alert) in dd_got.iter().zip(["info", "success"]) {
        assert_eq!(
            (r.path.as_str(), r.auth.as_str()),
            ("/api/v1/events", "dd-key-123")
        );
        assert_eq!(r.body["alert_type"], alert, "{r:?}");
        assert!(
            r.body["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("web ")),
            "{r:?}"
        );
        assert!(
            r.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("example/web:v2"))
        );
        let tags = r.body["tags"].as_array().cloned().unwrap_or_default();
        assert!(tags.contains(&serde_json::json!("env:dev")), "{tags:?}");
        assert!(tags.contains(&serde_json::json!("version:v2")), "{tags:?}");
        assert!(r.body["aggregation_key"].is_string());
    }
    // Sentry: the release at the start, again (idempotent) at the end, then its deploy to `dev`.
    let sentry_got = sentry_got.lock().unwrap().clone();
    let paths: Vec<&str> = sentry_got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/0/organizations/org/releases/",
            "/api/0/organizations/org/releases/",
            "/api/0/organizations/org/releases/web@v2/deploys/"
        ]
    );
    assert!(
        sentry_got
            .iter()
            .all(|r| r.auth == "Bearer sntrys-token-456")
    );
    assert_eq!(
        sentry_got[0].body,
        serde_json::json!({"version": "web@v2", "projects": ["web-app"]})
    );
    let d = &sentry_got[2].body;
    assert_eq!(d["environment"], "dev");
    assert!(
        d["dateStarted"].is_string() && d["dateFinished"].is_string(),
        "{d}"
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("dd-key-123") && !all.contains("sntrys-token-456"),
        "keys are secrets"
    );
    fx.finish().await
}

/// A rolling deploy whose post-deploy gate fails goes back to the previous image, Ready, and the
/// run exits 1 with `rolled-back=true`; the gate saw the deployed URL in `DEPLOY_URL`.
#[tokio::test]
async fn binary_rolling_post_deploy_failure_rolls_back() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-cli-rolling").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.7").await?;
    fx.serve_image("example/web:v2", "v2", "127.0.0.8").await?;
    let router = fx.router("web").await?;
    let dir = tempfile::tempdir()?;
    let kc = fx.deployer_kubeconfig();

    std::fs::write(
        dir.path().join("policy.yml"),
        policy(&fx.ns, &router.url(), "rolling", false),
    )?;
    let (out, _) = deploy(dir.path(), &kc, "v1").await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    std::fs::write(
        dir.path().join("policy.yml"),
        policy(&fx.ns, &router.url(), "rolling", true),
    )?;
    // Datadog and Sentry both down (500): notifications are best effort, the run ends as the
    // rollback says; Datadog was told of the start and the rollback (an error event).
    let (dd, dd_got) = vendor_stand_in(500).await;
    let (sentry, sentry_got) = vendor_stand_in(500).await;
    let vendors = vendor_env(&dd, &sentry);
    let (out, outputs) = deploy_with(dir.path(), &kc, "v2", &vendors).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(outputs.contains("rolled-back=true"), "{outputs}");
    let alerts: Vec<String> = dd_got
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.body["alert_type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(alerts, ["info", "error"]);
    let sentry_paths: Vec<String> = sentry_got
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        sentry_paths,
        ["/api/0/organizations/org/releases/"],
        "a rolled-back version gets no Sentry deploy"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deliver the Datadog notification"),
        "{stderr}"
    );
    assert!(!stderr.contains("dd-key-123") && !stderr.contains("sntrys-token-456"));
    assert!(stdout.contains("smoke-tests"), "{stdout}");
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await.as_deref(),
        Some("example/web:v1")
    );
    fx.finish().await
}

/// SIGTERM during a direct deploy (a cancelled workflow run): the run stops at once instead of
/// waiting out its 60 s deadline, exits 1 and says it was cancelled.
#[tokio::test]
async fn binary_deploy_cancelled_by_sigterm() -> anyhow::Result<()> {
    let fx = Fixture::new("fm-cli-cancel").await?;
    let router = fx.router("web").await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("policy.yml"),
        policy(&fx.ns, &router.url(), "direct", false),
    )?;
    let kc = fx.deployer_kubeconfig();
    let child = command(
        dir.path(),
        &kc,
        &[
            "deploy",
            "--branch",
            "development",
            "--sha",
            "0123abc",
            "--image-tag",
            "never-ready",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true)
    .spawn()?;
    let pid = child.id().expect("the child is running");
    // Cancel once the rollout is under way (the Deployment exists).
    let api = Api::<Deployment>::namespaced(fx.admin.clone(), &fx.ns);
    support_k8s::wait_until(Duration::from_secs(30), "the Deployment to exist", || {
        let api = api.clone();
        async move { api.get_opt("web").await.ok().flatten().map(|_| ()) }
    })
    .await?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    // Well inside the deploy's own 60 s deadline: the run did not wait it out.
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cancelled before it finished"), "{stdout}");
    fx.finish().await
}

/// A manual `rollback` of a direct environment, as rollback.yml runs it (no database or TLS
/// inputs): the earlier image is back, and the app and TLS Secrets keep the values the deploys
/// wrote — a rollback re-deploys the image, never the Secrets it was not given.
#[tokio::test]
async fn binary_rollback_keeps_the_secrets_it_was_not_given() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    let mut fx = Fixture::new("fm-cli-rollback").await?;
    fx.serve_image("example/web:v1", "v1", "127.0.0.9").await?;
    fx.serve_image("example/web:v2", "v2", "127.0.0.10").await?;
    let router = fx.router("web").await?;
    let dir = tempfile::tempdir()?;
    let policy = format!(
        "{}    secrets: {{DATABASE_URL: database-url}}\n    tls_secret: web-tls\n",
        policy(&fx.ns, &router.url(), "direct", false)
    );
    std::fs::write(dir.path().join("policy.yml"), policy)?;
    fx.deploy.allow_secret(&fx.admin, "web-tls").await?;
    let kc = fx.deployer_kubeconfig();
    let given = [
        ("FM_DEPLOY_DATABASE_URL", "postgres://app:pw@db/app"),
        ("FM_DEPLOY_TLS_CERT", "-----BEGIN CERTIFICATE-----\nMIIB\n"),
        ("FM_DEPLOY_TLS_KEY", "-----BEGIN PRIVATE KEY-----\nMIIE\n"),
    ];
    for tag in ["v1", "v2"] {
        let (out, _) = deploy_with(dir.path(), &kc, tag, &given).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = command(
        dir.path(),
        &kc,
        &[
            "rollback",
            "--environment",
            "dev",
            "--branch",
            "development",
        ],
    )
    .output()
    .await?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        image_of(&fx.admin, &fx.ns).await.as_deref(),
        Some("example/web:v1")
    );
    let secrets = Api::<Secret>::namespaced(fx.admin.clone(), &fx.ns);
    let key = |s: &Secret, k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    let app = secrets.get("web-secrets").await?;
    assert_eq!(
        key(&app, "DATABASE_URL").as_deref(),
        Some("postgres://app:pw@db/app")
    );
    let tls = secrets.get("web-tls").await?;
    assert_eq!(
        key(&tls, "tls.crt").as_deref(),
        Some("-----BEGIN CERTIFICATE-----\nMIIB\n")
    );
    assert!(key(&tls, "tls.key").is_some());
    fx.finish().await
}
