//! The policy loader against the bundled example and a catalogue of broken files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use fm_deploy::policy::model::{Action, NoDataPolicy, ShiftMode, StrategyKind, TriggerSource};
use fm_deploy::policy::{self, load_str};
use std::path::Path;
use std::time::Duration;

fn example() -> policy::Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml");
    match policy::load_file(&path) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The bundled example encodes the guide: three environments, reviews 1/2/3, both extra branch kinds.
#[test]
fn example_encodes_the_guide_branches() {
    let p = example();
    let rule = |b: &str| {
        p.branch_rule(b)
            .map(|r| (r.environment.clone(), r.tier.clone(), r.reviews))
    };
    assert_eq!(
        rule("development"),
        Some((Some("development".into()), "basic".into(), 1))
    );
    assert_eq!(
        rule("staging"),
        Some((Some("staging".into()), "enhanced".into(), 2))
    );
    assert_eq!(
        rule("main"),
        Some((Some("production".into()), "comprehensive".into(), 3))
    );
    assert_eq!(
        rule("hotfix/cve-2024-1"),
        Some((Some("production".into()), "comprehensive".into(), 1))
    );
    assert_eq!(
        rule("feature/user-dashboard"),
        Some((None, "basic".into(), 0))
    );
    assert_eq!(rule("feature/a/b"), None, "`*` must not cross `/`");
    assert!(p.branch_rule("main").is_some_and(|r| r.signed_commits));
    assert!(p.branch_rule("hotfix/x").is_some_and(|r| r.emergency));
}

/// Tiers accumulate through `extends`, in order, and carry the production coverage minimum.
#[test]
fn example_tiers_extend() {
    let p = example();
    let basic = &p.tiers["basic"].gates;
    let enhanced = &p.tiers["enhanced"].gates;
    let comprehensive = &p.tiers["comprehensive"];
    assert_eq!(basic.len(), 8);
    assert_eq!(&enhanced[..8], &basic[..]);
    assert!(enhanced.ends_with(&[
        "integration-tests".into(),
        "performance".into(),
        "container-scan".into(),
        "e2e".into()
    ]));
    assert!(comprehensive.gates.ends_with(&[
        "security-tests".into(),
        "licenses".into(),
        "compliance".into()
    ]));
    assert_eq!(comprehensive.coverage_min.map(|r| r.0), Some(0.8));
    assert_eq!(comprehensive.matrix.as_deref(), Some("full"));
    assert_eq!(p.matrices["full"].python, ["3.8", "3.9", "3.10", "3.11"]);
}

/// Every threshold of the guide is in the example: security severities, zero lint errors,
/// performance budgets, coverage 80 %.
#[test]
fn example_thresholds() {
    let p = example();
    assert_eq!(p.gates["lint"].block_over, Some(0));
    let bandit = &p.gates["bandit"].severity;
    assert_eq!(
        bandit.get(&fm_deploy::gates::finding::Severity::Critical),
        Some(&Action::Block)
    );
    assert_eq!(
        bandit.get(&fm_deploy::gates::finding::Severity::High),
        Some(&Action::NeedsApproval)
    );
    let b = p.gates["performance"].budgets.clone().expect("budgets");
    assert_eq!(b.page_load, Some(Duration::from_secs(3)));
    assert_eq!(b.api, Some(Duration::from_secs(1)));
    assert_eq!(b.certificate_generation, Some(Duration::from_secs(60)));
    assert!(b.error_rate.is_some_and(|r| (r.0 - 0.001).abs() < 1e-12));
    assert_eq!(
        p.environments["production"].coverage_min.map(|r| r.0),
        Some(0.8)
    );
}

