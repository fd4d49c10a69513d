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
    /// - the basic tier loses `dependencies` and `safety`: this machine's HTTPS to PyPI goes through
    ///   an intercepting proxy whose CA the image does not carry, so pip-audit cannot set up its
    ///   audit venv ("Failed to upgrade `pip`"), and safety's database host is not reachable (its
    ///   exit code 68); both fail closed, which
    ///   [`pull_request_into_development_is_judged_by_the_unchanged_example`] shows;
    Machine,
}

/// examples/fm-deploy.yml as a user adopting it on this testbed edits it, every edit here: each
/// environment's `namespace` becomes the test's (the deploy identity of rbac.yaml lives there) and
/// its `url` the test's router (fm-llm-solver.com has no DNS here: the smoke test and the
/// post-deploy gates call it); `fit` as above. Nothing else changes: gates, severities, tiers,
/// strategies and triggers are the example's.
fn policy(ns: &str, url: &str, fit: Fit) -> String {
    let mut text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml"),
    )
    .unwrap();
    let mut edit = |from: &str, to: &str| {
        assert!(
            text.contains(from),
            "examples/fm-deploy.yml no longer has `{from}`"
        );
        text = text.replace(from, to);
    };
    for env in ["dev", "staging", "prod"] {
        edit(
            &format!("namespace: fm-llm-solver-{env}\n"),
            &format!("namespace: {ns}\n"),
        );
    }
    for host in [
        "dev.fm-llm-solver.com",
        "staging.fm-llm-solver.com",
        "fm-llm-solver.com",
    ] {
        edit(
            &format!("    url: https://{host}\n"),
            &format!("    url: {url}\n"),
        );
    }
    if fit == Fit::Machine {
        edit("python: [\"3.10\"]", "python: [\"3.11\"]");
        edit(
            "python: [\"3.8\", \"3.9\", \"3.10\", \"3.11\"]",
            "python: [\"3.11\"]",
        );
        edit("os: [ubuntu-latest, windows-latest]", "os: [ubuntu-latest]");
        edit(
            "    exclude:\n      - {os: windows-latest, python: \"3.8\"}   # no service containers on Windows runners for 3.8 images\n",
            "",
        );
        edit(
            "gates: [format, lint, types, bandit, dependencies, safety, secrets, unit-tests]",
            "gates: [format, lint, types, bandit, secrets, unit-tests]",
        );
    }
    text
}

