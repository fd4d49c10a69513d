//! Planted credentials in every secret input, through every command of the binary as GitHub
//! Actions runs it (Prism + the fake GitHub, the real kube-apiserver testbed, a Slack stand-in):
//! none of them appears in stdout (outside its own `::add-mask::` line), stderr, the step
//! summary, the outputs file, any request body GitHub or Slack received, or any object written to
//! the cluster other than the app and TLS Secrets that are meant to hold them. And the masks are
//! the credentials, not words: no environment, namespace, cluster name, server URL or
//! `apiVersion: v1` line is registered as a mask.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_github;
mod support_k8s;
mod support_slack;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::Api;
use kube::api::ListParams;
use std::path::{Path, PathBuf};
use support_k8s::Fixture;

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

const DB_PASSWORD: &str = "planted-db-pass-5f1c9a";
const REDIS_PASSWORD: &str = "planted-redis-pass-77e0";
const SLACK_SECRET: &str = "plantedSlackSecret0123456789";
const DATADOG_KEY: &str = "planted0datadog0key0c0ffee0123456";
const SENTRY_KEY: &str = "planted5e27a1key0123456789abcdef";
const KUBE_PASSWORD: &str = "planted-kube-password-4d2a";
const KUBE_REFRESH: &str = "planted-refresh-token-91b3";
const KUBE_EXEC_TOKEN: &str = "planted-exec-env-token-0e6f";
const TLS_KEY_LINE: &str = "MIIEplantedTLSkeyMaterial0123456789abcdefABCDEF";
const TLS_CERT_LINE: &str = "MIIDplantedTLScertMaterial0123456789abcdefABCDE";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn policy(ns: &str, url: &str) -> String {
    format!(
        r#"version: 1
app: {{name: web, image: example/web, port: 8080, health_path: /health, endpoints: [/api/solve]}}
branches:
  development: {{environment: dev, tier: basic}}
tiers:
  basic: {{gates: [noop], matrix: basic}}
gates:
  noop: {{run: ["true"], parser: exit-code}}
matrix:
  basic: {{os: [ubuntu-latest], python: ["3.10"], services: [postgres, redis]}}
environments:
  dev:
    namespace: {ns}
    url: {url}
    strategy: direct
    replicas: 1
    progress_deadline: 60s
    smoke: {{deadline: 20s}}
    secrets: {{database-url: database-url, redis-url: redis-url, dd-api-key: datadog-api-key, sentry-dsn: sentry-dsn}}
    tls_secret: web-tls
"#
    )
}

/// The deployer kubeconfig of the testbed (its real token), plus users that carry the other
/// credential kinds, in block style, base64-encoded as the pipeline guide stores it.
fn kubeconfig_input(deployer: &Path) -> (String, String) {
    let text = std::fs::read_to_string(deployer).unwrap();
    let extra = format!(
        "\n---\napiVersion: v1\nkind: Config\nusers:\n- name: basic\n  user:\n    username: deployer\n    password: {KUBE_PASSWORD}\n- name: oidc\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        client-id: fm-deploy\n        refresh-token: {KUBE_REFRESH}\n- name: plugin\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: fm-credential-helper\n      env:\n      - name: HELPER_TOKEN\n        value: {KUBE_EXEC_TOKEN}\n"
    );
    let full = format!("{text}{extra}");
    (
        base64::engine::general_purpose::STANDARD.encode(&full),
        full,
    )
}

fn pem(kind: &str, line: &str) -> String {
    format!("-----BEGIN {kind}-----\n{line}\n{line}\n-----END {kind}-----\n")
}

/// The token of the deployer kubeconfig (flow style: `user: {token: "…"}`).
fn deployer_token(text: &str) -> String {
    let start = text.find("token: \"").unwrap() + "token: \"".len();
    let end = text[start..].find('"').unwrap() + start;
    text[start..end].to_string()
}

/// What one command left behind.
struct Ran {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    summary: String,
    outputs: String,
}

struct Harness {
    dir: tempfile::TempDir,
    github_url: String,
    inputs: Vec<(String, String)>,
}