/// Production is blue-green with the guide's four rollback triggers and windows.
#[test]
fn example_production_triggers() {
    let p = example();
    let prod = &p.environments["production"];
    assert_eq!(prod.strategy, StrategyKind::BlueGreen);
    assert_eq!(prod.replicas, 3);
    let a = prod.autoscaling.clone().expect("autoscaling");
    assert_eq!((a.min, a.max), (3, 10));
    let bg = prod.blue_green.clone().expect("blue_green");
    assert_eq!(bg.monitor, Duration::from_secs(300));
    assert_eq!(bg.keep_previous, Duration::from_secs(86_400));
    assert_eq!(bg.shift.steps, [10, 50, 100]);
    assert_eq!(bg.shift.mode, ShiftMode::ReplicaRatio);
    let r = &prod.rollback;
    assert_eq!(r.on_no_data, NoDataPolicy::Hold);
    let t: Vec<(&str, f64, u64)> = r
        .triggers
        .iter()
        .map(|t| (t.name.as_str(), t.above, t.for_.as_secs()))
        .collect();
    assert_eq!(
        t,
        [
            ("error-rate", 0.01, 120),
            ("latency-p95", 5.0, 180),
            ("health", 0.5, 60),
            ("memory", 0.95, 120)
        ]
    );
    match &r.triggers[0].source {
        TriggerSource::Prometheus { query_window, .. } => {
            assert_eq!(
                query_window.as_ref(),
                None,
                "not given: read from the query"
            );
            assert_eq!(
                fm_deploy::deploy::triggers::trigger_query_window(&r.triggers[0]),
                Duration::from_secs(60)
            );
        }
        TriggerSource::Probe { .. } => panic!("error-rate is a Prometheus trigger"),
    }
    match &r.triggers[2].source {
        TriggerSource::Probe { path } => assert_eq!(path, "/health"),
        TriggerSource::Prometheus { .. } => panic!("health is a probe trigger"),
    }
    assert_eq!(p.environments["development"].strategy, StrategyKind::Direct);
    assert_eq!(p.environments["staging"].strategy, StrategyKind::Rolling);
    assert_eq!(p.environments["staging"].post_deploy.len(), 4);
}