/// GitHub's `push` payload (tests/fixtures/events) for `branch` at `sha`.
fn push_payload(branch: &str, sha: &str) -> Value {
    let mut p: Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/events/push.branch.json"),
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
        let prom = self
            .fx
            .tb
            .var("FM_TESTBED_PROMETHEUS_URL")
            .unwrap()
            .to_string();
        Act::new(event, workflow, payload)
            .env("GITHUB_API_URL", &self.gh.url)
            .secret("GITHUB_TOKEN", support_github::TOKEN)
            .secret("KUBE_CONFIG", &self.kubeconfig)
            .secret(
                "DATABASE_URL",
                "postgres://app:pw-0d9b2b3f@db.internal:5432/app",
            )
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

/// Fails unless the latest check run `name` concluded `want`.
fn assert_concluded(checks: &[(String, Option<String>)], name: &str, want: &str) {
    assert_eq!(conclusion(checks, name), Some(want), "{name}: {checks:?}");
}

fn must_succeed(run: &ActRun) {
    assert!(run.success, "act failed ({:?}):\n{}", run.elapsed, run.log);
}

/// A push to `development`: the matrix job reads the policy, the one test cell pip-installs the
/// project and uploads its JUnit and Cobertura reports, and the deploy job's `pipeline` reads them
/// (report-only `unit-tests`), runs the basic tier, and deploys directly — the Deployment runs the
/// image build-and-push reported (by digest), the smoke test passes through the router, and the gate, decision and deploy
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
    // build-and-push's digest reaches the deploy: the Deployment runs `image@sha256:…`.
    let image = format!("{IMAGE}@{}", repo.context_digest());
    let mut bed = bed;
    bed.fx
        .serve_image(&image, "v1", "127.0.0.21")
        .await
        .unwrap();
    let run = bed
        .act("push", "development.yml", push_payload("development", &sha))
        .run(&repo, &bed.podman)
        .await;
    must_succeed(&run);
    assert_eq!(
        run.outputs("matrix").get("matrix").map(String::as_str),
        Some(
            r#"{"include":[{"services":["postgres","redis"]}],"os":["ubuntu-latest"],"python":["3.11"]}"#
        )
    );
    assert_eq!(run.job_results("tests"), vec![true]);
    assert!(
        run.artifacts.contains("tests-ubuntu-latest-py3.11"),
        "{:?}",
        run.artifacts
    );
    assert!(!run.ran("code-quality"), "gates run on pull requests only");
    let out = run.outputs("deploy");
    assert_eq!(
        out.get("decision").map(String::as_str),
        Some("allow"),
        "{out:?}"
    );
    assert_eq!(
        out.get("environment").map(String::as_str),
        Some("development")
    );
    assert_eq!(out.get("strategy").map(String::as_str), Some("direct"));
    assert_eq!(out.get("rolled-back").map(String::as_str), Some("false"));
    assert_eq!(bed.image_of(APP).await, Some(image));
    let checks = bed.checks(&sha);
    assert_concluded(&checks, "fm-deploy / decision", "success");
    let last_status: Vec<Option<String>> = bed
        .gh
        .fake
        .state()
        .deployments
        .iter()
        .filter(|d| d.environment == "development" && d.sha == sha)
        .map(|d| {
            d.statuses
                .last()
                .and_then(|s| s["state"].as_str().map(str::to_string))
        })
        .collect();
    assert_eq!(
        last_status,
        vec![Some("success".to_string())],
        "one GitHub Deployment, succeeded"
    );
    bed.finish().await;
}

/// A `pull_request` `opened` payload (octokit's webhook example) from `head` into `base`.
fn pull_request_payload(base: (&str, &str), head: (&str, &str)) -> Value {
    let mut p = support_github::pull_request_payload(false);
    p["number"] = 7.into();
    p["pull_request"]["number"] = 7.into();
    p["pull_request"]["base"]["ref"] = base.0.into();
    p["pull_request"]["base"]["sha"] = base.1.into();
    p["pull_request"]["head"]["ref"] = head.0.into();
    p["pull_request"]["head"]["sha"] = head.1.into();
    p
}

/// A pull request from `feature/x` into `development`, with the example policy and the planted
/// sample project as they are (only namespace and URL fitted): the one test cell asks for Python
/// 3.10, which this runner does not have, so setup-python fails, no report is uploaded, and the
/// `gates` job (run even so) blocks naming the missing cell; pip-audit and safety fail closed; the
/// planted lint and secret findings count. The decision check run says `failure`, and nothing is
/// deployed.
#[tokio::test]
async fn pull_request_into_development_is_judged_by_the_unchanged_example() {
    let bed = Bed::start("fm-act-pr").await;
    let repo = UserRepo::new(
        "sample-project",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Example),
        "development",
    );
    let base = repo.head();
    repo.branch("feature/x");
    let head = repo.commit("certsolver/extra.py", "VALUE = 1\n", "add extra");
    let run = bed
        .act(
            "pull_request",
            "development.yml",
            pull_request_payload(("development", &base), ("feature/x", &head)),
        )
        .run(&repo, &bed.podman)
        .await;
    assert!(!run.success, "{}", run.log);
    assert_eq!(run.job_results("tests"), vec![false], "{}", run.log);
    assert!(run.job_says(
        "tests",
        "setup-python stand-in: the runner has Python 3.11.2 only; 3.10 cannot be set up here"
    ));
    assert!(run.artifacts.is_empty(), "{:?}", run.artifacts);
    assert!(!run.ran("deploy"), "pull requests never deploy");
    let out = run.outputs("code-quality");
    run.assert_output("code-quality", "decision", "block");
    run.assert_says(
        "code-quality",
        "no report from matrix cell(s) `ubuntu-latest-py3.10`",
    );
    let report: Value = serde_json::from_str(out.get("report").expect("a report output")).unwrap();
    let failed: Vec<&str> = report["gates"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["failed"] == true)
        .filter_map(|g| g["gate"].as_str())
        .collect();
    // pip-audit and safety cannot reach what they audit against here (see `Fit::Machine`) and fail
    // closed saying why; so does the report-only unit-tests gate with its cell's report missing.
    for gate in ["dependencies", "safety", "unit-tests"] {
        assert!(
            failed.contains(&gate),
            "{gate} should fail closed: {failed:?}"
        );
    }
    run.assert_says(
        "code-quality",
        "safety could not fetch its vulnerability database",
    );
    run.assert_says("code-quality", "printed no report (exit code 1)");
    let checks = bed.checks(&head);
    assert_concluded(&checks, "fm-deploy / decision", "failure");
    assert_concluded(&checks, "fm-deploy / unit-tests", "failure");
    assert_concluded(&checks, "fm-deploy / lint", "failure");
    assert_eq!(bed.image_of(APP).await, None);
    bed.finish().await;
}

