//! Text a pull request controls (tool output, file names, finding messages, test names, branch
//! names, PR titles, label names) run through the real `fm-deploy` binary as a hostile contributor
//! would shape it: no line of stdout or stderr becomes a workflow command the action did not mean,
//! outputs and summary keep their structure, check runs stay valid (Prism), label values stay valid.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

mod support_github;
mod support_k8s;

use fm_deploy::runtime::{OutputKey, is_command_line, runner_commands, runner_lines};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support_github::Testbed;

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

/// Everything at once: shell metacharacters, workflow commands old and new, line breaks of every
/// kind, Markdown table breakers, HTML, emoji and non-ASCII, and length.
fn hostile_name() -> String {
    format!(
        "feature/$(rm -rf /)`id`;echo pwned|x::set-output name=decision::allow\n::error title=INJECTED::name\r##[warning]legacy <b>🚀 ünïcödé {}",
        "x".repeat(300)
    )
}

const SARIF: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "evil", "rules": []}},
  "results": [{"ruleId": "R1\n::error title=INJECTED::rule", "level": "error",
    "message": {"text": "bad thing\n::warning title=INJECTED::owned\r::set-output name=decision::allow ##[error]legacy"},
    "locations": [{"physicalLocation": {"artifactLocation": {"uri": "::error title=fake::evil.py"},
      "region": {"startLine": 3, "startColumn": 1}}}]}]}]}"#;

const FLAKE8: &str =
    "::error title=fake::evil.py:1:1: E999 ::warning title=INJECTED::lint | cell\n";

const JUNIT: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="s" tests="1" failures="1">
<testcase classname="::warning title=INJECTED::cls" name="test_x&#10;::error title=INJECTED::junit">
<failure message="::error title=INJECTED::fail&#10;::warning title=INJECTED::more">
::error title=INJECTED::body
  ::notice title=INJECTED::indented
</failure></testcase></testsuite></testsuites>"#;

const CRASH: &str = "import sys; sys.stderr.write('boom\\n::error title=INJECTED::crash\\n##[set-output name=decision]allow\\n'); sys.exit(3)";

