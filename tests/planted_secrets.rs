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

mod support_bluegreen;
mod support_github;
mod support_k8s;
mod support_slack;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::Api;
use kube::api::ListParams;
use std::path::{Path, PathBuf};
use support_bluegreen::scenario::{Scenario, V1, V2};
use support_k8s::Fixture;
use support_k8s::router::TestRouter;

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
const PROM_PASSWORD: &str = "planted-prom-pass-3c8d";

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

/// The token of the deploy identity's kubeconfig (the first document; JSON, i.e. flow-style YAML).
fn deployer_token(text: &str) -> String {
    let docs = fm_deploy::policy::yaml::parse_stream(text, &fm_deploy::budget::KUBECONFIG).unwrap();
    let kc = fm_deploy::policy::yaml::to_json(&docs[0]);
    kc["users"][0]["user"]["token"]
        .as_str()
        .expect("the deploy identity's kubeconfig holds a token")
        .to_string()
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
    branch: String,
    github_url: String,
    inputs: Vec<(String, String)>,
    planted: Vec<String>,
}

impl Harness {
    /// Runs `command` in Actions with every secret input set; `event` is `push` or
    /// `workflow_dispatch` (both for the harness's branch).
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
            .env("GITHUB_REF", format!("refs/heads/{}", self.branch))
            .env("GITHUB_SHA", "6113728f27ae82c7b1a177c8d03f9e96e0adf246")
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

impl Harness {
    /// A workspace holding `policy`, push and dispatch payloads for `branch`, and every secret
    /// input planted: the testbed's deployer kubeconfig (with more users carrying the other
    /// credential kinds), the webhook `hook`, URLs with passwords, TLS material, API keys, and a
    /// Prometheus URL with a password when `prometheus` is given.
    fn new(
        branch: &str,
        policy: &str,
        deployer: &Path,
        github_url: &str,
        hook: &str,
        prometheus: Option<&str>,
    ) -> anyhow::Result<Harness> {
        let dir = tempfile::tempdir()?;
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".github"))?;
        std::fs::write(ws.join(".github/fm-deploy.yml"), policy)?;
        for (event, fixture) in [
            ("push", "push.branch.json"),
            ("workflow_dispatch", "workflow_dispatch.json"),
        ] {
            let mut payload: serde_json::Value = serde_json::from_slice(&std::fs::read(
                root().join("tests/fixtures/events").join(fixture),
            )?)?;
            payload["ref"] = format!("refs/heads/{branch}").into();
            std::fs::write(
                dir.path().join(format!("{event}.json")),
                serde_json::to_vec(&payload)?,
            )?;
        }
        let (kubeconfig_b64, kubeconfig_text) = kubeconfig_input(deployer);
        let kube_token = deployer_token(&kubeconfig_text);
        let database_url =
            format!("postgres://fm_app:{DB_PASSWORD}@db.internal:5432/fm_llm_solver");
        let redis_url = format!("redis://:{REDIS_PASSWORD}@redis.internal:6379/0");
        let sentry_dsn = format!("https://{SENTRY_KEY}@o1.ingest.sentry.io/42");
        let mut inputs: Vec<(String, String)> = [
            ("INPUT_GITHUB-TOKEN", support_github::TOKEN.to_string()),
            ("INPUT_KUBECONFIG", kubeconfig_b64.clone()),
            ("INPUT_SLACK-WEBHOOK", hook.to_string()),
            ("INPUT_DATABASE-URL", database_url),
            ("INPUT_REDIS-URL", redis_url),
            ("INPUT_TLS-CERT", pem("CERTIFICATE", TLS_CERT_LINE)),
            ("INPUT_TLS-KEY", pem("PRIVATE KEY", TLS_KEY_LINE)),
            ("INPUT_DATADOG-API-KEY", DATADOG_KEY.to_string()),
            ("INPUT_SENTRY-DSN", sentry_dsn),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut planted: Vec<String> = [
            support_github::TOKEN,
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
        if let Some(url) = prometheus {
            let with_password = url.replacen("://", &format!("://reader:{PROM_PASSWORD}@"), 1);
            inputs.push(("INPUT_PROMETHEUS-URL".into(), with_password));
            planted.push(PROM_PASSWORD.into());
        }
        Ok(Harness {
            dir,
            branch: branch.to_string(),
            github_url: github_url.to_string(),
            inputs,
            planted,
        })
    }

    /// Runs each `(command, event, image tag)` and asserts its exit code is 0.
    async fn run_all(&self, steps: &[(&str, &str, &str)]) -> Vec<Ran> {
        let mut runs = Vec::new();
        for (command, event, tag) in steps {
            let r = self.run(command, event, tag).await;
            eprintln!(
                "── {command} ({event}, {tag}): exit {:?}\n{}",
                r.code,
                r.stdout
                    .lines()
                    .filter(|l| !l.starts_with("::add-mask::"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert_eq!(
                r.code,
                Some(0),
                "{command}:\n{}\n{}\n{}",
                r.stdout,
                r.stderr,
                r.summary
            );
            runs.push(r);
        }
        runs
    }

    /// No planted credential in any run's stdout (outside its `::add-mask::` line), stderr,
    /// summary or outputs; every one of them masked; none of `words` masked.
    fn assert_runs_clean(&self, runs: &[Ran], words: &[&str]) {
        for r in runs {
            let place = |what: &str| format!("{} {what}", r.command);
            let (masks, printed): (Vec<&str>, Vec<&str>) = r
                .stdout
                .lines()
                .partition(|l| l.starts_with("::add-mask::"));
            let masks: Vec<&str> = masks
                .iter()
                .filter_map(|l| l.strip_prefix("::add-mask::"))
                .collect();
            assert_absent(&self.planted, &place("stdout"), &printed.join("\n"));
            assert_absent(&self.planted, &place("stderr"), &r.stderr);
            assert_absent(&self.planted, &place("summary"), &r.summary);
            assert_absent(&self.planted, &place("outputs"), &r.outputs);
            for secret in &self.planted {
                assert!(
                    masks.iter().any(|m| m.contains(secret.as_str())),
                    "{}: {secret:?} is not masked: {masks:?}",
                    r.command
                );
            }
            for word in words {
                assert!(
                    !masks.contains(word),
                    "{}: the word {word:?} is masked: {masks:?}",
                    r.command
                );
            }
        }
    }

    /// No planted credential in what GitHub (through Prism) or Slack received, nor in any object
    /// in `ns` except the Secrets meant to hold them (`web-secrets`, `web-tls`); with
    /// `app_secret`, `web-secrets` holds database-url.
    async fn assert_nothing_leaked(
        &self,
        gh: &support_github::Testbed,
        slack: &[String],
        client: &kube::Client,
        ns: &str,
        app_secret: bool,
    ) {
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
        assert_absent(&self.planted, "GitHub request", &github_bodies);
        assert_absent(&self.planted, "Prism log", &gh.prism_log().join("\n"));
        assert!(!slack.is_empty(), "the deploys notified Slack");
        assert_absent(&self.planted, "Slack message", &slack.join("\n"));
        let cluster = [
            objects::<Deployment>(client, ns, &[]).await,
            objects::<ReplicaSet>(client, ns, &[]).await,
            objects::<Pod>(client, ns, &[]).await,
            objects::<Service>(client, ns, &[]).await,
            objects::<ConfigMap>(client, ns, &[]).await,
            objects::<Event>(client, ns, &[]).await,
            objects::<Secret>(client, ns, &["web-secrets", "web-tls"]).await,
        ]
        .join("\n");
        assert!(cluster.contains("example/web:"), "objects were read back");
        assert_absent(&self.planted, "cluster object", &cluster);
        let secrets = objects::<Secret>(client, ns, &[]).await;
        let db = base64::engine::general_purpose::STANDARD.encode(
            self.inputs
                .iter()
                .find(|(k, _)| k == "INPUT_DATABASE-URL")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default(),
        );
        assert!(
            !app_secret || secrets.contains(&db),
            "the app Secret holds database-url (the one place it belongs)"
        );
    }
}

/// Words that look like parts of the inputs and must never be masked.
const WORDS: &[&str] = &[
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
    "reader",
];

/// Planted credentials in every secret input; plan, gates, matrix, pipeline (a first deploy and
/// an upgrade), rollback, deploy, promote and cleanup (nothing to do on a direct environment) and
/// setup through the binary: no credential leaks anywhere the run writes, and no word is masked.
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
    // The policy names a TLS Secret: the Role gets it, as examples/deploy/rbac.yaml says.
    fx.deploy.allow_secret(&fx.admin, "web-tls").await?;
    let deployer = fx.deployer_kubeconfig();
    let h = Harness::new(
        "development",
        &policy(&fx.ns, &router.url()),
        &deployer,
        &gh.url,
        &hook,
        None,
    )?;
    let runs = h
        .run_all(&[
            ("plan", "push", "v1"),
            ("gates", "push", "v1"),
            ("matrix", "push", "v1"),
            ("pipeline", "push", "v1"),
            ("pipeline", "push", "v2"),
            ("rollback", "workflow_dispatch", "v2"),
            ("deploy", "push", "v3"),
            ("promote", "workflow_dispatch", "v3"),
            ("cleanup", "workflow_dispatch", "v3"),
            ("setup", "workflow_dispatch", "v3"),
        ])
        .await;
    let mut words = WORDS.to_vec();
    words.extend(["development", "dev", fx.ns.as_str()]);
    h.assert_runs_clean(&runs, &words);
    let slack = posts.lock().unwrap().clone();
    h.assert_nothing_leaked(&gh, &slack, &fx.admin, &fx.ns, true)
        .await;
    gh.assert_clean().await;
    gh.stop().await;
    fx.finish().await
}

fn blue_green_policy(ns: &str, live: &str, preview: &str) -> String {
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
    secrets: {{database-url: database-url, redis-url: redis-url, dd-api-key: datadog-api-key, sentry-dsn: sentry-dsn}}
    tls_secret: web-tls
    blue_green:
      service: web
      preview_service: web-preview
      preview_url: {preview}
      monitor: 4s
      keep_previous: 1s
      manual_promote: true
    rollback:
      sample_every: 1s
      on_no_data: hold
      triggers:
        - {{name: health, probe: health_path, failures_above: 50%, for: 3s}}
"#
    )
}

/// The same planted credentials through a production blue-green release: pipeline (blue),
/// pipeline (green, paused before the switch), promote, rollback and cleanup — the commands with
/// the most to print (timelines, colours, monitoring) — leak nothing and mask no word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_credentials_never_leak_from_blue_green() -> anyhow::Result<()> {
    let s = Scenario::start("fm-planted-bg", &[V1, V2], false).await?;
    let preview = TestRouter::start(&s.client, &s.ns.name, "web-preview", s.book.clone()).await?;
    let gh = support_github::Testbed::start().await;
    let (hook, posts) =
        support_slack::stand_in(&format!("/services/T000/B000/{SLACK_SECRET}")).await;
    s.deploy.allow_secret(&s.client, "web-tls").await?;
    let deployer = s.deploy.kubeconfig.clone();
    let h = Harness::new(
        "main",
        &blue_green_policy(&s.ns.name, &s.live.url(), &preview.url()),
        &deployer,
        &gh.url,
        &hook,
        Some(&s.prom.url),
    )?;
    let runs = h
        .run_all(&[
            ("pipeline", "push", "v1"),
            ("pipeline", "push", "v2"),
            ("promote", "workflow_dispatch", "v2"),
            ("rollback", "workflow_dispatch", "v2"),
            ("cleanup", "workflow_dispatch", "v2"),
        ])
        .await;
    assert_eq!(s.selector().await.as_deref(), Some("blue"), "rolled back");
    let mut words = WORDS.to_vec();
    words.extend(["production", "main", "blue", "green", s.ns.name.as_str()]);
    h.assert_runs_clean(&runs, &words);
    let slack = posts.lock().unwrap().clone();
    // Blue-green applies the app's Secret like every strategy.
    h.assert_nothing_leaked(&gh, &slack, &s.client, &s.ns.name, true)
        .await;
    gh.assert_clean().await;
    gh.stop().await;
    Ok(())
}