/// The scheduled cleanup (`schedule`, cron of cleanup.yml) as the example wires it: only the
/// kubeconfig, no database or TLS inputs (production's `tls_secret: ssl-cert` is the deploy's
/// business; cleanup only scales and never writes a Secret). With nothing released it ends green
/// saying so, and the cluster is untouched.
#[tokio::test]
async fn scheduled_cleanup_without_a_release_has_nothing_to_clean_up() {
    let bed = Bed::start("fm-act-cleanup").await;
    let repo = UserRepo::new(
        "sample-project-clean",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Machine),
        "main",
    );
    let run = bed
        .act(
            "schedule",
            "cleanup.yml",
            serde_json::json!({"schedule": "17 3 * * *"}),
        )
        .run(&repo, &bed.podman)
        .await;
    must_succeed(&run);
    assert_eq!(run.job_results("cleanup"), vec![true]);
    run.assert_says("cleanup", "nothing to clean up");
    assert!(!run.job_says("cleanup", "tls-cert"), "{}", run.log);
    assert_eq!(bed.image_of(&format!("{APP}-blue")).await, None);
    assert_eq!(bed.image_of(&format!("{APP}-green")).await, None);
    bed.finish().await;
}

/// A push to `hotfix/urgent` (hotfix.yml's `hotfix/**`, the policy's `hotfix/*`): the emergency
/// path runs the comprehensive tier in one `pipeline` job; container-scan cannot run (no trivy
/// here) and fails closed, so nothing reaches production.
#[tokio::test]
async fn push_to_a_hotfix_branch_runs_the_comprehensive_gates_and_blocks_without_trivy() {
    let bed = Bed::start("fm-act-hotfix").await;
    let repo = UserRepo::new(
        "sample-project-clean",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Machine),
        "hotfix/urgent",
    );
    let sha = repo.head();
    // hotfix.yml passes `sentry-org` / `sentry-project`, with which the action requires the
    // auth token: without the SENTRY_AUTH_TOKEN secret the job fails before any gate runs.
    let run = bed
        .act("push", "hotfix.yml", push_payload("hotfix/urgent", &sha))
        .secret("SENTRY_AUTH_TOKEN", "sntrys_test_0d9b2b3f")
        .run(&repo, &bed.podman)
        .await;
    assert!(!run.success, "{}", run.log);
    assert_eq!(run.job_results("tests"), vec![true], "{}", run.log);
    let out = run.outputs("pipeline");
    run.assert_output("pipeline", "environment", "production");
    assert_eq!(out.get("tier").map(String::as_str), Some("comprehensive"));
    assert_eq!(out.get("decision").map(String::as_str), Some("block"));
    run.assert_says(
        "pipeline",
        "container-scan     block           failed to start",
    );
    let checks = bed.checks(&sha);
    assert_concluded(&checks, "fm-deploy / container-scan", "failure");
    assert_eq!(bed.image_of(&format!("{APP}-blue")).await, None);
    bed.finish().await;
}