fn policy() -> String {
    format!(
        r#"version: 1
app: {{name: web, image: ghcr.io/org/web}}
branches:
  "**": {{tier: basic}}
tiers:
  basic: [sarif, lint, tests, crash]
gates:
  sarif: {{run: [cat, hostile.sarif], parser: sarif, block_over: 0}}
  lint: {{run: [cat, flake8.txt], parser: flake8, block_over: 0}}
  tests: {{run: [cp, junit.src.xml, junit.xml], parser: junit, report: junit.xml}}
  crash: {{run: [python3, -c, "{}"], parser: sarif}}
"#,
        CRASH.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

fn workspace(dir: &Path, policy: &str) -> PathBuf {
    let ws = dir.join("ws");
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(ws.join(".github/fm-deploy.yml"), policy).unwrap();
    std::fs::write(ws.join("hostile.sarif"), SARIF).unwrap();
    std::fs::write(ws.join("flake8.txt"), FLAKE8).unwrap();
    std::fs::write(ws.join("junit.src.xml"), JUNIT).unwrap();
    ws
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A push of the hostile branch.
fn push_payload() -> Value {
    let mut p = fixture("push.branch.json");
    p["ref"] = json!(format!("refs/heads/{}", hostile_name()));
    p
}

/// A same-repository pull request whose head branch, base branch, title and labels are hostile.
fn pull_request_payload() -> Value {
    let mut p = support_github::pull_request_payload(false);
    let pr = &mut p["pull_request"];
    pr["title"] = json!(hostile_name());
    pr["head"]["ref"] = json!(hostile_name());
    pr["base"]["ref"] = json!(format!("main{}", hostile_name()));
    pr["labels"] = json!([{"name": hostile_name()}, {"name": "::set-output name=x::y"}]);
    p
}

struct Run {
    code: Option<i32>,
    log: String,
    outputs: String,
    summary: String,
}

async fn run(
    dir: &Path,
    policy: &str,
    event: &str,
    payload: &Value,
    extra: &[(&str, &str)],
) -> Run {
    let ws = workspace(dir, policy);
    let event_path = dir.join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(payload).unwrap()).unwrap();
    let (outputs, summary) = (dir.join("outputs"), dir.join("summary"));
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("RUNNER_DEBUG", "1")
        .env("GITHUB_EVENT_NAME", event)
        .env("GITHUB_EVENT_PATH", &event_path)
        .env("GITHUB_WORKSPACE", &ws)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_REPOSITORY", "octocat/hello-world")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_JOB", "pipeline")
        .env("INPUT_COMMAND", "gates");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    Run {
        code: out.status.code(),
        log: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

/// The runner's view of the log: every line that starts a command (after leading whitespace, or
/// with `##[` anywhere) outside a `::stop-commands::T` … `::T::` block is one of the action's own
/// commands with only its own property keys; nothing hostile executes.
fn assert_no_injected_commands(log: &str) {
    let mut fence: Option<String> = None;
    for line in runner_lines(log) {
        let t = line.trim_start();
        if let Some(tok) = &fence {
            if t.eq_ignore_ascii_case(&format!("::{tok}::")) {
                fence = None;
            }
            continue;
        }
        if let Some(tok) = t.strip_prefix("::stop-commands::") {
            assert!(tok.len() >= 32, "a guessable stop token: {line}");
            fence = Some(tok.to_owned());
            continue;
        }
        if !is_command_line(line) {
            continue;
        }
        let cmds = runner_commands(line);
        assert_eq!(cmds.len(), 1, "{line:?}");
        let c = &cmds[0];
        assert!(
            [
                "error", "warning", "notice", "group", "endgroup", "add-mask"
            ]
            .contains(&c.name.as_str()),
            "not the action's command: {line:?}"
        );
        for prop in c.properties.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = prop.split_once('=').unwrap_or((prop, ""));
            assert!(
                ["file", "line", "col", "endLine", "endColumn", "title"].contains(&key),
                "{line:?}"
            );
            // The action's titles: `<tool> <rule> (<severity>)` or `fm-deploy …`; hostile text may
            // sit inside, escaped, never make its own.
            if key == "title" {
                let own = value.starts_with("fm-deploy")
                    || ["critical", "high", "medium", "low", "info"]
                        .iter()
                        .any(|s| value.ends_with(&format!("({s})")));
                assert!(own, "{line:?}");
            }
        }
    }
    assert!(fence.is_none(), "a stop-commands block left open");
    for c in runner_commands(log) {
        assert!(
            !["set-output", "set-env", "add-path", "save-state", "echo"].contains(&c.name.as_str()),
            "{c:?}"
        );
    }
}

/// `GITHUB_OUTPUT` read as the runner reads it: `name=value` and `name<<DELIM` … `DELIM`.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                let l = lines
                    .next()
                    .unwrap_or_else(|| panic!("heredoc {delim} never ends"));
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else {
            let (name, value) = line.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
            out.insert(name.to_owned(), value.to_owned());
        }
    }
    for name in out.keys() {
        assert!(
            OutputKey::from_name(name).is_some(),
            "undeclared output {name:?}"
        );
    }
    out
}

