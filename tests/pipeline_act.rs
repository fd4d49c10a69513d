//! The example workflows, unchanged, run end to end the way a user's repository runs them: through
//! nektos/act on podman (`support_act`), with `uses: org/fm-deploy-action@<sha>` mapped to this
//! checkout and the marketplace actions to the local stand-ins under `tests/act/actions`, against
//! the Kubernetes testbed (deploying as the ServiceAccount of `examples/deploy/rbac.yaml`, passed as
//! the `KUBE_CONFIG` secret; the stand-in kubelet and router of `support_k8s` make pods Ready and
//! serve them), the testbed's Prometheus (`vars.PROMETHEUS_URL`) and the GitHub stand-in (Prism in
//! front of the fake, reached through `GITHUB_API_URL`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_act;
mod support_gates;
mod support_github;
mod support_image;
mod support_k8s;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::Value;
use std::path::PathBuf;
use support_act::{Act, ActRun, Podman, UserRepo};
use support_k8s::Fixture;

/// How far the test's copy of the policy departs from the example.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Only the environments' namespace and URL (see [`policy`]).
    Example,
    /// Also what this machine cannot run, each for its reason:
    /// - matrix cells: the runner image has Debian bookworm's Python 3.11 only and there is no
    ///   Windows runner, so `python` becomes ["3.11"] and `windows-latest` goes (the setup-python
    ///   stand-in refuses any other version rather than run a cell under the wrong one);
    /// - the basic tier loses `dependencies` and `safety`: in the action's image pip-audit's venv
    ///   has no pip ("No module named pip"; it ends unparseable) and safety needs its online
    ///   database ("unable to reach the server"); both fail closed, which
    ///   [`pull_request_into_development_is_judged_by_the_unchanged_example`] shows;
    /// - two policy lines get detect-secrets' `# pragma: allowlist secret`: its Secret Keyword
    ///   plugin reports the example's own `tls_secret: ssl-cert` and `datadog_api_key:
    ///   DATADOG_API_KEY` (names, not secrets) as critical secrets on every repository using it.
    Machine,
}

/// examples/fm-deploy.yml as a user adopting it on this testbed edits it, every edit here: each
/// environment's `namespace` becomes the test's (the deploy identity of rbac.yaml lives there) and
/// its `url` the test's router (fm-llm-solver.com has no DNS here: the smoke test and the
/// post-deploy gates call it); `fit` as above. Nothing else changes: gates, severities, tiers,
/// strategies and triggers are the example's.
fn policy(ns: &str, url: &str, fit: Fit) -> String {
    let mut text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml"))
            .unwrap();
    let mut edit = |from: &str, to: &str| {
        assert!(text.contains(from), "examples/fm-deploy.yml no longer has `{from}`");
        text = text.replace(from, to);
    };
    for env in ["dev", "staging", "prod"] {
        edit(
            &format!("namespace: fm-llm-solver-{env}\n"),
            &format!("namespace: {ns}\n"),
        );
    }
    for host in ["dev.fm-llm-solver.com", "staging.fm-llm-solver.com", "fm-llm-solver.com"] {
        edit(&format!("    url: https://{host}\n"), &format!("    url: {url}\n"));
    }
    if fit == Fit::Machine {
        edit("python: [\"3.10\"]", "python: [\"3.11\"]");
        edit("python: [\"3.8\", \"3.9\", \"3.10\", \"3.11\"]", "python: [\"3.11\"]");
        edit("os: [ubuntu-latest, windows-latest]", "os: [ubuntu-latest]");
        edit(
            "    exclude:\n      - {os: windows-latest, python: \"3.8\"}   # no service containers on Windows runners for 3.8 images\n",
            "",
        );
        edit(
            "gates: [format, lint, types, bandit, dependencies, safety, secrets, unit-tests]",
            "gates: [format, lint, types, bandit, secrets, unit-tests]",
        );
        for line in ["    tls_secret: ssl-cert", "  datadog_api_key: DATADOG_API_KEY"] {
            edit(&format!("{line}\n"), &format!("{line}   # pragma: allowlist secret\n"));
        }
    }
    text
}

/// GitHub's `push` payload (tests/fixtures/events) for `branch` at `sha`.
fn push_payload(branch: &str, sha: &str) -> Value {
    let mut p: Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events/push.branch.json"),
        )
        .unwrap(),
    )
    .unwrap();
    p["ref"] = Value::String(format!("refs/heads/{branch}"));
    p["after"] = Value::String(sha.into());
    p["head_commit"]["id"] = Value::String(sha.into());
    p
}

/// Everything one scenario runs against.
struct Bed {
    fx: Fixture,
    gh: support_github::Testbed,
    podman: Podman,
    kubeconfig: String,
    router: support_k8s::router::TestRouter,
}