/// rollback.yml dispatched for `staging` before anything was deployed there: the rollback has no
/// earlier release to go back to and fails closed saying so; the cluster is untouched.
#[tokio::test]
async fn manual_rollback_with_nothing_to_go_back_to_fails_closed() {
    let bed = Bed::start("fm-act-rollback").await;
    let repo = UserRepo::new(
        "sample-project-clean",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Machine),
        "main",
    );
    let run = bed
        .act(
            "workflow_dispatch",
            "rollback.yml",
            serde_json::json!({"inputs": {"environment": "staging", "dry-run": false}}),
        )
        .input("environment", "staging")
        .input("dry-run", "false")
        .run(&repo, &bed.podman)
        .await;
    assert!(!run.success, "{}", run.log);
    assert_eq!(run.job_results("rollback"), vec![false]);
    run.assert_says(
        "rollback",
        "rollback `staging`: the state record has no earlier successful image than (none)",
    );
    assert_eq!(bed.image_of(APP).await, None);
    bed.finish().await;
}

/// setup.yml dispatched with `dry-run: false` and the admin token: branch protection for
/// development, staging and main with the policy's reviews and required checks, and the
/// environments with reviewers (staging, production) written to the GitHub stand-in;
/// development's protection (`branches: all`, no reviewers) needs no environment rule.
#[tokio::test]
async fn setup_writes_branch_and_environment_protection() {
    let bed = Bed::start("fm-act-setup").await;
    for team in ["qa-team", "senior-developers", "devops", "security-team"] {
        bed.gh.fake.add_team("org", team);
    }
    let repo = UserRepo::new(
        "sample-project-clean",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Machine),
        "main",
    );
    let run = bed
        .act(
            "workflow_dispatch",
            "setup.yml",
            serde_json::json!({"inputs": {"dry-run": false}}),
        )
        .secret("FM_DEPLOY_ADMIN_TOKEN", support_github::TOKEN)
        .input("dry-run", "false")
        .run(&repo, &bed.podman)
        .await;
    must_succeed(&run);
    let (p, envs) = {
        let state = bed.gh.fake.state();
        let envs: Vec<String> = state.environments.iter().map(|e| e.name.clone()).collect();
        (state.protections.clone(), envs)
    };
    for branch in ["development", "staging", "main"] {
        let checks = p
            .get(branch)
            .and_then(|b| b.status_checks.clone())
            .unwrap_or_else(|| panic!("no required checks on {branch}: {p:?}"));
        assert!(
            checks.1.contains(&"fm-deploy / decision".to_string()),
            "{checks:?}"
        );
    }
    assert_eq!(p.get("main").and_then(|b| b.reviews), Some((3, true)));
    assert!(p.get("main").is_some_and(|b| b.required_signatures));
    assert_eq!(envs, vec!["production".to_string(), "staging".to_string()]);
    bed.finish().await;
}

/// A push to `main`: the comprehensive tier runs every gate the example names; `container-scan`
/// needs trivy, which this machine cannot install (not on PyPI, npm or Debian; only its own image
/// on GitHub's registry), so it fails closed, the decision is `block`, the deploy job is skipped
/// and production has no Deployment.
#[tokio::test]
async fn push_to_main_blocks_when_the_container_scan_cannot_run() {
    let bed = Bed::start("fm-act-main").await;
    let repo = UserRepo::new(
        "sample-project-clean",
        &policy(&bed.fx.ns, &bed.router.url(), Fit::Machine),
        "main",
    );
    let sha = repo.head();
    let run = bed
        .act("push", "production.yml", push_payload("main", &sha))
        .run(&repo, &bed.podman)
        .await;
    assert_eq!(run.job_results("tests"), vec![true], "{}", run.log);
    run.assert_output("code-quality", "decision", "block");
    run.assert_says(
        "code-quality",
        "container-scan     block           failed to start",
    );
    assert!(
        !run.ran("deploy"),
        "a blocked decision skips the deploy job"
    );
    let checks = bed.checks(&sha);
    assert_concluded(&checks, "fm-deploy / container-scan", "failure");
    assert_concluded(&checks, "fm-deploy / decision", "failure");
    assert_eq!(bed.image_of(&format!("{APP}-blue")).await, None);
    bed.finish().await;
}