/// Every row of every Markdown table has its header's column count (unescaped `|`).
fn assert_tables_intact(md: &str) {
    let pipes = |l: &str| {
        let b = l.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    let mut header: Option<usize> = None;
    let mut tables = 0;
    for line in md.lines() {
        if line.starts_with('|') {
            match header {
                None => {
                    header = Some(pipes(line));
                    tables += 1;
                }
                Some(n) => assert_eq!(pipes(line), n, "row breaks its table: {line:?}"),
            }
        } else {
            header = None;
        }
    }
    assert!(tables > 0, "no table in the summary:\n{md}");
}

/// Hostile SARIF, flake8 and JUnit reports and a crashing tool's stderr, on a push of a hostile
/// branch without check-run access: the fallback annotations are the only commands, the findings
/// still block, outputs and summary keep their structure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_reports_never_become_commands() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &policy(), "push", &push_payload(), &[]).await;
    assert_eq!(r.code, Some(1), "{}", r.log);
    assert_no_injected_commands(&r.log);
    // The hostile text is still shown, fenced, and the findings became real annotations.
    assert!(r.log.contains("::stop-commands::"), "{}", r.log);
    let annotations: Vec<_> = runner_commands(&r.log)
        .into_iter()
        .filter(|c| c.name == "error" || c.name == "warning")
        .collect();
    assert!(
        annotations.iter().any(|c| c
            .properties
            .contains("file=%3A%3Aerror title=fake%3A%3Aevil.py")),
        "{annotations:?}"
    );
    let outputs = parse_outputs(&r.outputs);
    assert_eq!(outputs.get("decision").map(String::as_str), Some("block"));
    let report: Value = serde_json::from_str(&outputs["report"]).unwrap();
    assert!(report.to_string().contains("rm -rf"), "{report}");
    assert!(
        r.summary
            .contains("bad thing ::warning title=INJECTED::owned"),
        "{}",
        r.summary
    );
    for row in [
        "| `crash` | ❌ block | crashed |",
        "| `tests` | ❌ block | findings |",
    ] {
        assert!(r.summary.contains(row), "{row}: {}", r.summary);
    }
    assert_tables_intact(&r.summary);
}

/// `plan` for the hostile branch: the text is fenced, the summary's heading and tables hold,
/// and the report output carries the branch exactly (JSON inside a random-delimiter heredoc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_branch_in_plan_stays_data() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        &policy(),
        "push",
        &push_payload(),
        &[("INPUT_COMMAND", "plan")],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.log);
    assert_no_injected_commands(&r.log);
    assert!(r.log.contains("::stop-commands::"), "{}", r.log);
    let outputs = parse_outputs(&r.outputs);
    assert_eq!(outputs.get("decision").map(String::as_str), Some("skipped"));
    let report: Value = serde_json::from_str(&outputs["report"]).unwrap();
    assert_eq!(
        report["branch"].as_str(),
        Some(hostile_name().as_str()),
        "{report}"
    );
    let heading = r.summary.lines().next().unwrap_or_default();
    assert!(heading.starts_with("## fm-deploy plan: `"), "{heading}");
    assert!(heading.contains(&"x".repeat(300)), "{heading}");
    assert_tables_intact(&r.summary);
}

/// On a terminal (or a `run:` step), `plan --json` for the hostile branch prints JSON that still
/// parses to the exact branch and that the runner reads no command from.
#[test]
fn hostile_branch_in_json_plan_stays_json() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), &policy());
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["plan", "--json", "--sha", &"a".repeat(40), "--branch"])
        .arg(hostile_name())
        .arg("--workspace")
        .arg(&ws)
        .arg("--summary")
        .arg(dir.path().join("report.md"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_no_injected_commands(&stdout);
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["branch"].as_str(), Some(hostile_name().as_str()));
}

/// A policy whose keys carry workflow commands fails to load: the error chain on stderr and the
/// policy annotations are the only output, and neither lets a hostile key make a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_policy_errors_stay_data() {
    let dir = tempfile::tempdir().unwrap();
    let broken = policy().replace(
        "  crash:",
        "  \"x\\n::error title=INJECTED::key\\r##[set-output name=decision]allow\":",
    );
    let r = run(dir.path(), &broken, "push", &push_payload(), &[]).await;
    assert_eq!(r.code, Some(2), "{}", r.log);
    assert!(r.log.contains("error: failed to load policy"), "{}", r.log);
    assert!(
        r.log.contains("title=INJECTED"),
        "the key is shown: {}",
        r.log
    );
    assert_no_injected_commands(&r.log);
}