impl Harness {
    /// Runs `command` in Actions with every secret input set; `event` is `push` (to
    /// `development`) or `workflow_dispatch`.
    async fn run(&self, command: &str, event: &str, tag: &str) -> Ran {
        let n = rand::random::<u32>();
        let outputs = self.dir.path().join(format!("outputs-{n}"));
        let summary = self.dir.path().join(format!("summary-{n}"));
        let payload = self.dir.path().join(format!("{event}.json"));
        let out = tokio::process::Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_EVENT_PATH", &payload)
            .env("GITHUB_REF", "refs/heads/development")
            .env("GITHUB_WORKSPACE", self.dir.path().join("ws"))
            .env("GITHUB_OUTPUT", &outputs)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_API_URL", &self.github_url)
            .env("GITHUB_REPOSITORY", "org/fm-llm-solver")
            .env("GITHUB_RUN_ID", "5150")
            .env("GITHUB_JOB", "deploy")
            .env("INPUT_COMMAND", command)
            .env("INPUT_IMAGE-TAG", tag)
            .envs(self.inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        Ran {
            command: command.to_string(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary: std::fs::read_to_string(&summary).unwrap_or_default(),
            outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
        }
    }
}

/// Every planted credential must stay out of `text` (named `place`).
fn assert_absent(planted: &[String], place: &str, text: &str) {
    for secret in planted {
        assert!(
            !text.contains(secret.as_str()),
            "{place} contains the planted credential {secret:?}:\n{text}"
        );
    }
}

/// Every object of type `K` in `ns` as JSON text, except those `skip` names.
async fn objects<K>(client: &kube::Client, ns: &str, skip: &[&str]) -> String
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let list = Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    list.items
        .iter()
        .filter(|o| {
            let name = o.meta().name.as_deref().unwrap_or_default();
            !skip.contains(&name)
        })
        .map(|o| serde_json::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Planted credentials in every secret input; plan, gates, matrix, pipeline (twice: a first
/// deploy and an upgrade), deploy, rollback, promote, cleanup and setup through the binary: no
/// credential leaks anywhere the run writes, and no word is masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_credentials_never_leak() -> anyhow::Result<()> {
    let mut fx = Fixture::new("fm-planted").await?;
    for (tag, ip) in [
        ("v1", "127.0.0.61"),
        ("v2", "127.0.0.62"),
        ("v3", "127.0.0.63"),
    ] {
        fx.serve_image(&format!("example/web:{tag}"), tag, ip)
            .await?;
    }
    let router = fx.router("web").await?;
    let gh = support_github::Testbed::start().await;
    for team in ["qa-team", "senior-developers", "devops"] {
        gh.fake.add_team("org", team);
    }
    let (hook, posts) =
        support_slack::stand_in(&format!("/services/T000/B000/{SLACK_SECRET}")).await;

    let dir = tempfile::tempdir()?;
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(".github"))?;
    std::fs::write(
        ws.join(".github/fm-deploy.yml"),
        policy(&fx.ns, &router.url()),
    )?;
    let mut push: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root().join("tests/fixtures/events/push.branch.json"),
    )?)?;
    push["ref"] = "refs/heads/development".into();
    std::fs::write(dir.path().join("push.json"), serde_json::to_vec(&push)?)?;
    let mut dispatch: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root().join("tests/fixtures/events/workflow_dispatch.json"),
    )?)?;
    dispatch["ref"] = "refs/heads/development".into();
    std::fs::write(
        dir.path().join("workflow_dispatch.json"),
        serde_json::to_vec(&dispatch)?,
    )?;

    let deployer = PathBuf::from(fx.tb.var("FM_TESTBED_DEPLOYER_KUBECONFIG")?);
    let (kubeconfig_b64, kubeconfig_text) = kubeconfig_input(&deployer);
    let kube_token = deployer_token(&kubeconfig_text);
    let github_token = support_github::TOKEN.to_string();
    let database_url = format!("postgres://fm_app:{DB_PASSWORD}@db.internal:5432/fm_llm_solver");
    let redis_url = format!("redis://:{REDIS_PASSWORD}@redis.internal:6379/0");
    let sentry_dsn = format!("https://{SENTRY_KEY}@o1.ingest.sentry.io/42");
    let tls_key = pem("PRIVATE KEY", TLS_KEY_LINE);
    let tls_cert = pem("CERTIFICATE", TLS_CERT_LINE);
    let inputs: Vec<(String, String)> = [
        ("INPUT_GITHUB-TOKEN", github_token.as_str()),
        ("INPUT_KUBECONFIG", kubeconfig_b64.as_str()),
        ("INPUT_SLACK-WEBHOOK", hook.as_str()),
        ("INPUT_DATABASE-URL", database_url.as_str()),
        ("INPUT_REDIS-URL", redis_url.as_str()),
        ("INPUT_TLS-CERT", tls_cert.as_str()),
        ("INPUT_TLS-KEY", tls_key.as_str()),
        ("INPUT_DATADOG-API-KEY", DATADOG_KEY),
        ("INPUT_SENTRY-DSN", sentry_dsn.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let planted: Vec<String> = [
        github_token.as_str(),
        &kubeconfig_b64,
        &kube_token,
        KUBE_PASSWORD,
        KUBE_REFRESH,
        KUBE_EXEC_TOKEN,
        SLACK_SECRET,
        DB_PASSWORD,
        REDIS_PASSWORD,
        DATADOG_KEY,
        SENTRY_KEY,
        TLS_KEY_LINE,
        TLS_CERT_LINE,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let h = Harness {
        dir,
        github_url: gh.url.clone(),
        inputs,
    };

    let mut runs = Vec::new();
    for (command, event, tag, want) in [
        ("plan", "push", "v1", Some(0)),
        ("gates", "push", "v1", Some(0)),
        ("matrix", "push", "v1", Some(0)),
        ("pipeline", "push", "v1", Some(0)),
        ("pipeline", "push", "v2", Some(0)),
        ("rollback", "workflow_dispatch", "v2", Some(0)),
        ("deploy", "push", "v3", Some(0)),
        ("promote", "workflow_dispatch", "v3", Some(0)),
        ("cleanup", "workflow_dispatch", "v3", Some(0)),
        ("setup", "workflow_dispatch", "v3", Some(0)),
    ] {
        let r = h.run(command, event, tag).await;
        assert_eq!(
            r.code, want,
            "{command}:\n{}\n{}\n{}",
            r.stdout, r.stderr, r.summary
        );
        eprintln!(
            "── {command} ({event}, {tag}): exit {:?}\n{}",
            r.code,
            r.stdout
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        runs.push(r);
    }

    let mask = |r: &Ran| -> Vec<String> {
        r.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("::add-mask::"))
            .map(str::to_string)
            .collect()
    };
    for r in &runs {
        let place = |what: &str| format!("{} {what}", r.command);
        let printed: String = r
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_absent(&planted, &place("stdout"), &printed);
        assert_absent(&planted, &place("stderr"), &r.stderr);
        assert_absent(&planted, &place("summary"), &r.summary);
        assert_absent(&planted, &place("outputs"), &r.outputs);
        let masks = mask(r);
        for secret in &planted {
            assert!(
                masks
                    .iter()
                    .any(|m| m == secret || m.contains(secret.as_str())),
                "{}: {secret:?} is not masked: {masks:?}",
                r.command
            );
        }
        for word in [
            "development",
            "dev",
            fx.ns.as_str(),
            "fm-testbed",
            "fm-deployer",
            "https://127.0.0.1:6443",
            "apiVersion: v1",
            "kind: Config",
            "deployer",
            "fm-deploy",
            "fm_app",
            "db.internal",
            "fm_llm_solver",
        ] {
            assert!(
                !masks.iter().any(|m| m == word),
                "{}: the word {word:?} is masked: {masks:?}",
                r.command
            );
        }
    }

    gh.sync_log().await;
    let github_bodies: String = gh
        .fake
        .state()
        .log
        .iter()
        .map(|l| format!("{} {} {}", l.method, l.path, l.body))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!github_bodies.is_empty(), "the runs talked to GitHub");
    assert_absent(&planted, "GitHub request", &github_bodies);
    assert_absent(&planted, "Prism log", &gh.prism_log().join("\n"));
    let slack = posts.lock().unwrap().join("\n");
    assert!(!slack.is_empty(), "the deploys notified Slack");
    assert_absent(&planted, "Slack message", &slack);

    let c = &fx.admin;
    let ns = fx.ns.as_str();
    let cluster = [
        objects::<Deployment>(c, ns, &[]).await,
        objects::<ReplicaSet>(c, ns, &[]).await,
        objects::<Pod>(c, ns, &[]).await,
        objects::<Service>(c, ns, &[]).await,
        objects::<ConfigMap>(c, ns, &[]).await,
        objects::<Event>(c, ns, &[]).await,
        objects::<Secret>(c, ns, &["app-secrets", "web-tls"]).await,
    ]
    .join("\n");
    assert!(cluster.contains("example/web:"), "objects were read back");
    assert_absent(&planted, "cluster object", &cluster);
    let secrets = objects::<Secret>(c, ns, &[]).await;
    assert!(
        secrets.contains(&base64::engine::general_purpose::STANDARD.encode(&database_url)),
        "the app Secret holds database-url (the one place it belongs)"
    );

    gh.assert_clean().await;
    gh.stop().await;
    fx.finish().await
}