const APP: &str = "fm-llm-solver-web";
const IMAGE: &str = "ghcr.io/org/fm-llm-solver";

impl Bed {
    async fn start(prefix: &str) -> Bed {
        let fx = Fixture::new(prefix).await.unwrap();
        // The example's app has its own Secret name; rbac.yaml says to add it to the Role.
        fx.deploy
            .allow_secret(&fx.admin, &format!("{APP}-secrets"))
            .await
            .unwrap();
        let kubeconfig = std::fs::read_to_string(fx.deployer_kubeconfig()).unwrap();
        let router = fx.router(APP).await.unwrap();
        Bed {
            gh: support_github::Testbed::start().await,
            podman: Podman::start(),
            kubeconfig,
            router,
            fx,
        }
    }

    /// `act` with the secrets and variables the example workflows read.
    fn act(&self, event: &str, workflow: &str, payload: Value) -> Act {
        let prom = self.fx.tb.var("FM_TESTBED_PROMETHEUS_URL").unwrap().to_string();
        Act::new(event, workflow, payload)
            .env("GITHUB_API_URL", &self.gh.url)
            .secret("GITHUB_TOKEN", support_github::TOKEN)
            .secret("KUBE_CONFIG", &self.kubeconfig)
            .secret("DATABASE_URL", "postgres://app:pw-0d9b2b3f@db.internal:5432/app")
            .secret("REDIS_URL", "redis://:pw-0d9b2b3f@redis.internal:6379/0")
            .var("PROMETHEUS_URL", &prom)
    }

    async fn image_of(&self, name: &str) -> Option<String> {
        let d = Api::<Deployment>::namespaced(self.fx.admin.clone(), &self.fx.ns)
            .get_opt(name)
            .await
            .unwrap()?;
        d.spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
    }

    /// (name, conclusion) of every check run on `sha`, in creation order.
    fn checks(&self, sha: &str) -> Vec<(String, Option<String>)> {
        self.gh
            .fake
            .state()
            .check_runs
            .iter()
            .filter(|c| c.head_sha == sha)
            .map(|c| (c.name.clone(), c.conclusion.clone()))
            .collect()
    }

    async fn finish(self) {
        self.gh.assert_clean().await;
        self.gh.stop().await;
        drop(self.router);
        self.fx.finish().await.unwrap();
    }
}

fn conclusion<'a>(checks: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    checks
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, c)| c.as_deref())
}

fn must_succeed(run: &ActRun) {
    assert!(run.success, "act failed ({:?}):\n{}", run.elapsed, run.log);
}

/// A push to `development`: the matrix job reads the policy, the one test cell pip-installs the
/// project and uploads its JUnit and Cobertura reports, and the deploy job's `pipeline` reads them
/// (report-only `unit-tests`), runs the basic tier, and deploys directly — the Deployment runs the
/// commit's image, the smoke test passes through the router, and the gate, decision and deploy
/// check runs and the GitHub Deployment reach the GitHub stand-in.
#[tokio::test]
async fn push_to_development_runs_the_gates_then_deploys_directly() {
    let bed = Bed::start("fm-act-dev").await;
    let repo = UserRepo::new(
        "sample-project-clean",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Machine),
        "development",
    );
    let sha = repo.head();
    let mut bed = bed;
    bed.fx
        .serve_image(&format!("{IMAGE}:{sha}"), "v1", "127.0.0.21")
        .await
        .unwrap();
    let run = bed
        .act("push", "development.yml", push_payload("development", &sha))
        .run(&repo, &bed.podman)
        .await;
    eprintln!("{}", run.log);
    must_succeed(&run);
    assert_eq!(
        run.outputs("matrix").get("matrix").map(String::as_str),
        Some(r#"{"include":[{"os":"ubuntu-latest","python":"3.11","services":["postgres","redis"]}]}"#)
    );
    assert_eq!(run.job_results("tests"), vec![true]);
    assert!(run.artifacts.contains("tests-ubuntu-latest-py3.11"), "{:?}", run.artifacts);
    assert!(!run.ran("gates"), "gates run on pull requests only");
    let out = run.outputs("deploy");
    assert_eq!(out.get("decision").map(String::as_str), Some("allow"), "{out:?}");
    assert_eq!(out.get("environment").map(String::as_str), Some("development"));
    assert_eq!(out.get("strategy").map(String::as_str), Some("direct"));
    assert_eq!(out.get("rolled-back").map(String::as_str), Some("false"));
    assert_eq!(bed.image_of(APP).await, Some(format!("{IMAGE}:{sha}")));
    let checks = bed.checks(&sha);
    eprintln!("{checks:?}");
    assert_eq!(conclusion(&checks, "fm-deploy / decision"), Some("success"));
    bed.finish().await;
}