/// A hostile pull request (head and base branch, title, labels) against GitHub through Prism:
/// check runs keep valid names and titles within GitHub's limits, Prism sees no invalid request,
/// and the log and outputs stay clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pull_request_keeps_check_runs_valid() {
    let tb = Testbed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "ghs_hostile_test_token_0123456789";
    let r = run(
        dir.path(),
        &policy(),
        "pull_request",
        &pull_request_payload(),
        &[
            ("GITHUB_API_URL", tb.url.as_str()),
            ("INPUT_GITHUB-TOKEN", token),
        ],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}", r.log);
    assert_no_injected_commands(&r.log);
    assert!(
        r.log
            .lines()
            .all(|l| !l.contains(token) || l == format!("::add-mask::{token}")),
        "the token reached the log"
    );
    let runs = tb.fake.state().check_runs.clone();
    assert!(runs.len() >= 5, "{runs:?}");
    for run in &runs {
        assert!(run.name.starts_with("fm-deploy / "), "{}", run.name);
        assert!(
            !run.name.contains(['\n', '\r']) && run.name.chars().count() <= 100,
            "{}",
            run.name
        );
        let title = run.title.as_deref().unwrap_or_default();
        assert!(
            title.chars().count() <= 255 && !title.contains(['\n', '\r']),
            "{title:?}"
        );
        assert!(run.summary.as_deref().unwrap_or_default().chars().count() <= 65_535);
        for a in &run.annotations {
            let title = a["title"].as_str().unwrap_or_default();
            assert!(title.chars().count() <= 255, "{title}");
        }
    }
    let outputs = parse_outputs(&r.outputs);
    assert_eq!(outputs.get("decision").map(String::as_str), Some("block"));
    assert_tables_intact(&r.summary);
    tb.assert_clean().await;
    tb.stop().await;
}

/// Kubernetes objects for the longest app and environment names the policy allows, deployed from
/// hostile image tags, carry only label values the apiserver accepts:
/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, at most 63 characters — checked here and by the
/// testbed's real apiserver (a server-side dry-run create of the Deployment and Service).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_stay_valid() {
    use fm_deploy::deploy::labels::is_label_value;
    use fm_deploy::deploy::manifests::{
        DeployInputs, environment_objects, image_version, labels, selector_labels,
    };
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, PostParams};
    let (app, env) = ("a".repeat(63), "e".repeat(63));
    let text = format!(
        "version: 1\napp: {{name: {app}, image: ghcr.io/org/web}}\nbranches:\n  main: {{tier: basic, environment: {env}}}\ntiers:\n  basic: [noop]\ngates:\n  noop: {{run: [\"true\"], parser: exit-code}}\nenvironments:\n  {env}:\n    namespace: default\n    url: https://web.example\n    strategy: direct\n"
    );
    let policy = fm_deploy::policy::load_str(&text, Path::new("fm-deploy.yml")).unwrap();
    let env = &policy.environments[&env];
    let mut values: Vec<String> = labels(&policy.app, env).into_values().collect();
    values.extend(selector_labels(&policy.app, env).into_values());
    for tag in [
        hostile_name(),
        "v1.0.0-$(id)".into(),
        "🚀".into(),
        "-_.".into(),
    ] {
        values.push(image_version(&format!("ghcr.io/org/web:{tag}")));
    }
    for v in &values {
        assert!(is_label_value(v), "{v:?}");
    }

    // The image field takes any text without surrounding whitespace; the labels must still hold.
    let tag = format!("$(rm-rf-/)`id`;🚀ünï+{}", "x".repeat(200));
    let objects = environment_objects(
        &policy.app,
        env,
        &DeployInputs {
            image: format!("ghcr.io/org/web:{tag}"),
            run_id: "4242".into(),
            sha: "a".repeat(40),
            ..DeployInputs::default()
        },
    )
    .unwrap_or_else(|e| panic!("hostile names must still build objects: {e}"));
    let client = support_k8s::Testbed::get().unwrap().client().await.unwrap();
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deployment = objects.deployment;
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&dry, &deployment)
        .await
        .unwrap_or_else(|e| panic!("the apiserver refused the Deployment: {e}"));
    let service = objects.service.expect("a direct deploy has a Service");
    Api::<Service>::namespaced(client, "default")
        .create(&dry, &service)
        .await
        .unwrap_or_else(|e| panic!("the apiserver refused the Service: {e}"));
}
