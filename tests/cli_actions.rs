//! The binary end to end as GitHub Actions runs it: real env var names, real event payloads,
//! `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` files, exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    out: Output,
    outputs: String,
    summary: String,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    /// The value of one output, heredoc or single line.
    fn output(&self, key: &str) -> Option<String> {
        let mut lines = self.outputs.lines();
        while let Some(l) = lines.next() {
            if let Some(v) = l.strip_prefix(&format!("{key}=")) {
                return Some(v.to_string());
            }
            if let Some(delim) = l.strip_prefix(&format!("{key}<<")) {
                let mut v = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    v.push(l);
                }
                return Some(v.join("\n"));
            }
        }
        None
    }
}

/// Runs the binary with nothing but the given variables (plus PATH), in a fresh workspace that
/// holds `policy` at `.github/fm-deploy.yml`.
fn actions(event: &str, payload: &Path, policy: &str, inputs: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(ws.join(".github/fm-deploy.yml"), policy).unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary");
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", event)
        .env("GITHUB_EVENT_PATH", payload)
        .env("GITHUB_WORKSPACE", &ws)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_REPOSITORY", "org/fm-llm-solver")
        .env("GITHUB_RUN_ID", "42")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567");
    for (k, v) in inputs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        out,
        outputs: std::fs::read_to_string(&output).unwrap_or_default(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

fn example_policy() -> String {
    std::fs::read_to_string(root().join("examples/fm-deploy.yml")).unwrap()
}

fn events(name: &str) -> PathBuf {
    root().join("tests/fixtures/events").join(name)
}

/// A real push payload (to `master`, which the example maps to nothing) plans gates for no rule;
/// with `main` policy patterns the branch resolves and outputs are written.
#[test]
fn plan_on_push_writes_outputs_and_summary() {
    let policy = example_policy().replace("  main:\n", "  master:\n");
    let run = actions(
        "push",
        &events("push.branch.json"),
        &policy,
        &[("INPUT_COMMAND", "plan")],
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(run.output("environment").as_deref(), Some("production"));
    assert_eq!(run.output("tier").as_deref(), Some("comprehensive"));
    assert_eq!(run.output("strategy").as_deref(), Some("blue-green"));
    assert_eq!(run.output("decision").as_deref(), Some("skipped"));
    let report: serde_json::Value = serde_json::from_str(&run.output("report").unwrap()).unwrap();
    assert_eq!(report["deploy"]["kind"], "planned");
    assert!(
        run.summary.contains("## fm-deploy plan: `master`"),
        "{}",
        run.summary
    );
    assert!(run.summary.contains("worst-case detection"));
}

/// `matrix` writes one JSON line that `fromJSON` accepts.
#[test]
fn matrix_output_is_one_json_line() {
    let policy = example_policy().replace("  main:\n", "  master:\n");
    let run = actions(
        "push",
        &events("push.branch.json"),
        &policy,
        &[("INPUT_COMMAND", "matrix")],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let m = run.output("matrix").unwrap();
    assert!(!m.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(v["python"].as_array().map(Vec::len), Some(4));
}

/// A fork pull request plans the base branch's tier and never deploys.
#[test]
fn fork_pull_request_never_deploys() {
    let payload = events("derived/pull_request.opened.fork.json");
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&payload).unwrap()).unwrap();
    let base_ref = base["pull_request"]["base"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = example_policy().replace("  main:\n", &format!("  {base_ref}:\n"));
    let run = actions(
        "pull_request",
        &payload,
        &policy,
        &[("INPUT_COMMAND", "plan")],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.output("tier").as_deref(), Some("comprehensive"));
    assert!(
        run.stdout().contains("forks never deploy"),
        "{}",
        run.stdout()
    );
}

/// A broken policy exits 2, changes nothing, and annotates each problem at its line and column.
#[test]
fn bad_policy_exits_2_with_located_annotations() {
    let policy =
        example_policy().replace("tier: basic\n    reviews: 1", "tier: basik\n    reviews: 1");
    let run = actions(
        "push",
        &events("push.branch.json"),
        &policy,
        &[("INPUT_COMMAND", "plan")],
    );
    assert_eq!(run.code(), Some(2));
    let out = run.stdout();
    assert!(out.contains("::error file="), "{out}");
    assert!(
        out.contains("unknown tier `basik` (did you mean `basic`?)"),
        "{out}"
    );
    assert!(
        run.outputs.is_empty(),
        "no outputs on a refused policy: {}",
        run.outputs
    );
}

/// Secret inputs are masked before anything else is printed, under the hyphenated names GitHub uses.
#[test]
fn secrets_are_masked_first() {
    let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let hook = "https://hooks.slack.com/services/T000/B000/XXXXXXXX";
    let policy = example_policy().replace("  main:\n", "  master:\n");
    let run = actions(
        "push",
        &events("push.branch.json"),
        &policy,
        &[
            ("INPUT_COMMAND", "plan"),
            ("INPUT_GITHUB-TOKEN", token),
            ("INPUT_SLACK-WEBHOOK", hook),
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let out = run.stdout();
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with("::add-mask::"), "{first}");
    assert!(out.contains(&format!("::add-mask::{token}")));
    assert!(out.contains(&format!("::add-mask::{hook}")));
    let unmasked = out
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .any(|l| l.contains(token) || l.contains(hook));
    assert!(!unmasked, "a secret was printed outside its mask command");
    assert!(!run.stderr().contains(token));
}

/// An unknown command input is refused with a suggestion and exit 2.
#[test]
fn unknown_command_exits_2() {
    let run = actions(
        "push",
        &events("push.branch.json"),
        &example_policy(),
        &[("INPUT_COMMAND", "deplyo")],
    );
    assert_eq!(run.code(), Some(2));
    assert!(
        run.stdout().contains("did you mean `deploy`?"),
        "{}",
        run.stdout()
    );
}

/// Outside Actions the binary is a CLI with help.
#[test]
fn cli_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--branch") && text.contains("pipeline"),
        "{text}"
    );
}

/// The CLI plans the bundled example and writes the Markdown report file.
#[test]
fn cli_plan_writes_report_file() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let out = Command::new(BIN)
        .args(["plan", "--branch", "staging", "--sha", "abc", "--config"])
        .arg(root().join("examples/fm-deploy.yml"))
        .arg("--summary")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deploy: rolling to `staging`"));
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("### Deploy: rolling to `staging`")
    );
}

/// Protects `image` + `image-tag` + `image-digest` as action.yml documents them: the tag is kept
/// with a repository override, a digest pins both the scan gate's `{image}` and the deploy, and a
/// complete reference combined with a tag is refused (exit 2) rather than dropping one.
#[test]
fn image_inputs_compose_one_reference() {
    let policy = example_policy().replace("  main:\n", "  master:\n");
    let plan = |inputs: &[(&str, &str)]| {
        let mut all = vec![("INPUT_COMMAND", "plan")];
        all.extend_from_slice(inputs);
        actions("push", &events("push.branch.json"), &policy, &all)
    };
    let image_of = |run: &Run| -> (String, String) {
        assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
        let report: serde_json::Value =
            serde_json::from_str(&run.output("report").unwrap()).unwrap();
        let scan = report["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "container-scan")
            .unwrap_or_else(|| panic!("{report}"))["argv"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        (
            report["deploy"]["image"].as_str().unwrap().to_string(),
            scan,
        )
    };
    let run = plan(&[
        ("INPUT_IMAGE", "registry.local:5000/team/app"),
        ("INPUT_IMAGE-TAG", "v2"),
    ]);
    let want = "registry.local:5000/team/app:v2".to_string();
    assert_eq!(image_of(&run), (want.clone(), want));

    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let run = plan(&[("INPUT_IMAGE-DIGEST", digest)]);
    let want = format!("ghcr.io/org/fm-llm-solver@{digest}");
    assert_eq!(image_of(&run), (want.clone(), want));

    let run = plan(&[("INPUT_IMAGE", "o/app:v1"), ("INPUT_IMAGE-TAG", "v2")]);
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stdout()
            .contains("`image` `o/app:v1` already carries a tag"),
        "{}",
        run.stdout()
    );
    let run = plan(&[("INPUT_IMAGE-DIGEST", "sha256:abc")]);
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stdout().contains("`sha256:abc` is not an image digest"),
        "{}",
        run.stdout()
    );
}