fn problems(text: &str) -> String {
    match load_str(text, Path::new(".github/fm-deploy.yml")) {
        Ok(_) => panic!("policy unexpectedly valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = r#"version: 1
app: {name: web, image: ghcr.io/org/web}
branches:
  main: {environment: production, tier: basic}
tiers:
  basic: [lint]
gates:
  lint: {run: [flake8, .], parser: flake8}
environments:
  production:
    namespace: web-prod
    url: https://web.example
    strategy: direct
"#;

/// A minimal policy is valid: the catalogue below breaks exactly one thing at a time.
#[test]
fn minimal_policy_is_valid() {
    assert!(load_str(BASE, Path::new("p.yml")).is_ok());
}

macro_rules! bad_policy {
    ($name:ident, $doc:literal, $from:expr, $to:expr) => {
        #[doc = $doc]
        #[test]
        fn $name() {
            let text = BASE.replacen($from, $to, 1);
            assert_ne!(text, BASE, "the replacement must change the policy");
            insta::assert_snapshot!(problems(&text));
        }
    };
}

bad_policy!(
    unknown_top_key,
    "An unknown top-level key is named with a suggestion.",
    "tiers:",
    "tier:"
);
bad_policy!(
    unknown_branch_key,
    "A misspelt branch key gets a did-you-mean.",
    "tier: basic}",
    "tier: basic, enviroment: x}"
);
bad_policy!(
    wrong_type,
    "A list where a mapping belongs names both types.",
    "app: {name: web, image: ghcr.io/org/web}",
    "app: [web]"
);
bad_policy!(
    unknown_gate_in_tier,
    "A tier naming an unknown gate suggests the close one.",
    "basic: [lint]",
    "basic: [lnit]"
);
bad_policy!(
    extends_cycle,
    "`extends` cycles are refused.",
    "basic: [lint]",
    "basic: {extends: full, add: [lint]}\n  full: {extends: basic}"
);
bad_policy!(
    bad_glob,
    "A branch glob that does not compile is an error.",
    "main: {",
    "\"main[\": {"
);
bad_policy!(
    bad_duration,
    "Durations need units and a valid shape.",
    "parser: flake8}",
    "parser: flake8, timeout: 10}"
);
bad_policy!(
    unknown_parser,
    "An unknown parser lists the close one.",
    "parser: flake8}",
    "parser: flake9}"
);
bad_policy!(
    unknown_environment,
    "A branch deploying to an unknown environment is an error.",
    "environment: production",
    "environment: prod"
);
bad_policy!(
    ambiguous_ratio,
    "`coverage_min: 80` is ambiguous and refused with a hint.",
    "basic: [lint]",
    "basic: {gates: [lint], coverage_min: 80}"
);
bad_policy!(
    missing_version,
    "The version is required.",
    "version: 1\n",
    ""
);
bad_policy!(
    blue_green_without_section,
    "Blue-green needs its settings.",
    "strategy: direct",
    "strategy: blue-green"
);
bad_policy!(
    shell_string_command,
    "A command as one string is refused: commands never go through a shell.",
    "run: [flake8, .]",
    "run: [\"flake8 .\"]"
);
bad_policy!(
    secret_in_policy,
    "A webhook URL in the policy is refused: name the secret instead.",
    "environments:",
    "notify: {slack_webhook: \"https://hooks.slack.com/services/T/B/X\"}\nenvironments:"
);
bad_policy!(
    trigger_needs_source,
    "A trigger with neither query nor probe is an error.",
    "strategy: direct\n",
    "strategy: direct\n    rollback:\n      triggers:\n        - {name: errors, above: 1%, for: 2m}\n"
);
bad_policy!(
    duplicate_key,
    "Duplicate keys are refused rather than silently overwritten.",
    "version: 1\n",
    "version: 1\nversion: 1\n"
);
bad_policy!(
    invalid_yaml,
    "Broken YAML syntax is located.",
    "tiers:\n  basic: [lint]",
    "tiers:\n  basic: [lint"
);

/// Every problem is reported at once, not only the first.
#[test]
fn all_problems_at_once() {
    let text = BASE
        .replacen("tier: basic}", "tier: basik, reviewz: 2}", 1)
        .replacen("parser: flake8}", "parser: flake8, timeout: soon}", 1)
        .replacen("strategy: direct", "strategy: canary", 1);
    let msg = problems(&text);
    assert!(msg.contains("4 problem(s)"), "{msg}");
    insta::assert_snapshot!(msg);
}

bad_policy!(
    report_glob_with_run,
    "A report glob reads uploaded files: it cannot go with `run`.",
    "lint: {run: [flake8, .], parser: flake8}",
    "lint: {run: [pytest], parser: junit, report: \"reports/tests-*/junit.xml\"}"
);
bad_policy!(
    gate_without_run_or_report,
    "A gate with neither `run` nor `report` does nothing and is refused.",
    "lint: {run: [flake8, .], parser: flake8}",
    "lint: {parser: junit}"
);
bad_policy!(
    out_inside_a_path,
    "`{out}` may only start a report path; a report-only gate has no `{out}`.",
    "lint: {run: [flake8, .], parser: flake8}",
    "lint: {run: [pytest], parser: junit, report: \"x/{out}/a.xml\"}\n  cov: {parser: junit, report: \"{out}/a.xml\"}"
);
bad_policy!(
    report_only_glob_shape,
    "A report-only gate reads JUnit or Cobertura, through one `*` and no other pattern.",
    "lint: {run: [flake8, .], parser: flake8}",
    "lint: {parser: flake8, report: \"reports/*/*.txt\"}\n  cov: {parser: cobertura, report: \"reports/t-?/c.xml\"}"
);

/// A report-only gate (no `run`, one `*` in `report` and `coverage`) and `{out}` report paths load.
#[test]
fn report_only_and_out_paths_load() {
    let text = BASE.replacen(
        "lint: {run: [flake8, .], parser: flake8}",
        "lint: {parser: junit, report: \"reports/tests-*/junit.xml\", coverage: \"reports/tests-*/coverage.xml\"}\n  unit: {run: [pytest, \"--junitxml={out}/u.xml\"], parser: junit, report: \"{out}/u.xml\"}",
        1,
    );
    let p = load_str(&text, Path::new("p.yml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.gates["lint"].run.is_empty());
    assert_eq!(
        p.gates["unit"].report.as_deref(),
        Some(Path::new("{out}/u.xml"))
    );
}
bad_policy!(
    install_as_one_string,
    "The install step is an argument list like `run`, never a shell string.",
    "tiers:",
    "install: [\"pip install -r requirements.txt\"]\ntiers:"
);

/// The pod-level keys load into the workload spec: split resources, probes, security override,
/// drain, secret keys as environment variable names, and the example's strategic patch.
#[test]
fn example_production_workload() {
    let p = example();
    let e = &p.environments["production"];
    assert_eq!(e.resources.requests.memory, "12Gi");
    assert_eq!(e.resources.limits.memory, "16Gi");
    let w = &e.workload;
    assert_eq!(w.startup.as_ref().map(|s| s.failure_threshold), Some(60));
    assert!(w.security.read_only_root_filesystem && w.security.run_as_non_root);
    assert_eq!(w.termination_grace, Duration::from_secs(60));
    assert_eq!(w.image_pull_secrets, ["ghcr-pull"]);
    assert_eq!(w.patches.len(), 1);
    assert!(!w.create_namespace);
    assert!(e.secrets.contains_key("DATABASE_URL"));
    // The shorthand means requests = limits; an absent `secrets` is the default pair.
    let dev = &p.environments["development"];
    assert_eq!(dev.resources.requests, dev.resources.limits);
    let base = load_str(BASE, Path::new("p.yml")).unwrap();
    let keys: Vec<&String> = base.environments["production"].secrets.keys().collect();
    assert_eq!(keys, ["DATABASE_URL", "REDIS_URL"]);
}

/// Broken workload keys are reported with line:col and key path: a bad patch operation, a patch
/// with two bodies, mixed resource forms, a relative mount, pre_stop longer than grace.
#[test]
fn workload_key_problems_are_located() {
    let text = BASE.replacen(
        "    strategy: direct\n",
        r#"    strategy: direct
    resources: {cpu: "1", requests: {cpu: "1", memory: 1Gi}, limits: {cpu: "1", memory: 1Gi}}
    tls_mount: etc/tls
    drain: {pre_stop: 60s, grace: 30s}
    patches:
      - kind: Deployment
        json: [{op: upsert, path: /spec}]
      - kind: Service
        merge: {metadata: {}}
        json: []
      - kind: Pod
        merge: {a: 1}
"#,
        1,
    );
    let p = problems(&text);
    for want in [
        "environments.production.resources: write either the shorthand",
        "15:16: environments.production.tls_mount: `etc/tls` is not an absolute path",
        "environments.production.drain: pre_stop must be shorter than grace",
        "environments.production.patches[0].json[0].op: unknown operation `upsert`",
        "environments.production.patches[1]: a patch needs exactly one of `json`, `merge`, `strategic`",
        "environments.production.patches[2].kind: unknown value `Pod`",
    ] {
        assert!(p.contains(want), "missing {want:?} in:\n{p}");
    }
}

/// Protects "the scope the user wrote applies to the PRs it is written for": the example's
/// `diff: changed-files` on `feature/*` scopes a pull request from `feature/x` into `development`
/// (whose rule sets no `diff`), while a base that sets `diff` decides for its own pull requests.
#[test]
fn pull_request_scope_comes_from_base_else_head() {
    use fm_deploy::policy::model::DiffScope;
    let p = example();
    assert_eq!(
        p.pull_request_scope("development", "feature/x"),
        DiffScope::ChangedFiles
    );
    assert_eq!(
        p.pull_request_scope("development", "staging"),
        DiffScope::All
    );
    let strict = load_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml"),
        )
        .unwrap()
        .replace(
            "    tier: basic\n    reviews: 1\n",
            "    tier: basic\n    reviews: 1\n    diff: all\n",
        ),
        Path::new("fm-deploy.yml"),
    )
    .unwrap();
    assert_eq!(
        strict.pull_request_scope("development", "feature/x"),
        DiffScope::All
    );
}
